"""The loopback Git servers of tests/gitservers.py, driven by the git CLI and by pygit2."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests import gitservers
from tests.gitservers_assets import processes

PUSH_MAIN = ["refs/heads/main:refs/heads/main"]


class RecordingCallbacks(pygit2.RemoteCallbacks):
    """Remote callbacks that remember what the server said about each pushed reference."""

    def __init__(self, credentials: Any = None) -> None:
        super().__init__(credentials=credentials)
        self.ref_messages: dict[str, str | None] = {}

    def push_update_reference(self, refname: str, message: str | None) -> None:
        self.ref_messages[refname] = message


def git(server: gitservers.GitServer, *args: str, cwd: Path | None = None) -> str:
    """Run the git CLI against ``server`` and return its stripped stdout."""
    env = (
        gitservers.clean_git_env()
        | server.git_env()
        | {
            "GIT_AUTHOR_NAME": "Human",
            "GIT_AUTHOR_EMAIL": "human@example.invalid",
            "GIT_COMMITTER_NAME": "Human",
            "GIT_COMMITTER_EMAIL": "human@example.invalid",
        }
    )
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"git {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout.strip()


def local_clone(server: gitservers.GitServer, name: str, path: Path) -> pygit2.Repository:
    """Return a bare pygit2 repository whose 'origin' is ``name`` on ``server``, fetched."""
    repo = pygit2.init_repository(str(path), bare=True)
    repo.remotes.create("origin", server.url_for(name))
    repo.remotes["origin"].fetch(callbacks=RecordingCallbacks(server.pygit2_credentials()))
    return repo


def commit_on_main(repo: pygit2.Repository, message: str) -> str:
    """Create a commit on local main on top of origin/main and return its id."""
    parent = repo.references["refs/remotes/origin/main"].target
    blob = repo.create_blob(message.encode())
    builder = repo.TreeBuilder(repo[parent].tree)
    builder.insert("change.txt", blob, pygit2.enums.FileMode.BLOB)
    signature = pygit2.Signature("Reconciler", "reconciler@example.invalid", 1_700_000_000, 0)
    oid = repo.create_commit(
        "refs/heads/main", signature, signature, message, builder.write(), [parent]
    )
    return str(oid)


def test_pygit2_build_supports_ssh() -> None:
    """The installed pygit2 wheel was built with its SSH transport (bundled libssh2)."""
    assert pygit2.features & pygit2.enums.Feature.SSH


def test_cli_push_is_fetched_by_pygit2(
    any_git_server: gitservers.GitServer, tmp_path: Path
) -> None:
    """A commit pushed with the git CLI arrives in a pygit2 fetch from the same server."""
    any_git_server.create_bare_repo("config")
    work = tmp_path / "work"
    git(any_git_server, "clone", "--quiet", any_git_server.url_for("config"), str(work))
    (work / "human.txt").write_text("edited by a human\n")
    git(any_git_server, "add", "human.txt", cwd=work)
    git(any_git_server, "commit", "--quiet", "-m", "human edit", cwd=work)
    git(any_git_server, "push", "--quiet", "origin", "HEAD:main", cwd=work)
    pushed = git(any_git_server, "rev-parse", "HEAD", cwd=work)

    repo = local_clone(any_git_server, "config", tmp_path / "local.git")

    assert str(repo.references["refs/remotes/origin/main"].target) == pushed


def test_pygit2_push_updates_server_branch(
    any_git_server: gitservers.GitServer, tmp_path: Path
) -> None:
    """A pygit2 push moves the server's main to the new commit and reports no error."""
    any_git_server.create_bare_repo("config")
    repo = local_clone(any_git_server, "config", tmp_path / "local.git")
    commit = commit_on_main(repo, "object change")
    callbacks = RecordingCallbacks(any_git_server.pygit2_credentials())

    repo.remotes["origin"].push(PUSH_MAIN, callbacks=callbacks)

    assert callbacks.ref_messages == {"refs/heads/main": None}
    assert any_git_server.head_of("config") == commit


def test_pygit2_push_creates_branch_in_empty_repo(
    any_git_server: gitservers.GitServer, tmp_path: Path
) -> None:
    """A first pygit2 push into a repository without commits creates its main branch."""
    any_git_server.create_bare_repo("empty", initial_commit=False)
    repo = pygit2.init_repository(str(tmp_path / "local.git"), bare=True)
    remote = repo.remotes.create("origin", any_git_server.url_for("empty"))
    signature = pygit2.Signature("Reconciler", "reconciler@example.invalid", 1_700_000_000, 0)
    tree = repo.TreeBuilder().write()
    commit = repo.create_commit("refs/heads/main", signature, signature, "first", tree, [])
    callbacks = RecordingCallbacks(any_git_server.pygit2_credentials())

    remote.push(PUSH_MAIN, callbacks=callbacks)

    assert callbacks.ref_messages == {"refs/heads/main": None}
    assert any_git_server.head_of("empty") == str(commit)


def test_rejected_push_is_reported_by_push_update_reference(
    any_git_server: gitservers.GitServer,
    tmp_path: Path,
) -> None:
    """A pre-receive rejection raises nothing in pygit2 but reaches push_update_reference."""
    any_git_server.create_bare_repo("config")
    repo = local_clone(any_git_server, "config", tmp_path / "local.git")
    before = any_git_server.head_of("config")
    commit = commit_on_main(repo, "object change")
    rejected = RecordingCallbacks(any_git_server.pygit2_credentials())

    with any_git_server.rejecting_pushes("config"):
        repo.remotes["origin"].push(PUSH_MAIN, callbacks=rejected)
        head_while_rejecting = any_git_server.head_of("config")
    accepted = RecordingCallbacks(any_git_server.pygit2_credentials())
    repo.remotes["origin"].push(PUSH_MAIN, callbacks=accepted)

    assert rejected.ref_messages == {"refs/heads/main": "pre-receive hook declined"}
    assert head_while_rejecting == before
    assert accepted.ref_messages == {"refs/heads/main": None}
    assert any_git_server.head_of("config") == commit


