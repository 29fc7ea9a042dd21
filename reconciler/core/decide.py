"""The decision step: a snapshot in, the plan of a pass out. Pure.

Every pass — local and cluster, ``run``, ``resync``, ``plan``, ``status`` — calls
``decide``; writing executes its commits and nothing else. Every guard, hold and refusal
is decided here, with a reason. The connection pool is a function of every Customer's
final directory: what a commit leaves behind is what the pool lists.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from reconciler.core import expiry, guards, layout, messages, names, plan, rerender, text
from reconciler.core.models import DIRECTORIES, Customer, ObjectKey, Resource, spec_data
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render import common, customers, pool, previews
from reconciler.core.settings import Settings
from reconciler.core.snapshot import (
    DirectoryState,
    FileChange,
    Plan,
    PlannedCommit,
    Request,
    Snapshot,
    line_counts,
    plan_document,
)

POLICY_ANNOTATION = "reconciler.ahoi.dev/on-human-change"
RESYNC_ANNOTATION = "reconciler.ahoi.dev/resync"
ADOPT_ANNOTATION = "reconciler.ahoi.dev/adopt"
GUARDS = ("fleet", "object", "transition", "ownership", "human-change")
__all__ = ["FileChange", "Plan", "PlannedCommit", "decide", "plan_document", "removal_budget",
           "render_object"]


def render_object(obj: Resource, settings: Settings) -> common.RenderedDir:
    """Render any resource."""
    if isinstance(obj, Customer):
        return customers.render_customer(obj, settings)
    return previews.render_preview(obj, settings)


def removal_budget(present: int, settings: Settings) -> int:
    """How many objects of a kind with ``present`` directories one pass may remove."""
    return max(settings.removal_budget_min,
               math.floor(present * settings.removal_budget_percent / 100))


def expired_previews(snapshot: Snapshot, now: float) -> dict[ObjectKey, str]:
    """Previews whose ttl has passed, with the note of their removal commit."""
    out: dict[ObjectKey, str] = {}
    for obj in snapshot.objects:
        ttl = getattr(obj.spec, "ttl", None)
        if obj.kind != "Preview" or not ttl:
            continue
        created = expiry.timestamp_seconds(obj.metadata.creationTimestamp) \
            or snapshot.state(obj.key).first_own_time
        try:
            if created is not None and now >= expiry.expires_at(created, ttl):
                out[obj.key] = f"expired (ttl {ttl})"
        except ValueError:
            continue
    return out


def decide(snapshot: Snapshot, settings: Settings, now: float | None,
           request: Request, input_hashes: Mapping[ObjectKey, str] | None = None) -> Plan:
    """The plan of one pass over ``snapshot`` (``now``: None skips Preview expiry).

    An instance of a split fleet (``selector``, ``shard``) sees only the objects it owns.
    ``input_hashes``: each object's ``object_input_hash`` under ``settings``, when the
    caller computed them already (``status`` shows them too)."""
    if settings.selector or settings.shard:
        snapshot = replace(snapshot, objects=tuple(
            o for o in snapshot.objects if settings.owns(o.metadata.name, o.metadata.labels)))
    state = _PassState(snapshot, settings, request)
    state.input_hashes = input_hashes or {}
    verdicts: list[Outcome] = [Outcome(r.key, Result.REFUSED, Reason.INVALID_SPEC, str(r))
                               for r in snapshot.refusals]
    expired = expired_previews(snapshot, now) if now is not None else {}
    objects = [o for o in snapshot.objects if o.key not in expired] if expired \
        else list(snapshot.objects)
    fleet = guards.refuse_fleet([o for o in objects if not o.spec.suspend], settings)
    order = _judge_all(objects, state, fleet, verdicts)
    drafts = [d for d in order if not isinstance(d, ObjectKey)]
    imported = _import_set(drafts, settings)
    if imported:
        verdicts += state.commit_import([obj for obj, _, _ in drafts if obj.key in imported])
    rerendered = [d for d in drafts if (snapshot.full or request.rerender_only)
                  and _only_rerender(d, request)]
    del drafts
    if request.rerender_only:
        verdicts = state.commit_rerender(rerendered)
        return Plan(tuple(state.commits), tuple(verdicts))
    if rerendered:
        verdicts += state.commit_rerender(rerendered)
    grouped = imported | {obj.key for obj, _, _ in rerendered}
    for draft in order:
        if isinstance(draft, ObjectKey):
            verdicts.append(_up_to_date(draft))
        elif draft[0].key not in grouped:
            verdicts += state.commit_object(*draft)
    verdicts += _removals(snapshot, state, expired)
    if snapshot.full:
        verdicts += state.fix_pool()
    return Plan(tuple(state.commits), tuple(verdicts))


_Draft = tuple[Resource, DirectoryState, str]


def _judge_all(objects: Sequence[Resource], state: _PassState,
               fleet: Mapping[ObjectKey, guards.GuardRefusal],
               verdicts: list[Outcome]) -> list[_Draft | ObjectKey]:
    """Judge each object (its verdict appended to ``verdicts``); in order, an object to
    plan (with its directory and input hash), or the key of one already up to date (a
    tuple each for 100,000 unchanged tenants cost 6 MB)."""
    order: list[_Draft | ObjectKey] = []
    for obj in objects:
        key = obj.key  # made on each access: once per object here, not four times
        directory = state.snapshot.state(key)
        judged = _judge(obj, directory, state, fleet.get(key))
        if isinstance(judged, Outcome):
            verdicts.append(judged)
            if judged.result in (Result.HELD, Result.SKIPPED, Result.REFUSED):
                state.untouched.add(key)
        elif state.settled(obj, directory, judged):
            order.append(key)
        else:
            order.append((obj, directory, judged))
    return order


def _judge(obj: Resource, directory: DirectoryState, state: _PassState,
           fleet: guards.GuardRefusal | None) -> Outcome | str:
    """Whether ``obj`` may be written at all: a verdict, or its input hash to go on."""
    key, settings, request = obj.key, state.settings, state.request
    if obj.spec.suspend:
        return Outcome(key, Result.SKIPPED, Reason.SUSPENDED, f"{key}: spec.suspend is true")
    problem = common.namespace_problem(obj, settings)
    if problem:
        origin = state.snapshot.origins.get(key)
        where = f"{origin}: {obj.kind} {obj.metadata.name!r}" if origin else str(key)
        return Outcome(key, Result.REFUSED, Reason.INVALID_SPEC,
                       text.one_line(f"{where}: {problem}"))
    record = directory.record if directory.recorded else None
    input_hash = state.input_hashes.get(key) or common.object_input_hash(obj, settings)
    if record is not None and record.input_hash == input_hash:
        input_hash = record.input_hash  # the one string both hold: 11 MB at 100,000 tenants
    adopt = key in request.adopt or obj.metadata.annotations.get(ADOPT_ANNOTATION) == "true"
    if directory.files and not directory.owned and not adopt:
        return Outcome(key, Result.REFUSED, Reason.NOT_OWNED,
                       f"{key}: {key.directory}/ exists but was not made by the reconciler; "
                       f"not overwritten (hand it over: `reconciler adopt {key}` or the "
                       f"annotation {ADOPT_ANNOTATION}=true)")
    human = directory.human
    if human is not None and key not in request.force and _policy(obj, settings) == "report" \
            and _own_spec(directory) == spec_data(obj):
        return Outcome(
            key, Result.HELD, human.reason,
            f"{key}: {human.describe()}; not overwritten while the spec is unchanged "
            f"(annotate {RESYNC_ANNOTATION} or run `reconciler resync {key}` to restore)",
            human.commit.id)
    refusal = fleet
    if refusal is None and (record is None or record.input_hash != input_hash):
        # only a rendering that would change is judged (refuse_rendered follows, once
        # the object is rendered): what the repo already holds stays as it is
        refusal = guards.refuse_transition(obj, record.spec if record else None, settings)
    if refusal is not None:
        return Outcome(key, Result.REFUSED, refusal.reason, refusal.message)
    return input_hash


def _own_spec(directory: DirectoryState) -> dict[str, Any] | None:
    """The spec of the reconciler's last own rendering (read only when judged)."""
    own = directory.own_record
    return dict(own.spec) if own is not None and own.spec is not None else None


