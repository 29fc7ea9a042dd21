"""Leader election decisions: create, renew, follow, and acquire an expired or released Lease."""

from __future__ import annotations

from reconciler.core import leader
from reconciler.core.leader import Action, Lease

DURATION = 15


def held_by(holder: str | None, *, renewed: float | None = 100.0, acquired: float | None = 90.0,
            transitions: int = 3) -> Lease:
    return Lease(holder, acquired, renewed, DURATION, transitions, "42")


def test_no_lease_means_create_one_held_by_me() -> None:
    """Without a Lease the candidate creates one naming itself, acquired and renewed now."""
    decision = leader.decide(None, "a", 100.0, DURATION)
    assert decision.action == Action.CREATE
    assert decision.holder == "a"
    assert decision.lease == Lease("a", 100.0, 100.0, DURATION, 0, None)


def test_my_own_lease_is_renewed() -> None:
    """The holder renews: renewTime moves to now, acquireTime, transitions and the guard stay."""
    decision = leader.decide(held_by("a"), "a", 105.0, DURATION)
    assert decision.action == Action.RENEW
    assert decision.lease == Lease("a", 90.0, 105.0, DURATION, 3, "42")


def test_my_own_lease_is_renewed_even_after_it_expired() -> None:
    """A holder that comes back after expiry (nobody took over) simply renews."""
    decision = leader.decide(held_by("a"), "a", 500.0, DURATION)
    assert decision.action == Action.RENEW
    assert decision.lease is not None and decision.lease.renew_time == 500.0


def test_a_live_lease_of_another_candidate_is_followed() -> None:
    """Until renewTime + duration, another holder is followed and nothing is written."""
    decision = leader.decide(held_by("b"), "a", 100.0 + DURATION - 0.001, DURATION)
    assert decision.action == Action.FOLLOW
    assert decision.lease is None
    assert decision.holder == "b"


def test_an_expired_lease_is_acquired() -> None:
    """At renewTime + duration the Lease is taken over, counting one more transition."""
    decision = leader.decide(held_by("b"), "a", 100.0 + DURATION, DURATION)
    assert decision.action == Action.ACQUIRE
    assert decision.holder == "a"
    assert decision.lease == Lease("a", 115.0, 115.0, DURATION, 4, "42")


def test_acquiring_keeps_the_resource_version_so_the_write_is_guarded() -> None:
    """The takeover write carries the resourceVersion read, so only one racer can win."""
    decision = leader.decide(held_by("b", renewed=10.0, acquired=10.0), "a", 100.0, DURATION)
    assert decision.lease is not None
    assert decision.lease.resource_version == "42"


def test_a_released_lease_is_acquired_at_once() -> None:
    """A Lease without a holder (released on shutdown) is taken without waiting for expiry."""
    decision = leader.decide(held_by(None, renewed=100.0), "a", 100.5, DURATION)
    assert decision.action == Action.ACQUIRE
    assert decision.holder == "a"


def test_expiry_falls_back_to_acquire_time_without_a_renew_time() -> None:
    """A Lease never renewed expires duration seconds after its acquireTime."""
    lease = held_by("b", renewed=None, acquired=100.0)
    assert leader.decide(lease, "a", 114.0, DURATION).action == Action.FOLLOW
    assert leader.decide(lease, "a", 115.0, DURATION).action == Action.ACQUIRE


def test_expiry_uses_the_duration_written_in_the_lease() -> None:
    """The holder's leaseDurationSeconds decides expiry, not the follower's own setting."""
    lease = Lease("b", 100.0, 100.0, 60, 0, "7")
    assert leader.decide(lease, "a", 130.0, DURATION).action == Action.FOLLOW
    assert leader.decide(lease, "a", 160.0, DURATION).action == Action.ACQUIRE
