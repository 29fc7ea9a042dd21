"""Batching: commits stay one per object change, pushes are coalesced over a window — a burst
goes out in one push, no push before the window has passed, at most 6 pushes a minute with the
default 10 s window, and no commit waits longer than the window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import app
from reconciler.adapters.gitremote import Credentials, MirrorConfigRepo
from reconciler.reconcile.delivery import Delivery
from reconciler.reconcile.engine import Reconciler
from tests import gitservers
from tests.delivery.support import customer, record_ref_updates, ref_updates, served


@dataclass
class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Pipeline:
    """A reconciler committing into a mirror of a served repository, and its delivery."""

    server: gitservers.GitServer
    engine: Reconciler
    mirror: MirrorConfigRepo
    clock: FakeClock

    def change(self, name: str, generation: int) -> str:
        """Commit one object change; its commit id."""
        commit = self.engine.apply(customer(name, generation, f"{name} v{generation}")).commit
        assert commit is not None
        return commit

    def pushes(self) -> int:
        """How many times the server's main moved."""
        return len(ref_updates(self.server, "config"))


@pytest.fixture
def pipeline(daemon_git_server: gitservers.DaemonGitServer, tmp_path: Path) -> Iterator[Pipeline]:
    """An empty-but-seeded repository on git daemon that logs every ref update."""
    daemon_git_server.create_bare_repo("config")
    record_ref_updates(daemon_git_server, "config")
    settings = app.settings_from(None, environ={})
    mirror = MirrorConfigRepo.open_mirror(
        daemon_git_server.url_for("config"), tmp_path / "state", credentials=Credentials(),
        branch=settings.branch, author_name=settings.author_name,
        author_email=settings.author_email)
    engine = Reconciler(repo=mirror, settings=settings, version="batching-test")
    yield Pipeline(daemon_git_server, engine, mirror, FakeClock())


def _delivery(pipeline: Pipeline, window: float) -> Delivery:
    return Delivery(repo=pipeline.mirror, window=window, on_rebase=lambda _keys: None,
                    clock=pipeline.clock, sleep=lambda _s: None)


def test_burst_of_commits_goes_out_in_one_push_after_the_window(pipeline: Pipeline) -> None:
    """Eight object changes within a 5 s window are not pushed before it ends, then travel
    together in one push that moves the server's main once, each as its own commit."""
    delivery = _delivery(pipeline, window=5.0)
    base = pipeline.server.head_of("config")
    made = []
    due_during_burst = []
    for index in range(8):
        pipeline.clock.now = index * 0.5
        made.append(pipeline.change(f"burst-{index}", 1))
        delivery.committed()
        due_during_burst.append(delivery.due())

    pipeline.clock.now = 4.999
    due_just_before = delivery.due()
    pipeline.clock.now = 5.0
    due_at_window = delivery.due()
    report = delivery.deliver()

    assert due_during_burst == [False] * 8
    assert not due_just_before and due_at_window
    assert (report.pushes, report.pushed, report.error) == (1, 8, None)
    assert pipeline.pushes() == 1
    pushed = served(pipeline.server, "config", "rev-list", "--reverse", f"{base}..main")
    assert pushed.split() == made
    assert not delivery.due()


def test_window_starts_with_the_first_commit_after_a_push(pipeline: Pipeline) -> None:
    """After a push nothing is due; the next commit starts a fresh window, measured from
    that commit rather than from the previous push."""
    delivery = _delivery(pipeline, window=5.0)
    pipeline.change("first", 1)
    delivery.committed()
    pipeline.clock.now = 5.0
    delivery.deliver()

    pipeline.clock.now = 100.0
    idle_due = delivery.due()
    pipeline.change("second", 1)
    delivery.committed()
    pipeline.clock.now = 104.9
    early = delivery.due()
    pipeline.clock.now = 105.0
    on_time = delivery.due()

    assert not idle_due
    assert not early and on_time


def test_a_busy_minute_with_the_default_window_makes_at_most_six_pushes(
    pipeline: Pipeline,
) -> None:
    """An object change every second for a minute, pushed whenever the default window says
    so, reaches the server in at most 6 pushes, and no change waits more than 10 s."""
    default_window = app.settings_from(None, environ={}).push_window_seconds
    delivery = _delivery(pipeline, default_window)
    made_at: dict[str, float] = {}
    waits: list[float] = []
    for second in range(60):
        pipeline.clock.now = float(second)
        made_at[pipeline.change(f"busy-{second % 7}", second // 7 + 1)] = pipeline.clock.now
        delivery.committed()
        for tick in (0.0, 0.5):
            pipeline.clock.now = second + tick
            if delivery.due():
                carried = [c.id for c in pipeline.mirror.pending()]
                assert delivery.deliver().error is None
                waits += [pipeline.clock.now - made_at[c] for c in carried]

    assert default_window == 10.0
    assert pipeline.pushes() <= 6
    assert max(waits) <= delivery.window
    assert len(waits) + len(pipeline.mirror.pending()) == 60