def _import_set(drafts: Sequence[tuple[Resource, DirectoryState, str]],
                settings: Settings) -> set[ObjectKey]:
    """New objects added in one import commit when there are more than ``import_batch``."""
    new = [obj.key for obj, d, _ in drafts if d.tree_id is None and not d.files]
    if len(new) > settings.import_batch:  # never re-import what a human removed
        new = [obj.key for obj, d, _ in drafts
               if d.tree_id is None and not d.files and d.last_own is None]
    return set(new) if len(new) > settings.import_batch else set()


def _only_rerender(draft: tuple[Resource, DirectoryState, str], request: Request) -> bool:
    """The object's spec is what its record says but its rendering inputs changed
    (settings or the renderer): part of one settings-change commit, not one of its own."""
    obj, directory, input_hash = draft
    record = directory.record
    return directory.recorded and record is not None and directory.human is None \
        and record.input_hash != input_hash and record.spec == spec_data(obj) \
        and obj.key not in request.force and obj.key not in request.adopt


def _removals(snapshot: Snapshot, state: _PassState,
              expired: Mapping[ObjectKey, str]) -> list[Outcome]:
    """Directories whose resource is gone (full pass), expired, or removed on request."""
    explicit = dict(state.request.remove)
    verdicts: list[Outcome] = []
    if snapshot.full:
        wanted = {k for k in (o.key for o in snapshot.objects) if k not in expired}
        refused = {r.key for r in snapshot.refusals if r.key is not None}
        absent = [k for k in snapshot.directories
                  if k not in wanted and k not in refused and k not in explicit
                  and snapshot.directories[k].files]
        if snapshot.incomplete:  # an expired Preview's own file was read: it still goes
            unread = ", ".join(sorted({r.origin for r in snapshot.refusals}))[:200]
            for key in sorted(k for k in absent if k not in expired):
                verdicts.append(Outcome(key, Result.SKIPPED, Reason.REMOVAL_HELD,
                                        f"{key}: not removed because some source file could not "
                                        f"be read ({unread})"))
                state.untouched.add(key)
        else:
            verdicts += _budgeted(snapshot, state, [k for k in absent if k not in expired])
        for key in sorted(k for k in absent if k in expired):
            explicit[key] = expired[key]
    for key, note in explicit.items():
        verdicts += state.commit_removal(key, snapshot.state(key), note)
    return verdicts


