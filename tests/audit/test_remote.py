"""A human's revert pushed to a remote config repo between two runs (issue 5, section 5):
``git daemon`` on loopback serves the repository, the reconciler mirrors it in --state-dir.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import gitservers
from tests.audit import support


def test_a_revert_pushed_to_the_remote_is_fetched_and_held(
        daemon_git_server: gitservers.DaemonGitServer, tmp_path: Path) -> None:
    """A human clones the remote, reverts the reconciler's update and pushes; the next
    ``run --once --repo URL`` fetches it, holds, and pushes nothing over it."""
    server = daemon_git_server
    server.create_bare_repo("config")
    url, served = server.url_for("config"), server.repo_path("config")
    ws = support.Workspace(tmp_path / "resources", served)

    def run() -> subprocess.CompletedProcess[str]:
        return support.reconciler("run", "--source", ws.source, "--repo", url,
                                  "--state-dir", tmp_path / "state", "--once")

    ws.write(support.customer("acme", workers=2))
    support.ok(run())
    ws.write(support.customer("acme", workers=4))
    support.ok(run())
    update = support.head(served)
    assert support.log(served)[0].trailers["Reconciler-Action"] == "update"
    human = support.Human(url, tmp_path / "human")
    revert = human.revert(update)
    human.push()

    out = support.ok(run())

    assert support.head(served) == revert
    assert support.replicas(served, "acme") == 2
    [held] = support.lines_starting(out, "held")
    assert held.split()[:3] == ["held", "RevertedInGit", revert[:12]]
    assert f"reverted in Git by {support.HUMAN}" in held
    assert "pushed 0 commits" in out
