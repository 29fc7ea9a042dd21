"""Reading the reconciler's own cache files beside a repository (the parse cache, the
touch index): never through a symlink, never blocking on a FIFO, never past a bound.

Owns: how such a file is opened and read. Must not: decide what its contents mean
(each cache checks its own lines) or write it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_regular(path: Path, max_bytes: int) -> bytes | None:
    """The bytes of the regular file at ``path``: b"" when it is absent or a read fails
    midway, None for something that must not be trusted (a symlink, a FIFO, an
    unreadable file, one over ``max_bytes``), which its owner replaces.

    Read to its end, not to the size it had when opened: an appender (another process
    adding lines) may grow it meanwhile, and every line is checked by its owner."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return b""
    except OSError:
        return None  # a symlink (ELOOP) or unreadable: whatever it is, not trusted
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        chunks: list[bytes] = []
        total = 0
        # a chunk the size fstat gave (plus room to notice growth): one read, usually
        while chunk := os.read(fd, max(info.st_size + 1, 1 << 16)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                return None
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)