def _budgeted(snapshot: Snapshot, state: _PassState, absent: list[ObjectKey]) -> list[Outcome]:
    """Remove absent objects kind by kind, unless a kind vanished or exceeds the budget."""
    verdicts: list[Outcome] = []
    allow = state.request.allow_removals
    for kind in DIRECTORIES:
        owned = [k for k, d in snapshot.directories.items() if k.kind == kind and d.recorded]
        going = sorted(k for k in absent if k.kind == kind)
        removable = [k for k in going if snapshot.state(k).recorded]
        in_source = any(o.kind == kind for o in snapshot.objects) or any(
            r.key is not None and r.key.kind == kind for r in snapshot.refusals)
        held: tuple[Reason, str] | None = None
        if removable and not in_source and len(removable) == len(owned) and allow < len(owned):
            held = (Reason.SOURCE_EMPTY,
                    f"the source has no {kind} while the config repo holds {len(owned)}; "
                    f"nothing removed (wrong or empty source? confirm with --allow-removals "
                    f"{len(owned)})")
        elif len(removable) > max(removal_budget(len(owned), state.settings), allow):
            held = (Reason.REMOVAL_HELD,
                    f"{len(removable)} {kind} removals exceed the budget of "
                    f"{removal_budget(len(owned), state.settings)} per pass; all "
                    f"{len(removable)} held (confirm with --allow-removals {len(removable)})")
        for key in going:
            if held is not None and key in removable:
                verdicts.append(Outcome(key, Result.REFUSED, held[0], f"{key}: {held[1]}"))
                state.untouched.add(key)
            else:
                verdicts += state.commit_removal(key, snapshot.state(key), None)
    return verdicts


