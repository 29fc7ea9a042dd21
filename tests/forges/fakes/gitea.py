"""A fake of Gitea's (and Forgejo's) API v1 pull-request and label endpoints.

Reproduces what ``routers/api/v1/repo/pull.go`` and ``label.go`` answer: ``Authorization: token``
(or Bearer); 401 ``{"message": "invalid username, password or token", "url": ...}``; 404
``{"message": "not found", "url": ...}``; 409 "pull request already exists for these targets
[id: …, issue_id: N, …]"; ``PATCH`` answering 201, and 412 when changing a merged pull request's
state; label IDs (unknown ones silently dropped, as ``GetLabelsInRepoByIDs`` does); ``page`` and
``limit`` pagination (default 30, at most 50) with a comma-joined ``Link`` header and
``X-Total-Count``; ``base_branch`` filtering (releases that predate it ignore it: set
``honour_filters = False``). Gitea has no API rate limiter: ``rate_limited`` is what a reverse
proxy in front of it answers (429 + ``Retry-After``).
"""

from __future__ import annotations

import re
from typing import Any

from tests.forges.fakes.base import FakeForge, Fault, Pull, Recorded, Reply, fake_sha, first

_PULLS = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?$")
_REPO_LABELS = re.compile(r"^/repos/([^/]+)/([^/]+)/labels$")
_ISSUE_LABELS = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/labels$")
_COLOR = re.compile(r"^#?[0-9a-fA-F]{6}$")


