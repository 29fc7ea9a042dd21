"""Behaviour every forge driver shares, run against the GitHub, GitLab and Gitea fakes."""

from __future__ import annotations

import logging

import pytest

from reconciler.adapters.forges import http
from reconciler.ports import forge
from tests.forges.conftest import ForgeEnv
from tests.forges.fakes.base import GOOD_TOKEN

SPEC = forge.PullRequestSpec(head_branch="reconciler/customer/acme", base_branch="main",
                             title="Render customer acme", body="Changes tenants/acme/",
                             labels=("reconciler", "customer"))
LIST_PATH = {"github": "/pulls", "gitlab": "/merge_requests", "gitea": "/pulls"}


def creates(env: ForgeEnv) -> int:
    return sum(1 for r in env.fake.calls("POST") if r.path.endswith(LIST_PATH[env.kind]))


def test_open_creates_a_pull_request_with_labels(env: ForgeEnv) -> None:
    """Opening on a repository without one creates a labelled pull request on the host."""
    pull = env.driver().open_pull_request(SPEC)

    [stored] = env.fake.pulls()
    assert (stored.head, stored.base, stored.title, stored.body) == (
        SPEC.head_branch, "main", SPEC.title, SPEC.body)
    assert sorted(stored.labels) == ["customer", "reconciler"]
    assert pull.number == stored.number and pull.state == "open"
    assert sorted(pull.labels) == ["customer", "reconciler"]
    assert (pull.head_branch, pull.base_branch) == (SPEC.head_branch, "main")
    assert pull.url.startswith(env.fake.root) and str(pull.number) in pull.url
    assert pull.head_sha == stored.head_sha


def test_opening_again_reuses_and_updates_the_open_one(env: ForgeEnv) -> None:
    """A second open for the same branches updates the existing pull request: no duplicate."""
    driver = env.driver()
    first = driver.open_pull_request(SPEC)
    again = driver.open_pull_request(forge.PullRequestSpec(
        head_branch=SPEC.head_branch, base_branch="main", title="Render customer acme (v2)",
        body="Now also tenants/acme/db/", labels=("reconciler", "customer", "db")))

    [stored] = env.fake.pulls()
    assert again.number == first.number == stored.number
    assert (stored.title, stored.body) == ("Render customer acme (v2)", "Now also tenants/acme/db/")
    assert sorted(stored.labels) == ["customer", "db", "reconciler"]
    assert (again.title, again.body) == (stored.title, stored.body)
    assert creates(env) == 1


def test_reopening_an_unchanged_pull_request_writes_nothing(env: ForgeEnv) -> None:
    """Nothing to change is no write: only reads reach the host the second time."""
    driver = env.driver()
    driver.open_pull_request(SPEC)
    writes_before = len([r for r in env.fake.requests if r.method != "GET"])
    driver.open_pull_request(SPEC)
    assert len([r for r in env.fake.requests if r.method != "GET"]) == writes_before


def test_already_exists_answer_resolves_to_the_existing_one(env: ForgeEnv) -> None:
    """When the host answers "already exists" (a race the search missed), that one is updated."""
    existing = env.fake.seed_pull(SPEC.head_branch, "main", title="old", body="old")
    env.fake.fail(200, body=[], method="GET", path_contains=LIST_PATH[env.kind])  # a stale search

    pull = env.driver().open_pull_request(SPEC)

    assert pull.number == existing.number
    assert [p.number for p in env.fake.pulls()] == [existing.number]
    assert env.fake.pulls()[0].title == SPEC.title
    assert creates(env) == 1  # the create was tried, refused, and not repeated


def test_a_closed_pull_request_for_the_branches_is_not_reused(env: ForgeEnv) -> None:
    """A closed pull request for the same branches is left alone and a new one opened."""
    closed = env.fake.seed_pull(SPEC.head_branch, "main", state="closed")
    driver = env.driver()
    assert driver.find_open_pull_request(SPEC.head_branch, "main") is None
    pull = driver.open_pull_request(SPEC)
    assert pull.number != closed.number and pull.state == "open"


def test_every_pull_request_of_a_branch_is_listed_newest_first_whatever_its_state(
        env: ForgeEnv) -> None:
    """Closed and open pull requests from the branch are both found (newest first, closed
    ones saying so), other branches' are not, even when the host ignores the filters."""
    closed = env.fake.seed_pull(SPEC.head_branch, "main", state="closed", body="declined")
    env.fake.seed_pull("reconciler/customer/other", "main")
    env.fake.honour_filters = False
    driver = env.driver()
    newer = driver.open_pull_request(SPEC)

    found = driver.find_pull_requests(SPEC.head_branch, "main")

    assert [(p.number, p.state) for p in found] == [(newer.number, "open"),
                                                    (closed.number, "closed")]
    assert found[1].body == "declined"