class _PassState:
    """The running state of one decision: commits so far and the pool after them."""

    def __init__(self, snapshot: Snapshot, settings: Settings, request: Request) -> None:
        self.snapshot, self.settings, self.request = snapshot, settings, request
        self.commits: list[PlannedCommit] = []
        self.untouched: set[ObjectKey] = set()  # left as they are: held, refused, skipped
        self.gone: set[ObjectKey] = set()  # removed by a planned commit
        self.written: dict[ObjectKey, Resource] = {}  # committed or already in sync
        # computed when looked up: a one-object pass must not cost O(fleet)
        self.entries: Mapping[str, pool.PoolEntry] = _PoolEntries(snapshot.pool_databases,
                                                                  settings)
        self.pool_files = dict(snapshot.pool_files)
        self.pool_bytes: dict[str, bytes] = {}
        self._settings_recorded: bool | None = None
        self.input_hashes: Mapping[ObjectKey, str] = {}  # computed by the caller already

    # -- the settings record -------------------------------------------------------------

    def settings_recorded(self) -> bool:
        """Whether the repo (or a commit planned before) holds the settings record."""
        if self._settings_recorded is None:
            self._settings_recorded = rerender.SETTINGS_RECORD in self.snapshot.contents
        return self._settings_recorded

    def settings_record_change(self) -> plan.ChangeSet:
        """The settings record as this pass's settings and version would write it."""
        return plan.ChangeSet({rerender.SETTINGS_RECORD: rerender.settings_record(
            self.settings.render_settings(), self.request.version)})

    # -- the pool -------------------------------------------------------------------------

    def _pool_old(self, path: str) -> bytes | None:
        name = path.rsplit("/", 1)[1]
        if name not in self.pool_files:
            return None
        return self.pool_bytes.get(name, self.snapshot.contents.get(path))

    def pool_change(self, name: str, entry: pool.PoolEntry | None) -> plan.ChangeSet:
        """The pool's change set if ``name``'s entry became ``entry`` (not yet applied)."""
        if self.entries.get(name) == entry:
            return plan.ChangeSet()
        entries = dict(self.entries)
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = entry
        return self._pool_render(entries)[0]

    def _pool_render(self, entries: Mapping[str, pool.PoolEntry]
                     ) -> tuple[plan.ChangeSet, common.RenderedDir]:
        rendered = pool.render_pool(entries.values(), self.settings)
        return plan.plan_directory(rendered, self.pool_files), rendered

    def apply_pool(self, entries: Mapping[str, pool.PoolEntry]) -> None:
        """The pool as a planned commit leaves it."""
        if dict(entries) == dict(self.entries):
            return
        rendered = pool.render_pool(entries.values(), self.settings)
        self.entries = dict(entries)
        self.pool_files = {n: plan.git_blob_id(d) for n, d in rendered.files.items()}
        self.pool_bytes = dict(rendered.files)

    def fix_pool(self) -> list[Outcome]:
        """Repair the pool when it disagrees with the Customers' final directories.

        A pool entry is a function of the Customer's name, so the pool wanted is a set of
        names; whether the repo holds it is told by blob ids hashed a line at a time, and
        only a pool that differs is rendered whole (~25 MB at 50,000 databases)."""
        desired: set[str] = set()
        for key, directory in self.snapshot.directories.items():
            if key.kind == "Customer" and key not in self.gone and key not in self.written \
                    and directory.recorded and _has_database(directory):
                desired.add(key.name)
        for obj in self.written.values():
            entry = _pool_entry(obj, self.settings)
            if entry is not None:
                desired.add(entry.name)
        for key in self.untouched:  # held (e.g. moved out of its shard by hand): its pool
            if key.kind == "Customer" and key.name in self.entries:  # line stays as it is
                desired.add(key.name)
        if not desired and not self.pool_files:
            return []
        wanted = {rel: plan.git_blob_id_of(produce)
                  for rel, produce in pool.pool_chunks(desired, self.settings).items()}
        differ = {rel for rel in {*wanted, *self.pool_files}
                  if wanted.get(rel) != self.pool_files.get(rel)}
        if not differ or (differ == {common.SOURCE_FILE} and common.SOURCE_FILE in wanted
                          and common.SOURCE_FILE in self.pool_files):
            return []  # only the record's hash would change: nothing deployed differs
        entries = {name: pool.entry_for(name, self.settings) for name in desired}
        changes, _ = self._pool_render(entries)
        subject = f"platform/pgbouncer: pool lists {len(desired)} databases"
        message = messages.build_message(
            subject, ["The connection pool was re-rendered from every Customer with a database."],
            [(messages.TRAILER_OBJECT, "pool/pgbouncer"), (messages.TRAILER_ACTION, "rerender"),
             (messages.TRAILER_VERSION, self.request.version)])
        outcomes = self._add((pool.POOL_KEY,), "rerender", Reason.RERENDERED, subject=subject,
                             message_for=lambda _lines: message, changes=changes, existed={},
                             confined=(common.POOL_DIRECTORY,))
        self.apply_pool(entries)
        return outcomes

    # -- commits --------------------------------------------------------------------------

    def _file_changes(self, changes: plan.ChangeSet,
                      existed: Mapping[str, str]) -> tuple[FileChange, ...]:
        """Per file: status and line counts, against the head (or the running pool)."""
        def old(path: str) -> bytes | None:
            if path.startswith(common.POOL_DIRECTORY + "/"):
                return self._pool_old(path)
            return self.snapshot.contents.get(path) if path in existed else None
        out: list[FileChange] = []
        for path in sorted(changes.writes):
            before = old(path)
            added, removed = line_counts(before, changes.writes[path])
            out.append(FileChange(path, "A" if before is None else "M", added, removed))
        for path in sorted(changes.deletes):
            added, removed = line_counts(old(path), b"")
            out.append(FileChange(path, "D", added, removed))
        return tuple(out)

    def _add(self, keys: tuple[ObjectKey, ...], action: str, reason: Reason, *, subject: str,
             message_for: Callable[[list[str]], str], changes: plan.ChangeSet,
             existed: Mapping[str, str], confined: tuple[str, ...]) -> list[Outcome]:
        """Append a planned commit and return its outcomes (COMMITTED, no commit id yet);
        an unsafe path refuses it instead (UnsafePath)."""
        try:
            changes.confined_to(confined)
        except names.UnsafePathError as exc:
            return [Outcome(keys[0], Result.REFUSED, Reason.UNSAFE_PATH, f"{keys[0]}: {exc}")]
        files = self._file_changes(changes, existed)
        lines = [f"{f.status} {f.path}" for f in files]
        message = message_for(lines)
        subject = subject or message.split("\n", 1)[0]
        self.commits.append(PlannedCommit(
            keys, action, reason, subject, message, changes, files,
            tuple((g, "pass") for g in GUARDS), confined))
        if action == "import":
            return [Outcome(k, Result.COMMITTED, reason, f"{k}: imported") for k in keys]
        return [Outcome(k, Result.COMMITTED, reason, subject) for k in keys]

    def settled(self, obj: Resource, directory: DirectoryState, input_hash: str) -> bool:
        """Whether ``obj`` is up to date whatever else this pass commits (its record, no
        human change, its pool line as the head lists it: no other object's commit
        changes those); it then counts as written, like ``commit_object`` counts it."""
        record = directory.record if directory.recorded else None
        if directory.human is not None or record is None or record.input_hash != input_hash:
            return False
        if obj.kind == "Customer" and self.entries.get(obj.metadata.name) != \
                _pool_entry(obj, self.settings):
            return False
        self.written[obj.key] = obj
        return True

    def commit_object(self, obj: Resource, directory: DirectoryState,
                      input_hash: str) -> list[Outcome]:
        """Plan ``obj``'s commit (with its pool change), or say it is up to date."""
        key, record = obj.key, (directory.record if directory.recorded else None)
        entry = _pool_entry(obj, self.settings)
        pool_changes = self.pool_change(key.name, entry) if obj.kind == "Customer" \
            else plan.ChangeSet()
        human = directory.human
        adopting = bool(directory.files) and not directory.owned
        if human is None and record is not None and record.input_hash == input_hash \
                and pool_changes.empty:
            self.written[key] = obj
            return [_up_to_date(key)]
        if adopting:
            action = "adopt"
        elif record is None:
            action = "create" if not directory.files else "update"
        elif record.spec != spec_data(obj):
            action = "update"
        else:
            action = "restore" if human is not None else "rerender"
        generation = _generation(obj, record, directory.own_record, action)
        obj = _with_generation(obj, generation)
        rendered = render_object(obj, self.settings)
        changes = plan.plan_directory(rendered, directory.files).merged(pool_changes)
        if changes.empty or (action == "rerender" and _records_only(changes)):
            # a rendering input changed nothing deployed: no commit of a record file alone
            self.written[key] = obj
            return [_up_to_date(key)]
        confined = layout.OWNED_PREFIXES[key.kind]
        if action == "create" and not self.settings_recorded():
            changes = changes.merged(self.settings_record_change())
            confined = (*confined, rerender.RECORD_DIRECTORY)
        refusal = guards.refuse_rendered(obj, rendered, self.settings)
        if refusal is not None:
            self.untouched.add(key)
            return [Outcome(key, Result.REFUSED, refusal.reason, refusal.message)]
        self.written[key] = obj
        change = messages.ObjectChange(
            key, action, record.spec if record else None,
            spec_data(obj), generation, obj.metadata.uid, common.spec_hash(obj),
            human.commit.id if human is not None else None)
        subject = (f"{key}: adopted {key.directory}/ (made outside the reconciler)"
                   if adopting else messages.subject_for(change))
        reason = {"create": Reason.CREATED, "update": Reason.UPDATED,
                  "adopt": Reason.ADOPTED}.get(action, Reason.RERENDERED)
        existed = {f"{key.directory}/{n}": b for n, b in directory.files.items()}
        extra = _pool_lines(changes)
        if adopting:
            extra = [f"- adopted: {key.directory}/ had no source record of {key}; its files "
                     "are replaced by the rendering", *extra]

        def message_for(lines: list[str]) -> str:
            text = messages.object_message(change, lines, extra, self.request.version)
            return subject + "\n" + text.split("\n", 1)[1]
        outcomes = self._add((key,), action, reason, subject=subject, message_for=message_for,
                             changes=changes, existed=existed, confined=confined)
        if outcomes[0].result != Result.COMMITTED:
            self.written.pop(key, None)
            return outcomes
        if rerender.SETTINGS_RECORD in changes.writes:
            self._settings_recorded = True
        if obj.kind == "Customer" and self.entries.get(key.name) != entry:
            self.apply_pool({**{n: e for n, e in self.entries.items() if n != key.name},
                             **({entry.name: entry} if entry else {})})
        return outcomes

    def commit_import(self, objects: Sequence[Resource]) -> list[Outcome]:
        """Plan one commit adding many new objects (the first import of a fleet). With
        ``stream_import`` nothing is rendered here: the commit renders each directory as
        it writes it, so the plan's size does not grow with the fleet's files."""
        if self.request.stream_import:
            return self._streamed_import(objects)
        writes: dict[str, bytes] = {}  # accumulated in place: linear in the fleet
        entries = dict(self.entries)
        refused: list[Outcome] = []
        kept: list[Resource] = []
        for original in objects:
            obj = _with_generation(original, _generation(original, None, None, "create"))
            rendered = render_object(obj, self.settings)
            refusal = guards.refuse_rendered(obj, rendered, self.settings)
            if refusal is not None:
                refused.append(Outcome(obj.key, Result.REFUSED, refusal.reason, refusal.message))
                self.untouched.add(obj.key)
                continue
            kept.append(original)
            writes.update(plan.plan_directory(rendered, {}).writes)
            entry = _pool_entry(obj, self.settings)
            if entry is not None:
                entries[entry.name] = entry
            self.written[obj.key] = obj
        return refused + self._import_commit(kept, entries, plan.ChangeSet(writes))

    def _streamed_import(self, objects: Sequence[Resource]) -> list[Outcome]:
        entries = dict(self.entries)
        for obj in objects:
            entry = _pool_entry(obj, self.settings)
            if entry is not None:
                entries[entry.name] = entry
            self.written[obj.key] = obj  # the pool needs no generation
        settings, kept = self.settings, tuple(objects)

        def produce() -> Iterator[tuple[str, Mapping[str, bytes]]]:
            for original in kept:
                obj = _with_generation(original, _generation(original, None, None, "create"))
                rendered = render_object(obj, settings)
                refusal = guards.refuse_rendered(obj, rendered, settings)
                if refusal is not None:
                    raise plan.StreamRefusedError(refusal.message)
                yield rendered.directory, rendered.files
        streamed = plan.Streamed(tuple(o.key.directory for o in kept), produce)
        return self._import_commit(kept, entries, plan.ChangeSet(streamed=streamed))

    def _import_commit(self, objects: Sequence[Resource], entries: Mapping[str, pool.PoolEntry],
                       rendered: plan.ChangeSet) -> list[Outcome]:
        """The import commit of ``objects`` (``rendered``: their directories), with the
        pool of ``entries`` and the settings record."""
        if not objects:
            return []
        pool_changes, _ = self._pool_render(entries)
        extra = {**pool_changes.writes, **self.settings_record_change().writes}
        changes = plan.ChangeSet({**rendered.writes, **extra}, pool_changes.deletes,
                                 rendered.streamed)
        message = messages.import_message([o.key for o in objects], _pool_lines(changes),
                                          self.request.version)
        outcomes = self._add(tuple(o.key for o in objects), "import", Reason.IMPORTED,
                             subject="", message_for=lambda _lines: message, changes=changes,
                             existed={}, confined=layout.OWNED_TOPS)
        if outcomes[0].result == Result.COMMITTED:
            self.apply_pool(entries)
            self._settings_recorded = True
        return outcomes

    def commit_rerender(self, drafts: Sequence[tuple[Resource, DirectoryState, str]]
                        ) -> list[Outcome]:
        """Plan the re-rendering of many unchanged specs after a settings or version change:
        one commit per ``rerender_batch`` objects, the pool and the settings record with the
        first; a batch that would change only record files is not committed."""
        changed = rerender.setting_changes(
            rerender.parse_settings_record(self.snapshot.contents.get(rerender.SETTINGS_RECORD)),
            self.settings.render_settings(), self.request.version)
        size = self.settings.rerender_batch
        batches = [drafts[i:i + size] for i in range(0, len(drafts), size)]
        verdicts: list[Outcome] = []
        planned: list[tuple[int, Callable[..., str]]] = []  # commit index, its message
        for number, batch in enumerate(batches, start=1):
            entries = dict(self.entries)
            keys, writes, deletes, existed = self._render_batch(batch, entries, verdicts)
            pool_changes, rendered_pool = self._pool_render(entries)
            writes.update(pool_changes.writes)
            deletes.update(pool_changes.deletes)
            if not keys or _records_only(plan.ChangeSet(writes, frozenset(deletes))):
                verdicts += [_up_to_date(k) for k in keys]  # nothing deployed would change
                continue
            writes.update(self.settings_record_change().writes)
            if self.settings_recorded():
                existed[rerender.SETTINGS_RECORD] = ""
            changes = plan.ChangeSet(writes, frozenset(deletes))
            message_for = functools.partial(
                _rerender_message, keys=tuple(keys), changed=changed,
                extra=_pool_lines(changes), version=self.request.version,
                batch=(number, len(batches)))
            outcomes = self._add(
                tuple(keys), "rerender", Reason.RERENDERED, subject="",
                message_for=message_for, changes=changes, existed=existed,
                confined=layout.OWNED_TOPS)
            if outcomes[0].result != Result.COMMITTED:  # an unsafe path: the batch is refused
                outcomes = [replace(outcomes[0], key=k) for k in keys]
            verdicts += outcomes
            if outcomes[0].result == Result.COMMITTED:
                planned.append((len(self.commits) - 1, message_for))
                self._settings_recorded = True
                self.entries = entries
                self.pool_files = {n: plan.git_blob_id(d) for n, d in rendered_pool.files.items()}
                self.pool_bytes = dict(rendered_pool.files)
            else:
                for key in keys:
                    self.written.pop(key, None)
                    self.untouched.add(key)
        if len(planned) != len(batches):
            verdicts = self._renumber(planned, verdicts)
        return verdicts

    def _renumber(self, planned: Sequence[tuple[int, Callable[..., str]]],
                  verdicts: list[Outcome]) -> list[Outcome]:
        """Batches that changed only records were left out: number the commits made."""
        subjects: dict[str, str] = {}
        for number, (index, message_for) in enumerate(planned, start=1):
            commit = self.commits[index]
            message = message_for([f"{f.status} {f.path}" for f in commit.files],
                                  batch=(number, len(planned)))
            subject = message.split("\n", 1)[0]
            subjects[commit.subject] = subject
            self.commits[index] = replace(commit, subject=subject, message=message)
        return [replace(v, message=subjects.get(v.message, v.message)) for v in verdicts]

    def _render_batch(self, batch: Sequence[tuple[Resource, DirectoryState, str]],
                      entries: dict[str, pool.PoolEntry], verdicts: list[Outcome]
                      ) -> tuple[list[ObjectKey], dict[str, bytes], set[str], dict[str, str]]:
        """Render one batch: the keys whose files change, their writes, deletes and the
        files that existed; ``entries`` and ``verdicts`` are updated in place."""
        keys: list[ObjectKey] = []
        writes: dict[str, bytes] = {}
        deletes: set[str] = set()
        existed: dict[str, str] = {}
        for original, directory, _ in batch:
            key = original.key
            obj = _with_generation(original, _generation(original, directory.record,
                                                         directory.own_record, "rerender"))
            rendered = render_object(obj, self.settings)
            own = plan.plan_directory(rendered, directory.files)
            refusal = guards.refuse_rendered(obj, rendered, self.settings)
            if refusal is not None and not own.empty:
                self.untouched.add(key)
                verdicts.append(Outcome(key, Result.REFUSED, refusal.reason, refusal.message))
                continue
            self.written[key] = obj
            entry = _pool_entry(obj, self.settings)
            if entry is not None:
                entries[entry.name] = entry
            if own.empty:
                verdicts.append(_up_to_date(key))
                continue
            keys.append(key)
            writes.update(own.writes)
            deletes.update(own.deletes)
            existed.update({f"{rendered.directory}/{n}": b for n, b in directory.files.items()})
        return keys, writes, deletes, existed

    def commit_removal(self, key: ObjectKey, directory: DirectoryState,
                       note: str | None) -> list[Outcome]:
        """Plan the removal of ``key``'s directory (and its pool entry)."""
        if not directory.files:
            return []
        record = directory.record
        if record is None or not directory.recorded:
            self.untouched.add(key)
            return [Outcome(key, Result.SKIPPED, Reason.NOT_OWNED,
                            f"{key.directory}/ has no source record of {key}; left alone")]
        human = directory.human
        if human is not None and self.settings.human_change_policy == "report" \
                and directory.own_record is None:
            self.untouched.add(key)
            return [Outcome(key, Result.HELD, human.reason,
                            f"{key}: {human.describe()}; the directory was brought back by "
                            "hand, so it is not removed again", human.commit.id)]
        changes = plan.plan_removal(key.directory, directory.files)
        if key.kind == "Customer":
            changes = changes.merged(self.pool_change(key.name, None))
        change = messages.ObjectChange(key, "delete", record.spec, None, record.generation,
                                       record.uid, note=note)
        existed = {f"{key.directory}/{n}": b for n, b in directory.files.items()}
        reason = Reason.EXPIRED if note and note.startswith("expired") else Reason.REMOVED
        outcomes = self._add((key,), "delete", reason, subject=messages.subject_for(change),
                             message_for=lambda lines: messages.object_message(
                                 change, lines, _pool_lines(changes), self.request.version),
                             changes=changes, existed=existed,
                             confined=layout.OWNED_PREFIXES[key.kind])
        if outcomes[0].result != Result.COMMITTED:
            return outcomes
        self.commits[-1] = replace(self.commits[-1], note=note)
        self.gone.add(key)
        if key.kind == "Customer" and key.name in self.entries:
            self.apply_pool({n: e for n, e in self.entries.items() if n != key.name})
        return outcomes


