"""Pushing a proposal branch is a compare-and-swap: a person's commit pushed onto the
re-render branch or an object's branch between the reconciler's read and its push survives
(the new change goes on top of it), whether it lands before the push connects (a proxy in
front of ``git daemon`` pushes it then) or while the server runs the push (a pre-receive hook
moves the branch before the server updates it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import gitservers
from tests.pullrequests import support
from tests.pullrequests.racing import GitProxy
from tests.pullrequests.support import ForgeUnderTest, Remote, Workspace
from tests.pullrequests.test_rerender import config, rerender_branches

GITHUB = pytest.mark.parametrize("forge", ["github"], indirect=True)
ACME_BRANCH = "reconciler/customer/acme"
NOTE = "checked with the on-call team\n"


@pytest.fixture
def proxy(git_daemon: gitservers.DaemonGitServer) -> Iterator[GitProxy]:
    """A git:// proxy in front of the session's daemon."""
    with GitProxy(git_daemon.port) as running:
        yield running


def run(workspace: Workspace, url: str, forge: ForgeUnderTest,
        *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """``reconciler run --mode pr --once`` against ``url`` (the proxy)."""
    return support.reconciler("run", "--source", workspace.source, "--repo", url,
                              "--state-dir", workspace.state_dir, "--once", *forge.args(),
                              *extra, home=workspace.home)


def persons_commit_on(remote: Remote, branch: str, where: Path) -> str:
    """A person's commit (NOTES.md) on top of ``branch``, stored on the server under
    refs/human/notes only: the branch does not move yet. Its id."""
    clone = remote.clone(where)
    support.git("fetch", "--quiet", "origin", branch, cwd=clone)
    support.git("checkout", "--quiet", "-b", "work", "FETCH_HEAD", cwd=clone)
    (clone / "NOTES.md").write_text(NOTE)
    support.git("add", "NOTES.md", cwd=clone)
    support.git("commit", "--quiet", "-m", "notes: checked", cwd=clone, env=support.HUMAN)
    support.git("push", "--quiet", "origin", "HEAD:refs/human/notes", cwd=clone)
    return support.git("rev-parse", "HEAD", cwd=clone)


def move_branch_during_push(remote: Remote, branch: str, commit: str) -> None:
    """A pre-receive hook that, once, moves ``branch`` to ``commit`` while the server is
    handling a push: after the client saw the branch, before the server updates it."""
    hook = remote.git_dir / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    marker = remote.git_dir / "move-once"
    marker.write_text("")
    hook.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        f"[ -e '{marker}' ] || exit 0\nrm -f '{marker}'\n"
        "env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY "
        f"-u GIT_ALTERNATE_OBJECT_DIRECTORIES git update-ref 'refs/heads/{branch}' {commit}\n")
    hook.chmod(0o755)


def assert_kept_on(remote: Remote, branch: str, human: str) -> None:
    """``human`` is in ``branch``'s history and its file is on the branch's tip."""
    tip = remote.head(branch)
    assert tip is not None and tip != human
    remote.git("merge-base", "--is-ancestor", human, tip)
    assert remote.show("NOTES.md", branch) == NOTE.strip()


@GITHUB
@pytest.mark.parametrize("moment", ["before-push", "during-push"])
def test_a_persons_push_racing_the_rerender_push_is_built_on_not_overwritten(
        workspace: Workspace, forge: ForgeUnderTest, proxy: GitProxy, tmp_path: Path,
        moment: str) -> None:
    """A person pushes onto the open re-render branch right after the reconciler read it: the
    newer settings change lands on top of their commit, which stays in the branch's history;
    still one open PR."""
    remote = workspace.remote
    url = proxy.url_for(remote.name)
    support.ok(run(workspace, url, forge, "--config",
                   config(tmp_path / "a.yaml", "domain: a.example.org\n")))
    [branch] = rerender_branches(remote)
    human = persons_commit_on(remote, branch, tmp_path / "human")
    if moment == "before-push":
        proxy.arm(lambda: remote.git("update-ref", f"refs/heads/{branch}", human))
    else:
        move_branch_during_push(remote, branch, human)

    out = support.ok(run(workspace, url, forge, "--config",
                         config(tmp_path / "b.yaml", "domain: b.example.org\n")))

    assert proxy.fired == (1 if moment == "before-push" else 0)
    assert not (remote.git_dir / "move-once").exists()
    assert_kept_on(remote, branch, human)
    assert "b.example.org" in remote.show("tenants/acme/webhooks.yaml", branch), out
    [pull] = forge.open_pulls()
    assert pull.head == branch and "b.example.org" in pull.title
    assert rerender_branches(remote) == [branch]


