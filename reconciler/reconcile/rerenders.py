"""Pull-request mode's settings change: one pull request re-rendering every object whose
spec did not change, instead of one per object.

The branch ``reconciler/rerender/<digest of the target branch's settings record>`` holds the
bounded batch commits of ``Reconciler.rerender`` made on the target head, so a newer settings
change before the merge lands on the same branch and updates the same pull request. The
branch is remade on every pass (like an object's branch) and force-pushed only while it holds
nothing but the reconciler's commits; once a person committed on it, new commits go on top
of theirs as a fast-forward. Every push names the commit it replaces (a compare-and-swap):
one that lost a race with a person's push is worked out again on what is there now.
A merged pull request counts as done; one closed unmerged
declines that exact change (the record its body names), which is not proposed again until
the settings or the version change again. Branches started from an older record (the
target moved on: merged, or written directly) are retired: their open PR closed, the
branch deleted unless a person committed on it.

Must not: touch the target branch, or any branch outside ``reconciler/rerender/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler.core import rerender
from reconciler.core.models import ObjectKey, Resource
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.ports.configrepo import ConfigRepo, ForeignChange, PushResult
from reconciler.ports.forge import Forge, PullRequest, PullRequestSpec
from reconciler.reconcile.engine import Reconciler

log = logging.getLogger(__name__)
LABEL = "gitops-reconciler"
#: how often one pass works a proposal branch out again after losing a push race
PUSH_ATTEMPTS = 4


class RerenderStore(Protocol):
    """What the re-render PR needs from the mirror."""

    def fetch(self) -> str | None:
        """Fetch the target branch; return its head."""

    def branch_view(self, branch: str, base: str | None) -> ConfigRepo:
        """A ConfigRepo on ``branch``, reset to ``base``."""

    def push_branch(self, branch: str, commit: str | None, *, expect: str | None,
                    force: bool = True) -> PushResult:
        """Push (forced unless ``force=False``) or delete one of our own branches, only if
        it still points at ``expect`` on the remote (else ``moved``)."""

    def remote_branch_commit(self, branch: str) -> str | None:
        """Where ``branch`` points on the remote, or None."""

    def remote_branches(self, prefix: str) -> list[str]:
        """The remote's branches starting with ``prefix``."""

    def same_changes(self, first: str, second: str) -> bool:
        """Same trees in the same order on the same base."""

    def foreign_changes(self, old: str | None, new: str | None) -> list[ForeignChange]:
        """Commits in old..new not made by the reconciler."""


@dataclass(frozen=True)
class Proposal:
    """The re-render PR of the last pass: which objects it carries and where it is."""

    keys: frozenset[ObjectKey]
    title: str
    pull: PullRequest
    declined: bool = False

    def outcome(self, key: ObjectKey) -> Outcome:
        """``key``'s outcome: proposed in the PR, merged, or declined by closing it."""
        if self.pull.state == "merged":
            return Outcome(key, Result.UNCHANGED, Reason.UP_TO_DATE,
                           f"{key}: {self.title} was merged ({self.pull.url}); not proposed "
                           "again", None, self.pull.url, self.pull.number)
        if self.declined:
            return Outcome(key, Result.SKIPPED, Reason.PULL_REQUEST_CLOSED,
                           f"{key}: {self.title} was declined ({self.pull.url} closed "
                           "unmerged); not proposed again until the settings change again",
                           None, self.pull.url, self.pull.number)
        return Outcome(key, Result.PROPOSED, Reason.PULL_REQUEST_OPEN,
                       f"{key}: {self.title}", None, self.pull.url, self.pull.number)


