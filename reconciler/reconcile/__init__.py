"""Reconcile logic: turns resources into commits through the ConfigRepo port.

Stateful only in caches that can always be rebuilt from the config repo itself.
"""
