"""Builds the forge driver a configuration names: the one place that knows every driver.

Owns: choosing the driver for a kind, normalising the API URL the user gave, and wiring one
``http.ForgeClient`` (session, token header, retry policy, injected sleep and clock) into it.
Must not: read the environment or files (the composition root passes the token in).

API URLs accepted (a web URL of the host is turned into its API URL):

- github: ``https://api.github.com`` (default for ``https://github.com``); GitHub Enterprise
  Server ``https://HOST/api/v3`` ("/api/v3" is appended to a bare host).
- gitlab: ``https://HOST/api/v4`` ("/api/v4" is appended when missing).
- gitea (or forgejo): ``https://HOST/api/v1`` ("/api/v1" is appended when missing).
"""

from __future__ import annotations

import random
import time
import urllib.parse

import requests

from reconciler.adapters.forges import gitea, github, gitlab, http
from reconciler.core import errors
from reconciler.ports import forge

KINDS = ("github", "gitlab", "gitea", "forgejo")


def forge_for(kind: str, api_url: str, repo: str, token: str, *,
              session: requests.Session | None = None, sleep: http.Sleep = time.sleep,
              clock: http.Clock = time.time, policy: http.RetryPolicy | None = None,
              rng: random.Random | None = None) -> forge.Forge:
    """The driver for ``repo`` (``owner/name``; on GitLab a project path or numeric id)."""
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise errors.UserInputError(f"unknown forge kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not token:
        raise errors.UserInputError(f"no token given for the {kind} forge at {api_url}")
    if not repo.strip("/"):
        raise errors.UserInputError(f"no repository given for the {kind} forge at {api_url}")
    base_url = normalize_api_url(kind, api_url)

    def client(name: str, auth_header: tuple[str, str],
               extra_headers: dict[str, str] | None = None) -> http.ForgeClient:
        return http.ForgeClient(forge_name=name, base_url=base_url, token=token,
                                auth_header=auth_header, session=session, sleep=sleep,
                                clock=clock, policy=policy, rng=rng, extra_headers=extra_headers)

    if kind == "github":
        return github.GitHubForge(client=client("GitHub", github.auth_header(token),
                                                github.EXTRA_HEADERS), repo=repo)
    if kind == "gitlab":
        return gitlab.GitLabForge(client=client("GitLab", gitlab.auth_header(token)), project=repo)
    name = "Forgejo" if kind == "forgejo" else "Gitea"
    return gitea.GiteaForge(client=client(name, gitea.auth_header(token)), repo=repo)


def normalize_api_url(kind: str, api_url: str) -> str:
    """The REST API base URL for a host's web or API URL, without a trailing slash."""
    parsed = urllib.parse.urlsplit(api_url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise errors.UserInputError(f"{kind} API URL must look like https://host[/path]: {api_url!r}")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise errors.UserInputError(f"{kind} API URL must not carry credentials, a query or a "
                                    f"fragment: {parsed.scheme}://{parsed.hostname}{parsed.path}")
    path = parsed.path.rstrip("/")
    if kind == "github":
        if parsed.netloc.lower() in ("github.com", "www.github.com"):
            return "https://api.github.com"
        if parsed.netloc.lower() != "api.github.com" and not path.endswith("/api/v3"):
            path += "/api/v3"
    else:
        suffix = "/api/v4" if kind == "gitlab" else "/api/v1"
        if not path.endswith(suffix):
            path += suffix
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))
