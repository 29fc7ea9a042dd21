"""Periodic work on APScheduler: the only module that imports apscheduler.

Jobs run in lanes: every job of one lane runs on that lane's single worker thread, so
they never overlap; a job that is still running when its next run is due is coalesced into
one later run. Jobs of different lanes (reconciling, pushing) run side by side.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


class Scheduler:
    """Interval jobs on a background thread; ``run_forever`` blocks the caller until a signal.

    ``background`` says how the caller means to use it (``start`` vs ``run_forever``); jobs
    run on a background thread either way: a blocking APScheduler could miss a signal that
    arrives before its loop starts, and then never return.
    """

    def __init__(self, *, background: bool = False) -> None:
        self.background = background
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1),
                       "delivery": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def every(self, seconds: float, job: Callable[[], object], *, name: str,
              run_now: bool = False, lane: str = "default") -> None:
        """Run ``job`` every ``seconds`` (and once right away with ``run_now``) in ``lane``
        (``default`` or ``delivery``)."""
        self._scheduler.add_job(job, "interval", seconds=seconds, id=name, name=name,
                                executor=lane)
        if run_now:
            self._scheduler.add_job(job, id=f"{name}-first", name=name, executor=lane)

    def start(self) -> None:
        """Start a background scheduler."""
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop it (running jobs finish)."""
        self._scheduler.shutdown(wait=False)

    def run_forever(self) -> None:
        """Run the jobs until SIGTERM or SIGINT, whenever it arrives (even while starting)."""
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signum)
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if stopping.is_set():
            return
        self._scheduler.start()
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            self._scheduler.shutdown(wait=False)
