"""Fixtures for the forge driver tests: a started fake per host and a driver pointed at it.

The drivers get an injected ``sleep`` that records instead of sleeping and a fixed clock, so
retry tests assert on the waits without waiting.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from reconciler.adapters.forges import factory, http
from reconciler.ports import forge
from tests.forges.fakes.base import GOOD_TOKEN, NOW, FakeForge
from tests.forges.fakes.gitea import FakeGitea
from tests.forges.fakes.github import FakeGitHub
from tests.forges.fakes.gitlab import FakeGitLab

FAKES: dict[str, type[FakeForge]] = {"github": FakeGitHub, "gitlab": FakeGitLab, "gitea": FakeGitea}
REPO = "acme/config"


@dataclass
class ForgeEnv:
    """A running fake, the kind of host it plays, and drivers pointed at it."""

    kind: str
    fake: FakeForge
    sleeps: list[float] = field(default_factory=list)

    def driver(self, *, token: str = GOOD_TOKEN, repo: str = REPO,
               policy: http.RetryPolicy | None = None) -> forge.Forge:
        return factory.forge_for(self.kind, self.fake.url, repo, token, sleep=self.sleeps.append,
                                 clock=lambda: NOW, policy=policy, rng=random.Random(7))


@pytest.fixture(params=sorted(FAKES))
def env(request: pytest.FixtureRequest) -> Iterator[ForgeEnv]:
    """Each host in turn: the behaviour under test is shared by all three drivers."""
    with FAKES[request.param]() as fake:
        yield ForgeEnv(kind=request.param, fake=fake)


@pytest.fixture
def github_env() -> Iterator[ForgeEnv]:
    with FakeGitHub() as fake:
        yield ForgeEnv(kind="github", fake=fake)


@pytest.fixture
def gitlab_env() -> Iterator[ForgeEnv]:
    with FakeGitLab() as fake:
        yield ForgeEnv(kind="gitlab", fake=fake)


@pytest.fixture
def gitea_env() -> Iterator[ForgeEnv]:
    with FakeGitea() as fake:
        yield ForgeEnv(kind="gitea", fake=fake)
