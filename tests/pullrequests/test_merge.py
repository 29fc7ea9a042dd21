"""A pull request merged on the forge counts as committed (issue 4, section 3).

The merge is simulated as a forge performs it: the object's branch is merged into main on the
remote with a merge commit (git CLI), and the fake marks the pull request merged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import ForgeUnderTest, Remote, Workspace

ACME_BRANCH = "reconciler/customer/acme"


@pytest.mark.parametrize("forge", ["github", "gitlab"], indirect=True)
def test_after_a_merge_the_next_run_proposes_nothing_and_status_is_in_sync(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """acme's PR is merged: the next run opens, edits and closes nothing and leaves main at
    the merge; ``reconciler status`` then shows acme InSync with the reconciler's commit."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    proposed = remote.head(ACME_BRANCH)
    [pull] = forge.pulls()
    merge = remote.merge(ACME_BRANCH, tmp_path / "forge", f"Merge pull request #{pull.number}")
    forge.fake.merge(pull.number, merge)
    writes = forge.writes()

    out = support.ok(workspace.run(forge))

    assert out.splitlines() == ["0 commits, 5 objects unchanged, 0 refused or failed"]
    assert forge.writes() == writes
    [after] = forge.pulls()
    assert (after.state, after.merged) == ("closed", True)
    assert remote.head() == merge
    assert "replicas: 3" in remote.show("tenants/acme/scheduler.yaml")
    status = workspace.status()
    assert status["acme"]["state"] == "InSync", status["acme"]
    assert status["acme"]["last_commit"] == proposed
    assert {row["state"] for row in status.values()} == {"InSync"}


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_a_pull_request_touching_the_pool_is_remade_on_top_of_a_merged_one(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """small-shop gets a database while acme's database is dropped, each in its own PR; after
    small-shop's PR is merged, acme's branch is one commit on the new main whose pool keeps
    small-shop's line, so merging it loses nothing."""
    workspace.set_feature("small-shop", "database", enabled=True, storage="5Gi")
    workspace.set_feature("acme", "database", enabled=False)
    support.ok(workspace.run(forge))
    shop_branch = "reconciler/customer/small-shop"
    shop = next(p for p in forge.pulls() if p.head == shop_branch)
    merge = remote.merge(shop_branch, tmp_path / "forge", f"Merge pull request #{shop.number}")
    forge.fake.merge(shop.number, merge)

    support.ok(workspace.run(forge))

    [commit] = remote.commits_on_top(ACME_BRANCH)
    assert remote.parents(commit) == [merge]
    pool = remote.show("platform/pgbouncer/pgbouncer.ini", ACME_BRANCH)
    assert "small-shop" in pool and "acme" not in pool
    assert [p.head for p in forge.open_pulls()] == [ACME_BRANCH]
