"""HTTP plumbing shared by the forge drivers: one ``requests.Session``, bounded retries, errors.

Owns: sending a request to one forge API with its token, retrying what the hosts document as
worth retrying, following pagination, and translating failures into the port's ``ForgeError``
subclasses. Must not: know any forge's resources beyond error bodies and rate-limit headers,
sleep or read the clock except through the injected ``sleep`` and ``clock``, or let the token
reach a log line, an exception message or another host.

What is retried, and how long we wait, as each host documents it:

- GitHub, "Rate limits for the REST API" (docs.github.com/rest/using-the-rest-api/
  rate-limits-for-the-rest-api): primary limit -> 403 or 429 with ``x-ratelimit-remaining: 0``;
  wait until ``x-ratelimit-reset`` (UTC epoch seconds). Secondary limit -> 403 or 429 with a
  message naming it; honour ``retry-after`` (seconds) if present, else wait at least a minute.
- GitLab, "User and IP rate limits" (docs.gitlab.com/administration/settings/
  user_and_ip_rate_limits): 429 with a plain-text body ("Retry later"), ``Retry-After`` and
  ``RateLimit-Reset`` (epoch seconds); endpoint limits answer JSON with ``Retry-After``.
- Gitea/Forgejo have no API rate limiter of their own; a proxy in front answers 429 +
  ``Retry-After``, which the same rules cover.
- 500/502/503/504, connection errors and timeouts: exponential backoff with jitter, honouring a
  ``Retry-After`` on 503. Retrying a POST after a lost answer is safe for the drivers: a
  duplicate create is answered "already exists" and resolved to the existing pull request.

A wait longer than ``RetryPolicy.max_rate_limit_wait`` is not slept through: the call fails at
once with ``ForgeRateLimitedError(retry_after=...)`` so the caller can requeue the work.

Errors: 401 and a 403 that is not a rate limit -> ``ForgeAuthError``; 404 -> ``ForgeNotFoundError``;
rate limits still in force -> ``ForgeRateLimitedError``; 5xx and network errors still failing ->
``ForgeUnavailableError``; any other 4xx -> ``ForgeRequestError`` (permanent, with status and the
host's message, which drivers inspect for "already exists"); an answer that is not the API's
-> ``ForgeProtocolError``. Messages name the forge, host, method and path, never the token (a
host echoing it back is redacted too).

Pagination follows ``Link: <...>; rel="next"`` (RFC 8288; GitHub, GitLab and Gitea all send it)
and GitLab's ``X-Next-Page``. A next link pointing at another origin is never requested with the
token: only its ``page`` number is reused against our own API URL (Gitea builds links from its
configured ROOT_URL, which can differ from the address we reach it by).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from reconciler.core import errors
from reconciler.ports import forge

log = logging.getLogger(__name__)

USER_AGENT = "gitops-reconciler"
RETRIED_SERVER_STATUSES = frozenset({500, 502, 503, 504})
MAX_MESSAGE_CHARS = 300

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets and how long it may wait between them (seconds)."""

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    rate_limit_fallback: float = 60.0  # GitHub: "wait for at least one minute" without headers
    max_rate_limit_wait: float = 900.0
    timeout: tuple[float, float] = (5.0, 30.0)  # connect, read


