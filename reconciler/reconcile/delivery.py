"""Delivery to a remote: coalesced, paced pushes; re-render on a moved remote.

Commits stay one per object change; pushes are batched: the first unpushed commit starts
a window (default 10 s: at most 6 pushes a minute, as large Git hosts ask), and one push
then carries every pending commit. A push that fails (a hook refuses, the remote is down)
is tried again after an exponentially growing pause that starts at twice the window, so a
refusing or unreachable remote sees fewer pushes than the documented pace, never more.
``step`` never sleeps: it is meant for a job of its own, so committing goes on meanwhile.

When the remote moved (a human, another tool) — noticed after a refused push or at
start-up, when the fetched head is missing from the local history — the pending commits
are not rebased textually: the local branch is reset to the new remote head and the
affected objects are reconciled again on top of it. The reconciler owns its paths, so
re-rendering gives exactly the right result. The branch is never force-pushed, so a
human's commit is never lost.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.core import errors, layout, messages
from reconciler.core.history import CommitInfo
from reconciler.core.models import ObjectKey
from reconciler.ports.configrepo import ForeignChange, RemoteConfigRepo

log = logging.getLogger(__name__)

OWNED_TOPS = layout.OWNED_TOPS
#: the longest pause between two push attempts while they keep failing
MAX_PAUSE_SECONDS = 300.0


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


class _Outcome(enum.Enum):
    NOTHING = "nothing pending"
    PUSHED = "pushed"
    MOVED = "remote moved; re-rendered on it"
    REFUSED = "refused by the remote"
    UNREACHABLE = "remote unreachable"


def pending_keys(repo: RemoteConfigRepo) -> list[ObjectKey]:
    """Objects named in the trailers of the pending commits."""
    keys: list[ObjectKey] = []
    for commit in repo.pending():
        keys += [k for k in messages.object_keys(commit.message) if k not in keys]
    return keys


class Delivery:
    """Pushes pending commits of a mirror to its remote.

    ``guard`` is held whenever the local branch is read for a push or reset and re-rendered
    (never during the network transfer itself); whoever commits must hold it too.
    """

    def __init__(self, *, repo: RemoteConfigRepo, window: float = 10.0,
                 on_rebase: Callable[[list[ObjectKey]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = 6,
                 base_delay: float = 0.5, max_delay: float = 30.0,
                 max_pause: float = MAX_PAUSE_SECONDS,
                 require_signed: Callable[[str], bool] | None = None,
                 guard: contextlib.AbstractContextManager[object] | None = None) -> None:
        self._repo = repo
        self.window = window
        self._on_rebase = on_rebase
        self._clock, self._sleep = clock, sleep
        self._max_attempts = max_attempts
        self._base_delay, self._max_delay = base_delay, max_delay
        self._max_pause = max_pause
        self._require_signed = require_signed
        self._guard: contextlib.AbstractContextManager[object] = \
            guard if guard is not None else contextlib.nullcontext()
        self._first_pending: float | None = None
        self._not_before: float | None = None
        self._failures = 0
        self.pushes = 0
        self.attempts = 0

    def committed(self) -> None:
        """A commit was made: start the window if it is not running."""
        if self._first_pending is None:
            self._first_pending = self._clock()

    def due(self) -> bool:
        """Whether the window of the oldest pending commit has passed (and any back-off)."""
        if self._first_pending is None:
            return False
        now = self._clock()
        if now - self._first_pending < self.window:
            return False
        return self._not_before is None or now >= self._not_before

    def realign(self) -> DeliveryReport:
        """At start-up: when the remote moved under pending commits, drop them and say which
        objects to render again on the remote head (without pushing anything)."""
        report = DeliveryReport()
        with self._guard:
            if self._repo.diverged():
                self._rebase(report, self._repo.fork_point(), notify=False)
        return report

    def step(self) -> DeliveryReport:
        """One push attempt, never sleeping; a failure pushes the next attempt back."""
        report = DeliveryReport()
        outcome = self._attempt(report)
        now = self._clock()
        if outcome in (_Outcome.NOTHING, _Outcome.PUSHED):
            self._failures, self._not_before = 0, None
        elif outcome is _Outcome.MOVED:
            self._not_before = now + self.window  # re-rendered commits share the next push
        else:
            self._failures += 1
            pause = min(self._max_pause, self.window * 2 ** self._failures)
            self._not_before = now + pause
            report.error = (f"{report.error}; {len(self._repo.pending())} commits kept "
                            f"locally, next push in {pause:.0f} s")
        return report

    def deliver(self) -> DeliveryReport:
        """Push everything pending now (one-shot commands): bounded attempts with sleeps."""
        report = DeliveryReport()
        for attempt in range(self._max_attempts):
            outcome = self._attempt(report)
            if outcome in (_Outcome.NOTHING, _Outcome.PUSHED):
                return report
            if report.remote_moved:  # a value: the caller runs its pass again, then delivers
                report.error = None
                return report
            if outcome is _Outcome.REFUSED:
                # the remote did not move: a hook or a branch protection said no; retrying
                # now would only repeat it. Keep the commits for the next push window.
                report.error = (f"{report.error}; {len(self._repo.pending())} commits kept "
                                "locally for the next push")
                return report
            delay = self._delay(attempt)
            self._sleep(delay * random.random() if outcome is _Outcome.MOVED else delay)
        report.error = (f"gave up after {self._max_attempts} attempts: {report.error}; "
                        f"{len(self._repo.pending())} commits kept locally for the next push")
        return report

    def _attempt(self, report: DeliveryReport) -> _Outcome:
        with self._guard:
            pending = self._repo.pending()
            if not pending:
                self._first_pending = None
                return _Outcome.NOTHING
            if self._unsigned([c.id for c in pending]):
                remade = self._make_signed_again(report)
                if remade is None:
                    return _Outcome.MOVED  # reset: the caller renders them again, signed
                pending = remade
                if not pending:
                    return _Outcome.NOTHING
        self.attempts += 1
        try:
            result = self._repo.push()
        except errors.TemporaryError as exc:
            report.error = str(exc)
            log.warning("push failed: %s", exc)
            return _Outcome.UNREACHABLE
        if result.ok:
            self.pushes += 1
            report.pushes += 1
            report.pushed += len(pending)
            report.error = None
            with self._guard:
                # commits made during the push open the next window now: pushes keep the pace
                self._first_pending = self._clock() if self._repo.pending() else None
            return _Outcome.PUSHED
        report.error = f"remote refused the push: {result.rejected}"
        return self._after_refusal(report)

    def _after_refusal(self, report: DeliveryReport) -> _Outcome:
        """Fetch: a moved remote gets the pending changes re-rendered on it."""
        base_before = self._repo.remote_head()
        try:
            remote = self._repo.fetch()
        except errors.TemporaryError as exc:
            report.error = str(exc)
            return _Outcome.UNREACHABLE
        with self._guard:
            if remote == base_before and not self._repo.diverged():
                return _Outcome.REFUSED  # not a race: the server refused (hook, protection)
            self._rebase(report, self._repo.fork_point() if remote == base_before
                         else base_before)
        return _Outcome.MOVED

    def _make_signed_again(self, report: DeliveryReport) -> list[CommitInfo] | None:
        """Pending commits left unsigned by an earlier run: make them again, signed (None:
        the branch was reset and the caller runs its pass again)."""
        keys = pending_keys(self._repo)
        self._repo.reset_to_remote()
        if self._on_rebase is None:
            report.remote_moved = True
            return None
        self._on_rebase(keys)
        pending = self._repo.pending()
        unsigned = self._unsigned([c.id for c in pending])
        if unsigned:
            raise errors.PermanentError(
                f"signing is configured but {len(unsigned)} pending commits are "
                f"unsigned (first {unsigned[0][:12]}): refusing to push")
        return list(pending)

    def _rebase(self, report: DeliveryReport, base_before: str | None, *,
                notify: bool = True) -> None:
        """Re-create the pending changes on the moved remote head (guard held)."""
        remote = self._repo.remote_head()
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
        if notify and self._on_rebase is None:
            report.remote_moved = True
        elif notify and self._on_rebase is not None:
            self._on_rebase(keys)

    def _unsigned(self, commits: list[str]) -> list[str]:
        if self._require_signed is None:
            return []
        return [c for c in commits if not self._require_signed(c)]

    def _delay(self, attempt: int) -> float:
        return float(min(self._max_delay, self._base_delay * 2 ** attempt))
