"""The GitLab driver of the forge port: merge requests through REST API v4.

Owns: merge requests of one project (``group/sub/project`` path or numeric id) on GitLab.com or
a self-managed instance. Must not: retry, sleep or build error messages itself
(``http.ForgeClient`` does), or remove labels a human added.

Endpoints (docs.gitlab.com/api/merge_requests):

- ``GET /projects/:id/merge_requests?state=opened&source_branch=&target_branch=&per_page=100``
  "List project merge requests": ``:id`` is the URL-encoded path or the numeric id; pages via
  ``Link: rel="next"`` and ``X-Next-Page`` (empty on the last page).
- ``GET /projects/:id/merge_requests/:merge_request_iid`` "Get single MR": ``iid``, ``web_url``,
  ``state`` opened/closed/locked/merged, ``source_branch``, ``target_branch``, ``sha``,
  ``merge_commit_sha``, ``squash_commit_sha``, ``labels`` (names).
- ``POST /projects/:id/merge_requests`` "Create MR": ``labels`` comma-separated (GitLab creates
  missing labels when the token may); 201. When an open MR already has the same source and
  target branches, 409 ``{"message": ["Another open merge request already exists for this
  source branch: !38"]}`` (``API::Helpers::MergeRequestsHelpers#handle_merge_request_errors!``
  -> ``conflict!``).
- ``PUT /projects/:id/merge_requests/:merge_request_iid`` "Update MR": ``title``,
  ``description``, ``add_labels`` (keeps labels others set), ``state_event: close``.

Auth: ``Authorization: Bearer <token>`` (personal, project, group or OAuth tokens; requests drops
it on a redirect to another host, which it does not do for ``PRIVATE-TOKEN``). Bodies: 401
``{"message": "401 Unauthorized"}``, 404 ``{"message": "404 Project Not Found"}``.
Kargo's ``pkg/gitprovider/gitlab`` uses the same list/create/get calls.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, TypedDict, cast

from reconciler.adapters.forges import http
from reconciler.core import errors
from reconciler.ports import forge

PER_PAGE = 100
OPEN_STATES = ("opened", "locked")
_EXISTING_IID = re.compile(r"already exists.*?!(\d+)")


class RawMergeRequest(TypedDict, total=False):
    iid: int
    web_url: str
    state: str
    title: str
    description: str | None
    source_branch: str
    target_branch: str
    sha: str | None
    merge_commit_sha: str | None
    squash_commit_sha: str | None
    labels: list[str]


def auth_header(token: str) -> tuple[str, str]:
    return "Authorization", f"Bearer {token}"


class GitLabForge:
    """Merge requests of one GitLab project."""

    def __init__(self, *, client: http.ForgeClient, project: str) -> None:
        self._client = client
        self._mrs = f"/projects/{urllib.parse.quote(project.strip('/'), safe='')}/merge_requests"

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> forge.PullRequest | None:
        raw_mr = self._find_open(head_branch, base_branch)
        return to_pull_request(raw_mr) if raw_mr is not None else None

    def find_pull_requests(self, head_branch: str, base_branch: str) -> list[forge.PullRequest]:
        params: dict[str, str | int] = {"state": "all", "source_branch": head_branch,
                                        "target_branch": base_branch, "per_page": PER_PAGE}
        found = [to_pull_request(raw_mr)
                 for page in self._client.iter_pages(self._mrs, params=params)
                 for raw_mr in cast(list[RawMergeRequest], page)
                 if _is_for(raw_mr, head_branch, base_branch, any_state=True)]
        return sorted(found, key=lambda p: -p.number)

    def get_pull_request(self, number: int) -> forge.PullRequest:
        return to_pull_request(self._get(number))

    def open_pull_request(self, spec: forge.PullRequestSpec) -> forge.PullRequest:
        raw_mr = self._find_open(spec.head_branch, spec.base_branch)
        if raw_mr is None:
            body: dict[str, Any] = {"source_branch": spec.head_branch,
                                    "target_branch": spec.base_branch,
                                    "title": spec.title, "description": spec.body}
            if spec.labels:
                body["labels"] = _comma_separated(spec.labels)
            try:
                return to_pull_request(self._client.send_json("POST", self._mrs, body))
            except http.ForgeRequestError as exc:
                if exc.status not in (409, 422) or "already exists" not in exc.host_message:
                    raise
                raw_mr = self._existing_after_conflict(exc, spec)
        return self._bring_up_to_date(raw_mr, spec)

    def update_pull_request(self, number: int, spec: forge.PullRequestSpec) -> forge.PullRequest:
        return to_pull_request(self._put(number, self._update_body(spec)))

    def close_pull_request(self, number: int) -> forge.PullRequest:
        raw_mr = self._get(number)
        if raw_mr.get("state") not in OPEN_STATES:
            return to_pull_request(raw_mr)
        return to_pull_request(self._put(number, {"state_event": "close"}))

    # -- internals -------------------------------------------------------------------------------

    def _get(self, iid: int) -> RawMergeRequest:
        return cast(RawMergeRequest, self._client.get_json(f"{self._mrs}/{iid}"))

    def _put(self, iid: int, body: dict[str, Any]) -> RawMergeRequest:
        return cast(RawMergeRequest, self._client.send_json("PUT", f"{self._mrs}/{iid}", body))

    def _find_open(self, head_branch: str, base_branch: str) -> RawMergeRequest | None:
        params: dict[str, str | int] = {"state": "opened", "source_branch": head_branch,
                                        "target_branch": base_branch, "per_page": PER_PAGE}
        for page in self._client.iter_pages(self._mrs, params=params):
            for raw_mr in cast(list[RawMergeRequest], page):
                if _is_for(raw_mr, head_branch, base_branch):
                    return raw_mr
        return None

    def _existing_after_conflict(self, exc: http.ForgeRequestError,
                                 spec: forge.PullRequestSpec) -> RawMergeRequest:
        """The open MR GitLab's 409 names (``!38``), else the one a new search finds."""
        named = _EXISTING_IID.search(exc.host_message)
        if named:
            raw_mr = self._get(int(named.group(1)))
            if _is_for(raw_mr, spec.head_branch, spec.base_branch):
                return raw_mr
        found = self._find_open(spec.head_branch, spec.base_branch)
        if found is None:
            raise http.ForgeRaceError(
                f"GitLab at {self._client.host} says a merge request from {spec.head_branch} "
                f"already exists, but none is open into {spec.base_branch}") from exc
        return found

    def _bring_up_to_date(self, raw_mr: RawMergeRequest,
                          spec: forge.PullRequestSpec) -> forge.PullRequest:
        """Update only what differs: an unchanged merge request costs no write."""
        current = to_pull_request(raw_mr)
        if (current.title == spec.title and current.body == spec.body
                and set(spec.labels) <= set(current.labels)):
            return current
        return to_pull_request(self._put(current.number, self._update_body(spec)))

    @staticmethod
    def _update_body(spec: forge.PullRequestSpec) -> dict[str, Any]:
        body: dict[str, Any] = {"title": spec.title, "description": spec.body}
        if spec.labels:
            body["add_labels"] = _comma_separated(spec.labels)
        return body


