"""The reconciler: one object in, at most one commit out; a full pass over a set of objects.

Owns the decision of what to write and when; rendering and planning are delegated to the
pure core, writing to the ConfigRepo port. Every outcome carries a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.core import errors, messages, plan
from reconciler.core.models import DIRECTORIES, Customer, ObjectKey, Resource, spec_data
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render import common, customers, pool, previews
from reconciler.core.settings import Settings
from reconciler.core.sources import Parsed
from reconciler.ports.configrepo import ConfigRepo
from reconciler.reconcile.ownership import Ownership

log = logging.getLogger(__name__)

#: told ``n`` each time n more objects of a pass are done (a progress bar, or nothing)
Progress = Callable[[int], None]

POLICY_ANNOTATION = "reconciler.ahoi.dev/on-human-change"
RESYNC_ANNOTATION = "reconciler.ahoi.dev/resync"

OWNED_PREFIXES = {"Customer": ("tenants/", common.POOL_DIRECTORY), "Preview": ("previews/",)}


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
    if isinstance(obj, Customer):
        return customers.render_customer(obj, settings)
    return previews.render_preview(obj, settings)


@dataclass
class _Plan:
    """A planned write for one object (before it is committed)."""

    change: messages.ObjectChange
    changes: plan.ChangeSet
    existed: dict[str, bool]
    input_hash: str | None


class ObjectReconciler(Protocol):
    """What the controller and local mode drive: direct commits or pull requests."""

    def apply(self, obj: Resource, *, force: bool = False) -> Outcome:
        """Converge one object (``force``: even over a human's change)."""

    def remove(self, key: ObjectKey, *, note: str | None = None) -> Outcome:
        """Remove one object's directory."""

    def sync(self, parsed: Parsed, *, notes: Mapping[ObjectKey, str] | None = None,
             progress: Progress | None = None) -> PassReport:
        """A full pass."""

    def invalidate(self) -> None:
        """Drop caches."""


class Reconciler:
    """Reconciles resources into a ConfigRepo, one commit per object change."""

    def __init__(self, *, repo: ConfigRepo, settings: Settings, version: str) -> None:
        self._repo = repo
        self._settings = settings
        self._version = version
        # key -> (input hash, tree id) last seen in sync; rebuilt from the repo when missing
        self._in_sync: dict[ObjectKey, tuple[str, str]] = {}
        self._pool: dict[str, pool.PoolEntry] | None = None
        self.ownership = Ownership(repo=repo, author_email=settings.author_email)
        # key -> (input hash, tree id, outcome) of objects whose files a human changed
        self._held: dict[ObjectKey, tuple[str, str, Outcome]] = {}

    def invalidate(self) -> None:
        """Forget every cache (the branch was reset underneath us)."""
        self._in_sync.clear()
        self._held.clear()
        self._pool = None
        self.ownership.reset()

    # -- one object -----------------------------------------------------------------------

    def apply(self, obj: Resource, *, force: bool = False) -> Outcome:
        """Make the config repo hold ``obj``'s rendering; commit only when something changed.

        A human's revert or edit of the object's files stands while the spec is unchanged
        (policy ``report``): the outcome is HELD and names the commit. ``force`` (an
        explicit resync) or policy ``overwrite`` restores the rendering anyway.
        """
        key = obj.key
        if obj.spec.suspend:
            return Outcome(key, Result.SKIPPED, Reason.SUSPENDED, f"{key}: spec.suspend is true")
        problem = common.namespace_problem(obj, self._settings)
        if problem:
            return Outcome(key, Result.REFUSED, Reason.INVALID_SPEC, f"{key}: {problem}")
        try:
            planned = self._plan_apply(obj, force)
            if planned is None:
                return Outcome(key, Result.UNCHANGED, Reason.UP_TO_DATE, "config repo up to date")
            if isinstance(planned, Outcome):
                return planned
            files = messages.file_lines(list(planned.changes.writes), sorted(planned.changes.deletes),
                                        planned.existed)
            extra = self._pool_lines(planned.changes)
            msg = messages.object_message(planned.change, files, extra, self._version)
            commit = self._commit(planned.changes.confined_to(OWNED_PREFIXES[key.kind]), msg, key)
        except errors.ReconcilerError as exc:
            self._pool = None  # re-read on next use: the repo may not hold what we planned
            return _failure(key, exc)
        self._remember(key, planned.input_hash)
        self.ownership.recorded(key, commit, self._repo.tree_id(key.directory))
        reason = {"create": Reason.CREATED, "update": Reason.UPDATED}.get(
            planned.change.action, Reason.RERENDERED)
        return Outcome(key, Result.COMMITTED, reason, messages.subject_for(planned.change), commit)

    def remove(self, key: ObjectKey, *, note: str | None = None) -> Outcome:
        """Remove an object's directory (and its pool entry) in one commit.

        ``note`` says why in the commit subject (e.g. ``expired (ttl 72h)``).
        """
        try:
            current = self._repo.list_files(key.directory)
            record = self._record(key.directory)
            if not current:
                return Outcome(key, Result.UNCHANGED, Reason.UP_TO_DATE, "nothing to remove")
            if record is None or record.kind != key.kind or record.name != key.name:
                return Outcome(key, Result.SKIPPED, Reason.NOT_OWNED,
                               f"{key.directory}/ has no source record of {key}; left alone")
            human = self.ownership.human_change(key)
            if human is not None and self._settings.human_change_policy == "report" \
                    and self.ownership.record_at_own(key) is None:
                # we removed it and a human brought it back (revert of our removal)
                return Outcome(key, Result.HELD, human.reason,
                               f"{key}: {human.describe()}; the directory was brought back "
                               "by hand, so it is not removed again", human.commit.id)
            changes = plan.plan_removal(key.directory, current)
            if key.kind == "Customer":
                changes = changes.merged(self._pool_change(key.name, None))
            change = messages.ObjectChange(key, "delete", record.spec, None,
                                           record.generation, record.uid, note=note)
            files = messages.file_lines(list(changes.writes), sorted(changes.deletes),
                                        dict.fromkeys(changes.writes, True))
            msg = messages.object_message(change, files, self._pool_lines(changes), self._version)
            commit = self._commit(changes.confined_to(OWNED_PREFIXES[key.kind]), msg, key)
        except errors.ReconcilerError as exc:
            self._pool = None
            return _failure(key, exc)
        self._in_sync.pop(key, None)
        self._held.pop(key, None)
        self.ownership.recorded(key, commit, None)
        return Outcome(key, Result.COMMITTED, Reason.REMOVED, f"{key}: {note or 'removed'}",
                       commit)

    def _plan_apply(self, obj: Resource, force: bool) -> _Plan | Outcome | None:
        key = obj.key
        input_hash = common.object_input_hash(obj, self._settings)
        tree_id = self._repo.tree_id(key.directory)
        if not force and tree_id is not None and self._in_sync.get(key) == (input_hash, tree_id):
            return None
        held = self._held.get(key)
        if not force and held is not None and held[:2] == (input_hash, tree_id):
            return held[2]
        self._held.pop(key, None)
        record = self._record(key.directory) if tree_id is not None else None
        human = self.ownership.human_change(key)
        if human is not None and not force and self._policy(obj) == "report" \
                and self.ownership.spec_at_own(key) == spec_data(obj):
            outcome = Outcome(
                key, Result.HELD, human.reason,
                f"{key}: {human.describe()}; not overwritten while the spec is unchanged "
                f"(annotate {RESYNC_ANNOTATION} or run `reconciler resync {key}` to restore)",
                human.commit.id)
            self._held[key] = (input_hash, tree_id or "", outcome)
            return outcome
        pool_changes = self._pool_change(key.name, _pool_entry(obj, self._settings))
        if human is None and record is not None and record.input_hash == input_hash \
                and pool_changes.empty:
            self._in_sync[key] = (input_hash, tree_id or "")
            return None
        current = self._repo.list_files(key.directory)
        if record is None:
            action = "create" if not current else "update"
        elif record.spec != spec_data(obj):
            action = "update"
        else:
            action = "restore" if human is not None else "rerender"
        generation = _generation(obj, record, self.ownership.record_at_own(key), action)
        obj = _with_generation(obj, generation)
        rendered = render(obj, self._settings)
        changes = plan.plan_directory(rendered, current).merged(pool_changes)
        if changes.empty:
            self._in_sync[key] = (input_hash, tree_id or "")
            return None
        change = messages.ObjectChange(
            key, action, record.spec if record else None, spec_data(obj),
            generation, obj.metadata.uid, common.spec_hash(obj),
            human.commit.id if human is not None else None)
        existed = {f"{key.directory}/{name}": True for name in current}
        if not pool_changes.empty:
            pool_files = self._repo.list_files(common.POOL_DIRECTORY)
            existed.update({f"{common.POOL_DIRECTORY}/{n}": True for n in pool_files})
        return _Plan(change, changes, existed, input_hash)

    def _policy(self, obj: Resource) -> str:
        value = obj.metadata.annotations.get(POLICY_ANNOTATION)
        return value if value in ("report", "overwrite") else self._settings.human_change_policy

    @property
    def held_keys(self) -> set[ObjectKey]:
        """Objects whose files a human changed and that are left as the human made them."""
        return set(self._held)

    def _record(self, directory: str) -> common.SourceRecord | None:
        raw = self._repo.read_file(f"{directory}/{common.SOURCE_FILE}")
        return common.parse_source_record(raw) if raw is not None else None

    def _remember(self, key: ObjectKey, input_hash: str | None) -> None:
        tree_id = self._repo.tree_id(key.directory)
        if input_hash and tree_id:
            self._in_sync[key] = (input_hash, tree_id)

    def _commit(self, changes: plan.ChangeSet, message: str, key: object = None) -> str:
        commit = self._repo.commit(changes, message)
        log.info("committed %s %s", commit[:12], message.split("\n", 1)[0],
                 extra={"object": str(key)} if key is not None else None)
        return commit

    # -- the connection pool --------------------------------------------------------------

    def _current_pool(self) -> dict[str, pool.PoolEntry]:
        """The pool entries the repo holds now (read once, then kept up to date).

        From the pool's source record; when that is missing (deleted by hand, first run
        after an upgrade), from the tenants' own source records, so that one Customer's
        commit never drops every other tenant's database from the pool.
        """
        if self._pool is None:
            record = self._record(common.POOL_DIRECTORY)
            if record is not None:
                names = list(record.databases)
            else:
                names = [name for name in self._repo.list_directories("tenants")
                         if _has_database(self._record(f"tenants/{name}"))]
            self._pool = {name: pool.entry_for(name, self._settings) for name in names}
        return self._pool

    def _pool_change(self, name: str, entry: pool.PoolEntry | None) -> plan.ChangeSet:
        """The pool's change set if ``name``'s entry became ``entry`` (applied to our view)."""
        entries = self._current_pool()
        if entries.get(name) == entry:
            return plan.ChangeSet()
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = entry
        return self._pool_changes_for(entries)

    def _pool_changes_for(self, entries: dict[str, pool.PoolEntry]) -> plan.ChangeSet:
        rendered = pool.render_pool(entries.values(), self._settings)
        return plan.plan_directory(rendered, self._repo.list_files(common.POOL_DIRECTORY))

    @staticmethod
    def _pool_lines(changes: plan.ChangeSet) -> list[str]:
        if any(p.startswith(common.POOL_DIRECTORY + "/") for p in changes.paths):
            return ["- connection pool updated (platform/pgbouncer)"]
        return []

    # -- a full pass ----------------------------------------------------------------------

    def sync(self, parsed: Parsed, *, notes: Mapping[ObjectKey, str] | None = None,
             progress: Progress | None = None) -> PassReport:
        """Reconcile every object of ``parsed`` and remove what no longer has a resource
        (``notes`` say why, per object, in the removal commits); ``progress(n)`` is told
        each time ``n`` more objects of ``parsed`` are done."""
        report = PassReport()
        report.outcomes += [Outcome(r.key, Result.REFUSED, Reason.INVALID_SPEC, str(r))
                            for r in parsed.refusals]
        held = {r.key for r in parsed.refusals if r.key is not None}
        new = [o for o in parsed.objects if o.key not in self._in_sync
               and self._repo.tree_id(o.key.directory) is None
               and not o.spec.suspend and not common.namespace_problem(o, self._settings)]
        if len(new) > self._settings.import_batch:  # never re-import what a human removed
            new = [o for o in new if self.ownership.last_own(o.key) is None]
        imported: set[ObjectKey] = set()
        if len(new) > self._settings.import_batch:
            outcomes = self._import(new, progress)
            report.outcomes += outcomes
            imported = {o.key for o in outcomes if o.key is not None and o.ok}
        for obj in parsed.objects:
            if obj.key not in imported:
                report.outcomes.append(self.apply(obj))
                if progress is not None:
                    progress(1)
        report.outcomes += self._remove_absent(parsed, held, notes or {})
        report.outcomes += self._fix_pool(parsed, held)
        self._repo.flush()
        return report

    def _remove_absent(self, parsed: Parsed, held: set[ObjectKey],
                       notes: Mapping[ObjectKey, str]) -> list[Outcome]:
        wanted = {o.key for o in parsed.objects}
        present = [ObjectKey(kind, name) for kind, top in DIRECTORIES.items()
                   for name in self._repo.list_directories(top)]
        absent = [k for k in present if k not in wanted and k not in held]
        if absent and parsed.incomplete:
            return [Outcome(k, Result.SKIPPED, Reason.REMOVAL_HELD,
                            f"{k}: not removed because some source file could not be read")
                    for k in absent]
        removed = [self.remove(k, note=notes.get(k)) for k in absent]
        return [o for o in removed if o.result != Result.UNCHANGED]

    def _fix_pool(self, parsed: Parsed, held: set[ObjectKey]) -> list[Outcome]:
        """Repair the pool when it disagrees with the Customers (settings change, hand edit).

        Entries of Customers the pass did not act on (invalid, suspended, or in a file that
        could not be read) are kept as they are: nothing is lost for a bad input.
        """
        current = self._current_pool()
        acted = {o.key for o in parsed.objects
                 if not o.spec.suspend and not common.namespace_problem(o, self._settings)
                 and o.key not in self._held}
        desired = {name: e for name, e in current.items()
                   if parsed.incomplete or (ObjectKey("Customer", name) not in acted
                   and (ObjectKey("Customer", name) in held
                        or any(o.key == ObjectKey("Customer", name) for o in parsed.objects)))}
        for obj in parsed.objects:
            entry = _pool_entry(obj, self._settings) if obj.key in acted else None
            if entry is not None:
                desired[entry.name] = entry
        if not desired and not self._repo.list_files(common.POOL_DIRECTORY):
            self._pool = desired  # no databases and no pool (e.g. its creation was reverted)
            return []
        changes = self._pool_changes_for(desired)
        self._pool = desired
        if changes.empty:
            return []
        msg = messages.build_message(
            f"platform/pgbouncer: pool lists {len(desired)} databases",
            ["The connection pool was re-rendered from every Customer with a database."],
            [(messages.TRAILER_OBJECT, "pool/pgbouncer"), (messages.TRAILER_ACTION, "rerender"),
             (messages.TRAILER_VERSION, self._version)])
        try:
            commit = self._commit(changes.confined_to((common.POOL_DIRECTORY,)), msg)
        except errors.ReconcilerError as exc:
            self._pool = None
            return [_failure(pool.POOL_KEY, exc)]
        return [Outcome(pool.POOL_KEY, Result.COMMITTED, Reason.RERENDERED, msg.split("\n")[0],
                        commit)]

    def _import(self, new: Sequence[Resource], progress: Progress | None) -> list[Outcome]:
        """Add many new objects in one commit (the first import of a large fleet)."""
        changes = plan.ChangeSet()
        planned: list[tuple[Resource, str]] = []
        for original in new:
            obj = _with_generation(original, _generation(original, None, None, "create"))
            rendered = render(obj, self._settings)
            changes = changes.merged(plan.plan_directory(rendered, {}))
            planned.append((obj, rendered.input_hash))
            if progress is not None:
                progress(1)
        entries = self._current_pool()
        for obj, _ in planned:
            entry = _pool_entry(obj, self._settings)
            if entry is not None:
                entries[entry.name] = entry
        changes = changes.merged(self._pool_changes_for(entries))
        object_changes = [messages.ObjectChange(o.key, "create", None, spec_data(o))
                          for o, _ in planned]
        msg = messages.import_message(object_changes, len(changes.writes),
                                      self._pool_lines(changes), self._version)
        try:
            commit = self._commit(changes.confined_to(("tenants/", "previews/",
                                                       common.POOL_DIRECTORY)), msg)
        except errors.ReconcilerError as exc:
            self._pool = None
            return [_failure(o.key, exc) for o in new]
        for obj, input_hash in planned:
            self._remember(obj.key, input_hash)
        return [Outcome(o.key, Result.COMMITTED, Reason.IMPORTED, f"{o.key}: imported", commit)
                for o in new]


def _with_generation(obj: Resource, generation: int | None) -> Resource:
    """``obj`` carrying ``generation`` (local mode counts spec changes itself)."""
    if generation == obj.metadata.generation:
        return obj
    return obj.model_copy(update={"metadata": obj.metadata.model_copy(
        update={"generation": generation})})


def _generation(obj: Resource, record: common.SourceRecord | None,
                own: common.SourceRecord | None, action: str) -> int | None:
    """The generation to record: the resource's own, or in local mode (where files carry
    none) one more than any generation written before for every spec change.

    ``record`` is what the directory holds now (a revert or rollback may have set it back),
    ``own`` what the reconciler last wrote: numbers are never reused after a revert.
    """
    if obj.metadata.generation is not None:
        return obj.metadata.generation
    current = record.generation if record and record.generation else 0
    if action not in ("create", "update"):
        return current or None
    if own is not None and own.spec == spec_data(obj) and own.generation:
        return own.generation  # the spec the reconciler last rendered: same generation
    latest = max(current, own.generation if own and own.generation else 0)
    return latest + 1


def _has_database(record: common.SourceRecord | None) -> bool:
    if record is None or record.kind != "Customer" or not record.spec:
        return False
    features = record.spec.get("features") or {}
    return bool((features.get("database") or {}).get("enabled"))


def _pool_entry(obj: Resource, settings: Settings) -> pool.PoolEntry | None:
    return pool.pool_entry(obj, settings) if isinstance(obj, Customer) else None


def _failure(key: ObjectKey, exc: errors.ReconcilerError) -> Outcome:
    if isinstance(exc, errors.UnsafeWriteError):
        return Outcome(key, Result.REFUSED, Reason.UNSAFE_PATH, f"{key}: {exc}")
    return Outcome(key, Result.FAILED, Reason.GIT_ERROR, f"{key}: {exc}")

