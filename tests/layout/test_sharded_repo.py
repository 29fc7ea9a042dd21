"""The sharded layout end to end on real repositories: writing, refusing a repo laid out
otherwise, migrating in one revertible commit, and history across the migration."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reconciler import app
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.adapters.layoutview import LayoutView
from reconciler.core import errors, layout
from reconciler.core.outcomes import Result
from tests.gitcli import git, human_commit
from tests.layout.support import (
    EXAMPLES,
    FLAT,
    SHARDED,
    TENANTS,
    reconciled,
    tenant_dirs,
    tree_paths,
)


def _bump_workers(source: Path, name: str = "acme", workers: int = 7) -> None:
    """Edit one Customer manifest in ``source`` (a watch event's worth of change)."""
    path = next(p for p in source.rglob("*.yaml") if f"name: {name}" in p.read_text())
    text = path.read_text()
    assert "workers:" in text
    path.write_text(re.sub(r"workers: \d+", f"workers: {workers}", text, count=1))


def test_a_sharded_fleet_is_written_into_its_shards_with_the_layout_record(tmp_path):
    """With layout sharded, an empty repo gets every tenant at tenants/_<shard>/<name>/,
    previews stay flat, and the layout record says sharded; a second run writes nothing."""
    repo = reconciled(tmp_path, SHARDED)
    assert tenant_dirs(repo) == {f"tenants/{layout.shard_of(n)}/{n}" for n in TENANTS}
    assert git(repo, "ls-tree", "--name-only", "main", "previews/").count("previews/") >= 2
    record = json.loads(git(repo, "show", f"main:{layout.LAYOUT_RECORD}"))
    assert record["layout"] == "sharded"
    head = git(repo, "rev-parse", "main")
    report, _ = app.run_once([tmp_path / "repo.git-src"], repo, SHARDED)
    assert report.ok and not report.commits
    assert git(repo, "rev-parse", "main") == head


def test_a_change_commits_only_its_shard_and_names_the_real_files(tmp_path):
    """One tenant's change rewrites tenants/, its shard and its directory, and the commit
    body lists the files at their sharded paths."""
    repo = reconciled(tmp_path, SHARDED)
    _bump_workers(tmp_path / "repo.git-src")
    report, _ = app.run_once([tmp_path / "repo.git-src"], repo, SHARDED)
    assert report.ok and len(report.commits) == 1
    changed = git(repo, "show", "--name-only", "--format=", "main").splitlines()
    assert changed and all(p.startswith("tenants/_82/acme/") for p in changed
                           if p.startswith("tenants/"))
    body = git(repo, "log", "-1", "--format=%B", "main")
    assert "tenants/_82/acme/scheduler.yaml" in body and "tenants/acme/" not in body


def test_sharded_settings_over_a_flat_repo_hold_with_one_line_and_write_nothing(tmp_path):
    """layout: sharded over a flat repo refuses (no second copy of any tenant), naming the
    migrate command; the branch does not move."""
    repo = reconciled(tmp_path, FLAT)
    head = git(repo, "rev-parse", "main")
    _bump_workers(tmp_path / "repo.git-src")
    with pytest.raises(errors.UserInputError, match="migrate-layout --to sharded") as caught:
        app.run_once([tmp_path / "repo.git-src"], repo, SHARDED)
    assert "\n" not in str(caught.value)
    assert git(repo, "rev-parse", "main") == head


def test_migrate_moves_every_tenant_in_one_revertible_commit(tmp_path):
    """migrate-layout makes one commit moving every tenant (same trees, trailers naming each
    move, the record written); it is idempotent; the sharded reconciler then has nothing to
    do; after a human reverts it, the sharded reconciler holds and a flat one does not fight."""
    repo = reconciled(tmp_path, FLAT)
    before = {n: git(repo, "rev-parse", f"main:tenants/{n}") for n in TENANTS}
    done = app.migrate_layout(repo, SHARDED, "sharded")
    assert done.commit is not None and done.moved == 3
    assert git(repo, "rev-list", "--count", "main~1..main") == "1"
    assert {n: git(repo, "rev-parse", f"main:tenants/{layout.shard_of(n)}/{n}")
            for n in TENANTS} == before
    trailers = git(repo, "log", "-1", "--format=%(trailers:key=Reconciler-Moved,valueonly)",
                   "main").splitlines()
    assert "tenants/acme -> tenants/_82/acme" in trailers and len(trailers) == 3
    assert app.migrate_layout(repo, SHARDED, None).commit is None  # idempotent
    source = tmp_path / "repo.git-src"
    report, _ = app.run_once([source], repo, SHARDED)
    assert report.ok and not report.commits
    # a human reverts the migration: the repo is flat again, and nobody fights it
    human_commit(repo, {**{f"tenants/{layout.shard_of(n)}/{n}/{f}": None
                           for n in TENANTS for f in _files(repo, n)},
                        **{f"tenants/{n}/{f}": _blob(repo, n, f)
                           for n in TENANTS for f in _files(repo, n)},
                        layout.LAYOUT_RECORD: None}, f'Revert "{done.commit[:12]}"')
    assert tenant_dirs(repo) == {f"tenants/{n}" for n in TENANTS}
    reverted = git(repo, "rev-parse", "main")
    with pytest.raises(errors.UserInputError, match="tenants are flat"):
        app.run_once([source], repo, SHARDED)
    report, _ = app.run_once([source], repo, FLAT)
    assert report.ok and not report.commits
    assert git(repo, "rev-parse", "main") == reverted


def _files(repo: Path, name: str) -> list[str]:
    where = f"tenants/{layout.shard_of(name)}/{name}"
    return [p.rpartition("/")[2] for p in tree_paths(repo, "main", where)]


def _blob(repo: Path, name: str, file: str) -> bytes:
    where = f"tenants/{layout.shard_of(name)}/{name}/{file}"
    return git(repo, "show", f"main:{where}").encode() + b"\n"


def test_git_revert_of_the_migration_restores_the_flat_repo(tmp_path):
    """The migration commit reverts cleanly with the git CLI, even after a later tenant
    commit in the sharded layout, and flat settings then find nothing to do (the later
    change came back with the directory) and write no duplicate."""
    repo = reconciled(tmp_path, FLAT)
    done = app.migrate_layout(repo, SHARDED, "sharded")
    _bump_workers(tmp_path / "repo.git-src", "acme", 6)
    report, _ = app.run_once([tmp_path / "repo.git-src"], repo, SHARDED)
    assert report.ok and len(report.commits) == 1
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(repo), str(work))
    git(work, "revert", "--no-edit", str(done.commit))
    git(work, "push", "-q", "origin", "main")
    assert tenant_dirs(repo) == {f"tenants/{n}" for n in TENANTS}
    assert git(repo, "ls-tree", "main", layout.LAYOUT_RECORD) == ""
    assert "replicas: 6" in git(repo, "show", "main:tenants/acme/scheduler.yaml")
    report, _ = app.run_once([tmp_path / "repo.git-src"], repo, FLAT)
    assert report.ok and not report.commits


