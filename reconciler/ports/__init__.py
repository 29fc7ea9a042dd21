"""Ports: the protocols the reconcile logic talks to. Adapters implement them.

Nothing here does I/O; these are interfaces and plain-data errors only.
"""
