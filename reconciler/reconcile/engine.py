"""The reconciler: every pass is read a snapshot -> decide (pure) -> execute the plan.

``apply`` and ``remove`` are passes scoped to one object (the controller's work queue);
``sync`` is a full pass; ``plan`` is a full pass that writes nothing. Deciding lives in
``core.decide``; reading and writing in ``reconcile.snapshots``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler.core import decide as decision
from reconciler.core import layout
from reconciler.core.models import ObjectKey, Resource
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.plan import StreamRefusedError
from reconciler.core.render import common
from reconciler.core.settings import Settings
from reconciler.core.snapshot import DirectoryState, Request, Snapshot
from reconciler.core.sources import Parsed
from reconciler.ports.configrepo import ConfigRepo
from reconciler.ports.treecache import TreeCache
from reconciler.reconcile.ownership import Ownership
from reconciler.reconcile.snapshots import SnapshotReader, execute

log = logging.getLogger(__name__)
#: phases of a large pass (the CLI shows them; a first import of a big fleet takes minutes)
progress = logging.getLogger("reconciler.progress")
PROGRESS_OBJECTS = 2000

POLICY_ANNOTATION = decision.POLICY_ANNOTATION
RESYNC_ANNOTATION = decision.RESYNC_ANNOTATION
ADOPT_ANNOTATION = decision.ADOPT_ANNOTATION
OWNED_PREFIXES = layout.OWNED_PREFIXES


@dataclass
class PassReport:
    """Everything one full pass did."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was refused or failed."""
        return all(o.ok for o in self.outcomes)

    @property
    def commits(self) -> list[str]:
        """Ids of the commits made, in order."""
        return list(dict.fromkeys(o.commit for o in self.outcomes
                                  if o.commit and o.result == Result.COMMITTED))


def render(obj: Resource, settings: Settings) -> common.RenderedDir:
    """Render any resource."""
    return decision.render_object(obj, settings)


class ObjectReconciler(Protocol):
    """What the controller and local mode drive: direct commits or pull requests."""

    def apply(self, obj: Resource, *, force: bool = False, adopt: bool = False) -> Outcome:
        """Converge one object (``force``: even over a human's change)."""

    def remove(self, key: ObjectKey, *, note: str | None = None) -> Outcome:
        """Remove one object's directory."""

    def sync(self, parsed: Parsed, *, now: float | None = None,
             allow_removals: int = 0) -> PassReport:
        """A full pass (``now``: also remove Previews past their ttl)."""

    def invalidate(self) -> None:
        """Drop caches."""

    def rerender(self, objects: list[Resource]) -> list[Outcome]:
        """Re-render, grouped, those of ``objects`` whose spec is unchanged but whose
        rendering inputs changed (settings, version); everything else is left alone."""


