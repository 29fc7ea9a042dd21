"""Read-only questions about the config repo: per-object status and audit history.

Everything is derived from the resources and the repository itself, never hidden state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from reconciler.core import applied, expiry, layout, messages
from reconciler.core.history import HistoryEntry, object_history
from reconciler.core.models import DIRECTORIES, ObjectKey, Preview, Resource, spec_data
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render import common
from reconciler.core.settings import Settings
from reconciler.core.snapshot import DirectoryState
from reconciler.core.sources import Parsed
from reconciler.ports.cluster import RawObject
from reconciler.ports.configrepo import ConfigRepo
from reconciler.ports.treecache import TreeCache
from reconciler.reconcile.engine import Reconciler
from reconciler.reconcile.ownership import Ownership


@dataclass(frozen=True)
class StatusRow:
    """One object's status line."""

    kind: str
    name: str
    valid: bool
    state: str  # InSync, OutOfSync, NotRendered, Invalid, Refused (a guard, NotOwned: the
    # message starts with the reason), Suspended, Orphaned, NotOwned (a directory without
    # resource), RevertedInGit, ModifiedInGit, RolledBack, Expired, RemovalHeld, SourceEmpty
    message: str
    last_commit: str | None
    path: str | None
    applied: str | None = None  # True/False/Unknown and why, when deployers were given


def object_status(repo: ConfigRepo, settings: Settings, parsed: Parsed,
                  now: float | None = None,
                  deployed: tuple[list[RawObject], list[RawObject]] | None = None, *,
                  trees: TreeCache | None = None) -> list[StatusRow]:
    """Status of every object in ``parsed`` plus directories with no resource (orphans);
    with ``now``, Previews with a ttl also tell the time left (``trees``: the tree cache
    kept beside the repo)."""
    engine = Reconciler(repo=repo, settings=settings, version="status", trees=trees)
    ownership = engine.ownership  # one walk of the history for the plan and the rows
    last = ownership.last_named()
    deadlines = preview_deadlines(repo, settings, parsed, ownership) if now is not None else {}
    # the rows read the plan's own snapshot: each directory is read once, at one head
    snapshot = engine.snapshot(parsed)
    # hashed once, for the plan and the rows (each hash dumps the whole spec)
    hashes = {o.key: common.object_input_hash(o, settings) for o in parsed.objects
              if not o.spec.suspend}
    verdicts = {v.key: v for v in engine.plan(parsed, now=now, snapshot=snapshot,
                                              input_hashes=hashes).verdicts
                if v.key is not None}
    rows: list[StatusRow] = []
    seen: set[ObjectKey] = set()
    for obj in parsed.objects:
        seen.add(obj.key)
        row = _object_row(obj, snapshot.state(obj.key), settings, last=last,
                          deadlines=deadlines, now=now, input_hash=hashes.get(obj.key))
        row = _with_verdict(row, verdicts.get(obj.key))
        if deployed is not None:
            where = layout.directory_of(obj.key, settings.layout)
            found = applied.deployers(where, *deployed)
            status, reason, why = applied.applied_condition(
                where, row.last_commit, found, repo.contains)
            row = dataclasses.replace(row, applied=f"{status} ({reason}: {why})")
        rows.append(row)
    for refusal in parsed.refusals:
        kind, name = (refusal.key.kind, refusal.key.name) if refusal.key else ("?", refusal.origin)
        if refusal.key:
            seen.add(refusal.key)
        rows.append(StatusRow(kind, name, False, "Invalid", str(refusal),
                              last.get(refusal.key) if refusal.key else None, None))
    for kind, top in DIRECTORIES.items():
        for name in repo.list_directories(top):
            key = ObjectKey(kind, name)
            if key not in seen:
                rows.append(_orphan_row(key, verdicts.get(key), last.get(key),
                                        layout.directory_of(key, settings.layout)))
    return sorted(rows, key=lambda r: (r.kind, r.name))


def _orphan_row(key: ObjectKey, verdict: Outcome | None, last: str | None,
                directory: str) -> StatusRow:
    """A directory with no resource: what the next run will really do with it."""
    if verdict is None:
        state, message, valid = "NotOwned", "directory was not made by the reconciler; " \
            "it is left alone", True
    elif verdict.result == Result.COMMITTED:
        state, message, valid = "Orphaned", "directory has no resource; the next run " \
            "removes it", True
    elif verdict.reason == Reason.NOT_OWNED:
        state, message, valid = "NotOwned", "directory was not made by the reconciler; " \
            "it is left alone", True
    else:  # held: budget, empty source, unreadable file, a human brought it back
        state, message, valid = verdict.reason.value, verdict.message, verdict.ok
    return StatusRow(key.kind, key.name, valid, state, message, last, directory)


