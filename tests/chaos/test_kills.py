"""The bounded kill -9 campaign CI runs: a few kills per mode (local, remote on git daemon,
pull requests on the GitHub fake) with humans committing beside the reconciler. The full
campaign is ``python -m tests.chaos --kills N``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import run_campaign

KILLS = {"local": 6, "remote": 6, "pr": 4}


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(KILLS))
def test_kill_9_at_random_moments_loses_nothing(mode: str, tmp_path: Path) -> None:
    """After every kill the repositories pass ``git fsck --strict``; once converged every
    spec change landed exactly once, every human commit is kept and the branch only ever
    moved forward."""
    summary = run_campaign(tmp_path, mode, KILLS[mode], seed=7)

    assert summary.kills == KILLS[mode]
    assert summary.human_commits > 0
    assert summary.sound, summary.problems


@pytest.mark.slow
def test_kill_9_over_the_sharded_layout_with_reviewers_on_pull_request_branches(
        tmp_path: Path) -> None:
    """The pull-request campaign over ``layout: sharded``, with people pushing commits onto
    the PR branches too: nothing lost or duplicated, and every reviewer's commit is still in
    its branch's history."""
    summary = run_campaign(tmp_path, "pr", KILLS["pr"], seed=11, layout="sharded")

    assert summary.kills == KILLS["pr"]
    assert summary.sound, summary.problems
