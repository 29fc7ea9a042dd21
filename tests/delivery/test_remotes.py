"""Remotes: ``reconciler run --repo URL`` pushes over ssh://, http://, git:// and file://
through one long-lived local mirror per URL, fetched incrementally, never re-cloned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests import gitservers
from tests.delivery.support import (
    EXAMPLE_OBJECTS,
    EXAMPLES,
    PAIRS_FORMAT,
    HumanClone,
    ReconcilerCli,
    explain,
    git,
    object_changes,
    served_objects,
)


def test_first_run_pushes_the_layout_and_one_commit_per_object(
    any_git_server: gitservers.GitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """Into an empty repository, one run pushes the layout commit and one commit per object,
    and a git clone from the server reads them back."""
    any_git_server.create_bare_repo("config", initial_commit=False)

    done = cli.run_once(any_git_server, "config")

    assert done.returncode == 0, explain(done, any_git_server)
    assert "pushed 6 commits in 1 push(es)" in done.stdout, explain(done, any_git_server)
    reader = tmp_path / "reader.git"
    git("clone", "--bare", "--quiet", any_git_server.url_for("config"), str(reader),
        env=any_git_server.git_env())
    subjects = git("--git-dir", str(reader), "log", "--reverse", "--format=%s", "main")
    assert subjects.splitlines()[0] == "init: config repo layout"
    assert len(subjects.splitlines()) == 1 + len(EXAMPLE_OBJECTS)
    changes = object_changes(git("--git-dir", str(reader), "log", PAIRS_FORMAT, "main"))
    assert Counter(obj for obj, _ in changes.elements()) == Counter(EXAMPLE_OBJECTS)


def test_next_run_fetches_into_the_same_mirror_and_pushes_nothing_new(
    any_git_server: gitservers.GitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """A later run re-uses the mirror (no re-clone), fetches a human's push made in between,
    and pushes nothing when no object changed."""
    any_git_server.create_bare_repo("config", initial_commit=False)
    first = cli.run_once(any_git_server, "config")
    assert first.returncode == 0, explain(first, any_git_server)
    mirror = cli.mirror()
    marker = mirror / "survives-between-runs"
    marker.write_text("a fresh clone would not have me\n")
    inode = mirror.stat().st_ino
    human = HumanClone(any_git_server, "config", tmp_path / "human")
    human_commit = human.commit_and_push("README.md", "edited by a human\n", "docs: README")

    done = cli.run_once(any_git_server, "config")

    assert done.returncode == 0, explain(done, any_git_server)
    assert "0 commits, 5 objects unchanged" in done.stdout
    assert "pushed 0 commits in 0 push(es)" in done.stdout
    assert any_git_server.head_of("config") == human_commit
    assert cli.mirrors() == [mirror]
    assert marker.exists() and mirror.stat().st_ino == inode
    assert git("--git-dir", str(mirror), "rev-parse", "origin/main") == human_commit
    assert served_objects(any_git_server, "config") == Counter(EXAMPLE_OBJECTS)


def test_each_url_gets_its_own_mirror_in_a_shared_state_dir(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """Two remotes (git:// and file://) used with one state dir get one mirror each, and both
    receive every object."""
    daemon_git_server.create_bare_repo("config")
    local = tmp_path / "local-remote.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(local))

    over_daemon = cli.run_once(daemon_git_server, "config")
    over_file = cli("run", "--source", str(EXAMPLES), "--repo", f"file://{local}",
                    "--state-dir", str(cli.state_dir), "--once")

    assert over_daemon.returncode == over_file.returncode == 0
    assert len(cli.mirrors()) == 2
    assert served_objects(daemon_git_server, "config") == Counter(EXAMPLE_OBJECTS)
    changes = object_changes(git("--git-dir", str(local), "log", PAIRS_FORMAT, "main"))
    assert Counter(obj for obj, _ in changes.elements()) == Counter(EXAMPLE_OBJECTS)
