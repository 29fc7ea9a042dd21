"""Leader election on a Lease: one leader, takeover after expiry, stepping down, release."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from reconciler.adapters.kube import KubeCluster
from reconciler.core import errors
from reconciler.core.leader import Lease
from reconciler.reconcile.election import Elector
from tests.fake_apiserver import fixtures

NAMESPACE, NAME = "default", "gitops-reconciler"


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> None:
        self.now = 1_700_000_000.0 + offset


class FakeLeases:
    """The Lease part of the Cluster port in memory, with the API's guarded writes."""

    def __init__(self) -> None:
        self.lease: Lease | None = None
        self.broken = False
        self.before_write: Callable[[], None] | None = None
        self._version = 0

    def read_lease(self, namespace: str, name: str) -> Lease | None:
        if self.broken:
            raise errors.ClusterError("read lease: connection refused")
        return self.lease

    def write_lease(self, namespace: str, name: str, lease: Lease) -> Lease:
        if self.broken:
            raise errors.ClusterError("write lease: connection refused")
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        if lease.resource_version is None and self.lease is not None:
            raise errors.ConflictError("create lease: HTTP 409 AlreadyExists")
        if lease.resource_version is not None and (
                self.lease is None or lease.resource_version != self.lease.resource_version):
            raise errors.ConflictError("replace lease: HTTP 409 Conflict")
        self._version += 1
        self.lease = replace(lease, resource_version=str(self._version))
        return self.lease


