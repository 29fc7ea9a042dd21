"""A fake of GitLab's REST API v4 merge-request endpoints (docs.gitlab.com/api/merge_requests).

Reproduces: ``:id`` as URL-encoded path or numeric id; ``PRIVATE-TOKEN`` or ``Authorization:
Bearer``; 401 ``{"message": "401 Unauthorized"}``; 404 ``{"message": "404 Project Not Found"}``
and ``{"message": "404 Not found"}``; 409 ``{"message": ["Another open merge request already
exists for this source branch: !N"]}``; offset pagination headers (``X-Page``, ``X-Per-Page``,
``X-Next-Page`` empty on the last page, ``X-Total``, ``X-Total-Pages``, ``Link``); list ``state``
defaulting to all; and the Rack::Attack throttle (429, plain text "Retry later",
``Retry-After``, ``RateLimit-*``).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from tests.forges.fakes.base import NOW, FakeForge, Fault, Pull, Recorded, Reply, first

PROJECT_ID = 42
_MRS = re.compile(r"^/projects/([^/]+)/merge_requests(?:/(\d+))?$")
_STATES = {"opened", "closed", "locked", "merged", "all"}


class FakeGitLab(FakeForge):
    api_prefix = "/api/v4"

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        return (headers.get("private-token") in self.valid_tokens
                or (scheme.lower() == "bearer" and bearer in self.valid_tokens))

    def unauthorized(self) -> Reply:
        return Reply(401, {"message": "401 Unauthorized"})

    def rate_limited(self, seconds: float, *, times: int = 1) -> Fault:
        return self.fail(429, times=times, body="Retry later\n", headers={
            "Retry-After": str(int(seconds)), "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": "60", "RateLimit-Observed": "67", "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(NOW + seconds)),
            "RateLimit-ResetTime": "Tue, 14 Nov 2023 22:14:20 GMT"})

    def route(self, request: Recorded) -> Reply:
        match = _MRS.match(request.path[len(self.api_prefix):])
        if match is None:
            return Reply(404, {"error": "404 Not Found"})
        project = urllib.parse.unquote(match.group(1))
        if project not in (f"{self.owner}/{self.name}", str(PROJECT_ID)):
            return Reply(404, {"message": "404 Project Not Found"})
        iid = match.group(2)
        if iid is None:
            return self._list(request) if request.method == "GET" else self._create(request)
        return self._one(request, int(iid))

    def _list(self, request: Recorded) -> Reply:
        state = first(request.query, "state") or "all"
        if state not in _STATES:
            return Reply(400, {"error": "state does not have a valid value"})
        source, target = first(request.query, "source_branch"), first(request.query, "target_branch")
        with self.store.lock:
            mrs = sorted(self.store.pulls.values(), key=lambda p: -p.created)
            mrs = [p for p in mrs if state == "all" or _state(p) == state]
            if self.honour_filters and source:
                mrs = [p for p in mrs if p.head == source]
            if self.honour_filters and target:
                mrs = [p for p in mrs if p.base == target]
            items, page, size, last = self.page_of(mrs, request, default_size=20,
                                                   size_param="per_page")
            body = [self.to_json(p) for p in items]
            total = len(mrs)
        headers = {"X-Page": str(page), "X-Per-Page": str(size), "X-Total": str(total),
                   "X-Total-Pages": str(last), "X-Next-Page": str(page + 1) if page < last else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else ""}
        link = self.link_header(request, page, last, rels=("prev", "next", "first", "last"))
        if link:
            headers["Link"] = link
        return Reply(200, body, headers)

    def _create(self, request: Recorded) -> Reply:
        data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        for required in ("source_branch", "target_branch", "title"):
            if not data.get(required):
                return Reply(400, {"error": f"{required} is missing"})
        source, target = str(data["source_branch"]), str(data["target_branch"])
        with self.store.lock:
            existing = self.store.open_pull(source, target)
            if existing is not None:
                return Reply(409, {"message": [
                    f"Another open merge request already exists for this source branch: "
                    f"!{existing.number}"]})
            mr = self.store.add_pull(head=source, base=target, title=str(data["title"]),
                                     body=str(data.get("description") or ""),
                                     labels=_labels(data.get("labels")))
            return Reply(201, self.to_json(mr))

    def _one(self, request: Recorded, iid: int) -> Reply:
        with self.store.lock:
            mr = self.store.pulls.get(iid)
            if mr is None:
                return Reply(404, {"message": "404 Not found"})
            if request.method == "PUT":
                data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
                mr.title = str(data.get("title", mr.title))
                mr.body = str(data.get("description", mr.body) or "")
                if "labels" in data:
                    mr.labels = _labels(data["labels"])
                for label in _labels(data.get("add_labels")):
                    if label not in mr.labels:
                        mr.labels.append(label)
                removed = set(_labels(data.get("remove_labels")))
                mr.labels = [label for label in mr.labels if label not in removed]
                event = data.get("state_event")
                if event in ("close", "reopen") and not mr.merged:
                    mr.state = "closed" if event == "close" else "open"
            elif request.method != "GET":
                return Reply(405, {"error": "405 Not Allowed"})
            return Reply(200, self.to_json(mr))

    def to_json(self, mr: Pull) -> dict[str, Any]:
        project = f"{self.owner}/{self.name}"
        return {
            "id": 5000 + mr.number, "iid": mr.number, "project_id": PROJECT_ID,
            "title": mr.title, "description": mr.body, "state": _state(mr),
            "created_at": "2024-01-01T00:00:00.000Z", "updated_at": "2024-01-01T00:00:00.000Z",
            "merged_at": "2024-01-02T03:04:05.000Z" if mr.merged else None,
            "closed_at": None, "target_branch": mr.base, "source_branch": mr.head,
            "source_project_id": PROJECT_ID, "target_project_id": PROJECT_ID,
            "author": {"id": 1, "username": "reconciler-bot"}, "labels": list(mr.labels),
            "draft": False, "work_in_progress": False, "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
            "sha": mr.head_sha, "merge_commit_sha": mr.merge_commit, "squash_commit_sha": None,
            "squash": False, "references": {"short": f"!{mr.number}", "full": f"{project}!{mr.number}"},
            "web_url": f"{self.root}/{project}/-/merge_requests/{mr.number}",
        }


def _state(mr: Pull) -> str:
    return "merged" if mr.merged else "opened" if mr.state == "open" else "closed"


def _labels(value: Any) -> list[str]:
    """GitLab's ``labels``: a comma-separated string, or an array."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))