class ForgeRequestError(forge.ForgeError, errors.PermanentError):
    """A 4xx the driver may inspect (409/422 "already exists", validation): status + host text."""

    def __init__(self, message: str, *, status: int, host_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.host_message = host_message


class ForgeProtocolError(forge.ForgeError, errors.PermanentError):
    """The host answered something that is not its documented API (an HTML login page from a
    proxy, a next-page link to another host, endless pages)."""


class ForgeRaceError(forge.ForgeError, errors.TemporaryError):
    """The host's state changed between two calls (it said "already exists", then showed none
    open): reading again later will settle it."""


@dataclass(frozen=True)
class _RateLimit:
    wait: float | None  # None: the host said "rate limited" but not for how long


class ForgeClient:
    """Requests against one forge API base URL, authenticated with one token."""

    def __init__(self, *, forge_name: str, base_url: str, token: str, auth_header: tuple[str, str],
                 session: requests.Session | None = None, sleep: Sleep = time.sleep,
                 clock: Clock = time.time, policy: RetryPolicy | None = None,
                 rng: random.Random | None = None,
                 extra_headers: Mapping[str, str] | None = None) -> None:
        """``auth_header`` is (name, value) with the token inside the value."""
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise errors.UserInputError(f"{forge_name} API URL must be http(s)://host[/path]: {base_url!r}")
        self.forge_name = forge_name
        self.base_url = base_url.rstrip("/")
        self.host = parsed.netloc
        self._origin = (parsed.scheme, parsed.netloc)
        self._token = token
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                         **(extra_headers or {}), auth_header[0]: auth_header[1]}
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"ForgeClient({self.forge_name} {self.base_url})"

    # -- requests --------------------------------------------------------------------------------

    def get_json(self, path: str, *, params: Mapping[str, str | int] | None = None) -> Any:
        """GET and decode the JSON answer."""
        return self._decode(self.request("GET", path, params=params), "GET", path)

    def send_json(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        """Send a JSON body and decode the JSON answer."""
        return self._decode(self.request(method, path, json_body=body), method, path)

    def iter_pages(self, path: str, *, params: Mapping[str, str | int],
                   max_pages: int = 100) -> Iterator[list[Any]]:
        """Each page of a list endpoint, following the host's next-page pointers."""
        url, query = self._url(path), dict(params)
        for _ in range(max_pages):
            response = self.request("GET", url, params=query)
            page = self._decode(response, "GET", path)
            if not isinstance(page, list):
                raise ForgeProtocolError(self._where("GET", path) + ": expected a JSON list")
            yield page
            following = self._next_page(response, url, query)
            if following is None:
                return
            url, query = following
        raise ForgeProtocolError(self._where("GET", path) + f": more than {max_pages} pages")

    def request(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                json_body: Mapping[str, Any] | None = None) -> requests.Response:
        """A 2xx response, after bounded retries; otherwise a ``ForgeError`` subclass."""
        url = self._url(path)
        shown = urllib.parse.urlsplit(url).path
        policy = self._policy
        for attempt in range(1, policy.max_attempts + 1):
            last_attempt = attempt == policy.max_attempts
            try:
                response = self._session.request(method, url, params=params, json=json_body,
                                                 headers=self._headers, timeout=policy.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                message = self._where(method, shown) + f": {type(exc).__name__} (attempt {attempt})"
                if last_attempt:
                    raise forge.ForgeUnavailableError(message) from exc
                log.debug("%s; retrying", message)
                self._sleep(self._backoff(attempt))
                continue
            except requests.RequestException as exc:
                raise ForgeProtocolError(self._where(method, shown) + f": {type(exc).__name__}") from exc
            log.debug("%s %s -> %s", method, shown, response.status_code)
            if response.ok:
                return response
            wait = self._wait_before_retry(response, attempt, last_attempt, method, shown)
            self._sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- decisions -------------------------------------------------------------------------------

    def _wait_before_retry(self, response: requests.Response, attempt: int, last_attempt: bool,
                           method: str, path: str) -> float:
        """Seconds to wait before the next attempt, or raise the error this response means."""
        status = response.status_code
        host_message = self._host_message(response)
        where = self._where(method, path) + f": HTTP {status}"
        limit = self._rate_limit(response, host_message)
        if limit is not None:
            wait = limit.wait if limit.wait is not None else max(
                self._policy.rate_limit_fallback, self._backoff(attempt))
            if last_attempt or wait > self._policy.max_rate_limit_wait:
                raise forge.ForgeRateLimitedError(
                    f"{where} rate limited ({host_message}); retry after {wait:.0f} s",
                    retry_after=wait)
            return wait + self._rng.uniform(0.0, min(1.0, wait * 0.1))
        if status in RETRIED_SERVER_STATUSES and not last_attempt:
            hinted = _retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            if hinted is not None and hinted <= self._policy.max_rate_limit_wait:
                return hinted
            return self._backoff(attempt)
        if status >= 500:
            raise forge.ForgeUnavailableError(f"{where} {host_message} (after {attempt} attempts)")
        raise self._client_error(status, where, host_message)

    def _client_error(self, status: int, where: str, host_message: str) -> forge.ForgeError:
        if status == 401:
            return forge.ForgeAuthError(f"{where} {host_message}: the token was rejected")
        if status == 403:
            return forge.ForgeAuthError(f"{where} {host_message}: the token lacks permission")
        if status == 404:
            return forge.ForgeNotFoundError(f"{where} {host_message}: not found (or not visible "
                                            "to this token)")
        return ForgeRequestError(f"{where} {host_message}", status=status, host_message=host_message)

    def _rate_limit(self, response: requests.Response, host_message: str) -> _RateLimit | None:
        """How long the host asks us to wait, if this response is a rate limit at all."""
        if response.status_code not in (403, 429):
            return None
        headers, now = response.headers, self._clock()
        retry_after = _retry_after_seconds(headers.get("Retry-After"), now)
        if retry_after is not None:
            return _RateLimit(retry_after)
        for remaining, reset in (("x-ratelimit-remaining", "x-ratelimit-reset"),
                                 ("RateLimit-Remaining", "RateLimit-Reset")):
            reset_at = _float_or_none(headers.get(reset))
            if headers.get(remaining) == "0" and reset_at is not None:
                return _RateLimit(max(0.0, reset_at - now))
        if response.status_code == 429 or "rate limit" in host_message.lower():
            return _RateLimit(None)
        return None

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self._policy.backoff_cap, self._policy.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0.0, ceiling / 2)

    # -- helpers ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            parsed = urllib.parse.urlsplit(path)
            if (parsed.scheme, parsed.netloc) != self._origin:
                raise ForgeProtocolError(f"{self.forge_name}: refusing to send the token to "
                                       f"{parsed.scheme}://{parsed.netloc}")
            return path
        return self.base_url + path

    def _next_page(self, response: requests.Response, url: str,
                   query: dict[str, str | int]) -> tuple[str, dict[str, str | int]] | None:
        next_url = response.links.get("next", {}).get("url")
        if next_url:
            parsed = urllib.parse.urlsplit(next_url)
            if (parsed.scheme, parsed.netloc) == self._origin:
                return next_url, {}
            page = urllib.parse.parse_qs(parsed.query).get("page")
            if page:
                return url, {**query, "page": page[0]}
            raise ForgeProtocolError(f"{self.forge_name}: next page link points at another host")
        next_page = response.headers.get("X-Next-Page", "").strip()
        if next_page:
            return url, {**query, "page": next_page}
        return None

    def _decode(self, response: requests.Response, method: str, path: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ForgeProtocolError(self._where(method, path) + ": answer is not JSON") from None

    def _host_message(self, response: requests.Response) -> str:
        """The host's own error text (JSON ``message``/``error``/``errors`` or plain text)."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        text = _flatten_message(body) or response.reason or ""
        return self._redact(" ".join(text.split()))[:MAX_MESSAGE_CHARS]

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _where(self, method: str, path: str) -> str:
        return f"{self.forge_name} at {self.host}: {method} {path}"


def _flatten_message(body: Any) -> str:
    """GitHub ``{"message", "errors": [{"message"}]}``, GitLab ``{"message": str|list|dict}`` or
    ``{"error"}``, Gitea ``{"message"}``: one line of text."""
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        return "; ".join(filter(None, (_flatten_message(item) for item in body)))
    if isinstance(body, dict):
        parts = [_flatten_message(body.get(key)) for key in ("message", "error", "errors")]
        if not any(parts):
            parts = [f"{key}: {_flatten_message(value)}" for key, value in body.items()
                     if key not in ("documentation_url", "url", "status")]
        return ": ".join(part for part in parts if part)
    if body is None:
        return ""
    return json.dumps(body)


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    seconds = _float_or_none(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
