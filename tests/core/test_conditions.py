"""Status from a reconcile outcome: the four conditions, observedGeneration and stable timestamps."""

from __future__ import annotations

from typing import Any

from reconciler.core import conditions
from reconciler.core.models import ObjectKey
from reconciler.core.outcomes import Outcome, Reason, Result

KEY = ObjectKey("Customer", "acme")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
T1 = T0 + 3600


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def committed(commit: str = COMMIT) -> Outcome:
    return Outcome(KEY, Result.COMMITTED, Reason.CREATED, "customer/acme: created", commit)


def refused() -> Outcome:
    return Outcome(KEY, Result.REFUSED, Reason.INVALID_SPEC,
                   "Customer 'acme': spec.features.scheduler.workers: Input should be >= 1")


def failed() -> Outcome:
    return Outcome(KEY, Result.FAILED, Reason.GIT_ERROR, "customer/acme: commit failed")


def test_a_commit_makes_the_object_ready_with_commit_path_and_generation() -> None:
    """After a commit: Ready, Rendered and Committed are True, Stalled False, with the commit."""
    status = conditions.status_for(None, committed(), 1, "tenants/acme", T0)
    assert status["observedGeneration"] == 1
    assert status["lastCommit"] == COMMIT
    assert status["renderedPath"] == "tenants/acme"
    got = by_type(status)
    assert {t: got[t]["status"] for t in ("Ready", "Rendered", "Committed", "Stalled")} == {
        "Ready": "True", "Rendered": "True", "Committed": "True", "Stalled": "False"}
    assert got["Ready"]["reason"] == "Created"
    assert got["Ready"]["message"] == "customer/acme: created"
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    assert all(c["lastTransitionTime"] == "2023-11-14T22:13:20Z" for c in status["conditions"])


def test_the_same_outcome_later_yields_an_identical_status() -> None:
    """Reconciling again with the same result keeps every lastTransitionTime: no API write."""
    first = conditions.status_for(None, committed(), 1, "tenants/acme", T0)
    again = conditions.status_for(first, committed(), 1, "tenants/acme", T1)
    assert again == first


def test_a_new_generation_moves_observed_generation_but_not_transition_times() -> None:
    """A spec update that commits again bumps observedGeneration; the conditions did not flip."""
    first = conditions.status_for(None, committed(), 1, "tenants/acme", T0)
    second = conditions.status_for(first, committed("f" * 40), 2, "tenants/acme", T1)
    assert second["observedGeneration"] == 2
    assert second["lastCommit"] == "f" * 40
    assert all(c["observedGeneration"] == 2 for c in second["conditions"])
    assert all(c["lastTransitionTime"] == "2023-11-14T22:13:20Z" for c in second["conditions"])


def test_an_unchanged_outcome_without_a_commit_keeps_the_last_commit() -> None:
    """An up-to-date outcome without a commit id keeps the lastCommit recorded before."""
    first = conditions.status_for(None, committed(), 1, "tenants/acme", T0)
    unchanged = Outcome(KEY, Result.UNCHANGED, Reason.UP_TO_DATE, "config repo up to date")
    status = conditions.status_for(first, unchanged, 1, "tenants/acme", T1)
    assert status["lastCommit"] == COMMIT
    assert by_type(status)["Ready"]["status"] == "True"
    assert by_type(status)["Ready"]["reason"] == "UpToDate"


def test_an_invalid_spec_is_stalled_and_not_ready() -> None:
    """A refusal sets Stalled=True and Ready=False with the message naming the field."""
    status = conditions.status_for(None, refused(), 1, None, T0)
    got = by_type(status)
    assert got["Stalled"]["status"] == "True"
    assert got["Stalled"]["reason"] == "InvalidSpec"
    assert "spec.features.scheduler.workers" in got["Stalled"]["message"]
    assert got["Ready"]["status"] == "False"
    assert got["Rendered"]["status"] == "False"
    assert "Committed" not in got
    assert "renderedPath" not in status and "lastCommit" not in status
    assert status["observedGeneration"] == 1


