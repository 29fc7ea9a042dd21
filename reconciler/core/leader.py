"""Leader election decisions over a coordination.k8s.io/v1 Lease.

Pure: given the Lease read, who we are and ``now``, decide whether to acquire, renew or
follow. The adapter does the reads and guarded writes; a 409 means another candidate won.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


@dataclass(frozen=True)
class Lease:
    """A coordination.k8s.io/v1 Lease as the leader election reads it."""

    holder: str | None
    acquire_time: float | None
    renew_time: float | None
    duration_seconds: int
    transitions: int
    resource_version: str | None


class Action(StrEnum):
    """What a candidate should do with the Lease."""

    CREATE = "create"
    ACQUIRE = "acquire"
    RENEW = "renew"
    FOLLOW = "follow"


@dataclass(frozen=True)
class Decision:
    """An action and the Lease to write for it (None when following)."""

    action: Action
    lease: Lease | None
    holder: str | None


def decide(current: Lease | None, me: str, now: float, duration_seconds: int) -> Decision:
    """The next step for candidate ``me``."""
    if current is None:
        return Decision(Action.CREATE, Lease(me, now, now, duration_seconds, 0, None), me)
    if current.holder == me:
        return Decision(Action.RENEW, replace(current, renew_time=now,
                                              duration_seconds=duration_seconds), me)
    renewed = current.renew_time or current.acquire_time or 0.0
    expired = current.holder is None or now >= renewed + current.duration_seconds
    if expired:
        return Decision(Action.ACQUIRE, Lease(me, now, now, duration_seconds,
                                              current.transitions + 1,
                                              current.resource_version), me)
    return Decision(Action.FOLLOW, None, current.holder)
