"""The forge port: pull requests on GitHub, GitLab or Gitea/Forgejo.

Plain data in and out; drivers (reconciler/adapters/forges/) implement ``Forge`` over each
host's REST API and translate its errors into ``ForgeError`` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from reconciler.core import errors

PullRequestState = Literal["open", "closed", "merged"]


@dataclass(frozen=True)
class PullRequestSpec:
    """What the reconciler wants a pull request to say."""

    head_branch: str
    base_branch: str
    title: str
    body: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class PullRequest:
    """A pull request (merge request on GitLab) as the forge reports it."""

    number: int
    url: str
    state: PullRequestState
    head_branch: str
    base_branch: str
    title: str
    body: str = ""
    head_sha: str | None = None
    merge_commit: str | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)


class ForgeError(errors.ReconcilerError):
    """A forge API call failed."""


class ForgeAuthError(ForgeError, errors.PermanentError):
    """401, or 403 that is not a rate limit: the token is wrong or lacks permission."""


class ForgeNotFoundError(ForgeError, errors.PermanentError):
    """404: the repository, pull request or branch does not exist (or is hidden)."""


class ForgeRateLimitedError(ForgeError, errors.TemporaryError):
    """403/429 rate limit still in force after the driver's bounded retries."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ForgeUnavailableError(ForgeError, errors.TemporaryError):
    """5xx or a network error still failing after the driver's bounded retries."""


class Forge(Protocol):
    """Pull requests on one repository of one forge."""

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        """The open pull request from ``head_branch`` into ``base_branch``, if any."""

    def find_pull_requests(self, head_branch: str, base_branch: str) -> list[PullRequest]:
        """Every pull request (open, closed, merged) from ``head_branch`` into
        ``base_branch``, newest first."""

    def get_pull_request(self, number: int) -> PullRequest:
        """A pull request by number (any state)."""

    def open_pull_request(self, spec: PullRequestSpec) -> PullRequest:
        """Open a pull request, or return the open one that already exists for the same
        branches (updated to ``spec``): never a duplicate."""

    def update_pull_request(self, number: int, spec: PullRequestSpec) -> PullRequest:
        """Set title, body and labels."""

    def close_pull_request(self, number: int) -> PullRequest:
        """Close without merging."""
