"""``reconciler migrate-layout --mode pr``: the layout migration is proposed as one pull
request, never committed to main; reconcilers whose setting disagrees with main hold until
it is merged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import BRANCH, ForgeUnderTest, Remote, Workspace
from tests.pullrequests.test_push_race import persons_commit_on

MIGRATION = "reconciler/migrate-layout/sharded"


def migrate(workspace: Workspace, forge: ForgeUnderTest, config: Path,
            *extra: str) -> str:
    """``migrate-layout --to sharded --mode pr`` against the remote; its stdout."""
    return support.ok(support.reconciler(
        "migrate-layout", "--to", "sharded", "--config", config, "--repo", workspace.remote.url,
        "--state-dir", workspace.state_dir, *forge.args(), *extra, home=workspace.home))


def run(workspace: Workspace, forge: ForgeUnderTest, config: Path) -> str:
    """``run --mode pr --once`` with ``config``; stdout and stderr, whatever the exit."""
    done = support.reconciler("run", "--config", config, "--source", workspace.source,
                              "--repo", workspace.remote.url, "--state-dir",
                              workspace.state_dir, "--once", *forge.args(), home=workspace.home)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout + done.stderr


def test_migrate_layout_in_pr_mode_proposes_one_pull_request_and_main_stays_flat(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """The migration is one commit on reconciler/migrate-layout/sharded on top of main and
    one labelled PR listing the moves; main is untouched; running it again changes nothing."""
    config = tmp_path / "settings.yaml"
    config.write_text("layout: sharded\n")
    main = remote.head()

    out = migrate(workspace, forge, config)

    assert "proposed moving 3 tenant directories to the sharded layout" in out
    assert remote.head() == main
    [commit] = remote.commits_on_top(MIGRATION)
    assert remote.parents(commit) == [main]
    assert remote.subject(commit).startswith("layout: tenants flat -> sharded (3 tenants")
    assert "tenants/_82/acme/kustomization.yaml" in remote.git(
        "ls-tree", "-r", "--name-only", MIGRATION)
    [pull] = forge.pulls()
    assert (pull.state, pull.head, pull.base) == ("open", MIGRATION, BRANCH)
    assert f"/{pull.number}" in out and "`tenants/acme -> tenants/_82/acme`" in pull.body
    assert set(pull.labels) == {"gitops-reconciler", "layout"}

    migrate(workspace, forge, config)

    assert remote.head(MIGRATION) == commit and len(forge.pulls()) == 1


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_a_pr_mode_reconciler_holds_until_the_migration_is_merged_then_writes_sharded(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """With layout: sharded and the migration PR still open, a run proposes nothing and says
    why in one line; after the merge acme's change is proposed in its shard, and a second
    migrate-layout finds nothing to move and removes the merged branch."""
    config = tmp_path / "settings.yaml"
    config.write_text("layout: sharded\n")
    migrate(workspace, forge, config)
    main = remote.head()
    workspace.set_feature("acme", "scheduler", workers=3)

    held = run(workspace, forge, config)

    assert "tenants are flat but the setting layout is sharded" in held
    assert remote.head() == main
    assert remote.branches() == {BRANCH, MIGRATION}

    remote.merge(MIGRATION, tmp_path / "merge", "Merge migrate-layout")
    out = run(workspace, forge, config)

    [commit] = remote.commits_on_top("reconciler/customer/acme")
    assert all(p.startswith("tenants/_82/acme/") for p in remote.changed(commit)), out
    assert "already sharded: nothing to move" in migrate(workspace, forge, config)
    assert MIGRATION not in remote.branches()


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_migrate_layout_in_pr_mode_against_a_local_path_is_refused_in_one_line(
        workspace: Workspace, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A path instead of a URL: one line saying a URL is needed, no traceback, no PR."""
    config = tmp_path / "settings.yaml"
    config.write_text("layout: sharded\n")
    local = tmp_path / "local"
    support.git("clone", "--quiet", "--bare", workspace.remote.git_dir, local)

    done = support.reconciler("migrate-layout", "--to", "sharded", "--config", config,
                              "--repo", local, *forge.args(), home=workspace.home)

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: --mode pr needs") and "URL" in done.stderr
    assert forge.pulls() == []


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_a_persons_commit_on_the_migration_branch_is_left_alone(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """Someone commits on the open migration branch, then main moves: running the command
    again neither force-pushes over their commit nor opens a second PR."""
    config = tmp_path / "settings.yaml"
    config.write_text("layout: sharded\n")
    migrate(workspace, forge, config)
    human = persons_commit_on(remote, MIGRATION, tmp_path / "reviewer")
    remote.git("update-ref", f"refs/heads/{MIGRATION}", human)
    remote.human_commit(tmp_path / "main-edit", "NOTES-main.md", "main moved\n", "notes")

    migrate(workspace, forge, config)

    assert remote.head(MIGRATION) == human
    [pull] = forge.pulls()
    assert pull.state == "open" and pull.head == MIGRATION
