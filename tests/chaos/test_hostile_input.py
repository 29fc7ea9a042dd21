"""Hostile input: values from resources and flags never forge commit trailers, never leak
secrets, and a mistake is one line naming it — before anything is created."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from reconciler.adapters.gitremote import redact, split_credentials
from reconciler.core import errors, messages, names
from reconciler.core.models import ObjectKey
from tests.chaos.support import (
    copy_examples,
    no_traceback,
    reconciler,
    tree_paths,
    write_customer,
)
from tests.gitcli import git

FORGED = "x\nReconciler-Object: customer/good\nReconciler-Action: delete"


def _trailers(repo: Path) -> str:
    return git(repo, "log", "--format=%(trailers:key=Reconciler-Object,valueonly)", "main")


def test_forged_uid_is_refused_in_one_line_and_forges_no_trailer(tmp_path: Path) -> None:
    """A local-mode ``metadata.uid`` carrying newlines and trailers is refused, naming the
    file; the other objects are committed and no commit names customer/good."""
    sources = copy_examples(tmp_path / "src")
    write_customer(sources, "evil", 1, uid=FORGED)
    repo = tmp_path / "config.git"

    done = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")

    assert done.returncode == 1 and no_traceback(done), done.stderr
    refusal = [line for line in done.stderr.splitlines() if "evil" in line]
    assert len(refusal) == 1 and "UID" in refusal[0]
    assert "customer/good" not in _trailers(repo)
    assert "tenants/acme/kustomization.yaml" in tree_paths(repo)
    assert not any(p.startswith("tenants/evil/") for p in tree_paths(repo))


@pytest.mark.parametrize("value", [FORGED, "a\rReconciler-Action: delete", "a\u2028b",
                                   "a\x1b[2Jb", "a\x00b"])
def test_no_value_copied_into_a_message_adds_a_line(value: str) -> None:
    """Whatever a note, a subject or a trailer value holds, the message keeps exactly its
    own trailers and lines: control characters and line separators are escaped."""
    change = messages.ObjectChange(ObjectKey("Customer", "acme"), "delete", {"a": 1}, None,
                                   3, uid=value, note=value, supersedes=value)
    message = messages.object_message(change, [f"D tenants/acme/{value}"], [value], "1.0")

    trailers = messages.parse_trailers(message)
    assert [k for k, _ in trailers].count(messages.TRAILER_OBJECT) == 1
    assert dict(trailers)[messages.TRAILER_ACTION] == "delete"
    assert all(line.isprintable() for line in message.splitlines())
    parsed = subprocess.run(["git", "interpret-trailers", "--parse"], input=message,
                            capture_output=True, text=True, check=True).stdout
    objects = [line for line in parsed.splitlines() if line.startswith("Reconciler-Object:")]
    assert objects == ["Reconciler-Object: customer/acme"]


def test_redact_hides_tokens_holding_slash_or_at() -> None:
    """Tokens with ``/`` or ``@`` in them never survive redaction, and the URL given to
    libgit2 carries no credentials."""
    for url in ("https://user:to/ken@git.example/org/repo.git",
                "https://user:p@ss@git.example/org/repo.git",
                "https://to/k@en@git.example/repo.git"):
        assert "to/ken" not in redact(url) and "p@ss" not in redact(url)
        assert "en@" not in redact(url) and redact(url).endswith("repo.git")
    clean, user, secret = split_credentials("https://bot:s3%2Fcr@t@git.example/org/r.git")
    assert (clean, user, secret) == ("https://git.example/org/r.git", "bot", "s3/cr@t")


def test_token_in_the_url_is_never_stored_and_the_state_dir_is_private(
    tmp_path: Path, http_git_server: object,
) -> None:
    """``--repo https://user:TOKEN@host/...``: the run pushes, the mirror's config holds no
    token, and the state dir and mirrors are readable by the owner only."""
    from tests import gitservers
    assert isinstance(http_git_server, gitservers.HttpGitServer)
    server = http_git_server
    server.create_bare_repo("config")
    url = server.url_for("config").replace("://", f"://{server.username}:{server.password}@", 1)
    state = tmp_path / "state"

    done = reconciler("run", "--source", str(copy_examples(tmp_path / "src")), "--repo", url,
                      "--state-dir", str(state), "--once", env=server.git_env())

    assert done.returncode == 0, done.stderr
    assert server.password not in done.stdout + done.stderr
    configs = list((state / "mirrors").glob("*/config"))
    assert configs and all(server.password not in c.read_text() for c in configs)
    for directory in (state, state / "mirrors"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_invalid_branch_is_a_usage_error_before_anything_is_created(tmp_path: Path) -> None:
    """``--branch a..b`` exits 2 with one line and creates no repository."""
    repo = tmp_path / "config.git"

    done = reconciler("run", "--source", str(copy_examples(tmp_path / "src")), "--repo",
                      str(repo), "--branch", "a..b", "--once")

    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "a..b" in done.stderr
    assert not repo.exists()


def test_known_hosts_with_a_read_only_state_dir_is_one_line(
    tmp_path: Path, ssh_git_server: object,
) -> None:
    """``--known-hosts`` with a state dir that cannot be written fails in one line naming it."""
    from tests import gitservers
    assert isinstance(ssh_git_server, gitservers.SshGitServer)
    ssh_git_server.create_bare_repo("config")
    state = tmp_path / "state"
    state.mkdir()
    # where the pinned keys go cannot be written (root ignores a 0500 mode, so: a file)
    (state / "ssh-home").write_text("in the way\n")
    done = reconciler("run", "--source", str(copy_examples(tmp_path / "src")), "--repo",
                      ssh_git_server.url_for("config"), "--state-dir", str(state),
                      "--ssh-key", str(ssh_git_server.client_key), "--known-hosts",
                      str(ssh_git_server.known_hosts), "--once",
                      env={"HOME": str(tmp_path / "home")})

    assert done.returncode != 0 and no_traceback(done), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert str(state) in done.stderr


def test_unsafe_path_is_an_error_of_the_hierarchy() -> None:
    """A path that escapes its directory raises an error the command line reports in one
    line (a permanent error), not a bare ValueError."""
    with pytest.raises(errors.PermanentError):
        names.confined_path("tenants/acme", "../other")
