"""Restarts: commits left waiting for a push are never stuck — a human push that lands while
the reconciler is down (or refused) is noticed at start-up and the waiting changes are made
again on top of it, nothing lost, nothing forced."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

from tests import gitservers
from tests.delivery.support import (
    EXAMPLE_OBJECTS,
    HumanClone,
    ReconcilerCli,
    is_ancestor,
    record_ref_updates,
    ref_updates,
    served,
    served_objects,
)


def test_waiting_commits_reach_a_remote_a_human_pushed_to_while_the_reconciler_was_down(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """Commits kept locally after a refused push, then a human push, then a fresh run: the run
    pushes every object once on top of the human's commit, which stays, and the branch only
    ever moved forward."""
    server = daemon_git_server
    server.create_bare_repo("config")
    record_ref_updates(server, "config")
    server.reject_pushes("config")
    refused = cli.run_once(server, "config", without_backoff=True)
    kept = cli.pending()
    server.accept_pushes("config")
    human = HumanClone(server, "config", tmp_path / "human")
    human_commit = human.commit_and_push("README", "edited by hand\n", "docs: by hand")

    restarted = cli.run_once(server, "config")

    assert refused.returncode != 0 and len(kept) == len(EXAMPLE_OBJECTS)
    assert restarted.returncode == 0, restarted.stderr
    assert cli.pending() == []
    assert is_ancestor(server, "config", human_commit)
    assert served_objects(server, "config") == Counter(EXAMPLE_OBJECTS)
    updates = ref_updates(server, "config")
    for older, newer in itertools.pairwise(updates):
        assert is_ancestor(server, "config", older, newer)
    assert served(server, "config", "show", "main:README") == "edited by hand"
