"""Credentials and transport trust: tokens and keys from files or the environment, never in
output, the mirror or commits; SSH host keys pinned with --known-hosts; TLS certificates checked."""

from __future__ import annotations

import secrets
import subprocess
from collections import Counter
from pathlib import Path

from tests import gitservers
from tests.delivery.support import (
    EXAMPLE_OBJECTS,
    EXAMPLES,
    ReconcilerCli,
    git,
    one_line,
    served_objects,
)
from tests.delivery.tls import TlsProxy


def _files_containing(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_wrong_token_fails_in_one_line_that_does_not_show_it(
    http_git_server: gitservers.HttpGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """A wrong HTTP token makes the run exit non-zero with one error line that names the
    failed authentication but not the token, and nothing is pushed or stored with it."""
    http_git_server.create_bare_repo("config")
    before = http_git_server.head_of("config")
    token = f"wrong-{secrets.token_hex(12)}"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")

    done = cli("run", "--source", str(EXAMPLES), "--repo", http_git_server.url_for("config"),
               "--state-dir", str(cli.state_dir), "--once",
               "--git-username", http_git_server.username, "--git-token-file", str(token_file))

    assert done.returncode != 0
    assert one_line(done.stderr), done.stderr
    assert "authentication" in done.stderr
    assert token not in done.stderr + done.stdout
    assert _files_containing(cli.state_dir, token) == []
    assert http_git_server.head_of("config") == before


def test_token_from_the_environment_stays_out_of_mirror_and_commits(
    http_git_server: gitservers.HttpGitServer, cli: ReconcilerCli
) -> None:
    """A token from $RECONCILER_GIT_TOKEN lets the run push, and appears neither in its
    output nor in the mirror's config and refs nor in any pushed commit."""
    http_git_server.create_bare_repo("config")
    token = http_git_server.password
    url = http_git_server.url_for("config")

    done = cli("run", "--source", str(EXAMPLES), "--repo", url, "--state-dir",
               str(cli.state_dir), "--once",
               env={"RECONCILER_GIT_USERNAME": http_git_server.username,
                    "RECONCILER_GIT_TOKEN": token})

    assert done.returncode == 0, done.stderr
    assert served_objects(http_git_server, "config") == Counter(EXAMPLE_OBJECTS)
    assert token not in done.stdout + done.stderr
    mirror = cli.mirror()
    assert _files_containing(cli.state_dir, token) == []  # config, refs, logs, packs
    assert git("--git-dir", str(mirror), "config", "remote.origin.url") == url
    history = git("--git-dir", str(mirror), "log", "--all", "-p", "--format=raw")
    served_history = git("--git-dir", str(http_git_server.repo_path("config")), "log", "-p",
                         "--format=raw", "main")
    assert token not in history
    assert token not in served_history


def test_ssh_key_from_the_environment_lets_the_run_in(
    ssh_git_server: gitservers.SshGitServer, cli: ReconcilerCli
) -> None:
    """With no key the SSH run fails in one line; with $RECONCILER_GIT_SSH_KEY it pushes."""
    ssh_git_server.create_bare_repo("config")
    # host key pinned up front: the first-use notice is not what this test reads
    args = ("run", "--source", str(EXAMPLES), "--repo", ssh_git_server.url_for("config"),
            "--state-dir", str(cli.state_dir), "--once",
            "--known-hosts", str(ssh_git_server.known_hosts))

    without = cli(*args)
    with_key = cli(*args, env={"RECONCILER_GIT_SSH_KEY": str(ssh_git_server.client_key)})

    assert without.returncode != 0
    assert one_line(without.stderr), without.stderr
    assert "credentials" in without.stderr
    assert with_key.returncode == 0, with_key.stderr
    assert served_objects(ssh_git_server, "config") == Counter(EXAMPLE_OBJECTS)


def test_known_hosts_without_the_servers_key_refuses_to_connect(
    ssh_git_server: gitservers.SshGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """A --known-hosts file that pins another key for the server's address makes the run
    fail in one line before anything is pushed."""
    ssh_git_server.create_bare_repo("config")
    before = ssh_git_server.head_of("config")
    key_type, impostor = ssh_git_server.client_public_key.read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{ssh_git_server.port} {key_type} {impostor}\n")

    done = cli.run_once(ssh_git_server, "config", "--known-hosts", str(wrong))

    assert done.returncode != 0
    assert one_line(done.stderr), done.stderr
    assert "hostkey" in done.stderr
    assert ssh_git_server.head_of("config") == before


def test_known_hosts_with_the_servers_key_lets_the_run_in(
    ssh_git_server: gitservers.SshGitServer, cli: ReconcilerCli
) -> None:
    """A --known-hosts file holding the server's host key lets the run push."""
    ssh_git_server.create_bare_repo("config")

    done = cli.run_once(ssh_git_server, "config", "--known-hosts",
                        str(ssh_git_server.known_hosts))

    assert done.returncode == 0, done.stderr
    assert served_objects(ssh_git_server, "config") == Counter(EXAMPLE_OBJECTS)


def _run_over_tls(cli: ReconcilerCli, proxy: TlsProxy,
                  env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli("run", "--source", str(EXAMPLES), "--repo", proxy.url_for("git/config.git"),
               "--state-dir", str(cli.state_dir), "--once", env=env)


def test_https_remote_is_used_only_when_its_certificate_is_trusted(
    http_anonymous_git_server: gitservers.HttpGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """Over https:// a self-signed certificate is refused in one line and nothing is pushed;
    once the certificate is trusted ($SSL_CERT_FILE) the same run pushes every object."""
    server = http_anonymous_git_server
    server.create_bare_repo("config")
    before = server.head_of("config")

    with TlsProxy(workdir=tmp_path, upstream_port=server.port) as proxy:
        untrusted = _run_over_tls(cli, proxy, {})
        head_after_untrusted = server.head_of("config")
        trusted = _run_over_tls(cli, proxy, {"SSL_CERT_FILE": str(proxy.certificate)})

    assert untrusted.returncode != 0
    assert one_line(untrusted.stderr), untrusted.stderr
    assert "certificate" in untrusted.stderr
    assert head_after_untrusted == before
    assert trusted.returncode == 0, trusted.stderr
    assert served_objects(server, "config") == Counter(EXAMPLE_OBJECTS)


def test_ssh_host_key_is_pinned_on_first_use_and_a_changed_key_is_refused(
    ssh_git_server: gitservers.SshGitServer, cli: ReconcilerCli
) -> None:
    """Without --known-hosts the first run records the server's host key in the state dir and
    says so; a later run that meets another key fails in one line and pushes nothing."""
    ssh_git_server.create_bare_repo("config")

    first = cli.run_once(ssh_git_server, "config")
    pinned = cli.state_dir / "known_hosts"
    recorded = pinned.read_text() if pinned.exists() else ""
    key_type, impostor = ssh_git_server.client_public_key.read_text().split()[:2]
    pinned.write_text(f"[127.0.0.1]:{ssh_git_server.port} {key_type} {impostor}\n")
    before = ssh_git_server.head_of("config")
    second = cli.run_once(ssh_git_server, "config")

    assert first.returncode == 0, first.stderr
    assert "pinned the SSH host key" in first.stderr
    assert f"[127.0.0.1]:{ssh_git_server.port} " in recorded
    assert second.returncode != 0
    assert one_line(second.stderr), second.stderr
    assert ssh_git_server.head_of("config") == before