def test_find_follows_pages(env: ForgeEnv) -> None:
    """The open pull request is found even when the host lists it several pages in."""
    target = env.fake.seed_pull(SPEC.head_branch, "main")
    for i in range(120):
        env.fake.seed_pull(f"reconciler/customer/other-{i}", "main")
    env.fake.honour_filters = False  # the host lists everything; the driver must page and match
    env.fake.page_size_cap = 50

    found = env.driver().find_open_pull_request(SPEC.head_branch, "main")

    assert found is not None and found.number == target.number
    assert len(env.fake.calls("GET", LIST_PATH[env.kind])) == 3


def test_find_matches_head_and_base(env: ForgeEnv) -> None:
    """Only a pull request from that head into that base counts."""
    env.fake.seed_pull(SPEC.head_branch, "release")
    env.fake.seed_pull("reconciler/customer/other", "main")
    env.fake.honour_filters = False
    assert env.driver().find_open_pull_request(SPEC.head_branch, "main") is None


def test_update_sets_title_body_and_adds_labels(env: ForgeEnv) -> None:
    """Updating by number rewrites title and body and adds labels, keeping a human's labels."""
    pull = env.fake.seed_pull(SPEC.head_branch, "main", labels=["needs-review"])
    updated = env.driver().update_pull_request(pull.number, SPEC)
    [stored] = env.fake.pulls()
    assert (stored.title, stored.body) == (SPEC.title, SPEC.body)
    assert sorted(stored.labels) == ["customer", "needs-review", "reconciler"]
    assert sorted(updated.labels) == sorted(stored.labels)


def test_close(env: ForgeEnv) -> None:
    """Closing an open pull request leaves it closed and reports it so."""
    pull = env.driver().open_pull_request(SPEC)
    closed = env.driver().close_pull_request(pull.number)
    assert closed.state == "closed" and closed.merge_commit is None
    assert env.fake.pulls()[0].state == "closed"
    assert env.driver().find_open_pull_request(SPEC.head_branch, "main") is None


def test_closing_a_merged_pull_request_changes_nothing(env: ForgeEnv) -> None:
    """Closing one that was merged meanwhile reports it merged and sends no write."""
    pull = env.fake.seed_pull(SPEC.head_branch, "main")
    env.fake.merge(pull.number)
    assert env.driver().close_pull_request(pull.number).state == "merged"
    assert [r.method for r in env.fake.requests] == ["GET"]


def test_merged_state_and_merge_commit(env: ForgeEnv) -> None:
    """A merged pull request reads as merged with the commit it landed as."""
    driver = env.driver()
    pull = driver.open_pull_request(SPEC)
    assert driver.get_pull_request(pull.number).merge_commit is None
    sha = env.fake.merge(pull.number, "0123456789abcdef0123456789abcdef01234567")

    merged = driver.get_pull_request(pull.number)

    assert merged.state == "merged" and merged.merge_commit == sha
    assert driver.find_open_pull_request(SPEC.head_branch, "main") is None


def test_bad_token_is_an_auth_error_naming_the_host_not_the_token(
        env: ForgeEnv, caplog: pytest.LogCaptureFixture) -> None:
    """A rejected token is a permanent ForgeAuthError that names the host and hides the token."""
    bad_token = "wrong-0d9e8f7a6b5c4d3e"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(forge.ForgeAuthError) as raised:
        env.driver(token=bad_token).open_pull_request(SPEC)
    message = str(raised.value)
    assert env.fake.root.removeprefix("http://") in message and "401" in message
    assert bad_token not in message and bad_token not in caplog.text
    assert GOOD_TOKEN not in caplog.text
    assert env.sleeps == []  # no retry of a wrong token


def test_unknown_pull_request_is_not_found(env: ForgeEnv) -> None:
    """Asking for a number the host does not have is a ForgeNotFoundError."""
    with pytest.raises(forge.ForgeNotFoundError, match="404"):
        env.driver().get_pull_request(999)


def test_unknown_repository_is_not_found(env: ForgeEnv) -> None:
    """A repository the host does not have (or hides) is a ForgeNotFoundError."""
    with pytest.raises(forge.ForgeNotFoundError):
        env.driver(repo="acme/nope").find_open_pull_request(SPEC.head_branch, "main")


def test_rate_limit_is_waited_out_then_retried(env: ForgeEnv) -> None:
    """A rate-limited call waits as long as the host asks, then succeeds."""
    env.fake.rate_limited(42, times=2)
    pull = env.driver().open_pull_request(SPEC)
    assert pull.state == "open"
    assert len(env.sleeps) == 2
    assert all(42 <= wait <= 43 for wait in env.sleeps)


