"""Outcomes of reconciling one object: a result, a machine-readable reason and a message.

Pure data. Reasons are stable strings: they end up in logs, status conditions and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.core.models import ObjectKey


class Result(StrEnum):
    """What happened to the object."""

    COMMITTED = "committed"
    PROPOSED = "proposed"  # in a pull request awaiting review
    HELD = "held"  # a human's change to the object's files stands
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    REFUSED = "refused"
    FAILED = "failed"


class Reason(StrEnum):
    """Why, in a stable machine-readable word."""

    CREATED = "Created"
    UPDATED = "Updated"
    RERENDERED = "Rerendered"
    REMOVED = "Removed"
    IMPORTED = "Imported"
    UP_TO_DATE = "UpToDate"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    NOT_OWNED = "NotOwned"
    REMOVAL_HELD = "RemovalHeld"
    GIT_ERROR = "GitError"
    REVERTED_IN_GIT = "RevertedInGit"
    MODIFIED_IN_GIT = "ModifiedInGit"
    ROLLED_BACK = "RolledBack"
    PULL_REQUEST_OPEN = "PullRequestOpen"
    PULL_REQUEST_CLOSED = "PullRequestClosed"
    FORGE_ERROR = "ForgeError"
    UNSAFE_PATH = "UnsafePath"
    ADOPTED = "Adopted"
    SOURCE_EMPTY = "SourceEmpty"  # a kind vanished from the source: nothing removed
    EXPIRED = "Expired"
    # guards (core/guards.py): never commit what the cluster rejects or what destroys data
    STORAGE_SHRINK = "StorageShrink"
    VERSION_DOWNGRADE = "VersionDowngrade"
    UPGRADE_NOT_CONFIRMED = "UpgradeNotConfirmed"
    INVALID_NAME = "InvalidName"
    QUANTITY_INVALID = "QuantityInvalid"
    QUOTA_EXCEEDED = "QuotaExceeded"
    HOST_NOT_ALLOWED = "HostNotAllowed"
    HOST_CONFLICT = "HostConflict"


@dataclass(frozen=True, slots=True)  # one per object of a pass: no __dict__
class Outcome:
    """The result of one reconcile of one object."""

    key: ObjectKey | None
    result: Result
    reason: Reason
    message: str
    commit: str | None = None
    pull_request_url: str | None = None
    pull_request_number: int | None = None

    @property
    def ok(self) -> bool:
        """False when the user has to look at it."""
        return self.result not in (Result.REFUSED, Result.FAILED)
