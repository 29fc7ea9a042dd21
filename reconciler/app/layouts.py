"""``reconciler migrate-layout``: move every tenant directory to the other layout in one
commit (flat ``tenants/<name>/`` <-> sharded ``tenants/_<shard>/<name>/``).

Wiring only: which directories move is decided in ``core.layout``; the move itself is the
Git adapter's ``commit_moves`` (trees re-hung, no file re-read or re-written); a remote is
pushed by Delivery like any commit, and a remote that moved meanwhile gets the migration
planned again on its new head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.gitremote import MirrorConfigRepo
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.app.local import REPASSES
from reconciler.app.wiring import VERSION, Target, wire
from reconciler.core import errors, layout
from reconciler.core.plan import ChangeSet
from reconciler.core.settings import Settings
from reconciler.reconcile.delivery import DeliveryReport

TOP = layout.SHARDED_TOP


@dataclass(frozen=True)
class Migration:
    """What ``migrate-layout`` did: the commit (None: already laid out so) and how many
    tenant directories it moved."""

    layout: str
    commit: str | None
    moved: int
    delivered: DeliveryReport | None = None


def migrate_layout(target: Target | Path, settings: Settings, to: str | None) -> Migration:
    """Lay the repo's tenants out as ``to`` (default: the ``layout`` setting)."""
    wanted: layout.Layout = layout.SHARDED if (to or settings.layout) == "sharded" \
        else layout.FLAT
    if to is not None and to != settings.layout:
        # the reconcilers writing this repo read the same setting: migrating against it
        # would make every one of them hold at once
        raise errors.UserInputError(
            f"--to {to} but the setting layout is {settings.layout}: set layout: {to} "
            f"(RECONCILER_LAYOUT={to}) for this command and every reconciler writing the repo")
    if isinstance(target, Path):
        target = Target(str(target))
    wiring = wire(dataclasses.replace(target, mode="direct"), settings)
    try:
        repo = wiring.repo
        dirty = [p for p in repo.uncommitted()
                 if p.startswith((f"{TOP}/", layout.LAYOUT_RECORD))]
        if dirty:
            more = f" (and {len(dirty) - 1} more)" if len(dirty) > 1 else ""
            raise errors.UserInputError(
                f"{dirty[0]}{more}: uncommitted change in the work tree; commit or discard "
                "it first, the migration moves every tenant directory")
        commit, moved = _migrate(repo, wanted)
        delivered = None
        if wiring.delivery is not None and commit is not None:
            delivered = wiring.delivery.deliver()
            for _ in range(REPASSES):
                if not delivered.remote_moved:
                    break
                wiring.after_reset()  # our commit was dropped: plan it on the new head
                commit, moved = _migrate(repo, wanted)
                if commit is None:
                    break
                delivered = wiring.delivery.deliver()
        return Migration(wanted, commit, moved, delivered)
    finally:
        wiring.close()


def _migrate(repo: GitConfigRepo | MirrorConfigRepo,
             wanted: layout.Layout) -> tuple[str | None, int]:
    """One migration commit on the current head; (None, 0) when nothing is to move."""
    top = repo.list_directories(TOP)
    shards = {s: repo.list_directories(f"{TOP}/{s}") for s in top if layout.is_shard(s)}
    moves = layout.plan_migration(top, shards, wanted)
    record = repo.read_file(layout.LAYOUT_RECORD)
    layout.parse_layout_record(record)  # a hand-edited record: one line, nothing moved
    writes: dict[str, bytes] = {}
    deletes: frozenset[str] = frozenset()
    if wanted == layout.SHARDED and record != layout.layout_record(wanted):
        writes[layout.LAYOUT_RECORD] = layout.layout_record(wanted)
    elif wanted == layout.FLAT and record is not None:
        deletes = frozenset({layout.LAYOUT_RECORD})
    changes = ChangeSet(writes, deletes)
    if not moves and changes.empty:
        return None, 0
    commit = repo.commit_moves(moves, changes, layout.migration_message(moves, wanted, VERSION))
    repo.flush()
    return commit, len(moves)
