"""Pull-request mode over a sharded config repo: the object's branch touches only its shard."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import BRANCH, ForgeUnderTest, Remote, Workspace


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_a_sharded_repo_gets_pull_requests_touching_only_the_tenants_shard(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """After migrate-layout (pushed to main), acme's change is one commit on its own branch
    touching only tenants/_82/acme/, and the pull request lists those paths."""
    config = tmp_path / "settings.yaml"
    config.write_text("layout: sharded\n")
    migrated = support.reconciler("migrate-layout", "--config", config, "--repo", remote.url,
                                  "--state-dir", workspace.state_dir, home=workspace.home)
    assert "moved 3 tenant directories" in support.ok(migrated)
    main = remote.head()
    assert "tenants/_82/acme/kustomization.yaml" in remote.git("ls-tree", "-r", "--name-only",
                                                               BRANCH)
    workspace.set_feature("acme", "scheduler", workers=3)
    done = support.reconciler("run", "--config", config, "--source", workspace.source,
                              "--repo", remote.url, "--state-dir", workspace.state_dir,
                              "--once", *forge.args(), home=workspace.home)
    assert "proposed" in support.ok(done)
    assert remote.head() == main
    [commit] = remote.commits_on_top("reconciler/customer/acme")
    changed = remote.changed(commit)
    assert changed and all(p.startswith("tenants/_82/acme/") for p in changed), changed
    [pull] = forge.pulls()
    assert "tenants/_82/acme/scheduler.yaml" in pull.body
