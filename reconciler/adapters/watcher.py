"""File system notifications for watch mode: the only module that imports watchdog.

It collects the paths that changed under the source roots; it never reads them (the
source cache does). When notifications cannot be had (no inotify, a watch limit reached),
``start`` says so and the caller falls back to a stat-based poll.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)


#: file events that mean "read me again". With inotify a write is taken when the writer
#: closes the file (a file read between its truncation and its last write would look empty
#: and its objects deleted); elsewhere there is no close event, so a modification counts.
FILE_EVENTS = frozenset({"closed", "deleted", "moved"} if sys.platform == "linux"
                        else {"modified", "created", "deleted", "moved"})


class _Collector(FileSystemEventHandler):
    def __init__(self, changed: Callable[[set[str], bool], None]) -> None:
        self._changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # a directory created, moved or removed may carry many files: rescan
            if event.event_type in ("created", "deleted", "moved"):
                self._changed(set(), True)
            return
        if event.event_type not in FILE_EVENTS:
            return
        paths = {p if isinstance(p, str) else p.decode()
                 for p in (event.src_path, getattr(event, "dest_path", "")) if p}
        self._changed(paths, False)


class SourceWatcher:
    """Collects changed paths under ``roots``; ``on_change`` is told (from the observer's
    thread) that there is something to take with ``take``."""

    def __init__(self, roots: list[Path], on_change: Callable[[], None]) -> None:
        self._roots = roots
        self._on_change = on_change
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._rescan = False
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self) -> bool:
        """Watch every root; False when notifications are unavailable (poll instead)."""
        observer = Observer()
        try:
            for root in self._roots:
                target = root if root.is_dir() else root.parent
                observer.schedule(_Collector(self._collect), str(target), recursive=True)
            observer.start()
        except OSError as exc:  # e.g. the inotify watch limit
            log.warning("file notifications unavailable (%s): polling the sources instead", exc)
            return False
        self._observer = observer
        return True

    def stop(self) -> None:
        """Stop watching."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def take(self) -> tuple[set[str], bool]:
        """The paths changed since the last call, and whether a full rescan is needed."""
        with self._lock:
            paths, rescan = self._paths, self._rescan
            self._paths, self._rescan = set(), False
        return paths, rescan

    def _collect(self, paths: set[str], rescan: bool) -> None:
        with self._lock:
            self._paths |= paths
            self._rescan = self._rescan or rescan
        self._on_change()
