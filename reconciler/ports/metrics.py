"""The metrics port: what the controller reports; the adapter turns it into Prometheus."""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    """Counters and gauges of the controller."""

    def reconciled(self, kind: str, result: str, seconds: float) -> None:
        """One reconcile finished with ``result`` after ``seconds``."""

    def queue_depth(self, depth: int) -> None:
        """Keys waiting in the work queue."""

    def committed(self) -> None:
        """A commit was made."""

    def git_error(self) -> None:
        """Reading or writing the config repo failed."""

    def synced(self, now: float) -> None:
        """A full resync finished at ``now``."""

    def orphans(self, count: int) -> None:
        """Directories with no resource."""

    def pushed(self, *, ok: bool) -> None:
        """A push to the remote config repo finished (``ok`` False: it failed)."""

    def held(self, count: int, oldest_since: float | None) -> None:
        """``count`` objects' changes are held (a human's change stands, a removal is held),
        the longest-held since ``oldest_since`` (a Unix time)."""


class NoMetrics:
    """Metrics that go nowhere (local mode, tests)."""

    def reconciled(self, kind: str, result: str, seconds: float) -> None:
        """Ignored."""

    def queue_depth(self, depth: int) -> None:
        """Ignored."""

    def committed(self) -> None:
        """Ignored."""

    def git_error(self) -> None:
        """Ignored."""

    def synced(self, now: float) -> None:
        """Ignored."""

    def orphans(self, count: int) -> None:
        """Ignored."""

    def pushed(self, *, ok: bool) -> None:
        """Ignored."""

    def held(self, count: int, oldest_since: float | None) -> None:
        """Ignored."""
