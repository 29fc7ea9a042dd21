"""One writer per repository: an exclusive process-level lock on a file next to it.

Two reconcilers writing one config repo (or one mirror in a state dir) do not corrupt it
— every ref update is compare-and-swap — but they undo each other's view of it: commits
get mislabelled and shared files are rewritten back and forth. The lock makes the second
process stop at start-up with one line naming the first one's pid.

POSIX record locks (``fcntl.lockf``) rather than ``flock``: the kernel drops them when the
process dies (``kill -9`` included), so a crash never leaves a lock behind, and the same
process may take the lock again (one-shot commands wire a repository more than once).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from reconciler.core import errors

LOCK_FILE = "reconciler.lock"


class AlreadyLockedError(errors.PermanentError):
    """Another live process holds the repository's lock."""


class ProcessLock:
    """An exclusive lock held for as long as this object is open."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: Path, *, what: str) -> ProcessLock:
        """Take the lock at ``path`` without waiting; AlreadyLockedError when it is held."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise errors.PermanentError(f"{what}: cannot create lock {path}: "
                                        f"{exc.strerror}") from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise AlreadyLockedError(
                    f"{what} is in use by another reconciler (pid {holder}); only one may "
                    "write it at a time") from exc
            raise errors.PermanentError(f"{what}: cannot lock {path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    @classmethod
    def try_acquire(cls, path: Path, *, what: str) -> ProcessLock | None:
        """The lock, or None when another process holds it."""
        try:
            return cls.acquire(path, what=what)
        except AlreadyLockedError:
            return None

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
