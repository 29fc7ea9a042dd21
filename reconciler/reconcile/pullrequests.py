"""Pull-request mode: each object change goes to its own branch and pull request; a
settings or version change re-renders unchanged specs in one PR (``reconcile.rerenders``).

The branch ``reconciler/<kind>/<name>`` holds one commit: the object's rendering on top of
the target branch's current head (re-rendered, never rebased), so a PR never conflicts
with what merged before it. Only these branches are force-pushed, and only while they hold
nothing but the reconciler's commit: once a person committed on one (a reviewer's fix), a
newer change goes on top of theirs as a fast-forward, and the branch is never deleted.
Every push is a compare-and-swap against the commit read just before it; a race lost to
someone's push is worked out again on what is there now (``rerenders.PUSH_ATTEMPTS``).
When the change becomes a no-op against the target (merged, or reverted in the spec) the
PR is closed and the branch deleted; a merged PR counts as committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from reconciler.core import errors, guards, layout, messages
from reconciler.core.models import ObjectKey, Resource
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.settings import Settings
from reconciler.core.sources import Parsed, Refusal
from reconciler.ports.configrepo import ConfigRepo
from reconciler.ports.forge import Forge, ForgeError, PullRequestSpec
from reconciler.reconcile.engine import PassReport, Reconciler
from reconciler.reconcile.rerenders import PUSH_ATTEMPTS, RerenderProposer, RerenderStore

log = logging.getLogger(__name__)
LABELS = ("gitops-reconciler",)


branch_for = layout.branch_for


class BranchStore(RerenderStore, Protocol):
    """What PR mode needs from the mirror, beyond the ConfigRepo port."""

    def same_change(self, first: str, second: str) -> bool:
        """Same tree on the same parents."""


class PullRequestReconciler:
    """apply/remove/sync with the Reconciler's interface, delivering through pull requests."""

    def __init__(self, *, store: BranchStore, forge: Forge, settings: Settings, version: str,
                 base_branch: str, make_engine: Callable[[ConfigRepo], Reconciler]) -> None:
        self._store = store
        self._forge = forge
        self._settings = settings
        self._version = version
        self._base_branch = base_branch
        self._make_engine = make_engine
        self._rerender_error: str | None = None
        self._rerender = RerenderProposer(store=store, forge=forge, base_branch=base_branch,
                                          make_engine=make_engine)

    def invalidate(self) -> None:
        """Nothing cached across objects."""

    def apply(self, obj: Resource, *, force: bool = False, adopt: bool = False) -> Outcome:
        """Propose ``obj``'s change as a pull request (or close it when it is a no-op)."""
        return self.propose(obj.key, lambda view: self._make_engine(view).apply(
            obj, force=force, adopt=adopt))

    def remove(self, key: ObjectKey, *, note: str | None = None) -> Outcome:
        """Propose the removal of ``key``'s directory as a pull request."""
        return self.propose(key, lambda view: self._make_engine(view).remove(key, note=note))

    def sync(self, parsed: Parsed, *, now: float | None = None,
             allow_removals: int = 0) -> PassReport:
        """Local-mode pass: one proposal per object, removals decided as a direct pass
        would decide them (budget, empty source, expiry), each proposed on its own."""
        base = self._store.fetch()
        view = self._store.branch_view(self._base_branch, base)
        plan = self._make_engine(view).plan(parsed, now=now, allow_removals=allow_removals)
        deletes = {c.keys[0]: c for c in plan.commits if c.action == "delete"}
        report = PassReport()
        report.outcomes += [Outcome(r.key, Result.REFUSED, Reason.INVALID_SPEC, str(r))
                            for r in parsed.refusals]
        parsed, fleet_refused = _without_fleet_refusals(parsed, self._settings)
        report.outcomes += fleet_refused  # each proposal sees one object: hosts are judged here
        rerendered = self.rerender([o for o in parsed.objects if o.key not in deletes])
        report.outcomes += rerendered
        grouped = {o.key for o in rerendered}
        for obj in parsed.objects:
            if obj.key not in deletes and obj.key not in grouped:
                report.outcomes.append(self.apply(obj))
        for verdict in plan.verdicts:
            if verdict.key in deletes:
                report.outcomes.append(self.remove(verdict.key, note=deletes[verdict.key].note))
            elif verdict.reason in (Reason.REMOVAL_HELD, Reason.SOURCE_EMPTY):
                report.outcomes.append(verdict)
        return report

    def rerender(self, objects: list[Resource]) -> list[Outcome]:
        """One pull request re-renders the objects whose rendering changed while their spec
        did not (a settings or version change): ``reconcile.rerenders``."""
        self._rerender_error = None
        try:
            outcomes = self._rerender.propose(objects)
            failed = [o for o in outcomes if o.result == Result.FAILED]
            if failed:  # the objects' own passes report it too, not a PR they are not in
                self._rerender_error = f"the grouped re-render failed: {failed[0].message}"
            return outcomes
        except errors.ReconcilerError as exc:  # ForgeError too
            self._rerender_error = f"the grouped re-render pull request failed: {exc}"
            log.warning("%s", self._rerender_error)
        self._rerender.last = None
        return []

    def propose(self, key: ObjectKey, change: Callable[[ConfigRepo], Outcome]) -> Outcome:
        """Make ``change`` on ``key``'s branch (reset to the target head) and open its PR."""
        branch = branch_for(key)
        try:
            base = self._store.fetch()
            view = self._store.branch_view(branch, base)
            outcome = change(view)
            if outcome.result != Result.COMMITTED or not outcome.commit:
                return self._settle(key, branch, outcome, base)
            if _settings_only(view):
                return self._grouped(key, branch, base)
            commit = next(iter(view.log(limit=1)))  # the PR says what the change does
            published, outcome, view = self._publish(key, branch, base, change, outcome)
            if published is None:
                return outcome
            pr = self._forge.open_pull_request(PullRequestSpec(
                head_branch=branch, base_branch=self._base_branch,
                title=commit.subject, body=_body(commit.message, key),
                labels=(*LABELS, key.kind.lower())))
        except ForgeError as exc:
            return Outcome(key, Result.FAILED, Reason.FORGE_ERROR, f"{key}: {exc}")
        except errors.ReconcilerError as exc:
            return Outcome(key, Result.FAILED, Reason.GIT_ERROR, f"{key}: {exc}")
        return Outcome(key, Result.PROPOSED, Reason.PULL_REQUEST_OPEN, outcome.message,
                       None, pr.url, pr.number)

    def _publish(self, key: ObjectKey, branch: str, base: str | None,
                 change: Callable[[ConfigRepo], Outcome],
                 made: Outcome) -> tuple[str | None, Outcome, ConfigRepo]:
        """Move the remote branch to the change made on the target head (``made``), or, over
        a person's commit, to the same change made on top of theirs; each push replaces only
        what was read just before it. The branch's commit (None: not proposed), the outcome
        to report and the view holding the proposed commit."""
        for _ in range(PUSH_ATTEMPTS):
            published = self._store.remote_branch_commit(branch)
            outcome, view = made, self._store.branch_view(branch, made.commit)
            over_person = published is not None and bool(
                self._store.foreign_changes(base, published))
            if over_person:
                view = self._store.branch_view(branch, published)
                outcome = change(view)
                if outcome.result == Result.UNCHANGED:
                    return published, made, view  # their branch already proposes it
                if outcome.result != Result.COMMITTED:
                    return None, outcome, view  # e.g. they edited the object's files: held
                log.info("%s holds a commit of someone else: the change goes on top of it",
                         branch, extra={"object": str(key)})
            elif published is not None and made.commit is not None \
                    and self._store.same_change(published, made.commit):
                return published, made, view  # reviews and CI stay put
            result = self._store.push_branch(branch, outcome.commit, expect=published,
                                             force=not over_person)
            if result.ok:
                return outcome.commit, outcome, view
            if not result.moved:
                return None, Outcome(key, Result.FAILED, Reason.GIT_ERROR,
                                     f"{key}: push of {branch} refused: {result.rejected}"), view
            log.info("%s moved while we pushed (%s): reading it again", branch,
                     result.rejected, extra={"object": str(key)})
        return None, Outcome(key, Result.FAILED, Reason.GIT_ERROR,
                             f"{key}: {branch} kept moving while we pushed ({PUSH_ATTEMPTS} "
                             "tries); tried again on the next pass"), view

    def _grouped(self, key: ObjectKey, branch: str, base: str | None) -> Outcome:
        """A settings-only change of ``key`` belongs to the re-render PR, not its own: a
        PR of its own left from an earlier spec change is closed."""
        self._settle(key, branch, Outcome(key, Result.UNCHANGED, Reason.UP_TO_DATE, ""), base)
        last = self._rerender.last
        if last is not None and key in last.keys:
            return last.outcome(key)
        if self._rerender_error is not None:
            return Outcome(key, Result.FAILED, Reason.FORGE_ERROR,
                           f"{key}: {self._rerender_error} (tried again on the next pass)")
        return Outcome(key, Result.SKIPPED, Reason.RERENDERED,
                       f"{key}: only the settings or the reconciler version change its "
                       "rendering; a full pass proposes that in one re-render pull request")

    def _settle(self, key: ObjectKey, branch: str, outcome: Outcome,
                base: str | None) -> Outcome:
        """No change against the target: close a leftover PR and delete its branch (unless
        a person committed on it, or pushed there meanwhile: theirs stays)."""
        if outcome.result != Result.UNCHANGED:
            return outcome
        existing = self._forge.find_open_pull_request(branch, self._base_branch)
        if existing is not None:
            self._forge.close_pull_request(existing.number)
            log.info("closed %s: nothing left to change", existing.url,
                     extra={"object": str(key)})
        published = self._store.remote_branch_commit(branch)
        if published is not None and not self._store.foreign_changes(base, published):
            # its PR closed (by us, or by a reviewer): the branch goes, if nobody moved it
            deleted = self._store.push_branch(branch, None, expect=published)
            if deleted.moved:
                log.info("%s not deleted: it moved (%s)", branch, deleted.rejected,
                         extra={"object": str(key)})
        if existing is not None:
            return Outcome(key, Result.UNCHANGED, Reason.PULL_REQUEST_CLOSED,
                           f"{key}: no change left; closed {existing.url}", None,
                           existing.url, existing.number)
        return outcome


