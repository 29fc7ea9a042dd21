"""GitHub-only behaviour: its query form, label endpoint and its two kinds of rate limit."""

from __future__ import annotations

import pytest

from reconciler.adapters.forges import github, http
from reconciler.core import errors
from reconciler.ports import forge
from tests.forges.conftest import ForgeEnv
from tests.forges.fakes.github import FakeGitHub

SPEC = forge.PullRequestSpec(head_branch="reconciler/preview/pr-7", base_branch="main",
                             title="Preview pr-7", body="b", labels=("reconciler",))


def fake_of(env: ForgeEnv) -> FakeGitHub:
    assert isinstance(env.fake, FakeGitHub)
    return env.fake


def test_list_query_uses_owner_qualified_head_and_base(github_env: ForgeEnv) -> None:
    """The search asks for ``head=owner:branch``, ``base`` and open pull requests, 100 a page."""
    github_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    [listing] = github_env.fake.calls("GET", "/pulls")
    assert listing.path == "/api/v3/repos/acme/config/pulls"
    assert listing.query == {"state": ["open"], "head": ["acme:reconciler/preview/pr-7"],
                             "base": ["main"], "per_page": ["100"]}


def test_labels_go_through_the_issues_endpoint(github_env: ForgeEnv) -> None:
    """Labels are added with POST /issues/{n}/labels after the pull request is created."""
    pull = github_env.driver().open_pull_request(SPEC)
    [label_call] = github_env.fake.calls("POST", "/labels")
    assert label_call.path == f"/api/v3/repos/acme/config/issues/{pull.number}/labels"
    assert label_call.body == {"labels": ["reconciler"]}
    assert github_env.fake.calls("POST", "/pulls")[0].body == {
        "title": "Preview pr-7", "head": SPEC.head_branch, "base": "main", "body": "b",
        "maintainer_can_modify": False}


def test_api_version_and_media_type_are_sent(github_env: ForgeEnv) -> None:
    """Requests pin the REST API version and ask for GitHub's JSON media type."""
    github_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    headers = github_env.fake.requests[0].headers
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["accept"] == "application/vnd.github+json"


def test_secondary_rate_limit_honours_retry_after(github_env: ForgeEnv) -> None:
    """A secondary limit (429 + retry-after) is waited out for the seconds it names."""
    fake_of(github_env).secondary_rate_limited(17)
    assert github_env.driver().find_open_pull_request(SPEC.head_branch, "main") is None
    [wait] = github_env.sleeps
    assert 17 <= wait <= 18


def test_secondary_rate_limit_without_retry_after_waits_a_minute(github_env: ForgeEnv) -> None:
    """Without headers GitHub asks clients to wait at least a minute before retrying."""
    fake_of(github_env).secondary_rate_limited(None, status=403)
    github_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    [wait] = github_env.sleeps
    assert 60 <= wait <= 61


def test_forbidden_that_is_not_a_rate_limit_is_an_auth_error(github_env: ForgeEnv) -> None:
    """403 "Resource not accessible by integration" is a permission problem, not retried."""
    github_env.fake.fail(403, body={"message": "Resource not accessible by integration",
                                    "documentation_url": "https://docs.github.com/rest"})
    with pytest.raises(forge.ForgeAuthError, match="Resource not accessible by integration"):
        github_env.driver().open_pull_request(SPEC)
    assert github_env.sleeps == []


def test_no_commits_between_branches_is_not_mistaken_for_already_exists(
        github_env: ForgeEnv) -> None:
    """Only the "already exists" 422 is resolved; another validation failure propagates."""
    github_env.fake.fail(422, method="POST", body={"message": "Validation Failed", "errors": [
        {"resource": "PullRequest", "code": "custom",
         "message": "No commits between main and reconciler/preview/pr-7"}]})
    with pytest.raises(forge.ForgeError, match="No commits between"):
        github_env.driver().open_pull_request(SPEC)


def test_already_exists_but_none_open_is_a_temporary_race(github_env: ForgeEnv) -> None:
    """"Already exists" followed by no open one (closed meanwhile) is worth retrying later."""
    github_env.fake.seed_pull(SPEC.head_branch, "main")
    github_env.fake.fail(200, body=[], method="GET", path_contains="/pulls", times=2)
    with pytest.raises(http.ForgeRaceError, match="already exists") as raised:
        github_env.driver().open_pull_request(SPEC)
    assert isinstance(raised.value, errors.TemporaryError)


def test_list_items_without_merged_flag_read_merged_at() -> None:
    """List items carry ``merged_at`` but no ``merged``; either marks a merged pull request."""
    pull = github.to_pull_request({"number": 3, "state": "closed", "merged_at": "2024-01-02T00:00:00Z",
                                   "merge_commit_sha": "abc", "head": {"ref": "h"},
                                   "base": {"ref": "main"}, "body": None})
    assert (pull.state, pull.merge_commit, pull.body) == ("merged", "abc", "")


def test_open_pull_request_merge_commit_is_not_reported() -> None:
    """While open, ``merge_commit_sha`` is GitHub's test merge and is not a merge commit."""
    pull = github.to_pull_request({"number": 3, "state": "open", "merged": False,
                                   "merge_commit_sha": "test-merge", "head": {}, "base": {}})
    assert pull.state == "open" and pull.merge_commit is None
