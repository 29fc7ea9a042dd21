"""``reconciler migrate-layout``: move every tenant directory to the other layout in one
commit (flat ``tenants/<name>/`` <-> sharded ``tenants/_<shard>/<name>/``).

Wiring only: which directories move is decided in ``core.layout``; the move itself is the
Git adapter's ``commit_moves`` (trees re-hung, no file re-read or re-written); a remote is
pushed by Delivery like any commit, and a remote that moved meanwhile gets the migration
planned again on its new head. With ``--mode pr`` the commit is proposed instead: one pull
request from ``reconciler/migrate-layout/<to>`` (the same commit, made on the target head,
pushed as a compare-and-swap); the target branch is not touched, and reconcilers whose
setting disagrees with the repository hold until the two agree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.gitremote import MirrorConfigRepo, is_url
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.app.local import REPASSES
from reconciler.app.wiring import VERSION, Target, forge_from, wire
from reconciler.core import errors, layout
from reconciler.core.plan import ChangeSet
from reconciler.core.settings import Settings
from reconciler.ports.forge import Forge, PullRequestSpec
from reconciler.reconcile.delivery import DeliveryReport
from reconciler.reconcile.rerenders import PUSH_ATTEMPTS

TOP = layout.SHARDED_TOP


@dataclass(frozen=True)
class Migration:
    """What ``migrate-layout`` did: the commit (None: already laid out so) and how many
    tenant directories it moved."""

    layout: str
    commit: str | None
    moved: int
    delivered: DeliveryReport | None = None
    #: ``--mode pr``: the pull request proposing the commit
    pull_request: str | None = None


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
    if target.mode == "pr":
        return _propose(target, settings, wanted)
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


def _propose(target: Target, settings: Settings, wanted: layout.Layout) -> Migration:
    """``--mode pr``: the migration commit on the target head, proposed as one PR."""
    if not is_url(target.repo):
        raise errors.UserInputError(
            f"--mode pr needs the config repo's URL, not the path {target.repo}: pull "
            "requests are opened on the forge's copy")
    forge = forge_from(target)
    wiring = wire(target, settings)
    try:
        mirror = wiring.repo
        assert isinstance(mirror, MirrorConfigRepo)  # a URL is always mirrored
        return _propose_on(mirror, forge, settings.branch, wanted)
    finally:
        wiring.close()


def _propose_on(mirror: MirrorConfigRepo, forge: Forge, base_branch: str,
                wanted: layout.Layout) -> Migration:
    """Make the migration on ``reconciler/migrate-layout/<to>`` (reset to the target head)
    and open or update its PR; a branch a person committed on is left as it is."""
    branch = layout.migration_branch(wanted)
    for _ in range(PUSH_ATTEMPTS):
        base = mirror.fetch()
        view = mirror.branch_view(branch, base)
        commit, moved = _migrate(view, wanted)
        published = mirror.remote_branch_commit(branch)
        if commit is None:  # nothing to move on the target: merged, or never needed
            existing = forge.find_open_pull_request(branch, base_branch)
            if existing is not None:
                forge.close_pull_request(existing.number)
            if published is not None and not mirror.foreign_changes(base, published):
                mirror.push_branch(branch, None, expect=published)
            return Migration(wanted, None, 0)
        if published is not None and mirror.foreign_changes(base, published):
            commit = published  # a person committed on it: theirs stands, not re-made
        elif published is None or not mirror.same_change(published, commit):
            result = mirror.push_branch(branch, commit, expect=published)
            if result.moved:
                continue  # someone pushed there since we read it: read it again
            if not result.ok:
                raise errors.RepoError(f"push of {branch} refused: {result.rejected}")
        info = next(iter(view.log(limit=1)))
        pull = forge.open_pull_request(PullRequestSpec(
            head_branch=branch, base_branch=base_branch, title=info.subject,
            body=layout.migration_pull_request_body(info.message),
            labels=("gitops-reconciler", "layout")))
        return Migration(wanted, commit, moved, pull_request=pull.url)
    raise errors.RepoError(f"{branch} kept moving while we pushed ({PUSH_ATTEMPTS} tries); "
                           "run the command again")
