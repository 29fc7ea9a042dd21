"""Read-only commands over the config repo: ``status``, ``history`` and ``diff``.

An object nobody ever rendered is an error here, not an empty answer.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.app.wiring import Target, tree_cache, wire
from reconciler.core import errors, messages
from reconciler.core.models import ObjectKey
from reconciler.core.render import pool
from reconciler.core.settings import Settings
from reconciler.ports.configrepo import ConfigRepo
from reconciler.reconcile import queries
from reconciler.reconcile import rollback as rollback_logic
from reconciler.reconcile.ownership import Ownership
from reconciler.reconcile.queries import StatusRow


def parse_key(text: str, *, shared: bool = False) -> ObjectKey:
    """``customer/NAME`` or ``preview/NAME``; with ``shared`` also ``pool/pgbouncer``, the other
    name commit trailers use."""
    if shared and text.lower() == str(pool.POOL_KEY):
        return pool.POOL_KEY
    try:
        return ObjectKey.parse(text)
    except ValueError as exc:
        hint = ", or pool/pgbouncer" if shared else ""
        raise errors.UserInputError(f"{exc}{hint}") from exc


def status(target: Target, settings: Settings, sources: Sequence[Path],
           applied_from: Sequence[Path] | None) -> list[StatusRow]:
    """``reconciler status``: every object of the sources, and orphaned directories."""
    # imported here: ``history`` and ``diff`` start faster without the source readers
    from reconciler.app.local import read_deployers
    from reconciler.app.offline import check_sources, read_sources
    check_sources(sources)
    wiring = wire(target, settings, create=False)
    repo = wiring.logical
    deployed = read_deployers(applied_from) if applied_from else None
    parsed = read_sources(sources, settings, git_dir=wiring.repo.path)
    return queries.object_status(repo, settings, parsed, time.time(), deployed,
                                 trees=tree_cache(wiring.repo))


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an object's story, ready to print."""

    time: int
    offset_minutes: int
    commit: str
    who: str
    kind: str
    generation: int | None
    detail: str
    subject: str


def history(target: Target, settings: Settings, key: ObjectKey) -> list[HistoryEntry]:
    """``reconciler history``: commits that changed or named ``key``, newest first."""
    repo = wire(target, settings, create=False).logical
    ownership = Ownership(repo=repo, author_email=settings.author_email)
    entries = rollback_logic.audit(repo, key, ownership)
    if not entries:
        _require_known(repo, key)
    return [HistoryEntry(e.commit.time, e.commit.offset_minutes, e.commit.id,
                         f"{e.commit.author_name} <{e.commit.author_email}>", e.kind,
                         e.generation, e.detail, e.commit.subject) for e in entries]


def diff(target: Target, settings: Settings, key: ObjectKey, a: str, b: str) -> str:
    """``reconciler diff``: the rendered difference of ``key`` between two points."""
    repo = wire(target, settings, create=False).logical
    _require_known(repo, key)
    return rollback_logic.diff(repo, key, a, b)


def _require_known(repo: ConfigRepo, key: ObjectKey) -> None:
    """NotFoundError unless ``key`` has a directory or a commit names it."""
    if repo.tree_id(key.directory) is not None:
        return
    name = str(key)
    for commit in repo.log():
        if any(k == messages.TRAILER_OBJECT and v == name
               for k, v in messages.parse_trailers(commit.message)):
            return
    raise errors.NotFoundError(f"{key}: unknown in this config repo (no {key.directory}/ and "
                               "no commit names it)")
