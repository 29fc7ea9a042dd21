"""Choosing and wiring a driver from the user's configuration."""

from __future__ import annotations

import pytest

from reconciler.adapters.forges import factory, gitea, github, gitlab
from reconciler.core import errors


@pytest.mark.parametrize(("kind", "url", "expected"), [
    ("github", "https://github.com", "https://api.github.com"),
    ("github", "https://api.github.com/", "https://api.github.com"),
    ("github", "https://ghe.example.com", "https://ghe.example.com/api/v3"),
    ("github", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/v3"),
    ("gitlab", "https://gitlab.com", "https://gitlab.com/api/v4"),
    ("gitlab", "https://git.example.com/gitlab/api/v4", "https://git.example.com/gitlab/api/v4"),
    ("gitea", "https://codeberg.org", "https://codeberg.org/api/v1"),
    ("forgejo", "http://forgejo:3000/api/v1", "http://forgejo:3000/api/v1"),
])
def test_api_urls_are_normalised(kind: str, url: str, expected: str) -> None:
    """A host's web URL or API URL becomes its REST API base URL."""
    assert factory.normalize_api_url(kind, url) == expected


@pytest.mark.parametrize(("kind", "driver"), [
    ("github", github.GitHubForge), ("GitLab", gitlab.GitLabForge),
    ("gitea", gitea.GiteaForge), ("forgejo", gitea.GiteaForge),
])
def test_each_kind_gets_its_driver(kind: str, driver: type) -> None:
    """The kind names the driver; Forgejo speaks Gitea's API."""
    assert isinstance(factory.forge_for(kind, "https://h.example", "o/r", "t"), driver)


@pytest.mark.parametrize(("kind", "url", "repo", "token", "complaint"), [
    ("bitbucket", "https://h", "o/r", "t", "unknown forge kind"),
    ("github", "https://h", "o/r", "", "no token"),
    ("github", "https://h", "just-a-name", "t", "owner/name"),
    ("gitea", "https://h", "o/r/x", "t", "owner/name"),
    ("gitlab", "https://h", "/", "t", "no repository"),
    ("gitlab", "h.example.com", "g/p", "t", "https://host"),
    ("gitlab", "https://user:secret@h.example.com", "g/p", "t", "credentials"),
])
def test_bad_configuration_is_one_clear_user_error(kind: str, url: str, repo: str, token: str,
                                                   complaint: str) -> None:
    """A configuration mistake is a UserInputError naming what is wrong."""
    with pytest.raises(errors.UserInputError, match=complaint) as raised:
        factory.forge_for(kind, url, repo, token)
    assert "secret" not in str(raised.value)
