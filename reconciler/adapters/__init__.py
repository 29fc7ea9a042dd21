"""Adapters: the only code that touches Git, Kubernetes, the filesystem, forges or the clock.

Each implements a port and imports only ``reconciler.core`` and ``reconciler.ports``.
"""
