"""List-and-watch of one kind into an in-memory cache (a minimal informer).

Level-triggered: every change calls ``on_change(name)``; the handler reads the cache.
Watches resume from the last resourceVersion seen (bookmarks included); a 410 or an
unknown resourceVersion means list again, and the relist reports every object that
changed or vanished meanwhile, so no update is missed. A 401/403 is not retried: the
informer stops and says so in ``denied`` (the controller then gives up with that line).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from reconciler.core import errors
from reconciler.ports.cluster import Cluster, RawObject

log = logging.getLogger(__name__)


class Informer:
    """The cache of one kind, kept current by a background thread."""

    def __init__(self, *, cluster: Cluster, plural: str, on_change: Callable[[str], None],
                 watch_timeout: int = 300, retry_delay: float = 1.0) -> None:
        self._cluster = cluster
        self.plural = plural
        self._on_change = on_change
        self._watch_timeout = watch_timeout
        self._retry_delay = retry_delay
        self._cache: dict[str, RawObject] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self.resource_version: str | None = None
        self.relists = 0
        self.denied: errors.AccessDeniedError | None = None

    def get(self, name: str) -> RawObject | None:
        """The cached object called ``name``."""
        with self._lock:
            return self._cache.get(name)

    def names(self) -> list[str]:
        """Every cached object's name."""
        with self._lock:
            return list(self._cache)

    def refresh(self, name: str) -> None:
        """Read one object again into the cache (when no watch keeps it current)."""
        try:
            raw = self._cluster.get_object(self.plural, name)
        except errors.ReconcilerError as exc:
            log.warning("could not read %s/%s again: %s", self.plural, name, exc)
            return
        with self._lock:
            if raw is None:
                self._cache.pop(name, None)
            else:
                self._cache[name] = raw

    def relist(self) -> None:
        """List everything, replace the cache and report what changed."""
        items, resource_version = self._cluster.list_objects(self.plural)
        fresh = {item["metadata"]["name"]: item for item in items}
        with self._lock:
            old, self._cache = self._cache, fresh
        self.resource_version = resource_version
        self.relists += 1
        self.synced.set()
        for name in set(old) | set(fresh):
            before, after = old.get(name), fresh.get(name)
            if before is None or after is None or _rv(before) != _rv(after):
                self._on_change(name)

    def run(self, stop: threading.Event) -> None:
        """List, then watch until ``stop`` is set."""
        while not stop.is_set():
            try:
                if self.resource_version is None:
                    self.relist()
                self._watch(stop)
            except errors.WatchExpiredError:
                log.info("watch of %s expired; listing again", self.plural)
                self.resource_version = None
            except errors.AccessDeniedError as exc:
                log.error("cannot list and watch %s: %s", self.plural, exc)
                self.denied = exc
                return
            except errors.ReconcilerError as exc:
                log.warning("watch of %s failed: %s; retrying", self.plural, exc)
                stop.wait(self._retry_delay)

    def _watch(self, stop: threading.Event) -> None:
        assert self.resource_version is not None
        for event in self._cluster.watch_objects(self.plural, self.resource_version,
                                                 self._watch_timeout):
            if event.resource_version:
                self.resource_version = event.resource_version
            if event.type == "BOOKMARK":
                if stop.is_set():
                    return
                continue
            name = event.raw_object["metadata"]["name"]
            with self._lock:
                if event.type == "DELETED":
                    self._cache.pop(name, None)
                else:
                    self._cache[name] = event.raw_object
            self._on_change(name)
            if stop.is_set():
                return


def _rv(raw: RawObject) -> str | None:
    return (raw.get("metadata") or {}).get("resourceVersion")