class FakeGitea(FakeForge):
    api_prefix = "/api/v1"

    def __init__(self) -> None:
        super().__init__()
        self.page_size_cap = 50

    @property
    def swagger(self) -> str:
        return f"{self.root}/api/swagger"

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() in ("token", "bearer") and token in self.valid_tokens

    def unauthorized(self) -> Reply:
        return Reply(401, {"message": "invalid username, password or token", "url": self.swagger})

    def rate_limited(self, seconds: float, *, times: int = 1) -> Fault:
        return self.fail(429, times=times, body="429 Too Many Requests\n",
                         headers={"Retry-After": str(int(seconds))})

    def route(self, request: Recorded) -> Reply:
        path = request.path[len(self.api_prefix):]
        for pattern, handler in ((_PULLS, self._pulls), (_REPO_LABELS, self._repo_labels),
                                 (_ISSUE_LABELS, self._issue_labels)):
            match = pattern.match(path)
            if match is None:
                continue
            if (match.group(1), match.group(2)) != (self.owner, self.name):
                return self._not_found()
            return handler(request, match)
        return self._not_found()

    def _not_found(self) -> Reply:
        return Reply(404, {"message": "not found", "url": self.swagger})

    # -- pulls -----------------------------------------------------------------------------------

    def _pulls(self, request: Recorded, match: re.Match[str]) -> Reply:
        if match.group(3) is not None:
            return self._one(request, int(match.group(3)))
        return self._list(request) if request.method == "GET" else self._create(request)

    def _list(self, request: Recorded) -> Reply:
        state = first(request.query, "state") or "open"
        base = first(request.query, "base_branch")
        with self.store.lock:
            pulls = sorted(self.store.pulls.values(), key=lambda p: -p.created)
            pulls = [p for p in pulls if state in ("all", p.state)]
            if self.honour_filters and base:
                pulls = [p for p in pulls if p.base == base]
            items, page, _, last = self.page_of(pulls, request, default_size=30, size_param="limit")
            body = [self.to_json(p) for p in items]
            total = len(pulls)
        headers = {"X-Total-Count": str(total)}
        link = self.link_header(request, page, last, separator=",")
        if link:
            headers["Link"] = link
        return Reply(200, body, headers)

    def _create(self, request: Recorded) -> Reply:
        data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        for required in ("head", "base", "title"):
            if not data.get(required):
                return Reply(422, {"message": f"[{required.title()}]: Required", "url": self.swagger})
        head, base = str(data["head"]), str(data["base"])
        if head == base:
            return Reply(422, {"message": "Invalid PullRequest: There are no changes between the "
                                          "head and the base", "url": self.swagger})
        with self.store.lock:
            existing = self.store.open_pull(head, base)
            if existing is not None:
                return Reply(409, {"message": (
                    f"pull request already exists for these targets [id: {900 + existing.number}, "
                    f"issue_id: {existing.number}, head_repo_id: 1, base_repo_id: 1, "
                    f"head_branch: {head}, base_branch: {base}]"), "url": self.swagger})
            pull = self.store.add_pull(head=head, base=base, title=str(data["title"]),
                                       body=str(data.get("body") or ""))
            pull.labels = self._names(data.get("labels"))
            return Reply(201, self.to_json(pull))

    def _one(self, request: Recorded, number: int) -> Reply:
        with self.store.lock:
            pull = self.store.pulls.get(number)
            if pull is None:
                return self._not_found()
            if request.method == "GET":
                return Reply(200, self.to_json(pull))
            if request.method != "PATCH":
                return Reply(405, {"message": "method not allowed", "url": self.swagger})
            data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
            if data.get("title"):
                pull.title = str(data["title"])
            if data.get("body") is not None:
                pull.body = str(data["body"])
            if data.get("labels") is not None:
                pull.labels = self._names(data["labels"])
            if data.get("state") is not None:
                if pull.merged:
                    return Reply(412, {"message": "cannot change state of this pull request, it "
                                                  "was already merged", "url": self.swagger})
                pull.state = str(data["state"])
            return Reply(201, self.to_json(pull))  # Gitea answers 201 here ("TODO: 200")

    # -- labels ----------------------------------------------------------------------------------

    def _repo_labels(self, request: Recorded, match: re.Match[str]) -> Reply:
        if request.method == "POST":
            data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
            name, color = str(data.get("name") or ""), str(data.get("color") or "")
            if not name or not _COLOR.match(color):
                return Reply(422, {"message": "[Name Color]: Required", "url": self.swagger})
            with self.store.lock:
                if name in self.store.labels:  # Gitea would make a second label of that name
                    return Reply(409, {"message": "label exists", "url": self.swagger})
                return Reply(201, self._label(name))
        with self.store.lock:
            labels = sorted(self.store.labels)
            items, page, _, last = self.page_of(labels, request, default_size=30, size_param="limit")
            body = [self._label(name) for name in items]
        headers = {"X-Total-Count": str(len(labels))}
        link = self.link_header(request, page, last, separator=",")
        if link:
            headers["Link"] = link
        return Reply(200, body, headers)

    def _issue_labels(self, request: Recorded, match: re.Match[str]) -> Reply:
        with self.store.lock:
            pull = self.store.pulls.get(int(match.group(3)))
            if pull is None:
                return self._not_found()
            if request.method == "POST":
                data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
                for name in self._names(data.get("labels")):
                    if name not in pull.labels:
                        pull.labels.append(name)
            return Reply(200, [self._label(name) for name in pull.labels])

    def _names(self, ids: Any) -> list[str]:
        """Label IDs to names; IDs that are not this repository's are dropped, as Gitea does."""
        names = [self.store.label_name(int(i)) for i in ids or [] if str(i).isdigit()]
        return [name for name in names if name is not None]

    def _label(self, name: str) -> dict[str, Any]:
        label_id = self.store.ensure_label(name)
        return {"id": label_id, "name": name, "exclusive": False, "is_archived": False,
                "color": "ededed", "description": "",
                "url": f"{self.url}/repos/{self.owner}/{self.name}/labels/{label_id}"}

    # -- JSON ------------------------------------------------------------------------------------

    def to_json(self, pull: Pull) -> dict[str, Any]:
        repo = {"id": 1, "name": self.name, "full_name": f"{self.owner}/{self.name}",
                "owner": {"login": self.owner}}
        merged_at = "2024-01-02T03:04:05Z" if pull.merged else None
        return {
            "id": 900 + pull.number, "url": f"{self.root}/{self.owner}/{self.name}/pulls/{pull.number}",
            "number": pull.number, "user": {"login": "reconciler-bot"}, "title": pull.title,
            "body": pull.body, "labels": [self._label(name) for name in pull.labels],
            "milestone": None, "assignee": None, "assignees": None, "state": pull.state,
            "is_locked": False, "comments": 0,
            "html_url": f"{self.root}/{self.owner}/{self.name}/pulls/{pull.number}",
            "diff_url": f"{self.root}/{self.owner}/{self.name}/pulls/{pull.number}.diff",
            "patch_url": f"{self.root}/{self.owner}/{self.name}/pulls/{pull.number}.patch",
            "mergeable": not pull.merged, "merged": pull.merged, "merged_at": merged_at,
            "merge_commit_sha": pull.merge_commit, "merged_by": None,
            "base": {"label": pull.base, "ref": pull.base, "sha": fake_sha("base", pull.base),
                     "repo_id": 1, "repo": repo},
            "head": {"label": pull.head, "ref": pull.head, "sha": pull.head_sha, "repo_id": 1,
                     "repo": repo},
            "merge_base": fake_sha("base", pull.base), "due_date": None,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "closed_at": merged_at if pull.state == "closed" else None,
        }
