"""Signed commits: with ``--sign ssh:KEYFILE`` or ``--sign gpg:KEYID`` every commit the reconciler
pushes passes ``git verify-commit``; a signer that cannot sign fails the run and nothing
unsigned reaches the remote."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import app
from tests import gitservers
from tests.delivery.support import EXAMPLE_OBJECTS, EXAMPLES, ReconcilerCli, git

COMMITTER = "gitops-reconciler@localhost"  # the default author_email of the settings


@pytest.fixture
def ssh_signing_key(tmp_path: Path) -> Path:
    """A passphrase-less ed25519 key for signing."""
    key = tmp_path / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f",
                    str(key)], check=True, capture_output=True)
    return key


@pytest.fixture
def gnupg_home() -> Iterator[tuple[Path, str]]:
    """A throwaway GnuPG home holding one passphrase-less signing key: (home, fingerprint)."""
    # gpg-agent's socket path must stay short: pytest's tmp_path may be too long for it.
    home = Path(tempfile.mkdtemp(prefix="gpg-"))
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                        f"gitops-reconciler <{COMMITTER}>", "ed25519", "sign", "never"],
                       env=env, check=True, capture_output=True)
        listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"],
                                 env=env, check=True, capture_output=True, text=True).stdout
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        yield home, fingerprint
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _served_commits(server: gitservers.GitServer) -> list[str]:
    return git("--git-dir", str(server.repo_path("config")), "rev-list", "main").split()


def _verify(server: gitservers.GitServer, commit: str, *config: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [part for setting in config for part in ("-c", setting)]
    return subprocess.run(["git", *args, "--git-dir", str(server.repo_path("config")),
                           "verify-commit", commit],
                          env=gitservers.clean_git_env() | (env or {}), capture_output=True,
                          text=True, check=False)


def test_ssh_signed_run_pushes_only_commits_that_verify(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli, ssh_signing_key: Path,
    tmp_path: Path,
) -> None:
    """With --sign ssh:KEY the layout commit and every object commit on the remote pass
    git verify-commit against an allowed-signers file naming that key."""
    daemon_git_server.create_bare_repo("config", initial_commit=False)
    allowed = tmp_path / "allowed_signers"
    public = Path(f"{ssh_signing_key}.pub").read_text().strip()
    allowed.write_text(f'{COMMITTER} namespaces="git" {public}\n')

    done = cli.run_once(daemon_git_server, "config", "--sign", f"ssh:{ssh_signing_key}")

    assert done.returncode == 0, done.stderr
    commits = _served_commits(daemon_git_server)
    assert len(commits) == 1 + len(EXAMPLE_OBJECTS)
    for commit in commits:
        verified = _verify(daemon_git_server, commit, f"gpg.ssh.allowedSignersFile={allowed}")
        assert verified.returncode == 0, verified.stderr
        assert f'Good "git" signature for {COMMITTER}' in verified.stderr


def test_gpg_signed_run_pushes_only_commits_that_verify(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli,
    gnupg_home: tuple[Path, str],
) -> None:
    """With --sign gpg:KEYID the layout commit and every object commit on the remote pass
    git verify-commit with a good signature from that key."""
    home, fingerprint = gnupg_home
    daemon_git_server.create_bare_repo("config", initial_commit=False)

    done = cli.run_once(daemon_git_server, "config", "--sign", f"gpg:{fingerprint}",
                        env={"GNUPGHOME": str(home)})

    assert done.returncode == 0, done.stderr
    commits = _served_commits(daemon_git_server)
    assert len(commits) == 1 + len(EXAMPLE_OBJECTS)
    for commit in commits:
        verified = _verify(daemon_git_server, commit, env={"GNUPGHOME": str(home)})
        assert verified.returncode == 0, verified.stderr
        assert "Good signature" in verified.stderr
        assert fingerprint in verified.stderr


def test_missing_signing_key_fails_the_run_and_pushes_nothing(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """A --sign key file that does not exist is refused before anything starts: one error line
    naming the key, exit 2, no commit made and the remote branch unchanged."""
    daemon_git_server.create_bare_repo("config")
    before = daemon_git_server.head_of("config")
    missing = tmp_path / "no-such-key"

    done = cli.run_once(daemon_git_server, "config", "--sign", f"ssh:{missing}")

    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --sign ssh:{missing}: no such key file"
    assert daemon_git_server.head_of("config") == before


def test_unsigned_commits_left_from_an_earlier_run_are_made_again_signed(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli, ssh_signing_key: Path,
    tmp_path: Path,
) -> None:
    """Unsigned commits left in the mirror by a run that stopped before its push are never
    pushed by a run with --sign: it renders the same changes again as signed commits, and
    every commit the remote receives verifies."""
    daemon_git_server.create_bare_repo("config")
    before = daemon_git_server.head_of("config")
    target = app.Target(daemon_git_server.url_for("config"), state_dir=cli.state_dir)
    interrupted = app.wire(target, app.settings_from(None, environ={}))
    interrupted.engine.sync(app.read_sources([EXAMPLES]))  # committed, never delivered
    interrupted.close()  # the interrupted run is gone: its lock with it
    unsigned = set(git("--git-dir", str(next((cli.state_dir / "mirrors").glob("*.git"))),
                       "rev-list", "main", f"^{before}").split())
    assert len(unsigned) == len(EXAMPLE_OBJECTS)
    allowed = tmp_path / "allowed_signers"
    public = Path(f"{ssh_signing_key}.pub").read_text().strip()
    allowed.write_text(f'{COMMITTER} namespaces="git" {public}\n')

    signed = cli.run_once(daemon_git_server, "config", "--sign", f"ssh:{ssh_signing_key}")

    assert signed.returncode == 0, signed.stderr
    assert cli.pending() == []
    pushed = [c for c in _served_commits(daemon_git_server) if c != before]
    assert len(pushed) == len(EXAMPLE_OBJECTS)
    assert not unsigned & set(pushed)
    for commit in pushed:
        verified = _verify(daemon_git_server, commit, f"gpg.ssh.allowedSignersFile={allowed}")
        assert verified.returncode == 0, verified.stderr
