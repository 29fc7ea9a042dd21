"""A de-duplicating, rate-limited work queue with per-key exponential backoff.

Semantics of client-go's workqueue: a key is queued at most once; a key being processed
is not handed to a second worker, and if it is added meanwhile it is processed again
afterwards; failures requeue it after base * 2^failures (capped); an overall token bucket
bounds the rate. The clock is injected.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Keys to reconcile, each at most once at a time."""

    def __init__(self, *, base_delay: float = 0.05, max_delay: float = 300.0,
                 rate_per_second: float = 50.0, burst: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._base, self._max = base_delay, max_delay
        self._rate, self._burst = rate_per_second, float(burst)
        self._tokens, self._last_refill = float(burst), clock()
        self._queue: list[K] = []
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._failures: dict[K, int] = {}
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed)

    def add(self, key: K) -> None:
        """Queue ``key`` now (no-op when already queued)."""
        with self._cond:
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds."""
        with self._cond:
            heapq.heappush(self._delayed, (self._clock() + delay, next(self._seq), key))
            self._cond.notify()

    def retry(self, key: K) -> float:
        """Queue ``key`` again after its backoff; return the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay: float = min(self._max, self._base * 2.0 ** failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s backoff after a success."""
        with self._cond:
            self._failures.pop(key, None)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process (blocks); None on timeout or when closed."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote_due()
                if self._closed:
                    return None
                if self._queue and self._take_token():
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None and self._clock() >= deadline:
                    return None
                wait = self._next_wait(deadline)
                self._cond.wait(None if wait is None else max(wait, 0.001))

    def done(self, key: K) -> None:
        """Mark ``key`` processed; re-queue it if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    def close(self) -> None:
        """Wake every waiter; get() returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)

    def _take_token(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last_refill) * self._rate)
        self._last_refill = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _next_wait(self, deadline: float | None) -> float | None:
        now = self._clock()
        waits = []
        if self._delayed:
            waits.append(self._delayed[0][0] - now)
        if self._queue:
            waits.append((1 - self._tokens) / self._rate)
        if deadline is not None:
            waits.append(deadline - now)
        return max(0.0, min(waits)) if waits else None
