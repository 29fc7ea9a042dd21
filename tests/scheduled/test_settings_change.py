"""A settings change in the cluster: the controller re-renders every affected object in one
commit that says what changed, before it works through its per-object queue."""

from __future__ import annotations

from pathlib import Path

from tests.fake_apiserver import fixtures
from tests.gitcli import git
from tests.kube.test_controller_support import commits
from tests.scheduled import support

NAMES = [f"t{i}" for i in range(6)]


def test_a_restarted_controller_with_a_new_image_makes_one_rerender_commit(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """Six Customers rendered with scheduler 1.4.2; a controller started with 1.4.3 makes a
    single commit ``rerender: scheduler image 1.4.2 -> 1.4.3 (6 tenants)`` naming all six,
    and a second pass makes none."""
    support.apply(kube, [support.customer(n) for n in NAMES])
    repo = tmp_path / "config.git"
    with support.wired(fake_kubeconfig, repo) as wiring:
        assert wiring.controller.run_once()
    before = len(commits(repo))
    bumped = {"RECONCILER_IMAGES_SCHEDULER": "ghcr.io/ahoi/scheduler:1.4.3"}
    with support.wired(fake_kubeconfig, repo, environ=bumped) as wiring:
        assert wiring.controller.run_once()
        after = commits(repo)
        assert len(after) == before + 1
        assert git(repo, "log", "-1", "--format=%s", "main").strip() == \
            "rerender: scheduler image 1.4.2 -> 1.4.3 (6 tenants)"
        assert git(repo, "log", "-1", "--format=%B", "main").count("Reconciler-Object:") == 6
        assert wiring.controller.run_once()
        assert len(commits(repo)) == before + 1