def test_stopped_server_fails_push_until_restarted(
    any_git_server: gitservers.GitServer, tmp_path: Path
) -> None:
    """A push to a stopped server raises GitError; after start() the same push succeeds."""
    any_git_server.create_bare_repo("config")
    repo = local_clone(any_git_server, "config", tmp_path / "local.git")
    commit = commit_on_main(repo, "object change")
    url = any_git_server.url_for("config")

    any_git_server.stop()
    with pytest.raises(pygit2.GitError):
        repo.remotes["origin"].push(
            PUSH_MAIN, callbacks=RecordingCallbacks(any_git_server.pygit2_credentials())
        )
    any_git_server.start()
    callbacks = RecordingCallbacks(any_git_server.pygit2_credentials())
    repo.remotes["origin"].push(PUSH_MAIN, callbacks=callbacks)

    assert any_git_server.url_for("config") == url
    assert callbacks.ref_messages == {"refs/heads/main": None}
    assert any_git_server.head_of("config") == commit


def test_http_server_refuses_wrong_password(
    http_git_server: gitservers.HttpGitServer, tmp_path: Path
) -> None:
    """Basic auth is enforced: a wrong password makes the pygit2 fetch fail."""
    http_git_server.create_bare_repo("config")
    repo = pygit2.init_repository(str(tmp_path / "local.git"), bare=True)
    remote = repo.remotes.create("origin", http_git_server.url_for("config"))
    wrong = pygit2.UserPass(http_git_server.username, "not-the-password")

    # libgit2 replays static credentials 15 times before "too many ... authentication replays".
    with pytest.raises(pygit2.GitError, match="authentication"):
        remote.fetch(callbacks=pygit2.RemoteCallbacks(credentials=wrong))


def test_anonymous_http_server_accepts_pushes(
    http_anonymous_git_server: gitservers.HttpGitServer,
    tmp_path: Path,
) -> None:
    """Without basic auth configured, pygit2 pushes over HTTP with no credentials at all."""
    http_anonymous_git_server.create_bare_repo("config")
    repo = local_clone(http_anonymous_git_server, "config", tmp_path / "local.git")
    commit = commit_on_main(repo, "object change")

    repo.remotes["origin"].push(PUSH_MAIN, callbacks=RecordingCallbacks())

    assert http_anonymous_git_server.head_of("config") == commit


def test_ssh_server_refuses_unknown_key(
    ssh_git_server: gitservers.SshGitServer, tmp_path: Path
) -> None:
    """Only the generated client key gets in: another key makes the pygit2 fetch fail."""
    ssh_git_server.create_bare_repo("config")
    other_key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    stranger = pygit2.Keypair(ssh_git_server.user, f"{other_key}.pub", str(other_key), "")
    repo = pygit2.init_repository(str(tmp_path / "local.git"), bare=True)
    remote = repo.remotes.create("origin", ssh_git_server.url_for("config"))

    with pytest.raises(pygit2.GitError):
        remote.fetch(callbacks=pygit2.RemoteCallbacks(credentials=stranger))


def test_ssh_host_key_is_checked_against_known_hosts_in_libgit2_homedir(
    ssh_git_server: gitservers.SshGitServer,
    tmp_path: Path,
) -> None:
    """libgit2 marks the host key valid only when HOMEDIR/.ssh/known_hosts lists it."""
    ssh_git_server.create_bare_repo("config")
    repo = pygit2.init_repository(str(tmp_path / "local.git"), bare=True)
    remote = repo.remotes.create("origin", ssh_git_server.url_for("config"))
    verdicts: list[bool] = []

    def record(certificate: None, valid: bool, host: bytes) -> bool:
        verdicts.append(valid)
        return valid

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    previous_home = pygit2.settings.homedir
    pygit2.settings.homedir = str(home)
    try:
        with pytest.raises(pygit2.GitError, match="hostkey"):
            remote.fetch(
                callbacks=pygit2.RemoteCallbacks(
                    credentials=ssh_git_server.pygit2_credentials(), certificate_check=record
                )
            )
        (home / ".ssh" / "known_hosts").write_text(ssh_git_server.known_hosts.read_text())
        remote.fetch(
            callbacks=pygit2.RemoteCallbacks(
                credentials=ssh_git_server.pygit2_credentials(), certificate_check=record
            )
        )
    finally:
        pygit2.settings.homedir = previous_home or os.environ.get("HOME", "/")

    assert verdicts == [False, True]


def test_missing_server_program_fails_naming_its_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without sshd installed the fixture fails (not skips), naming openssh-server."""
    find_program: Callable[..., str] = processes.find_program

    def find_nothing(name: str, *, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
        return find_program(f"{name}-that-is-not-installed", package=package)

    monkeypatch.setattr(processes, "find_program", find_nothing)

    with (
        pytest.raises(pytest.fail.Exception, match="install the Debian package 'openssh-server'"),
        gitservers.running_server(lambda: gitservers.SshGitServer(workdir=tmp_path)),
    ):
        pass
