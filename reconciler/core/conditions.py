"""Status conditions from a reconcile outcome: Ready, Rendered, Committed, Stalled.

Pure: ``now`` is passed in. A condition keeps its lastTransitionTime unless its status
changes, so an unchanged outcome yields an identical status and no API write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.core.outcomes import Outcome, Reason, Result

READY, RENDERED, COMMITTED, STALLED = "Ready", "Rendered", "Committed", "Stalled"
IN_SYNC = "InSync"


def _iso(now: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired_conditions(outcome: Outcome) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) for every condition the outcome implies."""
    reason, message = outcome.reason.value, outcome.message
    if outcome.result in (Result.COMMITTED, Result.UNCHANGED):
        return [
            (READY, "True", reason, message),
            (RENDERED, "True", "Rendered", "rendered into the config repo"),
            (COMMITTED, "True", reason, message),
            (IN_SYNC, "True", reason, "the config repo holds the rendering of this spec"),
            (STALLED, "False", "Reconciling", "the spec renders"),
        ]
    if outcome.result == Result.HELD:
        return [
            (READY, "False", reason, message),
            (IN_SYNC, "False", reason, message),
        ]
    if outcome.result == Result.PROPOSED:
        return [
            (READY, "False", reason, f"awaiting review: {outcome.pull_request_url}"),
            (RENDERED, "True", "Rendered", "rendered into a pull request"),
            (COMMITTED, "False", reason, f"{message} ({outcome.pull_request_url})"),
            (STALLED, "False", "Reconciling", "the spec renders"),
        ]
    if outcome.result == Result.SKIPPED and outcome.reason == Reason.SUSPENDED:
        return [(READY, "True", reason, message)]
    if outcome.result == Result.REFUSED:
        return [
            (READY, "False", reason, message),
            (RENDERED, "False", reason, message),
            (STALLED, "True", reason, message),
        ]
    return [
        (READY, "False", reason, message),
        (COMMITTED, "False", reason, message),
    ]


def merge_conditions(previous: Sequence[Mapping[str, Any]],
                     wanted: Sequence[tuple[str, str, str, str]],
                     generation: int | None, now: float) -> list[dict[str, Any]]:
    """The new conditions list: wanted ones replace theirs, others are kept as they were."""
    by_type = {str(c.get("type")): dict(c) for c in previous}
    for ctype, status, reason, message in wanted:
        old = by_type.get(ctype)
        changed = old is None or old.get("status") != status
        entry: dict[str, Any] = {
            "type": ctype, "status": status, "reason": reason, "message": message[:32768],
            "lastTransitionTime": _iso(now) if changed or old is None
            else old.get("lastTransitionTime", _iso(now)),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        by_type[ctype] = entry
    order = [READY, RENDERED, COMMITTED, IN_SYNC, STALLED]
    return sorted(by_type.values(), key=lambda c: (order.index(c["type"])
                                                    if c["type"] in order else 99, c["type"]))


def status_for(previous: Mapping[str, Any] | None, outcome: Outcome, generation: int | None,
               rendered_path: str | None, now: float) -> dict[str, Any]:
    """The whole status subresource after ``outcome``."""
    previous = previous or {}
    status = {k: v for k, v in previous.items() if k not in ("conditions",)}
    status["conditions"] = merge_conditions(previous.get("conditions") or [],
                                            desired_conditions(outcome), generation, now)
    if generation is not None:
        status["observedGeneration"] = generation
    if outcome.commit:
        status["lastCommit"] = outcome.commit
    if outcome.result in (Result.COMMITTED, Result.UNCHANGED, Result.PROPOSED) and rendered_path:
        status["renderedPath"] = rendered_path
    if outcome.pull_request_url:
        status["pullRequest"] = {"url": outcome.pull_request_url,
                                 "number": outcome.pull_request_number,
                                 "state": "open" if outcome.result == Result.PROPOSED
                                 else "closed"}
    elif outcome.result in (Result.COMMITTED, Result.UNCHANGED) and "pullRequest" in status:
        status["pullRequest"] = {**status["pullRequest"], "state": "merged"
                                 if outcome.result == Result.UNCHANGED else "closed"}
    return status
