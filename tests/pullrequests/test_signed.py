"""Signed commits in pull-request mode: the commit on the object's branch verifies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import ForgeUnderTest, Remote, Workspace

ACME_BRANCH = "reconciler/customer/acme"


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_the_pull_request_commit_is_signed_and_verifies(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """With --sign ssh:KEY in PR mode, the commit on reconciler/customer/acme passes
    git verify-commit against an allowed-signers file naming that key."""
    key = tmp_path / "signing-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    allowed = tmp_path / "allowed_signers"
    public = Path(f"{key}.pub").read_text().strip()
    allowed.write_text(f'gitops-reconciler@localhost namespaces="git" {public}\n')
    workspace.set_feature("acme", "scheduler", workers=3)

    done = support.reconciler("run", "--source", workspace.source, "--repo", remote.url,
                              "--state-dir", workspace.state_dir, "--once", *forge.args(),
                              "--sign", f"ssh:{key}", home=workspace.home)

    support.ok(done)
    commit = remote.git("rev-parse", ACME_BRANCH)
    verified = subprocess.run(
        ["git", "-c", "gpg.format=ssh", "-c", f"gpg.ssh.allowedSignersFile={allowed}",
         "--git-dir", str(remote.git_dir), "verify-commit", commit],
        capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    assert 'Good "git" signature' in verified.stderr
