"""Watch fan-out: the bounded history of committed changes and the open watch streams.

Owns: ``Change`` (one committed write), ``Watcher`` (one open stream's queue of watch events,
with the selector semantics of the real watch cache: an object that stops matching is sent as
DELETED, one that starts matching as ADDED), and ``WatchHub`` (history, replay from a
resourceVersion, 410 for an expired one, compaction, dropping streams).
Must not touch sockets: the HTTP handler drains a ``Watcher``. ``WatchHub`` is not locked
itself; the store calls it with its lock held so that events reach every queue in RV order.
"""

from __future__ import annotations

import collections
import enum
import queue
from collections.abc import Callable
from dataclasses import dataclass

from tests.fake_apiserver import errors

RawObject = errors.RawObject

INITIAL_EVENTS_END_ANNOTATION = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class Change:
    """A committed write: ``obj`` is the new state (the last state for DELETED)."""

    type: str  # ADDED, MODIFIED or DELETED
    key: tuple[str, str]
    resource_version: int
    obj: RawObject
    old: RawObject | None = None


class StreamEnd(enum.Enum):
    """Why a watch stream stops: a clean end of the response, or a cut connection."""

    GRACEFUL = "graceful"
    ABRUPT = "abrupt"


class Watcher:
    """The queue of watch events for one open stream, filtered by namespace and selectors."""

    def __init__(
        self,
        *,
        key: tuple[str, str],
        api_version: str,
        kind: str,
        namespace: str | None,
        predicate: Callable[[RawObject], bool],
    ) -> None:
        self.key = key
        self.api_version = api_version
        self.kind = kind
        self._namespace = namespace
        self._predicate = predicate
        self._queue: queue.Queue[RawObject | StreamEnd] = queue.Queue()

    def selects(self, raw_object: RawObject | None) -> bool:
        if raw_object is None:
            return False
        namespace = (raw_object.get("metadata") or {}).get("namespace")
        if self._namespace is not None and namespace != self._namespace:
            return False
        return self._predicate(raw_object)

    def push(self, event_type: str, raw_object: RawObject) -> None:
        presented = {"apiVersion": self.api_version, "kind": self.kind}
        presented.update((k, v) for k, v in raw_object.items() if k not in presented)
        self._queue.put({"type": event_type, "object": presented})

    def offer(self, change: Change) -> None:
        """Queue the event this stream sees for a change, if any."""
        now_selected = self.selects(change.obj)
        if change.type == "MODIFIED":
            was_selected = self.selects(change.old)
            if now_selected and not was_selected:
                self.push("ADDED", change.obj)
            elif was_selected and not now_selected:
                assert change.old is not None
                old = {**change.old, "metadata": {
                    **change.old["metadata"], "resourceVersion": str(change.resource_version)}}
                self.push("DELETED", old)
            elif now_selected:
                self.push("MODIFIED", change.obj)
        elif now_selected:
            self.push(change.type, change.obj)

    def push_bookmark(self, resource_version: int, *, initial_events_end: bool = False) -> None:
        metadata: RawObject = {"resourceVersion": str(resource_version), "creationTimestamp": None}
        if initial_events_end:
            metadata["annotations"] = {INITIAL_EVENTS_END_ANNOTATION: "true"}
        self._queue.put({
            "type": "BOOKMARK",
            "object": {"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata},
        })

    def end(self, how: StreamEnd) -> None:
        self._queue.put(how)

    def next(self, timeout: float | None) -> RawObject | StreamEnd | None:
        """The next watch event or end marker, or None if nothing came within ``timeout``."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class WatchHub:
    """History of changes plus the registered watchers; the caller holds the store lock."""

    def __init__(self, *, history_limit: int) -> None:
        self._history: collections.deque[Change] = collections.deque()
        self._history_limit = history_limit
        self._watchers: set[Watcher] = set()
        self.floor = 0  # every change with a larger resourceVersion is still in the history

    def record(self, change: Change) -> None:
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self.floor = self._history.popleft().resource_version
        for watcher in self._watchers:
            if watcher.key == change.key:
                watcher.offer(change)

    def subscribe(self, watcher: Watcher, *, since: int | None) -> None:
        """Register a watcher; with ``since``, first replay the changes after it (or raise 410)."""
        if since is not None:
            if since < self.floor:
                raise errors.expired(requested=since, oldest=self.floor)
            for change in self._history:
                if change.resource_version > since and change.key == watcher.key:
                    watcher.offer(change)
        self._watchers.add(watcher)

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    @property
    def open_streams(self) -> int:
        return len(self._watchers)

    def compact(self, current: int) -> None:
        self._history.clear()
        self.floor = current

    def end_streams(self, how: StreamEnd, *, key: tuple[str, str] | None = None) -> int:
        """End the open streams (of one resource, or all); return how many were ended."""
        ended = [w for w in self._watchers if key is None or w.key == key]
        for watcher in ended:
            watcher.end(how)
            self._watchers.discard(watcher)
        return len(ended)