def candidate(cluster: Any, identity: str, clock: Callable[[], float], **kwargs: Any) -> Elector:
    return Elector(cluster=cluster, namespace=NAMESPACE, name=NAME, identity=identity,
                   lease_seconds=15, renew_deadline=10.0, clock=clock, **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leases() -> FakeLeases:
    return FakeLeases()


def test_of_two_candidates_the_first_leads_and_the_second_follows(
        clock: Clock, leases: FakeLeases) -> None:
    """The first candidate creates the Lease and leads; the second follows and names it."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    assert a.step() is True
    assert b.step() is False
    assert a.is_leader.is_set() and not b.is_leader.is_set()
    assert b.holder == "a"
    assert leases.lease is not None and leases.lease.holder == "a"


def test_two_candidates_racing_to_create_the_lease_yield_one_leader(
        clock: Clock, leases: FakeLeases) -> None:
    """When both saw no Lease, the later create conflicts and only one candidate leads."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    leases.before_write = b.step  # b writes between a's read and a's write
    assert a.step() is False
    assert b.is_leader.is_set() and not a.is_leader.is_set()
    assert leases.lease is not None and leases.lease.holder == "b"


def test_two_candidates_racing_for_an_expired_lease_yield_one_leader(
        clock: Clock, leases: FakeLeases) -> None:
    """Both see the old leader's Lease expired; the guarded write lets exactly one take it."""
    old, a, b = (candidate(leases, name, clock) for name in ("old", "a", "b"))
    old.step()
    clock.at(20)
    leases.before_write = b.step
    assert a.step() is False
    assert b.is_leader.is_set() and not a.is_leader.is_set()
    assert leases.lease is not None
    assert (leases.lease.holder, leases.lease.transitions) == ("b", 1)


def test_the_leader_keeps_the_lease_by_renewing_it(clock: Clock, leases: FakeLeases) -> None:
    """A leader that renews every few seconds is never displaced by a follower."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    for second in range(0, 60, 2):
        clock.at(second)
        assert a.step() is True
        clock.at(second + 1)
        assert b.step() is False
    assert leases.lease is not None and leases.lease.transitions == 0


def test_a_follower_takes_over_once_the_dead_leaders_lease_expires(
        clock: Clock, leases: FakeLeases) -> None:
    """When the leader stops renewing, another candidate leads exactly at lease expiry."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    a.step()
    clock.at(14.9)
    assert b.step() is False
    clock.at(15)
    assert b.step() is True
    assert leases.lease is not None
    assert (leases.lease.holder, leases.lease.transitions) == ("b", 1)


def test_a_leader_that_cannot_renew_steps_down_before_anyone_may_take_over(
        clock: Clock, leases: FakeLeases) -> None:
    """Renewals failing: the leader stops at the renew deadline (10 s), before expiry (15 s)."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    a.step()
    leases.broken = True
    for second in (2, 5, 9.9):
        clock.at(second)
        assert a.step() is True, f"still leading at {second}s"
    clock.at(10)
    assert a.step() is False
    assert not a.is_leader.is_set()
    leases.broken = False
    clock.at(14.9)
    assert b.step() is False  # a has stopped, and b still waits for the expiry
    clock.at(15)
    assert b.step() is True


def test_a_leader_that_comes_back_after_a_takeover_follows(
        clock: Clock, leases: FakeLeases) -> None:
    """A paused leader finding the Lease taken over stops leading."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    a.step()
    clock.at(16)
    b.step()
    clock.at(17)
    assert a.step() is False
    assert not a.is_leader.is_set()
    assert a.holder == "b"


def test_run_reports_lost_leadership_and_returns(leases: FakeLeases) -> None:
    """run() sets ``lost`` and ends when renewing keeps failing past the deadline."""
    ticks = iter(range(1_700_000_000, 1_700_010_000))
    a = candidate(leases, "a", lambda: float(next(ticks)), retry_period=0.001)
    stop, lost = threading.Event(), threading.Event()
    thread = threading.Thread(target=a.run, args=(stop, lost), daemon=True)
    thread.start()
    try:
        assert a.is_leader.wait(2)
        leases.broken = True
        assert lost.wait(2)
        thread.join(2)
        assert not thread.is_alive()
        assert not a.is_leader.is_set()
    finally:
        stop.set()


def test_a_candidate_refused_the_lease_gives_up_with_the_reason(
        clock: Clock, leases: FakeLeases) -> None:
    """A 403 on the Lease is not retried every two seconds for ever: run() ends at once with
    ``lost`` set and the refusal in ``denied`` (the process then exits with that line)."""
    refused = errors.AccessDeniedError('read lease: HTTP 403 Forbidden: cannot get resource '
                                       '"leases"')

    def deny(namespace: str, name: str) -> Lease | None:
        raise refused

    leases.read_lease = deny  # type: ignore[method-assign]
    a = candidate(leases, "a", clock, retry_period=0.001)
    stop, lost = threading.Event(), threading.Event()
    a.run(stop, lost)  # returns by itself
    assert lost.is_set() and not a.is_leader.is_set()
    assert a.denied is refused


def test_run_of_a_follower_never_reports_lost(clock: Clock, leases: FakeLeases) -> None:
    """A candidate that never led keeps following until stopped, without setting ``lost``."""
    candidate(leases, "a", clock).step()
    b = candidate(leases, "b", clock, retry_period=0.001)
    stop, lost = threading.Event(), threading.Event()
    thread = threading.Thread(target=b.run, args=(stop, lost), daemon=True)
    thread.start()
    assert not lost.wait(0.2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive() and not lost.is_set()


def test_release_lets_the_next_candidate_lead_without_waiting(
        clock: Clock, leases: FakeLeases) -> None:
    """After a clean release, a follower acquires immediately instead of after 15 s."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    a.step()
    clock.at(1)
    a.release()
    assert not a.is_leader.is_set()
    assert leases.lease is not None and leases.lease.holder is None
    clock.at(2)
    assert b.step() is True


def test_release_never_clears_another_candidates_lease(clock: Clock, leases: FakeLeases) -> None:
    """A candidate that lost the Lease and then releases leaves the new holder in place."""
    a, b = candidate(leases, "a", clock), candidate(leases, "b", clock)
    a.step()
    clock.at(16)
    b.step()
    a.release()  # a still believes it leads: it never stepped since
    assert leases.lease is not None and leases.lease.holder == "b"
    b.release()
    candidate(leases, "c", clock).release()  # a follower's release writes nothing
    assert leases.lease is not None and leases.lease.holder is None


def test_a_renew_deadline_not_shorter_than_the_lease_is_refused(leases: FakeLeases) -> None:
    """renew_deadline >= lease duration could let two leaders overlap, so it is rejected."""
    with pytest.raises(ValueError, match="renew_deadline"):
        Elector(cluster=leases, namespace=NAMESPACE, name=NAME, identity="a",  # type: ignore[arg-type]
                lease_seconds=15, renew_deadline=15)


def test_two_candidates_share_one_lease_on_the_api_server(
        kube_api_client: Any, kubectl: fixtures.Kubectl, clock: Clock) -> None:
    """Against the API server: one candidate holds the Lease kubectl shows; release hands it on."""
    cluster = KubeCluster(kube_api_client)
    a, b = candidate(cluster, "replica-a", clock), candidate(cluster, "replica-b", clock)
    assert a.step() is True
    assert b.step() is False
    clock.at(5)
    assert a.step() is True  # a renewal is a guarded replace of the same Lease
    shown = json.loads(kubectl("get", "lease", NAME, "-n", NAMESPACE, "-o", "json").stdout)
    assert shown["spec"]["holderIdentity"] == "replica-a"
    assert shown["spec"]["leaseDurationSeconds"] == 15
    lease = cluster.read_lease(NAMESPACE, NAME)
    assert lease is not None and lease.renew_time == pytest.approx(clock.now)
    a.release()
    clock.at(6)
    assert b.step() is True
    shown = json.loads(kubectl("get", "lease", NAME, "-n", NAMESPACE, "-o", "json").stdout)
    assert (shown["spec"]["holderIdentity"], shown["spec"]["leaseTransitions"]) == ("replica-b", 1)


def test_a_stale_lease_write_on_the_api_server_conflicts(
        kube_api_client: Any, clock: Clock) -> None:
    """A write guarded by an old resourceVersion gets 409, so a slow racer cannot win."""
    cluster = KubeCluster(kube_api_client)
    a = candidate(cluster, "replica-a", clock)
    a.step()
    stale = cluster.read_lease(NAMESPACE, NAME)
    assert stale is not None
    clock.at(1)
    a.step()
    with pytest.raises(errors.ConflictError):
        cluster.write_lease(NAMESPACE, NAME, replace(stale, holder="replica-b"))
