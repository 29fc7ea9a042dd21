"""A fake of GitHub's REST API (the Enterprise Server flavour, under ``/api/v3``).

Reproduces the documented endpoints the driver uses (docs.github.com/rest/pulls/pulls,
docs.github.com/rest/issues/labels), their status codes and error bodies: 401 "Bad credentials",
404 "Not Found", 422 "Validation Failed" with "A pull request already exists for owner:branch.",
``Link`` pagination (``per_page`` at most 100), ``x-ratelimit-*`` headers on every answer and
the primary (403 + ``x-ratelimit-remaining: 0``) and secondary (``retry-after``) rate limits.
"""

from __future__ import annotations

import re
from typing import Any

from tests.forges.fakes.base import NOW, FakeForge, Fault, Pull, Recorded, Reply, fake_sha, first

DOCS = "https://docs.github.com/rest"
_PULLS = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls(?:/(\d+))?$")
_LABELS = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/labels$")


class FakeGitHub(FakeForge):
    api_prefix = "/api/v3"

    # -- auth, rate limits -----------------------------------------------------------------------

    def authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() in ("bearer", "token") and token in self.valid_tokens

    def unauthorized(self) -> Reply:
        return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})

    def common_headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999",
                "x-ratelimit-used": "1", "x-ratelimit-reset": str(int(NOW) + 3600),
                "x-ratelimit-resource": "core", "X-GitHub-Media-Type": "github.v3; format=json"}

    def rate_limited(self, seconds: float, *, times: int = 1) -> Fault:
        """The primary limit: 403, ``x-ratelimit-remaining: 0``, reset as an epoch time."""
        return self.fail(403, times=times, headers={
            "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(NOW + seconds)), "x-ratelimit-resource": "core"},
            body={"message": "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                             "Support for help, please include the request ID.",
                  "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
                  "status": "403"})

    def secondary_rate_limited(self, retry_after: float | None, *, status: int = 429,
                               times: int = 1) -> Fault:
        headers = {"retry-after": str(int(retry_after))} if retry_after is not None else {}
        return self.fail(status, times=times, headers=headers, body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                       "before you try again.",
            "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-"
                                 "rate-limits", "status": str(status)})

    # -- routes ----------------------------------------------------------------------------------

    def route(self, request: Recorded) -> Reply:
        path = request.path[len(self.api_prefix):]
        if match := _PULLS.match(path):
            if (match.group(1), match.group(2)) != (self.owner, self.name):
                return _not_found("pulls/pulls#list-pull-requests")
            number = match.group(3)
            if number is None:
                return self._list(request) if request.method == "GET" else self._create(request)
            return self._one(request, int(number))
        if (match := _LABELS.match(path)) and request.method == "POST":
            return self._add_labels(request, int(match.group(3)))
        return _not_found("")

    def _list(self, request: Recorded) -> Reply:
        state = first(request.query, "state") or "open"
        head, base = first(request.query, "head"), first(request.query, "base")
        with self.store.lock:
            pulls = sorted(self.store.pulls.values(), key=lambda p: -p.created)
            pulls = [p for p in pulls if state in ("all", p.state)]
            if self.honour_filters and head and ":" in head:
                pulls = [p for p in pulls if f"{self.owner}:{p.head}" == head]
            if self.honour_filters and base:
                pulls = [p for p in pulls if p.base == base]
            page_items, page, _, last = self.page_of(pulls, request, default_size=30,
                                                     size_param="per_page")
            body = [self.to_json(p, in_list=True) for p in page_items]
        link = self.link_header(request, page, last)
        return Reply(200, body, {"Link": link} if link else {})

    def _create(self, request: Recorded) -> Reply:
        data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        missing = [f for f in ("title", "head", "base") if not data.get(f)]
        if missing:
            return Reply(422, {"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "field": f, "code": "missing_field"} for f in missing],
                "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request", "status": "422"})
        head = str(data["head"]).split(":", 1)[-1]
        with self.store.lock:
            if self.store.open_pull(head, str(data["base"])) is not None:
                return Reply(422, {"message": "Validation Failed", "errors": [{
                    "resource": "PullRequest", "code": "custom",
                    "message": f"A pull request already exists for {self.owner}:{head}."}],
                    "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
                    "status": "422"})
            pull = self.store.add_pull(head=head, base=str(data["base"]), title=str(data["title"]),
                                       body=str(data.get("body") or ""))
            return Reply(201, self.to_json(pull))

    def _one(self, request: Recorded, number: int) -> Reply:
        with self.store.lock:
            pull = self.store.pulls.get(number)
            if pull is None:
                return _not_found("pulls/pulls#get-a-pull-request")
            if request.method == "PATCH":
                data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
                if "state" in data and pull.merged:
                    return Reply(422, {"message": "Validation Failed", "errors": [{
                        "resource": "PullRequest", "code": "custom",
                        "message": "Cannot change the state of a merged pull request."}],
                        "status": "422"})
                pull.title = str(data.get("title", pull.title))
                pull.body = str(data.get("body", pull.body) or "")
                pull.state = str(data.get("state", pull.state))
            return Reply(200, self.to_json(pull))

    def _add_labels(self, request: Recorded, number: int) -> Reply:
        data: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        with self.store.lock:
            pull = self.store.pulls.get(number)
            if pull is None:
                return _not_found("issues/labels#add-labels-to-an-issue")
            for name in data.get("labels", []):
                self.store.ensure_label(str(name))  # GitHub creates a label it does not know
                if name not in pull.labels:
                    pull.labels.append(str(name))
            return Reply(200, [self._label(name) for name in pull.labels])

    # -- JSON ------------------------------------------------------------------------------------

    def _label(self, name: str) -> dict[str, Any]:
        label_id = self.store.ensure_label(name)
        return {"id": label_id, "node_id": f"LA_{label_id}", "name": name, "color": "ededed",
                "default": False, "description": None,
                "url": f"{self.url}/repos/{self.owner}/{self.name}/labels/{name}"}

    def to_json(self, pull: Pull, *, in_list: bool = False) -> dict[str, Any]:
        repo = {"id": 1, "name": self.name, "full_name": f"{self.owner}/{self.name}",
                "owner": {"login": self.owner}}
        merged_at = "2024-01-02T03:04:05Z" if pull.merged else None
        raw: dict[str, Any] = {
            "id": 1000 + pull.number, "node_id": f"PR_{pull.number}", "number": pull.number,
            "url": f"{self.url}/repos/{self.owner}/{self.name}/pulls/{pull.number}",
            "html_url": f"{self.root}/{self.owner}/{self.name}/pull/{pull.number}",
            "state": pull.state, "locked": False, "title": pull.title,
            "body": pull.body or None, "user": {"login": "reconciler-bot"},
            "labels": [self._label(name) for name in pull.labels],
            "head": {"label": f"{self.owner}:{pull.head}", "ref": pull.head, "sha": pull.head_sha,
                     "repo": repo},
            "base": {"label": f"{self.owner}:{pull.base}", "ref": pull.base,
                     "sha": fake_sha("base", pull.base), "repo": repo},
            "draft": False, "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "closed_at": merged_at if pull.state == "closed" else None, "merged_at": merged_at,
            # a test-merge commit while open, the real one once merged (as on GitHub)
            "merge_commit_sha": pull.merge_commit or fake_sha("test-merge", pull.number),
        }
        if not in_list:  # only "Get a pull request" carries these
            raw.update({"merged": pull.merged, "mergeable": True, "mergeable_state": "clean",
                        "comments": 0, "commits": 1})
        return raw


def _not_found(anchor: str) -> Reply:
    return Reply(404, {"message": "Not Found", "documentation_url": f"{DOCS}/{anchor}".rstrip("/"),
                       "status": "404"})
