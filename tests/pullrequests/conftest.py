"""Fixtures of the pull-request mode tests: a ``git daemon`` remote whose main already holds
``examples/`` (seeded once, copied per test), a forge fake, and a workspace of manifests.

One daemon serves every test's repository (stopped at the end of the session); each test gets
its own copy of the seeded repository and its own forge fake (stopped at teardown). The fake
API server's fixtures (for the in-cluster test) are imported from tests/fake_apiserver.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import gitservers
from tests.fake_apiserver.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    fake_apiserver,
    fake_kubeconfig,
    kubectl,
)
from tests.forges.fakes.base import FakeForge
from tests.forges.fakes.gitea import FakeGitea
from tests.forges.fakes.github import FakeGitHub
from tests.forges.fakes.gitlab import FakeGitLab
from tests.pullrequests import support

FAKES: dict[str, type[FakeForge]] = {"github": FakeGitHub, "gitlab": FakeGitLab,
                                     "gitea": FakeGitea}
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gitservers.DaemonGitServer]:
    """``git daemon --enable=receive-pack`` on loopback for the whole session."""
    workdir = tmp_path_factory.mktemp("pr-daemon")
    with gitservers.running_server(lambda: gitservers.DaemonGitServer(workdir=workdir)) as server:
        yield server


@pytest.fixture(scope="session")
def seeded(git_daemon: gitservers.DaemonGitServer,
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository whose main holds the skeleton and every object of ``examples/``,
    pushed by a direct-mode run. Read-only: tests work on copies."""
    git_daemon.create_bare_repo("seeded", initial_commit=False)
    remote = support.Remote(git_daemon, "seeded")
    base = tmp_path_factory.mktemp("pr-seed")
    support.seed(remote, support.EXAMPLES, base / "home", base / "state")
    return remote.git_dir


@pytest.fixture
def remote(git_daemon: gitservers.DaemonGitServer, seeded: Path) -> support.Remote:
    """This test's own copy of the seeded repository, served by the daemon."""
    name = f"config-{next(_numbers)}"
    shutil.copytree(seeded, git_daemon.repo_path(name))
    return support.Remote(git_daemon, name)


@pytest.fixture
def workspace(remote: support.Remote, tmp_path: Path) -> support.Workspace:
    """A copy of ``examples/`` reconciled against ``remote``, with a fresh state dir."""
    return support.Workspace(tmp_path / "ws", remote)


@pytest.fixture(params=sorted(FAKES))
def forge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[support.ForgeUnderTest]:
    """A started forge fake (each host in turn unless the test narrows it), stopped afterwards."""
    kind = str(request.param)
    with FAKES[kind]() as fake:
        yield support.ForgeUnderTest(kind, fake, support.token_file(tmp_path / "forge-token"))