def _with_verdict(row: StatusRow, verdict: Outcome | None) -> StatusRow:
    """``row`` corrected by the plan: a refusal or a removal says what the run will do."""
    if verdict is None or verdict.ok or (verdict.reason == Reason.INVALID_SPEC
                                         and row.state == "Invalid"):
        if verdict is not None and verdict.result == Result.COMMITTED \
                and verdict.reason in (Reason.EXPIRED, Reason.REMOVED):
            return dataclasses.replace(row, state="Expired",
                                       message=f"{row.message}; the next run removes it")
        return row
    if verdict.reason in (Reason.REMOVAL_HELD, Reason.SOURCE_EMPTY):
        return dataclasses.replace(row, valid=False, state=verdict.reason.value,
                                   message=verdict.message)
    return dataclasses.replace(row, valid=False, state="Refused",
                               message=f"{verdict.reason.value}: {verdict.message}")


def _object_row(obj: Resource, directory: DirectoryState, settings: Settings, *,
                last: Mapping[ObjectKey, str], deadlines: dict[ObjectKey, tuple[float, str]],
                now: float | None, input_hash: str | None = None) -> StatusRow:
    key = obj.key
    record, human, own = directory.record, directory.human, directory.own_record
    # the own record's spec is read from Git on demand: only a human's change needs it
    if human is not None and own is not None and own.spec is not None \
            and dict(own.spec) == spec_data(obj):
        state, message = human.reason.value, human.describe()
    elif obj.spec.suspend:
        state, message = "Suspended", "spec.suspend is true: no changes are written"
    elif record is None:
        state, message = "NotRendered", "not in the config repo yet"
    elif record.input_hash == (input_hash or common.object_input_hash(obj, settings)):
        state, message = "InSync", "config repo matches the resource"
    else:
        state, message = "OutOfSync", "the resource changed since the last commit"
    if now is not None and key in deadlines:
        deadline = deadlines[key][0]
        message += f"; {expiry.describe_left(deadline, now)}"
        if now >= deadline:
            state = "Expired"
    return StatusRow(key.kind, key.name, True, state, message, last.get(key),
                     layout.directory_of(key, settings.layout) if record else None)


def last_commits(repo: ConfigRepo) -> dict[ObjectKey, str]:
    """The newest commit naming each object in its trailers (one walk of the history)."""
    out: dict[ObjectKey, str] = {}
    for commit in repo.log():
        for key in messages.object_keys(commit.message):
            out.setdefault(key, commit.id)
    return out


def history(repo: ConfigRepo, key: ObjectKey) -> Iterator[HistoryEntry]:
    """The audit trail of ``key``, newest first."""
    return object_history(repo.log(), key)


def preview_deadlines(repo: ConfigRepo, settings: Settings, parsed: Parsed,
                      ownership: Ownership | None = None
                      ) -> dict[ObjectKey, tuple[float, str]]:
    """When each Preview with a ttl expires: (deadline, ttl).

    Created at ``metadata.creationTimestamp`` when the manifest has one, else when the
    reconciler first committed it (local files carry no creation time).
    """
    ownership = ownership or Ownership(repo=repo, author_email=settings.author_email)
    out: dict[ObjectKey, tuple[float, str]] = {}
    for obj in parsed.objects:
        if not isinstance(obj, Preview) or not obj.spec.ttl:
            continue
        created = expiry.timestamp_seconds(obj.metadata.creationTimestamp) \
            or ownership.first_own_time(obj.key)
        if created is not None:
            out[obj.key] = (expiry.expires_at(created, obj.spec.ttl), obj.spec.ttl)
    return out


def without_expired(parsed: Parsed, deadlines: dict[ObjectKey, tuple[float, str]],
                    now: float) -> tuple[Parsed, dict[ObjectKey, str]]:
    """``parsed`` minus expired Previews, and the note for each one's removal commit."""
    expired = {key: f"expired (ttl {ttl})" for key, (deadline, ttl) in deadlines.items()
               if now >= deadline}
    kept = [o for o in parsed.objects if o.key not in expired]
    return Parsed(kept, parsed.refusals, parsed.incomplete), expired
