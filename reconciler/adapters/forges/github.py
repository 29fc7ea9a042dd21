"""The GitHub driver of the forge port (REST API, version 2022-11-28; GitHub Enterprise alike).

Owns: pull requests of one repository on GitHub through the documented REST endpoints below.
Must not: retry, sleep or build error messages itself (``http.ForgeClient`` does), or remove
labels a human added.

Endpoints (docs.github.com/rest/pulls/pulls and docs.github.com/rest/issues/labels):

- ``GET /repos/{owner}/{repo}/pulls?state=open&head={owner}:{branch}&base={base}&per_page=100``
  "List pull requests": ``head`` must be ``user:ref-name``; pages via ``Link: rel="next"``. List
  items carry ``merged_at`` but not ``merged``.
- ``GET /repos/{owner}/{repo}/pulls/{pull_number}`` "Get a pull request": ``state`` open/closed,
  ``merged``, ``merged_at``, ``merge_commit_sha`` (a test-merge commit while open, so only read
  once merged), ``head.ref``/``head.sha``, ``base.ref``, ``html_url``, ``labels[].name``.
- ``POST /repos/{owner}/{repo}/pulls`` "Create a pull request": 201; when one is open for the same
  head and base, 422 ``{"message": "Validation Failed", "errors": [{"resource": "PullRequest",
  "code": "custom", "message": "A pull request already exists for owner:branch."}]}``.
- ``PATCH /repos/{owner}/{repo}/pulls/{pull_number}`` "Update a pull request": title, body,
  ``state: "closed"``.
- ``POST /repos/{owner}/{repo}/issues/{issue_number}/labels`` "Add labels to an issue" (a pull
  request is an issue): adds names, answers the issue's full label list; GitHub creates a label
  that does not exist yet (grey, github/docs#35718) when the token may push.

Auth: ``Authorization: Bearer <token>``; a bad token is 401 ``{"message": "Bad credentials"}``.
Kargo's ``pkg/gitprovider/github`` uses the same list/create/add-labels calls; unlike Kargo, an
existing open pull request is found first and updated instead of failing on the 422.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from reconciler.adapters.forges import http
from reconciler.core import errors
from reconciler.ports import forge

API_VERSION = "2022-11-28"
PER_PAGE = 100


class RawRef(TypedDict, total=False):
    ref: str
    sha: str
    label: str


class RawLabel(TypedDict, total=False):
    name: str


class RawPull(TypedDict, total=False):
    number: int
    html_url: str
    state: str
    title: str
    body: str | None
    head: RawRef
    base: RawRef
    merged: bool
    merged_at: str | None
    merge_commit_sha: str | None
    labels: list[RawLabel]


def auth_header(token: str) -> tuple[str, str]:
    return "Authorization", f"Bearer {token}"


EXTRA_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}


class GitHubForge:
    """Pull requests of ``owner/name`` on GitHub."""

    def __init__(self, *, client: http.ForgeClient, repo: str) -> None:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise errors.UserInputError(f"GitHub repository must be owner/name: {repo!r}")
        self._client = client
        self._owner = owner
        self._pulls = f"/repos/{owner}/{name}/pulls"
        self._issues = f"/repos/{owner}/{name}/issues"

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> forge.PullRequest | None:
        raw_pull = self._find_open(head_branch, base_branch)
        return to_pull_request(raw_pull) if raw_pull is not None else None

    def find_pull_requests(self, head_branch: str, base_branch: str) -> list[forge.PullRequest]:
        params: dict[str, str | int] = {"state": "all", "head": f"{self._owner}:{head_branch}",
                                        "base": base_branch, "per_page": PER_PAGE}
        found = [to_pull_request(raw_pull)
                 for page in self._client.iter_pages(self._pulls, params=params)
                 for raw_pull in cast(list[RawPull], page)
                 if self._is_for(raw_pull, head_branch, base_branch, any_state=True)]
        return sorted(found, key=lambda p: -p.number)

    def get_pull_request(self, number: int) -> forge.PullRequest:
        return to_pull_request(self._get(number))

    def open_pull_request(self, spec: forge.PullRequestSpec) -> forge.PullRequest:
        raw_pull = self._find_open(spec.head_branch, spec.base_branch)
        if raw_pull is None:
            try:
                raw_pull = cast(RawPull, self._client.send_json("POST", self._pulls, {
                    "title": spec.title, "head": spec.head_branch, "base": spec.base_branch,
                    "body": spec.body, "maintainer_can_modify": False}))
            except http.ForgeRequestError as exc:
                if exc.status != 422 or "already exists" not in exc.host_message:
                    raise
                raw_pull = self._find_open(spec.head_branch, spec.base_branch)
                if raw_pull is None:
                    raise http.ForgeRaceError(
                        f"GitHub at {self._client.host} says a pull request from "
                        f"{spec.head_branch} already exists, but none is open into "
                        f"{spec.base_branch}") from exc
        return self._bring_up_to_date(raw_pull, spec)

    def update_pull_request(self, number: int, spec: forge.PullRequestSpec) -> forge.PullRequest:
        raw_pull = cast(RawPull, self._client.send_json(
            "PATCH", f"{self._pulls}/{number}", {"title": spec.title, "body": spec.body}))
        return self._add_labels(raw_pull, spec.labels)

    def close_pull_request(self, number: int) -> forge.PullRequest:
        raw_pull = self._get(number)
        if raw_pull.get("state") != "open":
            return to_pull_request(raw_pull)
        return to_pull_request(cast(RawPull, self._client.send_json(
            "PATCH", f"{self._pulls}/{number}", {"state": "closed"})))

    # -- internals -------------------------------------------------------------------------------

    def _get(self, number: int) -> RawPull:
        return cast(RawPull, self._client.get_json(f"{self._pulls}/{number}"))

    def _find_open(self, head_branch: str, base_branch: str) -> RawPull | None:
        params: dict[str, str | int] = {"state": "open", "head": f"{self._owner}:{head_branch}",
                                        "base": base_branch, "per_page": PER_PAGE}
        for page in self._client.iter_pages(self._pulls, params=params):
            for raw_pull in cast(list[RawPull], page):
                if self._is_for(raw_pull, head_branch, base_branch):
                    return raw_pull
        return None

    def _is_for(self, raw_pull: RawPull, head_branch: str, base_branch: str, *,
                any_state: bool = False) -> bool:
        head = raw_pull.get("head", {})
        # ``head.label`` is "owner:branch" with the owner's own casing; a fork's differs
        owner = head.get("label", self._owner).partition(":")[0]
        return ((any_state or raw_pull.get("state") == "open") and head.get("ref") == head_branch
                and raw_pull.get("base", {}).get("ref") == base_branch
                and owner.lower() == self._owner.lower())

    def _bring_up_to_date(self, raw_pull: RawPull, spec: forge.PullRequestSpec) -> forge.PullRequest:
        """Patch only what differs: an unchanged pull request costs no write."""
        if raw_pull.get("title") != spec.title or (raw_pull.get("body") or "") != spec.body:
            raw_pull = cast(RawPull, self._client.send_json(
                "PATCH", f"{self._pulls}/{raw_pull['number']}", {"title": spec.title, "body": spec.body}))
        return self._add_labels(raw_pull, spec.labels)

    def _add_labels(self, raw_pull: RawPull, labels: tuple[str, ...]) -> forge.PullRequest:
        pull = to_pull_request(raw_pull)
        missing = [label for label in dict.fromkeys(labels) if label not in pull.labels]
        if not missing:
            return pull
        raw_labels = cast(list[RawLabel], self._client.send_json(
            "POST", f"{self._issues}/{pull.number}/labels", {"labels": missing}))
        return to_pull_request({**raw_pull, "labels": raw_labels})


def to_pull_request(raw_pull: RawPull | dict[str, Any]) -> forge.PullRequest:
    """The port's view of a GitHub pull request JSON object."""
    raw = cast(RawPull, raw_pull)
    merged = bool(raw.get("merged")) or raw.get("merged_at") is not None
    state: forge.PullRequestState = "merged" if merged else (
        "open" if raw.get("state") == "open" else "closed")
    return forge.PullRequest(
        number=int(raw["number"]), url=raw.get("html_url", ""), state=state,
        head_branch=raw.get("head", {}).get("ref", ""), base_branch=raw.get("base", {}).get("ref", ""),
        title=raw.get("title", ""), body=raw.get("body") or "",
        head_sha=raw.get("head", {}).get("sha") or None,
        merge_commit=(raw.get("merge_commit_sha") or None) if merged else None,
        labels=tuple(label.get("name", "") for label in raw.get("labels", [])))