def _is_for(raw_mr: RawMergeRequest, head_branch: str, base_branch: str, *,
            any_state: bool = False) -> bool:
    return ((any_state or raw_mr.get("state") in OPEN_STATES) and raw_mr.get("source_branch") == head_branch
            and raw_mr.get("target_branch") == base_branch)


def _comma_separated(labels: tuple[str, ...]) -> str:
    for label in labels:
        if "," in label:
            raise errors.UserInputError(f"GitLab label names cannot contain a comma: {label!r}")
    return ",".join(dict.fromkeys(labels))


def to_pull_request(raw_mr: RawMergeRequest | dict[str, Any]) -> forge.PullRequest:
    """The port's view of a GitLab merge request JSON object.

    A merged MR's commit on the target branch is ``merge_commit_sha``; a squash with
    fast-forward leaves that empty and sets ``squash_commit_sha``; a plain fast-forward sets
    neither, and the source ``sha`` itself is what landed.
    """
    raw = cast(RawMergeRequest, raw_mr)
    gitlab_state = raw.get("state")
    state: forge.PullRequestState = (
        "merged" if gitlab_state == "merged" else "open" if gitlab_state in OPEN_STATES else "closed")
    merge_commit = None
    if state == "merged":
        merge_commit = raw.get("merge_commit_sha") or raw.get("squash_commit_sha") or raw.get("sha")
    return forge.PullRequest(
        number=int(raw["iid"]), url=raw.get("web_url", ""), state=state,
        head_branch=raw.get("source_branch", ""), base_branch=raw.get("target_branch", ""),
        title=raw.get("title", ""), body=raw.get("description") or "",
        head_sha=raw.get("sha") or None, merge_commit=merge_commit or None,
        labels=tuple(_label_name(label) for label in raw.get("labels", [])))


def _label_name(label: Any) -> str:
    # ``with_labels_details=true`` turns labels into objects; accept both forms
    return str(label.get("name", "")) if isinstance(label, dict) else str(label)
