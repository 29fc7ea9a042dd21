"""Fixtures of the audit tests: a config repo with a short story, copied per test.

The story is reconciled once per session (three runs) and every test works on its own copy,
so each test pays only for the commands it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.audit import support
from tests.fake_apiserver.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    fake_apiserver,
    fake_kubeconfig,
    kubectl,
)


@pytest.fixture(scope="session")
def story(tmp_path_factory: pytest.TempPathFactory) -> support.Workspace:
    """customer/acme at generations 1, 2, 3 (scheduler 2 -> 4 -> 6 workers, with a database)
    and customer/beta at generation 1, each run a separate ``run --once``. Read-only."""
    base = tmp_path_factory.mktemp("story")
    ws = support.Workspace(base / "resources", base / "config.git")
    ws.write(support.customer("acme", workers=2, database=True))
    ws.write(support.customer("beta", workers=1))
    support.ok(ws.run())
    for workers in (4, 6):
        ws.write(support.customer("acme", workers=workers, database=True))
        support.ok(ws.run())
    return ws


@pytest.fixture
def workspace(story: support.Workspace, tmp_path: Path) -> support.Workspace:
    """A private copy of the story's manifests and config repo."""
    return story.copy_to(tmp_path)


@dataclass(frozen=True)
class Reverted:
    """The story after a human reverted acme's generation 3 and the reconciler ran once."""

    ws: support.Workspace
    reverted: str  # the reconciler's commit the human reverted
    revert: str  # the human's revert commit
    run: str  # stdout of the run after the revert


@pytest.fixture(scope="session")
def reverted(story: support.Workspace, tmp_path_factory: pytest.TempPathFactory) -> Reverted:
    """The story, then ``git revert`` of acme's generation 3 pushed by a human, then a run.
    Read-only: copy ``.ws`` before changing anything."""
    base = tmp_path_factory.mktemp("reverted")
    ws = story.copy_to(base)
    gen3 = support.generation_commit(ws.repo, "customer/acme", 3)
    human = ws.human(base / "human")
    revert = human.revert(gen3)
    human.push()
    return Reverted(ws, gen3, revert, support.ok(ws.run()))
