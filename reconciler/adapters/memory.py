"""Giving freed memory back to the operating system after a large pass.

A full pass over a big fleet allocates its snapshot, plan and verdicts, then frees them;
glibc keeps most freed pages mapped, so a long-running process stays at its peak.
``malloc_trim`` returns those pages. Owns only that call; a C library without it
(musl, macOS) is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.lru_cache(maxsize=1)
def _trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return freed heap pages to the system; False when the C library cannot."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
