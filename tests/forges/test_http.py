"""The shared HTTP layer: retry decisions, header parsing, and keeping the token at home."""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Iterator

import pytest

from reconciler.adapters.forges import http
from reconciler.core import errors
from reconciler.ports import forge
from tests.forges.fakes.base import GOOD_TOKEN, NOW
from tests.forges.fakes.gitea import FakeGitea

PULLS = "/repos/acme/config/pulls"


@pytest.fixture
def fake() -> Iterator[FakeGitea]:
    with FakeGitea() as running:
        yield running


def client_for(fake: FakeGitea, sleeps: list[float], **policy: float) -> http.ForgeClient:
    return http.ForgeClient(forge_name="Gitea", base_url=fake.url, token=GOOD_TOKEN,
                            auth_header=("Authorization", f"token {GOOD_TOKEN}"),
                            sleep=sleeps.append, clock=lambda: NOW, rng=random.Random(1),
                            policy=http.RetryPolicy(**policy))  # type: ignore[arg-type]


def test_retry_after_as_an_http_date(fake: FakeGitea) -> None:
    """``Retry-After`` given as an HTTP-date is turned into seconds from the injected clock."""
    sleeps: list[float] = []
    fake.fail(429, headers={"Retry-After": email.utils.formatdate(NOW + 120, usegmt=True)})
    client_for(fake, sleeps).get_json(PULLS)
    [wait] = sleeps
    assert 120 <= wait <= 121


def test_gitlab_style_ratelimit_reset_without_retry_after(fake: FakeGitea) -> None:
    """``RateLimit-Remaining: 0`` with ``RateLimit-Reset`` (epoch) tells how long to wait."""
    sleeps: list[float] = []
    fake.fail(429, body="Retry later\n",
              headers={"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 9)})
    client_for(fake, sleeps).get_json(PULLS)
    [wait] = sleeps
    assert 9 <= wait <= 10


def test_a_429_without_any_hint_falls_back_to_the_policy_wait(fake: FakeGitea) -> None:
    """A bare 429 waits the policy's fallback rather than hammering the host."""
    sleeps: list[float] = []
    fake.fail(429, body="Too Many Requests")
    client_for(fake, sleeps, rate_limit_fallback=5.0).get_json(PULLS)
    [wait] = sleeps
    assert 5 <= wait <= 5.5


def test_backoff_is_capped(fake: FakeGitea) -> None:
    """Exponential backoff never exceeds the policy's cap."""
    sleeps: list[float] = []
    fake.fail(500, times=7)
    client_for(fake, sleeps, max_attempts=8, backoff_cap=4.0).get_json(PULLS)
    assert len(sleeps) == 7 and max(sleeps) <= 4.0 and sleeps[-1] >= 2.0


def test_server_errors_other_than_the_transient_ones_are_not_retried(fake: FakeGitea) -> None:
    """501 Not Implemented will not get better by retrying."""
    sleeps: list[float] = []
    fake.fail(501, body={"message": "not implemented"})
    with pytest.raises(forge.ForgeUnavailableError, match="501"):
        client_for(fake, sleeps).get_json(PULLS)
    assert sleeps == []


def test_a_host_echoing_the_token_does_not_leak_it(fake: FakeGitea,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Even a host that repeats the token in its error text does not get it into our messages."""
    caplog.set_level(logging.DEBUG)
    fake.fail(422, body={"message": f"token {GOOD_TOKEN} is not valid for this"})
    with pytest.raises(http.ForgeRequestError) as raised:
        client_for(fake, []).get_json(PULLS)
    assert GOOD_TOKEN not in str(raised.value) and "***" in str(raised.value)
    assert GOOD_TOKEN not in raised.value.host_message and GOOD_TOKEN not in caplog.text
    assert GOOD_TOKEN not in repr(client_for(fake, []))


def test_an_absolute_url_on_another_host_is_refused(fake: FakeGitea) -> None:
    """The client never sends its token to an origin other than the configured API's."""
    with pytest.raises(forge.ForgeError, match="refusing"):
        client_for(fake, []).get_json("https://elsewhere.invalid/api/v1/repos")
    assert fake.requests == []


def test_a_foreign_next_link_without_a_page_stops_with_an_error(fake: FakeGitea) -> None:
    """A next link to another origin that carries no page number is not followed."""
    fake.seed_pull("h")
    fake.link_header = lambda *a, **k: '<https://elsewhere.invalid/x?cursor=abc>; rel="next"'  # type: ignore[method-assign]
    with pytest.raises(forge.ForgeError, match="another host"):
        list(client_for(fake, []).iter_pages(PULLS, params={}))
    assert len(fake.requests) == 1


def test_non_json_success_is_an_error(fake: FakeGitea) -> None:
    """A 200 that is not JSON (a login page from a proxy) is reported, not parsed."""
    fake.fail(200, body="<html>Sign in</html>")
    with pytest.raises(forge.ForgeError, match="not JSON"):
        client_for(fake, []).get_json(PULLS)


def test_api_url_must_be_http() -> None:
    """A client needs an http(s) API URL."""
    with pytest.raises(errors.UserInputError, match="http"):
        http.ForgeClient(forge_name="Gitea", base_url="ftp://x", token="t", auth_header=("A", "t"))


@pytest.mark.parametrize(("body", "expected"), [
    ({"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]},
     "Validation Failed: A pull request already exists"),
    ({"message": ["Another open merge request already exists for this source branch: !3"]},
     "Another open merge request already exists for this source branch: !3"),
    ({"message": {"title": ["is too long"]}}, "title: is too long"),
    ({"error": "title is missing"}, "title is missing"),
    ("Retry later\n", "Retry later"),
])
def test_host_error_bodies_are_flattened(body: object, expected: str) -> None:
    """Each host's error body shape becomes one readable line."""
    assert " ".join(http._flatten_message(body).split()) == expected
