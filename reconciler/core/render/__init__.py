"""Renderers: pure functions from a resource (or all Customers) to the files of a directory.

No I/O, no clock, no environment: the same inputs give byte-identical files.
"""
