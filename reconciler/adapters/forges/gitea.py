"""The Gitea/Forgejo driver of the forge port: pull requests through API v1.

Owns: pull requests of one ``owner/name`` repository on Gitea or Forgejo, and the repository
labels they need. Must not: retry, sleep or build error messages itself (``http.ForgeClient``
does), or remove labels a human added.

Endpoints (the swagger comments of Gitea's ``routers/api/v1/repo/pull.go`` and ``label.go``,
served at ``/api/swagger``):

- ``GET /repos/{owner}/{repo}/pulls?state=open&base_branch={base}&limit=50&page=N`` "List a
  repo's pull requests": no head filter exists, so head and base are matched here;
  ``base_branch`` only narrows the list on releases that know it (older ones ignore it). Pages
  via ``Link: rel="next"`` and ``X-Total-Count``; at most 50 per page by default.
  ``GET /repos/{owner}/{repo}/pulls/{base}/{head}`` is not used: it returns the first pull
  request ever opened for those branches, in any state, so a closed one hides the open one.
- ``GET /repos/{owner}/{repo}/pulls/{index}`` "Get a pull request": ``number``, ``html_url``,
  ``state`` open/closed, ``merged``, ``merge_commit_sha``, ``head.ref``/``head.sha``,
  ``base.ref``, ``labels[].name``.
- ``POST /repos/{owner}/{repo}/pulls`` "Create a pull request": ``labels`` are label IDs; 201.
  When an unmerged one exists for the same branches, 409 ``{"message": "pull request already
  exists for these targets [id: 7, issue_id: 3, head_repo_id: 1, base_repo_id: 1, head_branch:
  h, base_branch: b]", "url": ".../api/swagger"}``; ``issue_id`` is the pull request's number.
- ``PATCH /repos/{owner}/{repo}/pulls/{index}`` "Update a pull request": title, body,
  ``state: "closed"``; answers 201; 412 once merged.
- ``GET /repos/{owner}/{repo}/labels`` and ``POST /repos/{owner}/{repo}/labels`` (``name``,
  ``color`` ``#rrggbb``): labels are looked up by name and created when missing, as Gitea takes
  IDs only (names in ``IssueLabelsOption`` arrived late; IDs work on every release).
- ``POST /repos/{owner}/{repo}/issues/{index}/labels`` ``{"labels": [ids]}``: adds labels.

Auth: ``Authorization: token <token>``; a bad token is 401 ``{"message": "invalid username,
password or token"}``; missing things are 404 ``{"message": "not found"}`` (older releases:
"The target couldn't be found."). Kargo's ``pkg/gitprovider/gitea`` resolves label names the
same way but fails on a missing label; this driver creates it.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict, cast

from reconciler.adapters.forges import http
from reconciler.core import errors
from reconciler.ports import forge

PER_PAGE = 50
NEW_LABEL_COLOR = "#ededed"
_EXISTING_NUMBER = re.compile(r"already exists.*?issue_id: (\d+)")


class RawRef(TypedDict, total=False):
    ref: str
    sha: str


class RawLabel(TypedDict, total=False):
    id: int
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
    merge_commit_sha: str | None
    labels: list[RawLabel] | None


def auth_header(token: str) -> tuple[str, str]:
    return "Authorization", f"token {token}"


class GiteaForge:
    """Pull requests of ``owner/name`` on Gitea or Forgejo."""

    def __init__(self, *, client: http.ForgeClient, repo: str) -> None:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise errors.UserInputError(f"Gitea repository must be owner/name: {repo!r}")
        self._client = client
        self._repo = f"/repos/{owner}/{name}"

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> forge.PullRequest | None:
        raw_pull = self._find_open(head_branch, base_branch)
        return to_pull_request(raw_pull) if raw_pull is not None else None

    def find_pull_requests(self, head_branch: str, base_branch: str) -> list[forge.PullRequest]:
        params: dict[str, str | int] = {"state": "all", "base_branch": base_branch,
                                        "limit": PER_PAGE, "page": 1}
        found = [to_pull_request(raw_pull)
                 for page in self._client.iter_pages(f"{self._repo}/pulls", params=params)
                 for raw_pull in cast(list[RawPull], page)
                 if _is_for(raw_pull, head_branch, base_branch, any_state=True)]
        return sorted(found, key=lambda p: -p.number)

    def get_pull_request(self, number: int) -> forge.PullRequest:
        return to_pull_request(self._get(number))

    def open_pull_request(self, spec: forge.PullRequestSpec) -> forge.PullRequest:
        raw_pull = self._find_open(spec.head_branch, spec.base_branch)
        if raw_pull is None:
            label_ids = self._label_ids(spec.labels)
            try:
                return to_pull_request(self._client.send_json("POST", f"{self._repo}/pulls", {
                    "head": spec.head_branch, "base": spec.base_branch, "title": spec.title,
                    "body": spec.body, "labels": label_ids}))
            except http.ForgeRequestError as exc:
                if exc.status not in (409, 422) or "already exists" not in exc.host_message:
                    raise
                raw_pull = self._existing_after_conflict(exc, spec)
        return self._bring_up_to_date(raw_pull, spec)

    def update_pull_request(self, number: int, spec: forge.PullRequestSpec) -> forge.PullRequest:
        raw_pull = self._patch(number, {"title": spec.title, "body": spec.body})
        return self._add_labels(raw_pull, spec.labels)

    def close_pull_request(self, number: int) -> forge.PullRequest:
        raw_pull = self._get(number)
        if raw_pull.get("state") != "open" or raw_pull.get("merged"):
            return to_pull_request(raw_pull)
        return to_pull_request(self._patch(number, {"state": "closed"}))

    # -- internals -------------------------------------------------------------------------------

    def _get(self, number: int) -> RawPull:
        return cast(RawPull, self._client.get_json(f"{self._repo}/pulls/{number}"))

    def _patch(self, number: int, body: dict[str, Any]) -> RawPull:
        return cast(RawPull, self._client.send_json("PATCH", f"{self._repo}/pulls/{number}", body))

    def _find_open(self, head_branch: str, base_branch: str) -> RawPull | None:
        params: dict[str, str | int] = {"state": "open", "base_branch": base_branch,
                                        "limit": PER_PAGE, "page": 1}
        for page in self._client.iter_pages(f"{self._repo}/pulls", params=params):
            for raw_pull in cast(list[RawPull], page):
                if _is_for(raw_pull, head_branch, base_branch):
                    return raw_pull
        return None

    def _existing_after_conflict(self, exc: http.ForgeRequestError,
                                 spec: forge.PullRequestSpec) -> RawPull:
        """The pull request Gitea's 409 names (``issue_id: N``), else a new search's."""
        named = _EXISTING_NUMBER.search(exc.host_message)
        if named:
            raw_pull = self._get(int(named.group(1)))
            if _is_for(raw_pull, spec.head_branch, spec.base_branch):
                return raw_pull
        found = self._find_open(spec.head_branch, spec.base_branch)
        if found is None:
            raise http.ForgeRaceError(
                f"Gitea at {self._client.host} says a pull request from {spec.head_branch} "
                f"already exists, but none is open into {spec.base_branch}") from exc
        return found

    def _bring_up_to_date(self, raw_pull: RawPull, spec: forge.PullRequestSpec) -> forge.PullRequest:
        """Patch only what differs: an unchanged pull request costs no write."""
        if raw_pull.get("title") != spec.title or (raw_pull.get("body") or "") != spec.body:
            raw_pull = self._patch(raw_pull["number"], {"title": spec.title, "body": spec.body})
        return self._add_labels(raw_pull, spec.labels)

    def _add_labels(self, raw_pull: RawPull, labels: tuple[str, ...]) -> forge.PullRequest:
        pull = to_pull_request(raw_pull)
        missing = tuple(label for label in dict.fromkeys(labels) if label not in pull.labels)
        if not missing:
            return pull
        raw_labels = cast(list[RawLabel], self._client.send_json(
            "POST", f"{self._repo}/issues/{pull.number}/labels", {"labels": self._label_ids(missing)}))
        return to_pull_request({**raw_pull, "labels": raw_labels})

    def _label_ids(self, names: tuple[str, ...]) -> list[int]:
        """IDs of the repository labels with these names, creating the missing ones."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        known: dict[str, int] = {}
        params: dict[str, str | int] = {"limit": PER_PAGE, "page": 1}
        for page in self._client.iter_pages(f"{self._repo}/labels", params=params):
            for raw_label in cast(list[RawLabel], page):
                known.setdefault(raw_label.get("name", ""), int(raw_label.get("id", 0)))
        for name in wanted:
            if name not in known:
                raw_label = cast(RawLabel, self._client.send_json(
                    "POST", f"{self._repo}/labels", {"name": name, "color": NEW_LABEL_COLOR}))
                known[name] = int(raw_label["id"])
        return [known[name] for name in wanted]


def _is_for(raw_pull: RawPull, head_branch: str, base_branch: str, *,
            any_state: bool = False) -> bool:
    return ((any_state or (raw_pull.get("state") == "open" and not raw_pull.get("merged")))
            and (raw_pull.get("head") or {}).get("ref") == head_branch
            and (raw_pull.get("base") or {}).get("ref") == base_branch)


def to_pull_request(raw_pull: RawPull | dict[str, Any]) -> forge.PullRequest:
    """The port's view of a Gitea pull request JSON object."""
    raw = cast(RawPull, raw_pull)
    merged = bool(raw.get("merged"))
    state: forge.PullRequestState = "merged" if merged else (
        "open" if raw.get("state") == "open" else "closed")
    head, base = raw.get("head") or {}, raw.get("base") or {}
    return forge.PullRequest(
        number=int(raw["number"]), url=raw.get("html_url", ""), state=state,
        head_branch=head.get("ref", ""), base_branch=base.get("ref", ""),
        title=raw.get("title", ""), body=raw.get("body") or "",
        head_sha=head.get("sha") or None,
        merge_commit=(raw.get("merge_commit_sha") or None) if merged else None,
        labels=tuple(label.get("name", "") for label in raw.get("labels") or []))
