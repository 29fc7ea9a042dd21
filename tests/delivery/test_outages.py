"""Outages: a server that refuses pushes and a server that is down. The run fails in a way the
user can read, nothing committed is lost, and the next run pushes it exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from reconciler import app
from reconciler.adapters.gitremote import Credentials, MirrorConfigRepo
from reconciler.reconcile.delivery import Delivery
from reconciler.reconcile.engine import Reconciler
from tests import gitservers
from tests.delivery.support import (
    EXAMPLE_OBJECTS,
    EXAMPLES,
    ReconcilerCli,
    one_line,
    served_objects,
)


def test_refused_push_fails_the_run_and_the_next_run_pushes_the_kept_commits(
    http_git_server: gitservers.HttpGitServer, cli: ReconcilerCli
) -> None:
    """A server that refuses the push makes the run exit non-zero naming the refusal; the
    commits wait in the mirror and, once the server accepts again, the next run pushes each
    of them once."""
    server = http_git_server
    server.create_bare_repo("config")
    before = server.head_of("config")
    server.reject_pushes("config")

    refused = cli.run_once(server, "config", without_backoff=True)
    kept = cli.pending()
    head_while_refusing = server.head_of("config")
    server.accept_pushes("config")
    accepted = cli.run_once(server, "config")

    assert refused.returncode != 0
    assert "push failed:" in refused.stderr
    assert "remote refused the push: refs/heads/main: pre-receive hook declined" in refused.stderr
    assert "5 commits kept locally" in refused.stderr
    assert len(kept) == len(EXAMPLE_OBJECTS)
    assert head_while_refusing == before
    assert accepted.returncode == 0, accepted.stderr
    assert "0 commits, 5 objects unchanged" in accepted.stdout
    assert "pushed 5 commits in 1 push(es)" in accepted.stdout
    assert cli.pending() == []
    assert served_objects(server, "config") == Counter(EXAMPLE_OBJECTS)


def test_unreachable_remote_fails_in_one_line_and_the_run_after_it_is_back_pushes_all(
    ssh_git_server: gitservers.SshGitServer, cli: ReconcilerCli
) -> None:
    """While the SSH server is down the run exits non-zero with one error line naming the
    remote; once it is back, the next run pushes every object exactly once."""
    server = ssh_git_server
    server.create_bare_repo("config")
    before = server.head_of("config")
    server.stop()

    down = cli.run_once(server, "config")
    server.start()
    head_after_outage = server.head_of("config")
    back = cli.run_once(server, "config")

    assert down.returncode != 0
    assert one_line(down.stderr), down.stderr
    assert "127.0.0.1" in down.stderr
    assert head_after_outage == before
    assert back.returncode == 0, back.stderr
    assert "pushed 5 commits in 1 push(es)" in back.stdout
    assert served_objects(server, "config") == Counter(EXAMPLE_OBJECTS)


def test_commits_made_before_an_outage_are_pushed_exactly_once_after_it(
    daemon_git_server: gitservers.DaemonGitServer, tmp_path: Path
) -> None:
    """Commits whose push hits a stopped server stay pending after a bounded number of
    growing back-off waits, and one delivery after the restart pushes them all once."""
    server = daemon_git_server
    server.create_bare_repo("config")
    settings = app.settings_from(None, environ={})
    mirror = MirrorConfigRepo.open_mirror(
        server.url_for("config"), tmp_path / "state", credentials=Credentials(),
        branch=settings.branch, author_name=settings.author_name,
        author_email=settings.author_email)
    engine = Reconciler(repo=mirror, settings=settings, version="outage-test")
    waits: list[float] = []
    delivery = Delivery(repo=mirror, on_rebase=lambda _keys: None, sleep=waits.append)
    made = engine.sync(app.read_sources([EXAMPLES])).commits

    server.stop()
    failed = delivery.deliver()
    kept = mirror.pending()
    server.start()
    recovered = delivery.deliver()

    assert failed.pushes == 0
    assert failed.error is not None and "5 commits kept locally" in failed.error
    assert [c.id for c in kept] == made
    assert 0 < len(waits) <= 10 and waits == sorted(waits) and max(waits) <= 60
    assert (recovered.error, recovered.pushes, recovered.pushed) == (None, 1, len(made))
    assert mirror.pending() == []
    assert served_objects(server, "config") == Counter(EXAMPLE_OBJECTS)