def _rerender_message(lines: list[str], *, keys: tuple[ObjectKey, ...],
                      changed: list[tuple[str, str]], extra: list[str], version: str,
                      batch: tuple[int, int]) -> str:
    return rerender.rerender_message(keys, changed, lines, extra, version, batch=batch)


class _PoolEntries(Mapping[str, pool.PoolEntry]):
    """The pool's entries at the head, each made when looked up (a pure function of the
    name: keeping 33,000 of them cost 6 MB at 100,000 tenants)."""

    def __init__(self, names: frozenset[str], settings: Settings) -> None:
        self._names, self._settings = names, settings

    def __getitem__(self, name: str) -> pool.PoolEntry:
        if name not in self._names:
            raise KeyError(name)
        return pool.entry_for(name, self._settings)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _records_only(changes: plan.ChangeSet) -> bool:
    """Whether ``changes`` touch nothing but source records (nothing deployed changes)."""
    return all(p.rsplit("/", 1)[-1] == common.SOURCE_FILE for p in changes.paths)


def _up_to_date(key: ObjectKey) -> Outcome:
    return Outcome(key, Result.UNCHANGED, Reason.UP_TO_DATE, "config repo up to date")


def _policy(obj: Resource, settings: Settings) -> str:
    value = obj.metadata.annotations.get(POLICY_ANNOTATION)
    return value if value in ("report", "overwrite") else settings.human_change_policy


def _pool_lines(changes: plan.ChangeSet) -> list[str]:
    if any(p.startswith(common.POOL_DIRECTORY + "/") for p in changes.paths):
        return ["- connection pool updated (platform/pgbouncer)"]
    return []


def _has_database(directory: DirectoryState) -> bool:
    record = directory.record
    if record is None or not record.spec:
        return False
    features = record.spec.get("features") or {}
    return bool((features.get("database") or {}).get("enabled"))


def _pool_entry(obj: Resource, settings: Settings) -> pool.PoolEntry | None:
    return pool.pool_entry(obj, settings) if isinstance(obj, Customer) else None


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
    if action not in ("create", "update", "adopt"):
        return current or None
    if own is not None and own.spec == spec_data(obj) and own.generation:
        return own.generation  # the spec the reconciler last rendered: same generation
    latest = max(current, own.generation if own and own.generation else 0)
    return latest + 1


