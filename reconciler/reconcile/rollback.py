"""Rollback, diff and the full audit trail of one object.

``rollback`` restores an object's rendered files to a past generation or commit as one
new commit touching only its directory (git revert semantics, with trailers saying what
was rolled back). Like a human's revert, a rollback stands until the spec changes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pydantic import ValidationError

from reconciler.core import errors, guards, layout, messages, plan
from reconciler.core.history import CommitInfo
from reconciler.core.models import API_VERSION, DIRECTORIES, KINDS, ObjectKey
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render import common
from reconciler.core.settings import Settings
from reconciler.ports.configrepo import ConfigRepo
from reconciler.reconcile.ownership import Ownership, classify


def resolve_point(repo: ConfigRepo, key: ObjectKey, point: str) -> str:
    """A generation number (the reconciler's commit that rendered it) or a commit."""
    if messages.parse_generation(point) is not None and len(point) < 7:
        for commit in repo.log():
            values = dict(messages.parse_trailers(commit.message))
            if values.get(messages.TRAILER_OBJECT) == str(key) and \
                    values.get(messages.TRAILER_GENERATION) == point and \
                    values.get(messages.TRAILER_ACTION) in messages.OWN_ACTIONS:
                return commit.id
        raise errors.UserInputError(f"{key}: no commit rendered generation {point}")
    resolved = repo.resolve(point)
    if resolved is None:
        raise errors.UserInputError(f"{point!r} is neither a generation nor a commit")
    return resolved


def rollback(repo: ConfigRepo, key: ObjectKey, point: str, *, version: str,
             settings: Settings | None = None) -> Outcome:
    """Commit ``key``'s directory as it was at ``point``, unless a guard refuses going back
    (e.g. shrinking storage): rollback is a transition like any other."""
    target = resolve_point(repo, key, point)
    wanted = repo.files_at(target, key.directory)
    refusal = _refused_transition(repo, key, wanted, settings or Settings())
    if refusal is not None:
        return refusal
    current = repo.list_files(key.directory)
    writes = {f"{key.directory}/{name}": data for name, data in wanted.items()
              if current.get(name) != plan.git_blob_id(data)}
    deletes = frozenset(f"{key.directory}/{name}" for name in current if name not in wanted)
    changes = plan.ChangeSet(writes, deletes).confined_to((key.directory,))
    if changes.empty:
        return Outcome(key, Result.UNCHANGED, Reason.UP_TO_DATE,
                       f"{key}: already as at {target[:12]}")
    raw = wanted.get(common.SOURCE_FILE)
    record = common.parse_source_record(raw) if raw is not None else None
    generation = record.generation if record else None
    label = f"generation {generation}" if generation is not None else "no directory"
    subject = f"{key}: roll back to {label} ({target[:12]})"
    body = [f"- restores {key.directory}/ as it was in {target[:12]}",
            "- stands until the resource's spec changes (or `reconciler resync`)", "",
            "Files:", *messages.file_lines(list(writes), sorted(deletes),
                                           {p: True for p in writes if p.rsplit('/', 1)[1]
                                            in current})]
    trailers = [(messages.TRAILER_OBJECT, str(key)), (messages.TRAILER_ACTION, "rollback")]
    if generation is not None:
        trailers.append((messages.TRAILER_GENERATION, str(generation)))
    trailers += [(messages.TRAILER_ROLLBACK_TO, target), (messages.TRAILER_VERSION, version)]
    commit = repo.commit(changes, messages.build_message(subject, body, trailers))
    return Outcome(key, Result.COMMITTED, Reason.ROLLED_BACK, subject, commit)


def _refused_transition(repo: ConfigRepo, key: ObjectKey, wanted: dict[str, bytes],
                        settings: Settings) -> Outcome | None:
    """The guards' verdict on going from the head's spec back to the one at the point."""
    raw_then, raw_now = wanted.get(common.SOURCE_FILE), repo.read_file(
        f"{key.directory}/{common.SOURCE_FILE}")
    then = common.parse_source_record(raw_then) if raw_then is not None else None
    now = common.parse_source_record(raw_now) if raw_now is not None else None
    if then is None or then.spec is None:
        return None
    try:
        obj = KINDS[key.kind].model_validate({
            "apiVersion": API_VERSION, "kind": key.kind,
            "metadata": {"name": key.name}, "spec": dict(then.spec)})
    except ValidationError:
        return None  # an older schema: the files are restored as they were
    refusal = guards.refuse_transition(obj, now.spec if now else None, settings)
    if refusal is None:
        return None
    return Outcome(key, Result.REFUSED, refusal.reason, f"rollback refused: {refusal.message}")


def spec_at(repo: ConfigRepo, key: ObjectKey, commit: str) -> dict[str, object] | None:
    """The spec recorded in ``key``'s source record at ``commit``."""
    raw = repo.files_at(commit, key.directory).get(common.SOURCE_FILE)
    record = common.parse_source_record(raw) if raw is not None else None
    return dict(record.spec) if record and record.spec is not None else None


def diff(repo: ConfigRepo, key: ObjectKey, a: str, b: str) -> str:
    """Unified diff of ``key``'s rendered files between two generations or commits."""
    left, right = resolve_point(repo, key, a), resolve_point(repo, key, b)
    before, after = repo.files_at(left, key.directory), repo.files_at(right, key.directory)
    out: list[str] = []
    for name in sorted(set(before) | set(after)):
        old = before.get(name, b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = after.get(name, b"").decode("utf-8", "replace").splitlines(keepends=True)
        out += difflib.unified_diff(old, new, f"a/{key.directory}/{name}",
                                    f"b/{key.directory}/{name}")
    return "".join(out)


@dataclass(frozen=True)
class AuditEntry:
    """One step of an object's story."""

    commit: CommitInfo
    kind: str  # reconciler, revert, edit, rollback, import, pull-request merge
    generation: int | None
    detail: str


def audit(repo: ConfigRepo, key: ObjectKey, ownership: Ownership) -> list[AuditEntry]:
    """Every commit that changed ``key``'s directory or names it, newest first, with who/why."""
    entries: list[AuditEntry] = []
    wanted = str(key)
    for commit in repo.log():  # one walk; which commit touched what comes from the index
        touching = repo.touches(commit.id, key.directory)
        if not touching and wanted not in commit.message:
            continue  # cheap tests first: most commits neither touch nor name it
        values = messages.parse_trailers(commit.message)
        named = any(k == messages.TRAILER_OBJECT and v == str(key) for k, v in values)
        if not touching and not named:
            continue
        trailers = dict(values)
        action = trailers.get(messages.TRAILER_ACTION)
        gen = trailers.get(messages.TRAILER_GENERATION)
        # the pool is re-rendered inside Customer commits, which name only the Customer
        if ownership.is_own(commit) and (named or key.kind not in DIRECTORIES):
            kind = "import" if action == "import" else "reconciler"
            detail = action or "update"
            if not named:
                detail = f"with {trailers.get(messages.TRAILER_OBJECT, '?')}"
                gen = None
            if trailers.get(messages.TRAILER_SUPERSEDES):
                detail += f", supersedes {trailers[messages.TRAILER_SUPERSEDES][:12]}"
        elif action == layout.LAYOUT_ACTION:  # migrate-layout moved the directory whole
            kind, detail = "layout", f"moved ({trailers.get(layout.TRAILER_LAYOUT, '?')} layout)"
        elif action == "rollback" and named:
            kind, detail = "rollback", f"to {trailers.get(messages.TRAILER_ROLLBACK_TO, '?')[:12]}"
        elif len(commit.parents) > 1:
            kind, detail = "merge", "merged (pull request or branch)"
        else:
            reason = classify(commit)
            kind = {Reason.REVERTED_IN_GIT: "revert"}.get(reason, "edit")
            detail = "by hand"
        entries.append(AuditEntry(commit, kind, messages.parse_generation(gen),
                                  detail))
    return entries
