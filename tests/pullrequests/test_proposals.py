"""``reconciler run --mode pr --once``: each object change becomes one commit on the object's own
branch and one pull request into main (issue 4, section 3).

Every test runs the command as a subprocess against a ``git daemon`` remote whose main holds
``examples/``, with a GitHub, GitLab or Gitea fake answering the forge API, and reads the result
back with the git CLI and the fake's pull requests.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import BRANCH, ForgeUnderTest, Remote, Workspace

ACME_BRANCH = "reconciler/customer/acme"
TWO_FORGES = pytest.mark.parametrize("forge", ["github", "gitlab"], indirect=True)


def assert_one_commit_on_main(remote: Remote, branch: str) -> str:
    """The branch is exactly one commit on top of main's head; that commit."""
    [commit] = remote.commits_on_top(branch)
    assert remote.parents(commit) == [remote.head()]
    return commit


def test_a_spec_change_becomes_one_commit_on_the_objects_branch_and_one_pull_request(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """acme's workers 2 -> 3: branch reconciler/customer/acme holds one commit on top of main
    touching only tenants/acme/, main stays put, and one open labelled PR into main says so."""
    main_before = remote.head()
    workspace.set_feature("acme", "scheduler", workers=3)

    out = support.ok(workspace.run(forge))

    assert "proposed" in out and "customer/acme" in out
    assert remote.head() == main_before
    assert remote.branches() == {BRANCH, ACME_BRANCH}
    commit = assert_one_commit_on_main(remote, ACME_BRANCH)
    changed = remote.changed(commit)
    assert "tenants/acme/scheduler.yaml" in changed
    assert all(path.startswith("tenants/acme/") for path in changed), changed
    assert "replicas: 3" in remote.show("tenants/acme/scheduler.yaml", ACME_BRANCH)
    [pull] = forge.pulls()
    assert (pull.state, pull.head, pull.base) == ("open", ACME_BRANCH, BRANCH)
    assert pull.title == remote.subject(commit)
    assert "2 -> 3 workers" in pull.title
    for path in changed:
        assert path in pull.body, f"{path} missing from the PR body:\n{pull.body}"
    trailers = remote.trailers(commit)
    assert "Reconciler-Object: customer/acme" in trailers
    for trailer in trailers:
        assert trailer in pull.body, f"{trailer} missing from the PR body:\n{pull.body}"
    assert set(pull.labels) == {"gitops-reconciler", "customer"}


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_a_change_that_adds_a_database_carries_the_pool_line_in_the_same_pull_request(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """small-shop gets a database: its one commit changes tenants/small-shop/ and the pgbouncer
    pool (a line for small-shop), nothing else; main keeps the pool without it."""
    workspace.set_feature("small-shop", "database", enabled=True, storage="5Gi")

    support.ok(workspace.run(forge))

    branch = "reconciler/customer/small-shop"
    commit = assert_one_commit_on_main(remote, branch)
    changed = remote.changed(commit)
    assert "tenants/small-shop/database.yaml" in changed
    assert "platform/pgbouncer/pgbouncer.ini" in changed
    assert all(p.startswith(("tenants/small-shop/", "platform/pgbouncer/")) for p in changed)
    assert "small-shop" in remote.show("platform/pgbouncer/pgbouncer.ini", branch)
    assert "small-shop" not in remote.show("platform/pgbouncer/pgbouncer.ini")
    [pull] = forge.pulls()
    assert pull.head == branch and "platform/pgbouncer/pgbouncer.ini" in pull.body


@TWO_FORGES
def test_a_later_change_of_the_same_object_updates_the_same_branch_and_pull_request(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """workers 3, then 5: the branch is force-updated to one new commit on main and the same PR
    gets the new title and body; no second PR is opened."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    first_commit = remote.head(ACME_BRANCH)
    [first] = forge.pulls()

    workspace.set_feature("acme", "scheduler", workers=5)
    out = support.ok(workspace.run(forge))

    assert "2 -> 5 workers" in out
    commit = assert_one_commit_on_main(remote, ACME_BRANCH)
    assert commit != first_commit
    assert "replicas: 5" in remote.show("tenants/acme/scheduler.yaml", ACME_BRANCH)
    [pull] = forge.pulls()
    assert (pull.number, pull.state) == (first.number, "open")
    assert pull.title == remote.subject(commit) != first.title
    assert "2 -> 5 workers" in pull.body and "2 -> 3 workers" not in pull.body


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_when_main_moves_the_branch_is_made_again_on_top_of_the_new_head(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A human commit lands on main while acme's PR is open: the next run puts the branch back
    at one commit on top of the new head (re-rendered, not a merge), keeping the same PR."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    human = remote.human_commit(tmp_path / "human", "README.md", "Our config repo.\n",
                                "docs: say what this repository is")

    support.ok(workspace.run(forge))

    assert remote.head() == human
    commit = assert_one_commit_on_main(remote, ACME_BRANCH)
    assert set(remote.changed(commit)) <= {"tenants/acme/.reconciler.json",
                                           "tenants/acme/scheduler.yaml"}
    assert remote.show("README.md", ACME_BRANCH) == "Our config repo."
    assert [p.state for p in forge.pulls()] == ["open"]


@TWO_FORGES
def test_a_change_reverted_in_the_spec_closes_the_pull_request_and_deletes_the_branch(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """workers 3 proposed, then set back to 2 (what main holds): the PR is closed unmerged and
    reconciler/customer/acme is gone from the remote; main never moved."""
    main_before = remote.head()
    original = workspace.manifest("Customer", "acme")
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    assert ACME_BRANCH in remote.branches()

    workspace.write(original)
    support.ok(workspace.run(forge))

    [pull] = forge.pulls()
    assert (pull.state, pull.merged) == ("closed", False)
    assert remote.branches() == {BRANCH}
    assert remote.head() == main_before


@TWO_FORGES
def test_a_deleted_resource_is_proposed_as_a_removal_on_its_own_branch(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """small-shop's manifest is removed: one commit on reconciler/customer/small-shop deletes
    every file of tenants/small-shop/ (and nothing else), in an open PR; main keeps them."""
    before = remote.git("ls-tree", "-r", "--name-only", BRANCH, "tenants/small-shop/").split()
    workspace.delete("Customer", "small-shop")

    support.ok(workspace.run(forge))

    branch = "reconciler/customer/small-shop"
    commit = assert_one_commit_on_main(remote, branch)
    assert remote.changed(commit) == dict.fromkeys(before, "D")
    assert remote.git("ls-tree", "-r", "--name-only", BRANCH, "tenants/small-shop/").split() \
        == before
    assert "Reconciler-Action: delete" in remote.trailers(commit)
    [pull] = forge.pulls()
    assert (pull.state, pull.head, pull.base) == ("open", branch, BRANCH)
    assert pull.title == remote.subject(commit)
    assert all(path in pull.body for path in before)
    assert remote.branches() == {BRANCH, branch}


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_an_unchanged_rerun_writes_nothing_to_the_forge(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """Run twice with nothing changed in between: the second run edits no PR and opens none."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    writes = forge.writes()

    support.ok(workspace.run(forge))

    assert forge.writes() == writes
    assert [p.state for p in forge.pulls()] == ["open"]


def test_an_unchanged_rerun_leaves_the_branch_where_it_was(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """Run twice a second apart with nothing changed (a cron job of --once runs): the PR's
    branch keeps its commit, so reviews and CI results on it stay valid."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    branch_head = remote.head(ACME_BRANCH)
    time.sleep(1.05 - time.time() % 1)  # commits carry the time in seconds: cross a second

    support.ok(workspace.run(forge))

    assert remote.head(ACME_BRANCH) == branch_head


def test_a_change_reverted_after_its_pull_request_was_rejected_deletes_the_branch(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """A reviewer closes acme's PR, then the spec is set back to what main holds: the next run
    deletes reconciler/customer/acme, as it would had the PR still been open."""
    original = workspace.manifest("Customer", "acme")
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    [pull] = forge.pulls()
    forge.fake.close(pull.number)

    workspace.write(original)
    support.ok(workspace.run(forge))

    assert remote.branches() == {BRANCH}