def _settings_only(view: ConfigRepo) -> bool:
    """Whether the change just made on ``view`` only re-renders an unchanged spec."""
    commit = next(iter(view.log(limit=1)))
    return messages.trailer_values(commit.message, messages.TRAILER_ACTION) == ["rerender"]


def _body(message: str, key: ObjectKey) -> str:
    _, _, rest = message.partition("\n\n")
    trailers = "\n".join(f"{k}: {v}" for k, v in messages.parse_trailers(message))
    body = rest.rsplit("\n\n", 1)[0] if trailers else rest
    return (f"Proposed by gitops-reconciler for `{key}`.\n\n{body.strip()}\n\n"
            f"```\n{trailers}\n```\n\nMerge to apply. Closing it rejects this version: while "
            f"the resource still asks for the change, the reconciler opens a new pull request.\n")


def _without_fleet_refusals(parsed: Parsed, settings: Settings) -> tuple[Parsed, list[Outcome]]:
    """``parsed`` minus the objects that collide with others (``guards.refuse_fleet``), and
    a REFUSED outcome for each; they are kept out of removals like invalid objects."""
    refused = guards.refuse_fleet([o for o in parsed.objects if not o.spec.suspend], settings)
    if not refused:
        return parsed, []
    kept = [o for o in parsed.objects if o.key not in refused]
    refusals = [*parsed.refusals, *(Refusal(parsed.origins.get(r.key, str(r.key)), r.message,
                                            r.key) for r in refused.values())]
    return (Parsed(kept, refusals, parsed.incomplete, origins=parsed.origins),
            [Outcome(r.key, Result.REFUSED, r.reason, r.message) for r in refused.values()])