def test_history_and_changes_cross_the_migration(tmp_path):
    """After a migration an object's history still shows its flat-era commits, the move,
    and later sharded commits; no tenant is reported as changed by a human."""
    repo = reconciled(tmp_path, FLAT)
    app.migrate_layout(repo, SHARDED, "sharded")
    source = tmp_path / "repo.git-src"
    _bump_workers(source)
    report, _ = app.run_once([source], repo, SHARDED)
    assert report.ok and len(report.commits) == 1, report.outcomes
    entries = app.history(app.Target(str(repo)), SHARDED, app.parse_key("customer/acme"))
    kinds = [e.kind for e in entries]
    assert kinds == ["reconciler", "layout", "reconciler"], kinds
    rows = app.status(app.Target(str(repo)), SHARDED, [source], None)
    assert {r.state for r in rows if r.kind == "Customer"} == {"InSync"}, \
        [(r.name, r.state, r.message) for r in rows]


def test_migrate_refuses_against_the_settings_and_over_uncommitted_work(tmp_path):
    """--to against the layout setting is refused; in a work tree with a human's uncommitted
    tenant file nothing is moved."""
    repo = reconciled(tmp_path, FLAT)
    with pytest.raises(errors.UserInputError, match="setting layout is flat"):
        app.migrate_layout(repo, FLAT, "sharded")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(repo), str(work))
    head = git(work, "rev-parse", "HEAD")
    (work / "tenants" / "acme" / "notes.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(errors.UserInputError, match=r"tenants/acme/notes\.yaml: uncommitted"):
        app.migrate_layout(work, SHARDED, "sharded")
    assert git(work, "rev-parse", "HEAD") == head


def test_migrate_pushes_to_a_remote_like_any_commit(tmp_path):
    """With a remote URL the migration is committed in the mirror and pushed; the remote
    then holds the sharded tenants."""
    repo = reconciled(tmp_path, FLAT)
    target = app.Target(f"file://{repo}", state_dir=tmp_path / "state")
    done = app.migrate_layout(target, SHARDED, "sharded")
    assert done.commit is not None and done.delivered is not None
    assert done.delivered.error is None
    assert git(repo, "rev-parse", "main") == done.commit
    assert tenant_dirs(repo) == {f"tenants/{layout.shard_of(n)}/{n}" for n in TENANTS}


def test_examples_are_unchanged_by_the_tests():
    """The shared examples directory is only ever copied (guard for the helpers above)."""
    assert (EXAMPLES / "customers").is_dir() and shutil.which("git")


def test_a_tenant_moved_out_of_its_shard_by_hand_is_not_written_twice(tmp_path):
    """A human moving a tenant into the wrong shard (or back to tenants/<name>) makes the
    reconciler refuse that tenant with one line instead of writing a second copy; the other
    tenants keep working."""
    repo = reconciled(tmp_path, SHARDED)
    src = "tenants/_82/acme"
    files = {p: git(repo, "show", f"main:{p}").encode() + b"\n"
             for p in tree_paths(repo, "main", src)}
    human_commit(repo, {**dict.fromkeys(files),
                        **{p.replace(src, "tenants/_00/acme"): d for p, d in files.items()}},
                 "move acme by hand")
    source = tmp_path / "repo.git-src"
    _bump_workers(source, "acme", 9)
    _bump_workers(source, "big-client-0815", 9)
    report, _ = app.run_once([source], repo, SHARDED)
    refused = {str(o.key): o for o in report.outcomes if not o.ok}
    assert set(refused) == {"customer/acme"}
    assert "tenants/_00/acme/ holds tenant acme outside its shard" in refused[
        "customer/acme"].message
    assert not any(p.startswith(src) for p in tree_paths(repo))
    changed = git(repo, "show", "--name-only", "--format=", "main").splitlines()
    assert any(p.startswith("tenants/_06/big-client-0815/") for p in changed)


def test_rollback_to_a_generation_from_before_the_migration_restores_it_in_its_shard(
        tmp_path):
    """Rolling a tenant back to a commit made in the flat layout writes those files at the
    tenant's sharded path, as one commit touching only that directory."""
    repo = reconciled(tmp_path, FLAT)
    flat_era = git(repo, "rev-parse", "main")
    app.migrate_layout(repo, SHARDED, "sharded")
    source = tmp_path / "repo.git-src"
    _bump_workers(source, "acme", 9)
    report, _ = app.run_once([source], repo, SHARDED)
    assert report.ok and len(report.commits) == 1
    outcome, _, _ = app.rollback(app.Target(str(repo)), SHARDED, app.parse_key("customer/acme"),
                                 flat_era, spec_source=None, kubeconfig=None, context=None)
    assert outcome.ok and outcome.commit, outcome
    changed = git(repo, "show", "--name-only", "--format=", "main").splitlines()
    assert changed and all(p.startswith("tenants/_82/acme/") for p in changed), changed
    assert git(repo, "rev-parse", "main:tenants/_82/acme") == \
        git(repo, "rev-parse", f"{flat_era}:tenants/acme")


def test_a_deleted_layout_record_neither_fools_flat_settings_nor_stops_sharded_ones(tmp_path):
    """With the record deleted by hand, the shard directories still say sharded: a flat
    reconciler holds (it would write every tenant a second time), a sharded one goes on and
    writes the record back with its next change."""
    repo = reconciled(tmp_path, SHARDED)
    human_commit(repo, {layout.LAYOUT_RECORD: None}, "drop the layout record")
    source = tmp_path / "repo.git-src"
    with pytest.raises(errors.UserInputError, match="tenants are sharded"):
        app.run_once([source], repo, FLAT)
    _bump_workers(source, "acme", 5)
    report, _ = app.run_once([source], repo, SHARDED)
    assert report.ok and len(report.commits) == 1
    assert json.loads(git(repo, "show", f"main:{layout.LAYOUT_RECORD}"))["layout"] == "sharded"
    assert tenant_dirs(repo) == {f"tenants/{layout.shard_of(n)}/{n}" for n in TENANTS}


def test_a_running_flat_reconciler_never_writes_into_a_repo_migrated_underneath(tmp_path):
    """A flat reconciler that already read the repo, then sees it migrated by someone else,
    refuses its next change before writing anything (no flat copy next to the shard)."""
    repo = reconciled(tmp_path, FLAT)
    _, engine = app.local_reconciler(repo, FLAT)
    source = tmp_path / "repo.git-src"
    parsed = app.read_sources([source], FLAT)
    assert engine.sync(parsed).ok  # reads every tenant: the view agreed on flat
    app.migrate_layout(repo, SHARDED, "sharded")
    migrated = git(repo, "rev-parse", "main")
    _bump_workers(source, "acme", 8)
    [acme] = [o for o in app.read_sources([source], FLAT).objects if o.key.name == "acme"]
    outcome = engine.apply(acme)
    assert not outcome.ok and "tenants are sharded" in outcome.message
    assert git(repo, "rev-parse", "main") == migrated
    assert "tenants/acme" not in tenant_dirs(repo)


def test_a_large_first_import_is_streamed_into_the_shards(tmp_path):
    """150 new Customers (above import_batch, so one streamed import commit) land in their
    shards with the layout record, in one commit, and a second run writes nothing."""
    source = tmp_path / "fleet"
    source.mkdir()
    names = [f"tenant-{i:03d}" for i in range(150)]
    (source / "customers.yaml").write_text("".join(
        f"---\napiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"
        f"metadata: {{name: {n}}}\nspec: {{}}\n" for n in names))
    repo = tmp_path / "fleet.git"
    report, _ = app.run_once([source], repo, SHARDED)
    assert report.ok and len(report.commits) == 1, report.outcomes
    assert tenant_dirs(repo) == {f"tenants/{layout.shard_of(n)}/{n}" for n in names}
    assert json.loads(git(repo, "show", f"main:{layout.LAYOUT_RECORD}"))["layout"] == "sharded"
    report, _ = app.run_once([source], repo, SHARDED)
    assert report.ok and not report.commits


@pytest.mark.parametrize("where", ["tenants/_00/acme", "tenants/acme"])
def test_a_tenant_moved_out_of_its_shard_with_an_unchanged_spec_is_held_not_recreated(
        tmp_path, where):
    """A human moves acme into the wrong shard (or flat) and nothing else changes: the next
    passes, a restart included, hold acme naming that commit, neither recreate
    tenants/_82/acme/ beside the moved copy nor drop acme's database from the pool (Argo CD
    still deploys the moved copy), and commit nothing."""
    repo = reconciled(tmp_path, SHARDED)
    src = "tenants/_82/acme"
    files = {p: git(repo, "show", f"main:{p}").encode() + b"\n"
             for p in tree_paths(repo, "main", src)}
    pool = git(repo, "show", "main:platform/pgbouncer/pgbouncer.ini")
    assert "acme" in pool
    moved = human_commit(repo, {**dict.fromkeys(files),
                                **{p.replace(src, where): d for p, d in files.items()}},
                         "move acme by hand")
    source = tmp_path / "repo.git-src"

    for _ in range(2):  # each run_once is a fresh start
        report, _ = app.run_once([source], repo, SHARDED)
        assert git(repo, "rev-parse", "main") == moved, report.outcomes
        [held] = [o for o in report.outcomes if o.result == Result.HELD]
        assert str(held.key) == "customer/acme" and moved[:12] in held.message
        assert not any(p.startswith(src) for p in tree_paths(repo))
        assert git(repo, "show", "main:platform/pgbouncer/pgbouncer.ini") == pool


def test_a_layout_record_committed_during_a_pinned_read_is_seen_once_the_pin_ends(tmp_path):
    """A migration landing while a snapshot is read at its pinned head: the layout check
    inside answers for the pinned commit, and the next check after the pin answers for the
    branch as it is (sharded), never the pinned commit's answer cached for the new head."""
    repo = reconciled(tmp_path, FLAT)
    view = LayoutView(GitConfigRepo.open(repo, branch="main", author_name="Reconciler",
                                         author_email="reconciler@example.invalid"), layout.FLAT)
    with view.pinned():
        human_commit(repo, {layout.LAYOUT_RECORD: layout.layout_record(layout.SHARDED)},
                     "migrate by hand")
        assert view.repo_layout() == layout.FLAT
    assert view.repo_layout() == layout.SHARDED
