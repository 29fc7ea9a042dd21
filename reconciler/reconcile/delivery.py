"""Delivery to a remote: coalesced pushes, re-render on a moved remote, bounded retries.

Commits stay one per object change; pushes are batched: the first unpushed commit starts
a window (default 10 s: at most 6 pushes a minute, as large Git hosts ask), and one push
then carries every pending commit. When the remote moved (a human, another tool), the
pending commits are not rebased textually: the local branch is reset to the new remote
head and the affected objects are reconciled again on top of it — the reconciler owns
its paths, so re-rendering gives exactly the right result. The branch is never
force-pushed, so a human's commit is never lost.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.core import errors, layout, messages
from reconciler.core.models import ObjectKey
from reconciler.ports.configrepo import ForeignChange, RemoteConfigRepo

log = logging.getLogger(__name__)

OWNED_TOPS = layout.OWNED_TOPS


@dataclass
class DeliveryReport:
    """What one delivery attempt did."""

    pushed: int = 0
    pushes: int = 0
    rebases: int = 0
    error: str | None = None
    foreign: list[ForeignChange] = field(default_factory=list)
    #: the remote moved and the local branch was reset to it: the pending changes are gone
    #: and the caller must run its pass again on the new head, then deliver again
    remote_moved: bool = False


def pending_keys(repo: RemoteConfigRepo) -> list[ObjectKey]:
    """Objects named in the trailers of the pending commits."""
    keys: list[ObjectKey] = []
    for commit in repo.pending():
        keys += [k for k in messages.object_keys(commit.message) if k not in keys]
    return keys


class Delivery:
    """Pushes pending commits of a mirror to its remote."""

    def __init__(self, *, repo: RemoteConfigRepo, window: float = 10.0,
                 on_rebase: Callable[[list[ObjectKey]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = 6,
                 base_delay: float = 0.5, max_delay: float = 30.0,
                 require_signed: Callable[[str], bool] | None = None) -> None:
        self._repo = repo
        self.window = window
        self._on_rebase = on_rebase
        self._clock, self._sleep = clock, sleep
        self._max_attempts = max_attempts
        self._base_delay, self._max_delay = base_delay, max_delay
        self._require_signed = require_signed
        self._first_pending: float | None = None
        self.pushes = 0

    def committed(self) -> None:
        """A commit was made: start the window if it is not running."""
        if self._first_pending is None:
            self._first_pending = self._clock()

    def due(self) -> bool:
        """Whether the window of the oldest pending commit has passed."""
        return self._first_pending is not None and \
            self._clock() - self._first_pending >= self.window

    def deliver(self) -> DeliveryReport:
        """Push everything pending, re-rendering on a moved remote; bounded attempts."""
        report = DeliveryReport()
        for attempt in range(self._max_attempts):
            pending = self._repo.pending()
            if not pending:
                self._first_pending = None
                return report
            if self._unsigned([c.id for c in pending]):
                # left by an unsigned run: make them again, signed, rather than push them
                keys = pending_keys(self._repo)
                self._repo.reset_to_remote()
                if self._on_rebase is None:
                    report.remote_moved = True
                    return report
                self._on_rebase(keys)
                pending = self._repo.pending()
                unsigned = self._unsigned([c.id for c in pending])
                if unsigned:
                    raise errors.PermanentError(
                        f"signing is configured but {len(unsigned)} pending commits are "
                        f"unsigned (first {unsigned[0][:12]}): refusing to push")
                if not pending:
                    continue
            try:
                result = self._repo.push()
            except errors.TemporaryError as exc:
                report.error = str(exc)
                log.warning("push failed (attempt %d): %s", attempt + 1, exc)
                self._sleep(self._delay(attempt))
                continue
            if result.ok:
                self.pushes += 1
                report.pushes += 1
                report.pushed += len(pending)
                report.error = None
                self._first_pending = None
                return report
            report.error = f"remote refused the push: {result.rejected}"
            moved = self._rebase(report)
            if report.remote_moved:  # a value: the caller runs its pass again, then delivers
                report.error = None
                return report
            if not moved:
                # the remote did not move: a hook or a branch protection said no; retrying
                # now would only repeat it. Keep the commits for the next push window.
                report.error += f"; {len(pending)} commits kept locally for the next push"
                return report
            self._sleep(self._delay(attempt) * random.random())
        report.error = (f"gave up after {self._max_attempts} attempts: {report.error}; "
                        f"{len(self._repo.pending())} commits kept locally for the next push")
        return report

    def _rebase(self, report: DeliveryReport) -> bool:
        """Re-create the pending changes on the moved remote; False if it did not move."""
        base_before = self._repo.remote_head()
        try:
            remote = self._repo.fetch()
        except errors.TemporaryError as exc:
            report.error = str(exc)
            return False
        if remote == base_before:
            return False  # not a race: the server refused (hook, protection)
        keys = pending_keys(self._repo)
        foreign = [f for f in self._repo.foreign_changes(base_before, remote)
                   if any(p.startswith(OWNED_TOPS) for p in f.paths)]
        for change in foreign:
            log.warning("commit %s by %s changed files the reconciler owns: %s",
                        change.commit.id[:12], change.commit.author_name,
                        ", ".join(change.paths[:5]))
        report.foreign += foreign
        self._repo.reset_to_remote()
        report.rebases += 1
        log.info("remote moved to %s; re-rendering %d objects on it", str(remote)[:12], len(keys))
        if self._on_rebase is None:
            report.remote_moved = True
            return False
        self._on_rebase(keys)
        return True

    def _unsigned(self, commits: list[str]) -> list[str]:
        if self._require_signed is None:
            return []
        return [c for c in commits if not self._require_signed(c)]

    def _delay(self, attempt: int) -> float:
        return float(min(self._max_delay, self._base_delay * 2 ** attempt))