def test_rate_limit_that_persists_is_a_rate_limited_error(env: ForgeEnv) -> None:
    """After the bounded attempts a rate limit surfaces with the host's retry-after."""
    env.fake.rate_limited(30, times=100)
    policy = http.RetryPolicy(max_attempts=3)
    with pytest.raises(forge.ForgeRateLimitedError) as raised:
        env.driver(policy=policy).find_open_pull_request(SPEC.head_branch, "main")
    assert raised.value.retry_after == pytest.approx(30)
    assert len(env.fake.requests) == 3 and len(env.sleeps) == 2


def test_a_rate_limit_longer_than_allowed_fails_at_once(env: ForgeEnv) -> None:
    """A wait beyond the policy's limit is not slept through: the caller requeues instead."""
    env.fake.rate_limited(3600)
    with pytest.raises(forge.ForgeRateLimitedError) as raised:
        env.driver().find_open_pull_request(SPEC.head_branch, "main")
    assert raised.value.retry_after == pytest.approx(3600)
    assert env.sleeps == [] and len(env.fake.requests) == 1


def test_persistent_server_errors_give_up_after_bounded_attempts(env: ForgeEnv) -> None:
    """A host answering 5xx is retried with growing backoff, then ForgeUnavailableError."""
    env.fake.fail(502, times=100, body="<html>Bad Gateway</html>")
    with pytest.raises(forge.ForgeUnavailableError, match="502"):
        env.driver().open_pull_request(SPEC)
    assert len(env.fake.requests) == http.RetryPolicy().max_attempts
    assert len(env.sleeps) == http.RetryPolicy().max_attempts - 1
    bounds = [(2 ** n / 2, 2 ** n) for n in range(len(env.sleeps))]
    assert all(low <= wait <= high for wait, (low, high) in zip(env.sleeps, bounds, strict=True))


def test_a_burst_of_server_errors_is_ridden_out(env: ForgeEnv) -> None:
    """A short 500/503 burst is retried and the call succeeds."""
    env.fake.fail(500, times=2, body={"message": "Internal Server Error"})
    env.fake.fail(503, times=1, headers={"Retry-After": "3"})
    pull = env.driver().open_pull_request(SPEC)
    assert pull.state == "open" and len(env.fake.pulls()) == 1
    assert len(env.sleeps) == 3 and env.sleeps[-1] == 3


def test_dropped_connections_are_retried(env: ForgeEnv) -> None:
    """A connection cut before an answer is retried like a 5xx."""
    env.fake.fail(0, times=2, drop_connection=True)
    assert env.driver().open_pull_request(SPEC).state == "open"
    assert len(env.sleeps) == 2


def test_a_create_whose_answer_was_lost_is_not_duplicated(env: ForgeEnv) -> None:
    """A create the host did but whose answer never arrived is retried into the same one."""
    env.fake.fail(0, method="POST", path_contains=LIST_PATH[env.kind], drop_connection=True,
                  after_handling=True)
    pull = env.driver().open_pull_request(SPEC)
    [stored] = env.fake.pulls()
    assert pull.number == stored.number and creates(env) == 2
    assert sorted(stored.labels) == ["customer", "reconciler"]


def test_unreachable_host_is_unavailable(env: ForgeEnv) -> None:
    """A host nobody answers on is ForgeUnavailableError after the bounded attempts."""
    driver = env.driver(policy=http.RetryPolicy(max_attempts=2))
    env.fake.stop()
    with pytest.raises(forge.ForgeUnavailableError, match="ConnectionError"):
        driver.find_open_pull_request(SPEC.head_branch, "main")
    assert len(env.sleeps) == 1


def test_other_client_errors_are_permanent_with_the_host_message(env: ForgeEnv) -> None:
    """A 4xx without special meaning is a permanent error carrying the host's text."""
    env.fake.fail(400, body={"message": "Problems parsing JSON"}, method="GET")
    with pytest.raises(http.ForgeRequestError, match="Problems parsing JSON") as raised:
        env.driver().find_open_pull_request(SPEC.head_branch, "main")
    assert isinstance(raised.value, forge.ForgeError) and raised.value.status == 400
    assert env.sleeps == []


TOKEN_HEADERS = {"github": ("authorization", f"Bearer {GOOD_TOKEN}"),
                 "gitlab": ("authorization", f"Bearer {GOOD_TOKEN}"),
                 "gitea": ("authorization", f"token {GOOD_TOKEN}")}


def test_token_travels_in_the_hosts_header(env: ForgeEnv) -> None:
    """Every request carries the token in the header that host documents, and nowhere else."""
    env.driver().open_pull_request(SPEC)
    name, value = TOKEN_HEADERS[env.kind]
    for request in env.fake.requests:
        assert request.headers[name] == value
        assert GOOD_TOKEN not in request.path and GOOD_TOKEN not in str(request.query)
        assert request.headers["user-agent"].startswith("gitops-reconciler")