class RerenderProposer:
    """Proposes the grouped re-render of a settings or version change as one PR."""

    def __init__(self, *, store: RerenderStore, forge: Forge, base_branch: str,
                 make_engine: Callable[[ConfigRepo], Reconciler]) -> None:
        self._store = store
        self._forge = forge
        self._base_branch = base_branch
        self._make_engine = make_engine
        #: the PR of the last pass (None: nothing to re-render, or not asked yet)
        self.last: Proposal | None = None

    def propose(self, objects: list[Resource]) -> list[Outcome]:
        """Re-render ``objects`` whose rendering (not spec) changed on the re-render branch
        and open or update its PR; their outcomes (nothing for the others)."""
        base = self._store.fetch()
        base_record = self._store.branch_view(self._base_branch, base).read_file(
            rerender.SETTINGS_RECORD)
        branch = rerender.rerender_branch(base_record)
        self._retire(base, keep=branch)
        view = self._store.branch_view(branch, base)
        outcomes = self._make_engine(view).rerender(objects)
        committed = [o for o in outcomes if o.result == Result.COMMITTED and o.key is not None]
        refused = [o for o in outcomes if not o.ok]
        if not committed:
            self._settle(base, branch)
            self.last = None
            return refused
        keys = [o.key for o in committed if o.key is not None]
        head, target = view.head(), view.read_file(rerender.SETTINGS_RECORD)
        title, body = rerender.pull_request_text(
            keys, base_record, target, len({o.commit for o in committed}))
        pulls = self._forge.find_pull_requests(branch, self._base_branch)
        settled = next((p for p in pulls if p.state != "open"
                        and rerender.proposes(p.body, target)), None)
        if settled is not None and not any(p.state == "open" for p in pulls):
            # merged (and reverted by hand since) or closed: that exact change is settled
            self.last = Proposal(frozenset(keys), title, settled,
                                 declined=settled.state == "closed")
            return [self.last.outcome(k) for k in keys] + refused
        if head is None or not self._publish(objects, branch, base, head):
            self.last = None
            return [Outcome(k, Result.FAILED, Reason.GIT_ERROR,
                            f"{k}: push of {branch} refused") for k in keys] + refused
        pull = self._forge.open_pull_request(PullRequestSpec(
            head_branch=branch, base_branch=self._base_branch, title=title, body=body,
            labels=(LABEL, *sorted({k.kind.lower() for k in keys}))))
        self.last = Proposal(frozenset(keys), title, pull)
        log.info("%s: %s", pull.url, title)
        return [self.last.outcome(k) for k in keys] + refused

    def _publish(self, objects: list[Resource], branch: str, base: str | None,
                 head: str) -> bool:
        """Move the remote branch to ``head``; over a person's commit only a fast-forward
        made on top of it. Each push replaces only what was read just before it; a race
        lost to someone's push is worked out again on theirs. False when refused."""
        for _ in range(PUSH_ATTEMPTS):
            published = self._store.remote_branch_commit(branch)
            if published is None:
                result = self._store.push_branch(branch, head, expect=None)
            elif self._store.foreign_changes(base, published):
                view = self._store.branch_view(branch, published)
                self._make_engine(view).rerender(objects)  # what their commit left to do
                ahead = view.head()
                if ahead is None or ahead == published:
                    return True
                log.info("%s holds a commit of someone else: new commits go on top of it",
                         branch)
                result = self._store.push_branch(branch, ahead, expect=published, force=False)
            elif self._store.same_changes(published, head):
                return True  # only a real change moves the PR branch: reviews and CI stay put
            else:
                result = self._store.push_branch(branch, head, expect=published)
            if result.ok:
                return True
            if not result.moved:
                return False
            log.info("%s moved while we pushed (%s): reading it again", branch, result.rejected)
        log.warning("%s kept moving: %d pushes lost the race, trying on the next pass",
                    branch, PUSH_ATTEMPTS)
        return False

    def _settle(self, base: str | None, branch: str) -> None:
        """Nothing left to re-render against the target: close the PR and delete the
        branch, unless a person committed on it."""
        published = self._store.remote_branch_commit(branch)
        if published is None or self._store.foreign_changes(base, published):
            return  # no branch, no PR (a forge closes the PR of a deleted branch)
        existing = self._forge.find_open_pull_request(branch, self._base_branch)
        if existing is not None:
            self._forge.close_pull_request(existing.number)
            log.info("closed %s: nothing left to re-render", existing.url)
        deleted = self._store.push_branch(branch, None, expect=published)
        if deleted.moved:  # someone pushed there meanwhile: theirs stays
            log.info("%s not deleted: it moved (%s)", branch, deleted.rejected)

    def _retire(self, base: str | None, *, keep: str) -> None:
        """Re-render branches started from another record than the target's: superseded."""
        for branch in self._store.remote_branches(rerender.BRANCH_PREFIX):
            if branch != keep:
                self._settle(base, branch)
