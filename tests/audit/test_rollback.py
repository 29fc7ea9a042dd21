"""``reconciler rollback customer/NAME --to GENERATION|COMMIT [--spec DIR]`` (issue 5, section 2).

A rollback is one new commit touching only the object's directory; it stands like a human's
revert while the spec is unchanged, and with ``--spec`` the manifest agrees with it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.audit import support


@dataclass(frozen=True)
class RolledBack:
    """The story after ``rollback customer/acme --to 1``."""

    ws: support.Workspace
    before: str
    gen1: str
    stdout: str


@pytest.fixture(scope="session")
def rolled_back(story: support.Workspace,
                tmp_path_factory: pytest.TempPathFactory) -> RolledBack:
    """A copy of the story rolled back to acme's generation 1. Read-only."""
    ws = story.copy_to(tmp_path_factory.mktemp("rolled-back"))
    before = support.head(ws.repo)
    done = ws.cli("rollback", "customer/acme", "--to", "1")
    return RolledBack(ws, before, support.generation_commit(ws.repo, "customer/acme", 1),
                      support.ok(done))


def test_rollback_to_a_generation_is_one_commit_touching_only_the_object(
        rolled_back: RolledBack) -> None:
    """The rollback commits tenants/acme/ exactly as generation 1 rendered it, nothing else,
    with trailers saying what was rolled back."""
    repo = rolled_back.ws.repo
    [commit] = support.new_commits(repo, rolled_back.before)
    assert rolled_back.stdout.strip() == (
        f"committed: customer/acme: roll back to generation 1 ({rolled_back.gen1[:12]}) "
        f"{commit.id[:12]}")
    assert all(p.startswith("tenants/acme/") for p in support.paths_changed(repo, commit.id))
    assert commit.trailers["Reconciler-Action"] == "rollback"
    assert commit.trailers["Reconciler-Rollback-To"] == rolled_back.gen1
    assert commit.trailers["Reconciler-Object"] == "customer/acme"
    assert support.git("--git-dir", repo, "rev-parse", "main:tenants/acme") == \
        support.git("--git-dir", repo, "rev-parse", f"{rolled_back.gen1}:tenants/acme")
    assert support.replicas(repo, "acme") == 2


def test_the_next_run_leaves_a_rollback_alone_while_the_spec_is_unchanged(
        rolled_back: RolledBack, tmp_path: Path) -> None:
    """With the manifest still at generation 3, the next run commits nothing and reports the
    object as held with reason RolledBack."""
    ws = rolled_back.ws.copy_to(tmp_path)
    rollback = support.head(ws.repo)

    out = support.ok(ws.run())

    assert support.head(ws.repo) == rollback
    [held] = support.lines_starting(out, "held")
    assert held.split()[:3] == ["held", "RolledBack", rollback[:12]]
    assert ws.status()["acme"]["state"] == "RolledBack"


def test_rollback_with_spec_sets_the_manifest_back_and_the_next_run_is_in_sync(
        workspace: support.Workspace) -> None:
    """``--spec DIR`` writes generation 1's spec into the manifest, so the next run has
    nothing to change and status says InSync."""
    done = workspace.cli("rollback", "customer/acme", "--to", "1", "--spec", workspace.source)

    out = support.ok(done)
    assert f"customer/acme: spec restored in {workspace.source / 'acme.yaml'}" in out
    spec = workspace.manifest("acme")["spec"]
    assert spec["features"]["scheduler"]["workers"] == 2
    rollback = support.head(workspace.repo)
    again = support.ok(workspace.run())
    assert support.head(workspace.repo) == rollback
    assert again.splitlines() == ["0 commits, 2 objects unchanged, 0 refused or failed"]
    assert workspace.status()["acme"]["state"] == "InSync"


def test_rollback_to_a_commit_id_works_like_a_generation(workspace: support.Workspace) -> None:
    """``--to`` also takes a commit id (abbreviated): the directory as that commit left it."""
    gen2 = support.generation_commit(workspace.repo, "customer/acme", 2)
    before = support.head(workspace.repo)

    support.ok(workspace.cli("rollback", "customer/acme", "--to", gen2[:10]))

    [commit] = support.new_commits(workspace.repo, before)
    assert commit.trailers["Reconciler-Rollback-To"] == gen2
    assert commit.trailers["Reconciler-Generation"] == "2"
    assert all(p.startswith("tenants/acme/")
               for p in support.paths_changed(workspace.repo, commit.id))
    assert support.replicas(workspace.repo, "acme") == 4


@pytest.mark.parametrize(("target", "message"), [
    ("7", "error: customer/acme: no commit rendered generation 7"),
    ("HEAD~99", "error: 'HEAD~99' is neither a generation nor a commit"),
])
def test_a_bad_rollback_target_is_one_line_exit_2_and_no_commit(
        workspace: support.Workspace, target: str, message: str) -> None:
    """A generation that never existed or a name that is no commit: one line on stderr,
    exit code 2, and the repo does not move."""
    before = support.head(workspace.repo)

    done = workspace.cli("rollback", "customer/acme", "--to", target)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [message]
    assert done.stdout == ""
    assert support.head(workspace.repo) == before
