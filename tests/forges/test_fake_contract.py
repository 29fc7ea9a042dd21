"""The fakes answer what the real hosts document, checked two ways.

1. A real client, python-gitlab, drives the GitLab fake: it creates, lists across pages, edits and
   closes merge requests, and gets GitLab's own exception types for 401, 404 and the 409 conflict,
   and its own rate-limit handling honours the fake's ``Retry-After``. (Skipped where
   python-gitlab is not installed; it is a test-only dependency.)
2. Each fake's pull-request JSON, list headers and error bodies validate against a JSON schema
   written from the host's documentation for the fields the drivers read (see each schema's
   ``$comment``), so a fake cannot drift into a shape the real host would never send.
"""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]  # stubs are not a test dependency
import pytest
import requests

from tests.forges.conftest import FAKES, ForgeEnv
from tests.forges.fakes.base import GOOD_TOKEN, FakeForge

STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NULLABLE_STR = {"type": ["string", "null"]}
NAMED_LABELS = {"type": "array", "items": {"type": "object", "required": ["name"],
                                           "properties": {"name": STR}}}


def _obj(required: dict[str, Any], comment: str) -> dict[str, Any]:
    return {"$comment": comment, "type": "object", "required": sorted(required),
            "properties": required}


BRANCH = _obj({"ref": STR, "sha": STR}, "head/base branch info")
PULL_SCHEMAS: dict[str, dict[str, Any]] = {
    "github": _obj({
        "number": INT, "html_url": STR, "state": {"enum": ["open", "closed"]}, "title": STR,
        "body": NULLABLE_STR, "head": {**BRANCH, "required": ["label", "ref", "sha"]},
        "base": BRANCH, "merged": BOOL, "merged_at": NULLABLE_STR, "merge_commit_sha": NULLABLE_STR,
        "labels": NAMED_LABELS}, "docs.github.com/rest/pulls/pulls#get-a-pull-request"),
    "gitlab": _obj({
        "iid": INT, "web_url": STR, "state": {"enum": ["opened", "closed", "locked", "merged"]},
        "title": STR, "description": NULLABLE_STR, "source_branch": STR, "target_branch": STR,
        "sha": NULLABLE_STR, "merge_commit_sha": NULLABLE_STR, "squash_commit_sha": NULLABLE_STR,
        "labels": {"type": "array", "items": STR}},
        "docs.gitlab.com/api/merge_requests#get-single-mr"),
    "gitea": _obj({
        "number": INT, "html_url": STR, "state": {"enum": ["open", "closed"]}, "title": STR,
        "body": STR, "head": BRANCH, "base": BRANCH, "merged": BOOL,
        "merge_commit_sha": NULLABLE_STR, "labels": {**NAMED_LABELS, "type": ["array", "null"]}},
        "Gitea modules/structs/pull.go PullRequest (swagger #/definitions/PullRequest)"),
}
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "github": _obj({"message": STR, "documentation_url": STR},
                   "docs.github.com/rest/using-the-rest-api/troubleshooting-the-rest-api"),
    "gitlab": {"$comment": "lib/api/helpers.rb render_api_error!: message is a string or list",
               "type": "object", "required": ["message"],
               "properties": {"message": {"type": ["string", "array"]}}},
    "gitea": _obj({"message": STR, "url": STR},
                  "services/context/api.go APIError (swagger #/responses/error)"),
}
LIST_PATHS = {"github": "/repos/acme/config/pulls", "gitlab": "/projects/acme%2Fconfig/merge_requests",
              "gitea": "/repos/acme/config/pulls"}
AUTH = {"github": {"Authorization": f"Bearer {GOOD_TOKEN}"},
        "gitlab": {"PRIVATE-TOKEN": GOOD_TOKEN},
        "gitea": {"Authorization": f"token {GOOD_TOKEN}"}}


def _get(env: ForgeEnv, path: str, *, token: bool = True,
         params: dict[str, Any] | None = None) -> requests.Response:
    return requests.get(env.fake.url + path, params=params, timeout=5,
                        headers=AUTH[env.kind] if token else {})


def test_pull_request_json_has_the_documented_shape(env: ForgeEnv) -> None:
    """Open, labelled, closed and merged pull requests all match the documented fields."""
    fake: FakeForge = env.fake
    fake.seed_pull("a", labels=["reconciler"])
    fake.close(fake.seed_pull("b").number)
    fake.merge(fake.seed_pull("c").number)
    for number in (1, 2, 3):
        answer = _get(env, f"{LIST_PATHS[env.kind]}/{number}")
        assert answer.status_code == 200
        jsonschema.validate(answer.json(), PULL_SCHEMAS[env.kind])
    listing = _get(env, LIST_PATHS[env.kind], params={"state": "all"})
    assert len(listing.json()) == 3


