"""What a decision takes and gives: the snapshot a pass decides on (the resources and
what the config repo holds for them) and the plan it decides.

Pure data. The reconcile layer reads the snapshot (all I/O, in bulk, once per pass);
``core.decide`` turns it into a plan; writing executes the plan and nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.core import plan
from reconciler.core.history import CommitInfo
from reconciler.core.models import ObjectKey, Resource
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render.common import SourceRecord
from reconciler.core.sources import Refusal


@dataclass(frozen=True)
class HumanChange:
    """The newest foreign commit that changed an object's directory after our last one."""

    reason: Reason
    commit: CommitInfo
    since: str  # the reconciler's last own commit for the object

    def describe(self) -> str:
        """One line naming the commit and its author."""
        what = {Reason.REVERTED_IN_GIT: "reverted", Reason.ROLLED_BACK: "rolled back"}.get(
            self.reason, "modified")
        return (f"{what} in Git by {self.commit.author_name} <{self.commit.author_email}> "
                f"in {self.commit.id[:12]} ({self.commit.subject})")


@dataclass(frozen=True, slots=True)  # one per object of the fleet: no __dict__
class DirectoryState:
    """What the config repo holds for one object's directory at the snapshot's head."""

    key: ObjectKey
    tree_id: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)  # name -> blob id
    record: SourceRecord | None = None  # the source record at the head
    own_record: SourceRecord | None = None  # the source record at our last own commit
    last_own: str | None = None  # the reconciler's last own commit for the object
    human: HumanChange | None = None
    first_own_time: int | None = None  # when the reconciler first wrote it

    @property
    def recorded(self) -> bool:
        """True when the directory's source record names this very object."""
        return self.record is not None and self.record.kind == self.key.kind \
            and self.record.name == self.key.name

    @property
    def owned(self) -> bool:
        """The reconciler made this directory (its record, or its own history, says so)."""
        return self.recorded or self.last_own is not None


@dataclass(frozen=True)
class Snapshot:
    """Everything one pass decides on.

    ``full``: the snapshot holds every resource and every directory, so a directory whose
    resource is absent is a removal candidate; a scoped snapshot (one object in the
    controller) removes only what ``Request.remove`` names.
    """

    objects: Sequence[Resource]
    refusals: Sequence[Refusal] = ()
    incomplete: bool = False  # some source file could not be read: its objects are unknown
    directories: Mapping[ObjectKey, DirectoryState] = field(default_factory=dict)
    pool_files: Mapping[str, str] = field(default_factory=dict)
    pool_databases: frozenset[str] = frozenset()  # databases the pool lists at the head
    #: path -> bytes at the head, read on demand (content-addressed, so a lookup is pure)
    contents: Mapping[str, bytes] = field(default_factory=dict)
    full: bool = True
    origins: Mapping[ObjectKey, str] = field(default_factory=dict)

    def state(self, key: ObjectKey) -> DirectoryState:
        """The directory state of ``key`` (empty when the repo holds nothing for it)."""
        return self.directories.get(key) or DirectoryState(key)


@dataclass(frozen=True)
class Request:
    """What the caller asks of a pass beyond "converge": forced, adopted, removed objects."""

    version: str
    force: frozenset[ObjectKey] = frozenset()  # write even over a human's change
    adopt: frozenset[ObjectKey] = frozenset()  # take over directories made by someone else
    remove: Mapping[ObjectKey, str | None] = field(default_factory=dict)  # explicit, with note
    allow_removals: int = 0  # confirms up to this many removals of a kind beyond the budget
    #: plan only the grouped re-render of unchanged specs (the controller, before its queue)
    rerender_only: bool = False
    #: an import's files are rendered while they are written, not kept in the plan (a
    #: pass that executes its plan; a guard refusing one makes it plan again without)
    stream_import: bool = False


@dataclass(frozen=True)
class FileChange:
    """One file a commit touches: A(dded), M(odified) or D(eleted), with line counts."""

    path: str
    status: str
    added: int
    removed: int


@dataclass(frozen=True)
class PlannedCommit:
    """One commit the pass will make, with everything that was judged to make it."""

    keys: tuple[ObjectKey, ...]
    action: str  # create, update, rerender, restore, adopt, delete, import, rerender-pool
    reason: Reason
    subject: str
    message: str
    changes: plan.ChangeSet
    files: tuple[FileChange, ...]
    guards: tuple[tuple[str, str], ...] = ()  # (guard, verdict) for every guard consulted
    confined_to: tuple[str, ...] = ()
    note: str | None = None  # why a removal happens, when the spec does not say (expiry)


@dataclass(frozen=True)
class Plan:
    """The ordered commits of a pass, and the verdict on every object it looked at."""

    commits: tuple[PlannedCommit, ...] = ()
    #: one per object (and the pool), in order; COMMITTED ones carry no commit id yet
    verdicts: tuple[Outcome, ...] = ()

    @property
    def refusals(self) -> list[Outcome]:
        """Objects refused (not ok)."""
        return [v for v in self.verdicts if not v.ok]

    @property
    def held_removals(self) -> list[Outcome]:
        """Removals this pass will not make (budget, empty source, unreadable file)."""
        return [v for v in self.verdicts
                if v.reason in (Reason.REMOVAL_HELD, Reason.SOURCE_EMPTY)]


def line_counts(before: bytes | None, after: bytes) -> tuple[int, int]:
    """Lines added and removed (as multisets of lines: cheap, and exact without moves)."""
    if not before or not after:  # a new or emptied file: no multiset needed
        return len(after.splitlines()), len((before or b"").splitlines())
    old = Counter((before or b"").splitlines())
    new = Counter(after.splitlines())
    return sum((new - old).values()), sum((old - new).values())


def plan_document(plan: Plan) -> dict[str, object]:
    """The plan as plain JSON-able data (``reconciler plan -o json``)."""
    def verdict(v: Outcome) -> dict[str, object]:
        return {"object": str(v.key) if v.key else None, "result": v.result.value,
                "reason": v.reason.value, "message": v.message}
    return {
        "commits": [{
            "objects": [str(k) for k in c.keys], "action": c.action, "reason": c.reason.value,
            "subject": c.subject,
            "files": [{"path": f.path, "status": f.status, "added": f.added,
                       "removed": f.removed} for f in c.files],
            "guards": dict(c.guards),
        } for c in plan.commits],
        "refused": [verdict(v) for v in plan.refusals if v not in plan.held_removals],
        "held": [verdict(v) for v in plan.verdicts if v.result == Result.HELD
                 or v.reason in (Reason.REMOVAL_HELD, Reason.SOURCE_EMPTY)],
        "skipped": [verdict(v) for v in plan.verdicts if v.result == Result.SKIPPED
                    and v.reason not in (Reason.REMOVAL_HELD,)],
        "unchanged": sum(1 for v in plan.verdicts if v.result == Result.UNCHANGED),
    }