def test_a_flip_updates_only_the_flipped_conditions_transition_time() -> None:
    """Going from committed to invalid moves Ready's and Stalled's times; Committed is kept."""
    first = conditions.status_for(None, committed(), 1, "tenants/acme", T0)
    status = conditions.status_for(first, refused(), 2, "tenants/acme", T1)
    got = by_type(status)
    assert got["Ready"]["lastTransitionTime"] == "2023-11-14T23:13:20Z"
    assert got["Stalled"]["lastTransitionTime"] == "2023-11-14T23:13:20Z"
    assert got["Committed"] == by_type(first)["Committed"]
    assert status["lastCommit"] == COMMIT  # the directory from generation 1 is still there
    assert status["observedGeneration"] == 2


def test_fixing_an_invalid_spec_clears_stalled() -> None:
    """After a refusal, a commit sets Stalled back to False and Ready to True."""
    bad = conditions.status_for(None, refused(), 1, None, T0)
    good = conditions.status_for(bad, committed(), 2, "tenants/acme", T1)
    got = by_type(good)
    assert (got["Stalled"]["status"], got["Ready"]["status"]) == ("False", "True")
    assert got["Stalled"]["lastTransitionTime"] == "2023-11-14T23:13:20Z"


def test_a_failure_is_not_ready_and_not_committed_but_not_stalled() -> None:
    """A Git error sets Ready=False and Committed=False; it is temporary, so no Stalled=True."""
    status = conditions.status_for(None, failed(), 3, "tenants/acme", T0)
    got = by_type(status)
    assert (got["Ready"]["status"], got["Committed"]["status"]) == ("False", "False")
    assert got["Ready"]["reason"] == "GitError"
    assert "Stalled" not in got


def test_a_suspended_object_is_ready_with_reason_suspended() -> None:
    """spec.suspend reports Ready=True, reason Suspended, and nothing else changes."""
    first = conditions.status_for(None, committed(), 1, "tenants/acme", T0)
    suspended = Outcome(KEY, Result.SKIPPED, Reason.SUSPENDED, "spec.suspend is true")
    status = conditions.status_for(first, suspended, 2, "tenants/acme", T1)
    assert by_type(status)["Ready"]["reason"] == "Suspended"
    assert by_type(status)["Committed"] == by_type(first)["Committed"]


def test_fields_written_by_others_are_kept() -> None:
    """Status fields and condition types the reconciler does not own survive a reconcile."""
    previous = {"note": "set by a user",
                "conditions": [{"type": "Reviewed", "status": "True", "reason": "Ok"}]}
    status = conditions.status_for(previous, committed(), 1, "tenants/acme", T0)
    assert status["note"] == "set by a user"
    assert by_type(status)["Reviewed"] == {"type": "Reviewed", "status": "True", "reason": "Ok"}


def test_a_huge_message_is_cut_to_the_api_limit() -> None:
    """Condition messages are truncated to the 32768 characters the API accepts."""
    outcome = Outcome(KEY, Result.REFUSED, Reason.INVALID_SPEC, "x" * 40000)
    status = conditions.status_for(None, outcome, 1, None, T0)
    assert len(by_type(status)["Stalled"]["message"]) == 32768


def test_every_guard_reason_stalls_the_object_with_that_reason() -> None:
    """A guard's refusal (storage shrink, quota, host, ...) is Stalled and not Ready, and the
    conditions carry the guard's own reason, which the Condition schema accepts."""
    from reconciler.core.models import Condition

    guard_reasons = [Reason.STORAGE_SHRINK, Reason.VERSION_DOWNGRADE,
                     Reason.UPGRADE_NOT_CONFIRMED, Reason.INVALID_NAME,
                     Reason.QUANTITY_INVALID, Reason.QUOTA_EXCEEDED, Reason.HOST_NOT_ALLOWED,
                     Reason.HOST_CONFLICT]
    for reason in guard_reasons:
        outcome = Outcome(KEY, Result.REFUSED, reason, f"customer/acme: {reason.value}")
        got = by_type(conditions.status_for(None, outcome, 2, "tenants/acme", T0))
        assert (got["Stalled"]["status"], got["Stalled"]["reason"]) == ("True", reason.value)
        assert (got["Ready"]["status"], got["Ready"]["reason"]) == ("False", reason.value)
        for cond in got.values():
            Condition.model_validate(cond)
