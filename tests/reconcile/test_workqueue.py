"""The work queue: de-duplication, one worker per key, backoff and the overall rate limit."""

from __future__ import annotations

import threading
import time

from reconciler.reconcile.workqueue import WorkQueue


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(queue: WorkQueue[str]) -> list[str]:
    """Every key available right now, each marked done."""
    keys = []
    while (key := queue.get(timeout=0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


def test_a_key_added_twice_is_handed_out_once() -> None:
    """Adding a queued key again does not queue it twice; keys come out in order."""
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    for key in ("acme", "shop", "acme", "acme"):
        queue.add(key)
    assert len(queue) == 2
    assert drain(queue) == ["acme", "shop"]
    assert len(queue) == 0


def test_a_key_being_processed_is_not_handed_to_a_second_worker() -> None:
    """While a key is processed, adding it again holds it back until done(), then once."""
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    queue.add("acme")
    assert queue.get(timeout=0) == "acme"
    queue.add("acme")
    queue.add("acme")
    assert queue.get(timeout=0) is None
    queue.done("acme")
    assert drain(queue) == ["acme"]


def test_a_key_processed_without_new_adds_is_not_requeued() -> None:
    """done() on a key nobody re-added leaves the queue empty."""
    queue: WorkQueue[str] = WorkQueue(clock=FakeClock())
    queue.add("acme")
    assert queue.get(timeout=0) == "acme"
    queue.done("acme")
    assert queue.get(timeout=0) is None
    assert len(queue) == 0


def test_retry_backs_off_exponentially_up_to_the_cap() -> None:
    """Each failure doubles the delay from the base, never beyond the maximum."""
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, max_delay=8.0, clock=FakeClock())
    assert [queue.retry("acme") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_retried_key_comes_back_only_after_its_delay() -> None:
    """A retried key is invisible until its backoff elapsed, then handed out once."""
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(base_delay=2.0, clock=clock)
    queue.add("acme")
    assert queue.get(timeout=0) == "acme"
    queue.done("acme")
    assert queue.retry("acme") == 2.0
    assert len(queue) == 1
    clock.advance(1.9)
    assert queue.get(timeout=0) is None
    clock.advance(0.1)
    assert drain(queue) == ["acme"]


def test_backoff_is_per_key() -> None:
    """One key's failures do not slow another key down."""
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, clock=FakeClock())
    for _ in range(4):
        queue.retry("broken")
    assert queue.retry("healthy") == 1.0


def test_forget_resets_the_backoff() -> None:
    """After a success (forget), the next failure waits the base delay again."""
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, clock=FakeClock())
    for _ in range(5):
        queue.retry("acme")
    queue.forget("acme")
    assert queue.retry("acme") == 1.0


def test_a_retry_that_falls_due_while_processing_runs_after_done() -> None:
    """A delayed key that becomes due while the key is processed waits for done(), then runs."""
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(base_delay=1.0, clock=clock)
    queue.retry("acme")
    queue.add("acme")
    assert queue.get(timeout=0) == "acme"
    clock.advance(1.0)
    assert queue.get(timeout=0) is None
    queue.done("acme")
    assert drain(queue) == ["acme"]


def test_the_token_bucket_bounds_the_rate() -> None:
    """With a burst of 2 at 1 key/s, the third key waits about a second of the clock."""
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(rate_per_second=1.0, burst=2, clock=clock)
    for key in ("a", "b", "c"):
        queue.add(key)
    assert drain(queue) == ["a", "b"]
    clock.advance(0.5)
    assert queue.get(timeout=0) is None
    clock.advance(0.5)
    assert drain(queue) == ["c"]


def test_get_times_out_when_nothing_is_queued() -> None:
    """get() with a timeout returns None after about that long when the queue stays empty."""
    queue: WorkQueue[str] = WorkQueue()
    started = time.monotonic()
    assert queue.get(timeout=0.1) is None
    assert 0.09 <= time.monotonic() - started < 2.0


def test_close_wakes_a_blocked_worker() -> None:
    """close() makes a worker blocked in get() return None promptly."""
    queue: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    time.sleep(0.05)
    queue.close()
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert got == [None]


def test_a_blocked_worker_wakes_up_for_a_new_key() -> None:
    """A worker waiting in get() receives a key added from another thread."""
    queue: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get(timeout=5)))
    worker.start()
    time.sleep(0.05)
    queue.add("acme")
    worker.join(timeout=2)
    assert got == ["acme"]


def test_concurrent_workers_never_process_one_key_twice_at_once() -> None:
    """Four workers and a busy producer: no key is ever in two workers' hands at once."""
    queue: WorkQueue[str] = WorkQueue(rate_per_second=100000, burst=100000)
    in_flight: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            key = queue.get(timeout=0.05)
            if key is None:
                continue
            with lock:
                if key in in_flight:
                    overlaps.append(key)
                in_flight.add(key)
            time.sleep(0.001)
            with lock:
                in_flight.discard(key)
                processed.append(key)
            queue.done(key)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for i in range(600):
            queue.add(f"key-{i % 3}")
        deadline = time.monotonic() + 5
        while len(queue) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=2)
    assert overlaps == []
    assert set(processed) == {"key-0", "key-1", "key-2"}
    assert len(processed) < 600  # adds of a queued key were merged
