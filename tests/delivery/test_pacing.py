"""Pacing: pushing runs beside committing. While a hook refuses every push or the remote is
down, pushes back off exponentially (never above the documented 6 a minute) and new source
changes are still committed meanwhile, ready for the push that follows the outage."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests import gitservers
from tests.chaos.support import write_customer
from tests.delivery.support import EXAMPLES, git


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _mirror_subjects(state: Path) -> str:
    mirrors = sorted((state / "mirrors").glob("*.git"))
    if not mirrors:
        return ""
    return git("--git-dir", str(mirrors[0]), "log", "--format=%s", "main", check=False)


def test_refusing_hook_and_outage_slow_the_pushes_but_not_the_commits(tmp_path: Path) -> None:
    """With a 1 s push window and a pre-receive hook refusing everything, 20 s see at most 5
    push attempts (not one per 2 s poll); a source change is committed within seconds
    meanwhile, and again while the server is down altogether."""
    sources = tmp_path / "src"
    shutil.copytree(EXAMPLES, sources)
    state = tmp_path / "state"
    attempts = tmp_path / "attempts"
    with gitservers.DaemonGitServer(workdir=tmp_path / "server") as server:
        server.create_bare_repo("config")
        hook = server.repo_path("config") / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\necho push >> {attempts}\necho 'declined' >&2\nexit 1\n")
        hook.chmod(0o755)
        env = {k: v for k, v in gitservers.clean_git_env().items()
               if not k.startswith("RECONCILER_")} | {"HOME": str(tmp_path / "home")}
        run = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "run", "--source", str(sources),
             "--repo", server.url_for("config"), "--state-dir", str(state),
             "--push-window", "1"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            started = time.monotonic()
            assert _wait_for(lambda: "customer/acme" in _mirror_subjects(state), 30)
            time.sleep(max(0.0, 8 - (time.monotonic() - started)))
            write_customer(sources, "newcomer", 2)
            committed_while_refused = _wait_for(
                lambda: "customer/newcomer" in _mirror_subjects(state), 6)
            time.sleep(max(0.0, 20 - (time.monotonic() - started)))
            pushes_in_20s = len(attempts.read_text().splitlines()) if attempts.exists() else 0
            server.stop()
            write_customer(sources, "during-outage", 2)
            committed_while_down = _wait_for(
                lambda: "customer/during-outage" in _mirror_subjects(state), 6)
        finally:
            run.terminate()
            run.wait(timeout=30)

    assert committed_while_refused
    assert committed_while_down
    assert 1 <= pushes_in_20s <= 5, pushes_in_20s


class _Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_refused_pushes_back_off_and_never_exceed_six_a_minute(
    daemon_git_server: gitservers.DaemonGitServer, tmp_path: Path
) -> None:
    """Checked every second for ten minutes with the default 10 s window while a hook refuses
    everything: no 60 s span sees more than 6 attempts, the pauses grow, and once the hook
    is gone the next attempt pushes everything."""
    from reconciler import app
    from reconciler.adapters.gitremote import Credentials, MirrorConfigRepo
    from reconciler.reconcile.delivery import Delivery
    from reconciler.reconcile.engine import Reconciler
    from tests.delivery.support import customer

    server = daemon_git_server
    server.create_bare_repo("paced")
    settings = app.settings_from(None, environ={})
    mirror = MirrorConfigRepo.open_mirror(
        server.url_for("paced"), tmp_path / "state", credentials=Credentials(),
        branch=settings.branch, author_name=settings.author_name,
        author_email=settings.author_email)
    engine = Reconciler(repo=mirror, settings=settings, version="pacing-test")
    clock = _Clock()
    delivery = Delivery(repo=mirror, window=settings.push_window_seconds,
                        on_rebase=lambda _keys: None, clock=clock)
    attempts_at: list[float] = []
    server.reject_pushes("paced")
    for second in range(600):
        clock.now = float(second)
        if second % 30 == 0:  # source changes keep coming and are committed meanwhile
            assert engine.apply(customer(f"paced-{second}", 1, "x")).commit is not None
            delivery.committed()
        if delivery.due():
            attempts_at.append(clock.now)
            assert delivery.step().error is not None
    server.accept_pushes("paced")
    clock.now += 1000
    final = delivery.step() if delivery.due() else None

    busiest = max(sum(1 for t in attempts_at if start <= t < start + 60)
                  for start in range(600))
    pauses = [b - a for a, b in itertools.pairwise(attempts_at)]
    assert busiest <= 6, attempts_at
    assert pauses == sorted(pauses) and pauses[-1] >= 160, pauses
    assert final is not None and final.error is None and final.pushed == 20
    assert mirror.pending() == []