def test_error_bodies_have_the_documented_shape(env: ForgeEnv) -> None:
    """401, 404 and "already exists" bodies are shaped as the host documents them."""
    unauthorized = _get(env, LIST_PATHS[env.kind], token=False)
    missing = _get(env, f"{LIST_PATHS[env.kind]}/404")
    assert (unauthorized.status_code, missing.status_code) == (401, 404)
    for answer in (unauthorized, missing):
        jsonschema.validate(answer.json(), ERROR_SCHEMAS[env.kind])
    env.fake.seed_pull("h")
    body = ({"source_branch": "h", "target_branch": "main", "title": "t"} if env.kind == "gitlab"
            else {"head": "h", "base": "main", "title": "t"})
    conflict = requests.post(env.fake.url + LIST_PATHS[env.kind], json=body, timeout=5,
                             headers=AUTH[env.kind])
    assert conflict.status_code == {"github": 422, "gitlab": 409, "gitea": 409}[env.kind]
    jsonschema.validate(conflict.json(), ERROR_SCHEMAS[env.kind])
    assert "already exists" in str(conflict.json())


def test_list_pagination_headers_are_documented_ones(env: ForgeEnv) -> None:
    """Lists page with ``Link`` (all), ``X-Next-Page``/``X-Total`` (GitLab), ``X-Total-Count`` (Gitea)."""
    for i in range(5):
        env.fake.seed_pull(f"b{i}")
    size = {"github": "per_page", "gitlab": "per_page", "gitea": "limit"}[env.kind]
    answer = _get(env, LIST_PATHS[env.kind], params={size: 2})
    assert len(answer.json()) == 2 and answer.links["next"]["url"].startswith(env.fake.root)
    if env.kind == "gitlab":
        assert (answer.headers["X-Next-Page"], answer.headers["X-Total"]) == ("2", "5")
    if env.kind == "gitea":
        assert answer.headers["X-Total-Count"] == "5"
    last = requests.get(answer.links["last"]["url"], headers=AUTH[env.kind], timeout=5)
    assert len(last.json()) == 1 and "next" not in last.links


# -- python-gitlab against the GitLab fake ------------------------------------------------------


@pytest.fixture
def gl(gitlab_env: ForgeEnv, monkeypatch: pytest.MonkeyPatch) -> Any:
    gitlab = pytest.importorskip("gitlab")
    slept: list[float] = []
    monkeypatch.setattr(gitlab.utils.time, "sleep", slept.append)
    client = gitlab.Gitlab(gitlab_env.fake.root, private_token=GOOD_TOKEN)
    client.slept = slept
    return client


def test_python_gitlab_creates_lists_edits_and_closes(gl: Any, gitlab_env: ForgeEnv) -> None:
    """GitLab's own Python client works against the fake end to end."""
    project = gl.projects.get("acme/config", lazy=True)
    mr = project.mergerequests.create({"source_branch": "reconciler/x", "target_branch": "main",
                                       "title": "t", "labels": "reconciler,customer"})
    assert (mr.iid, mr.state, sorted(mr.labels)) == (1, "opened", ["customer", "reconciler"])
    for i in range(25):
        gitlab_env.fake.seed_pull(f"other-{i}")
    everything = project.mergerequests.list(state="opened", per_page=10, get_all=True)
    assert len(everything) == 26  # followed Link rel="next" over three pages
    mr.title = "t2"
    mr.save()
    mr.state_event = "close"
    mr.save()
    again = project.mergerequests.get(1)
    assert (again.title, again.state, again.web_url) == ("t2", "closed", mr.web_url)


def test_python_gitlab_sees_gitlabs_errors(gl: Any, gitlab_env: ForgeEnv) -> None:
    """401, 404 and the 409 conflict map to python-gitlab's exception types and messages."""
    import gitlab

    project = gl.projects.get("acme/config", lazy=True)
    project.mergerequests.create({"source_branch": "h", "target_branch": "main", "title": "t"})
    with pytest.raises(gitlab.GitlabCreateError) as conflict:
        project.mergerequests.create({"source_branch": "h", "target_branch": "main", "title": "t"})
    assert conflict.value.response_code == 409
    assert "Another open merge request already exists for this source branch: !1" in str(
        conflict.value.error_message)
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.mergerequests.get(99)
    assert missing.value.response_code == 404
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gitlab.Gitlab(gitlab_env.fake.root, private_token="nope").projects.get(
            "acme/config", lazy=True).mergerequests.list(get_all=False)


def test_python_gitlab_obeys_the_fakes_rate_limit(gl: Any, gitlab_env: ForgeEnv) -> None:
    """python-gitlab's own 429 handling reads the fake's ``Retry-After`` and retries."""
    gitlab_env.fake.rate_limited(11)
    assert gl.projects.get("acme/config", lazy=True).mergerequests.list(get_all=False) == []
    assert gl.slept == [11]


def test_every_fake_is_exercised() -> None:
    """The schemas cover each fake the driver tests use."""
    assert set(PULL_SCHEMAS) == set(ERROR_SCHEMAS) == set(FAKES)