class Reconciler:
    """Reconciles resources into a ConfigRepo, one commit per object change."""

    def __init__(self, *, repo: ConfigRepo, settings: Settings, version: str,
                 trees: TreeCache | None = None) -> None:
        self._repo = repo
        self._settings = settings
        self._version = version
        self.ownership = Ownership(repo=repo, author_email=settings.author_email)
        self._reader = SnapshotReader(repo=repo, ownership=self.ownership, trees=trees)

    def invalidate(self) -> None:
        """Forget every cache (the branch was reset underneath us)."""
        self._reader.reset()

    def directory_state(self, key: ObjectKey) -> DirectoryState:
        """What the config repo holds for ``key`` (cached by tree id and last own commit)."""
        return self._reader.directory(key)

    def _one(self, outcomes: list[Outcome], key: ObjectKey, default: Outcome) -> Outcome:
        mine = [o for o in outcomes if o.key == key]
        return mine[0] if mine else default

    # -- one object -----------------------------------------------------------------------

    def apply(self, obj: Resource, *, force: bool = False, adopt: bool = False) -> Outcome:
        """Make the config repo hold ``obj``'s rendering; commit only when something changed.

        A human's revert or edit of the object's files stands while the spec is unchanged
        (policy ``report``): the outcome is HELD and names the commit. ``force`` (an
        explicit resync) or policy ``overwrite`` restores the rendering anyway; ``adopt``
        takes over a directory the reconciler did not make.
        """
        key = obj.key
        request = Request(self._version, force=frozenset({key}) if force else frozenset(),
                          adopt=frozenset({key}) if adopt else frozenset())
        snapshot = self._reader.scoped([obj])
        plan = decision.decide(snapshot, self._settings, None, request)
        outcomes = execute(plan, self._repo, self.ownership)
        self._reader.remember(snapshot, plan, outcomes)
        return self._one(outcomes, key, Outcome(
            key, Result.UNCHANGED, Reason.UP_TO_DATE, "config repo up to date"))

    def remove(self, key: ObjectKey, *, note: str | None = None) -> Outcome:
        """Remove an object's directory (and its pool entry) in one commit.

        ``note`` says why in the commit subject (e.g. ``expired (ttl 72h)``).
        """
        request = Request(self._version, remove={key: note})
        plan = decision.decide(self._reader.scoped([], [key]), self._settings, None, request)
        return self._one(execute(plan, self._repo, self.ownership), key, Outcome(
            key, Result.UNCHANGED, Reason.UP_TO_DATE, "nothing to remove"))

    def rerender(self, objects: list[Resource]) -> list[Outcome]:
        """Re-render, grouped (one commit per ``rerender_batch``), those of ``objects`` whose
        spec is unchanged but whose rendering inputs changed; nothing else is written."""
        snapshot = self._reader.scoped(objects)
        plan = decision.decide(snapshot, self._settings, None,
                               Request(self._version, rerender_only=True))
        outcomes = execute(plan, self._repo, self.ownership)
        self._reader.remember(snapshot, plan, outcomes)
        return outcomes

    # -- a full pass ----------------------------------------------------------------------

    def snapshot(self, parsed: Parsed) -> Snapshot:
        """What a full pass over ``parsed`` decides on (all read at one head)."""
        return self._reader.full(parsed)

    def plan(self, parsed: Parsed, *, now: float | None = None, allow_removals: int = 0,
             snapshot: Snapshot | None = None,
             input_hashes: Mapping[ObjectKey, str] | None = None) -> decision.Plan:
        """What a full pass over ``parsed`` would commit (on ``snapshot`` when given, one
        ``snapshot(parsed)`` read; ``input_hashes``: the objects' input hashes, computed
        by the caller already); writes nothing."""
        request = Request(self._version, allow_removals=allow_removals)
        return decision.decide(snapshot if snapshot is not None else self._reader.full(parsed),
                               self._settings, now, request, input_hashes)

    def sync(self, parsed: Parsed, *, now: float | None = None,
             allow_removals: int = 0) -> PassReport:
        """Reconcile every object of ``parsed`` and remove what no longer has a resource
        (within the removal budget; ``now``: Previews past their ttl are removed too)."""
        started = time.monotonic()
        large = len(parsed.objects) >= PROGRESS_OBJECTS
        if large:
            progress.info("reading the config repo for %d objects", len(parsed.objects))
        snapshot = self._reader.full(parsed)
        if large:
            progress.info("deciding (%.1fs)", time.monotonic() - started)
        request = Request(self._version, allow_removals=allow_removals, stream_import=True)
        plan = decision.decide(snapshot, self._settings, now, request)
        if large and plan.commits:
            streamed = sum(len(c.changes.streamed.directories) for c in plan.commits
                           if c.changes.streamed is not None)
            progress.info("writing %d commits, %d files%s (%.1fs)", len(plan.commits),
                          sum(len(c.changes.writes) + len(c.changes.deletes)
                              for c in plan.commits),
                          f" and {streamed} new directories" if streamed else "",
                          time.monotonic() - started)
        try:
            outcomes = execute(plan, self._repo, self.ownership)
        except StreamRefusedError as exc:
            # a guard refused one rendering of the import: nothing was written; plan again
            # the eager way, which refuses that object alone and imports the others
            log.info("import: %s; planning it again without streaming", exc)
            plan = decision.decide(snapshot, self._settings, now,
                                   replace(request, stream_import=False))
            outcomes = execute(plan, self._repo, self.ownership)
        self._reader.remember(snapshot, plan, outcomes)
        self._repo.flush()
        (progress.info if large else log.debug)(
            "pass: %d commits in %.1fs", len(plan.commits), time.monotonic() - started)
        return PassReport(outcomes)
