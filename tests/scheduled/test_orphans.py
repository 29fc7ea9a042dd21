"""Orphans: directories under tenants/ with no Customer in the cluster.

They are counted (metric ``reconciler_orphan_directories``) and pruned, except when so many
have no resource that the cluster itself looks wrong (the safety valve), or while the
configured grace period has not passed (a clock the test moves).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.fake_apiserver import fixtures, server
from tests.kube.test_controller_support import commits, commits_of, files_under, wait_until
from tests.scheduled import support

NAMES = [f"t{i}" for i in range(10)]
ORPHANS = "reconciler_orphan_directories"
HOUR = 3600.0


def tenants(repo: Path) -> set[str]:
    """Names of the directories under tenants/ at the head."""
    return {p.split("/")[1] for p in files_under(repo, "tenants") if p.count("/") >= 2}


def test_the_safety_valve_keeps_every_directory_when_most_have_no_resource(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """10 tenant directories and only 2 Customers in the cluster: a pass prunes none of the 8
    (beyond the removal budget of 5), logs an error asking whether this is the right
    cluster, reports 8 orphans and fails the one-shot pass."""
    support.apply(kube, [support.customer(n) for n in NAMES[:2]])
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring:
        wiring.seed(*(support.customer(n) for n in NAMES))
        before = len(commits(wiring.repo_path))

        with caplog.at_level(logging.ERROR, logger="reconciler"):
            assert not wiring.controller.run_once()

        assert wiring.controller.held_removals == {"Customer": 8}
        assert tenants(wiring.repo_path) == set(NAMES)
        assert len(commits(wiring.repo_path)) == before
        assert wiring.metric(ORPHANS) == 8
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "8 of 10 tenants directories have no resource: not pruning" in error.getMessage()
    assert "right cluster" in error.getMessage()


def test_the_safety_valve_queues_none_of_the_orphans(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """enqueue_orphans with 8 of 10 directories orphaned puts none of them in the work queue
    (only the two Customers that exist are queued, by the listing)."""
    support.apply(kube, [support.customer(n) for n in NAMES[:2]])
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring:
        wiring.seed(*(support.customer(n) for n in NAMES))
        controller = wiring.controller
        for informer in controller.informers.values():
            informer.relist()
        controller.enqueue_orphans()
        queued = set()
        while (key := controller.queue.get(timeout=0.05)) is not None:
            queued.add(str(key))
            controller.queue.done(key)
    assert queued == {"customer/t0", "customer/t1"}


def test_allow_removals_confirms_the_held_orphans(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """The same 8 orphans as above, with the controller started with ``--allow-removals 8``:
    the pass prunes all 8, one delete commit each, and succeeds."""
    support.apply(kube, [support.customer(n) for n in NAMES[:2]])
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring:
        wiring.seed(*(support.customer(n) for n in NAMES))
        wiring.controller.allow_removals = 8
        assert wiring.controller.run_once()
        assert wiring.controller.held_removals == {}

    assert tenants(wiring.repo_path) == set(NAMES[:2])
    assert len([c for c in commits(wiring.repo_path) if c.action == "delete"]) == 8


def test_a_single_orphan_among_ten_is_pruned_in_one_commit(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """10 tenant directories, 9 Customers: the pass removes tenants/t9 in one delete commit
    and leaves the other nine."""
    support.apply(kube, [support.customer(n) for n in NAMES[:9]])
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring:
        wiring.seed(*(support.customer(n) for n in NAMES))
        assert wiring.controller.run_once()
        assert wiring.metric(ORPHANS) == 1

    repo = wiring.repo_path
    assert tenants(repo) == set(NAMES[:9])
    [removal, _created] = commits_of(repo, "customer/t9")
    assert removal.action == "delete"
    assert [c for c in commits(repo) if c.action == "delete"] == [removal]


def test_an_orphan_is_kept_and_reported_until_the_grace_period_has_passed(
        kube: fixtures.Kubectl, fake_apiserver: server.FakeApiServer, fake_kubeconfig: Path,
        tmp_path: Path) -> None:
    """With orphan_grace_seconds=3600, the running controller keeps tenants/gone (counted as
    an orphan) on the first pass and on a resync half an hour later, and prunes it on the
    resync after the hour has passed."""
    support.apply(kube, support.customer("acme"))
    clock = support.FakeClock(1_800_000_000.0)
    with support.wired(fake_kubeconfig, tmp_path / "config.git", clock=clock,
                       orphan_grace_seconds=HOUR) as wiring:
        wiring.seed(support.customer("acme"), support.customer("gone"))
        repo = wiring.repo_path

        def kept(times: int) -> bool:
            return wiring.metric("reconciler_reconciles_total", kind="Customer",
                                 result="orphan") >= times

        with support.running(wiring, fake_apiserver):
            wait_until(lambda: kept(1), what="first look at the orphan")
            assert "gone" in tenants(repo)
            assert wiring.metric(ORPHANS) == 1

            clock.advance(HOUR / 2)
            wiring.controller.resync()
            wait_until(lambda: kept(2), what="second look at the orphan")
            assert "gone" in tenants(repo)
            assert not [c for c in commits(repo) if c.action == "delete"]

            clock.advance(HOUR / 2 + 1)
            wiring.controller.resync()
            wait_until(lambda: "gone" not in tenants(repo), what="tenants/gone pruned")

        [removal, _created] = commits_of(repo, "customer/gone")
        assert removal.action == "delete"
        assert tenants(repo) == {"acme"}


def test_a_one_shot_pass_with_a_grace_period_reports_the_orphan_without_waiting(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """``run --once`` (Controller.run_once) with a grace period keeps the orphan and returns,
    instead of sleeping through the grace and pruning it."""
    support.apply(kube, support.customer("acme"))
    with support.wired(fake_kubeconfig, tmp_path / "config.git",
                       orphan_grace_seconds=1.0) as wiring:
        wiring.seed(support.customer("acme"), support.customer("gone"))
        assert wiring.controller.run_once()
        assert "gone" in tenants(wiring.repo_path)