@GITHUB
@pytest.mark.parametrize("moment", ["before-push", "during-push"])
def test_a_persons_push_racing_an_objects_pull_request_push_is_built_on_not_overwritten(
        workspace: Workspace, forge: ForgeUnderTest, proxy: GitProxy, tmp_path: Path,
        moment: str) -> None:
    """A reviewer pushes a commit onto acme's PR branch right after the reconciler read it:
    acme's next spec change goes on top of it (a fast-forward), their commit stays, and the
    same PR carries both."""
    remote = workspace.remote
    url = proxy.url_for(remote.name)
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(run(workspace, url, forge))
    human = persons_commit_on(remote, ACME_BRANCH, tmp_path / "human")
    if moment == "before-push":
        proxy.arm(lambda: remote.git("update-ref", f"refs/heads/{ACME_BRANCH}", human))
    else:
        move_branch_during_push(remote, ACME_BRANCH, human)
    workspace.set_feature("acme", "scheduler", workers=4)

    out = support.ok(run(workspace, url, forge))

    assert proxy.fired == (1 if moment == "before-push" else 0)
    assert not (remote.git_dir / "move-once").exists()
    assert_kept_on(remote, ACME_BRANCH, human)
    assert "replicas: 4" in remote.show("tenants/acme/scheduler.yaml", ACME_BRANCH), out
    [pull] = forge.pulls()
    assert (pull.state, pull.head) == ("open", ACME_BRANCH)


@GITHUB
def test_a_persons_commit_on_an_objects_branch_is_never_force_pushed_over_or_deleted(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A reviewer's commit sits on acme's PR branch: the next change goes on top of it, and
    once the spec goes back (nothing left to propose) the PR is closed but the branch with
    their commit stays."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    human = persons_commit_on(remote, ACME_BRANCH, tmp_path / "human")
    remote.git("update-ref", f"refs/heads/{ACME_BRANCH}", human)

    workspace.set_feature("acme", "scheduler", workers=4)
    support.ok(workspace.run(forge))
    assert_kept_on(remote, ACME_BRANCH, human)

    workspace.set_feature("acme", "scheduler", workers=2)
    support.ok(workspace.run(forge))

    assert [p.state for p in forge.pulls()] == ["closed"]
    assert_kept_on(remote, ACME_BRANCH, human)


@GITHUB
def test_a_reviewers_fix_of_the_rendered_files_is_kept_in_history_and_named(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A reviewer edits acme's rendered scheduler.yaml on its PR branch: while acme's spec is
    unchanged the branch is left as they made it; acme's next spec change goes on top of
    their commit (a fast-forward, their commit kept) and says which commit it supersedes."""
    workspace.set_feature("acme", "scheduler", workers=3)
    support.ok(workspace.run(forge))
    clone = remote.clone(tmp_path / "reviewer")
    support.git("fetch", "--quiet", "origin", ACME_BRANCH, cwd=clone)
    support.git("checkout", "--quiet", "-b", "fix", "FETCH_HEAD", cwd=clone)
    path = clone / "tenants" / "acme" / "scheduler.yaml"
    path.write_text(path.read_text() + "# reviewed\n")
    support.git("commit", "--quiet", "-am", "review: note", cwd=clone, env=support.HUMAN)
    support.git("push", "--quiet", "origin", f"HEAD:{ACME_BRANCH}", cwd=clone)
    fix = support.git("rev-parse", "HEAD", cwd=clone)

    support.ok(workspace.run(forge))
    assert remote.head(ACME_BRANCH) == fix

    workspace.set_feature("acme", "scheduler", workers=5)
    support.ok(workspace.run(forge))

    tip = remote.head(ACME_BRANCH)
    assert tip is not None and tip != fix
    remote.git("merge-base", "--is-ancestor", fix, tip)
    assert "replicas: 5" in remote.show("tenants/acme/scheduler.yaml", ACME_BRANCH)
    assert f"Reconciler-Supersedes: {fix}" in remote.trailers(tip) or any(
        fix[:12] in line for line in remote.trailers(tip)), remote.trailers(tip)
    [pull] = forge.pulls()
    assert pull.state == "open"
