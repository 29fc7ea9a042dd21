"""Preview expiry: a Preview whose ttl has passed is deleted and its directory removed.

In the cluster the Controller runs on the fake API server with a clock the test moves;
the Preview's creation time is the one the API server stamped. In local mode
``reconciler run --once`` reads ``metadata.creationTimestamp`` from the manifest, and
``reconciler status`` tells the time left.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.fake_apiserver import fixtures, server
from tests.kube.test_controller_support import (
    commits,
    commits_of,
    events_for,
    files_under,
    get,
    git,
    wait_until,
)
from tests.scheduled import support

MINUTE = 60


def created_at(kubectl: fixtures.Kubectl, name: str) -> float:
    """The Preview's creationTimestamp, as the API server set it."""
    raw = get(kubectl, "preview", name)
    assert raw is not None
    return support.seconds(raw["metadata"]["creationTimestamp"])


# -- in the cluster ------------------------------------------------------------------------


def test_a_preview_is_deleted_once_its_ttl_has_passed_and_not_before(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """With ttl 1h, the expiry check deletes nothing at 59 minutes; at 61 minutes it deletes
    the Preview through the API (the finalizer holds it) and records an Expired Event."""
    support.apply(kube, support.preview("pr-7", ttl="1h"))
    created = created_at(kube, "pr-7")
    clock = support.FakeClock(created + 59 * MINUTE)
    with support.wired(fake_kubeconfig, tmp_path / "config.git", clock=clock) as wiring:
        assert wiring.controller.run_once()
        assert files_under(wiring.repo_path, "previews/pr-7")

        assert wiring.controller.expire_previews() == []
        raw = get(kube, "preview", "pr-7")
        assert raw is not None and "deletionTimestamp" not in raw["metadata"]
        assert [e["reason"] for e in events_for(kube, "pr-7")].count("Expired") == 0

        clock.advance(2 * MINUTE)
        assert wiring.controller.expire_previews() == ["pr-7"]

    raw = get(kube, "preview", "pr-7")
    assert raw is not None and raw["metadata"].get("deletionTimestamp")
    assert raw["metadata"]["finalizers"] == ["reconciler.ahoi.dev/finalizer"]
    [expired] = [e for e in events_for(kube, "pr-7") if e["reason"] == "Expired"]
    assert expired["type"] == "Normal"
    assert expired["involvedObject"]["kind"] == "Preview"
    assert "ttl 1h passed (expired 1m ago)" in expired["message"]


def test_the_scheduled_expiry_removes_the_directory_in_one_commit_and_releases_the_preview(
        kube: fixtures.Kubectl, fake_apiserver: server.FakeApiServer, fake_kubeconfig: Path,
        tmp_path: Path) -> None:
    """The running controller's expire-previews task, past the ttl, ends with previews/pr-7
    removed in one commit touching only its files, the Preview gone and another Preview
    (no ttl) left alone."""
    support.apply(kube, [support.preview("pr-7", ttl="1h"), support.preview("keep")])
    clock = support.FakeClock(created_at(kube, "pr-7") + 10 * MINUTE)
    with support.wired(fake_kubeconfig, tmp_path / "config.git", clock=clock) as wiring, \
            support.running(wiring, fake_apiserver):
        repo = wiring.repo_path
        wait_until(lambda: commits_of(repo, "preview/pr-7") and commits_of(repo, "preview/keep"),
                   what="both previews committed")
        wait_until(lambda: (get(kube, "preview", "pr-7") or {}).get("metadata", {})
                   .get("finalizers"), what="finalizer on pr-7")
        before = len(commits(repo))

        clock.advance(51 * MINUTE)
        wiring.controller.schedule("expire-previews")

        wait_until(lambda: get(kube, "preview", "pr-7") is None, what="pr-7 deleted")
        [removal, *_] = commits_of(repo, "preview/pr-7")
        assert removal.action == "delete"
        assert len(commits(repo)) == before + 1
        changed = git(repo, "show", "--name-only", "--format=", removal.id).split()
        assert changed and all(p.startswith("previews/pr-7/") for p in changed)
        assert files_under(repo, "previews/pr-7") == []
        assert files_under(repo, "previews/keep")
        assert get(kube, "preview", "keep") is not None
        assert "Expired" in [e["reason"] for e in events_for(kube, "pr-7")]
        assert not wiring.controller.failures


# -- local mode ----------------------------------------------------------------------------


def test_local_run_removes_an_expired_preview_in_a_commit_that_says_so(tmp_path: Path) -> None:
    """A Preview whose manifest says it was created longer ago than its ttl is removed by the
    next ``run --once`` in one commit whose subject says ``expired (ttl 1h)``; the next run
    does not bring it back, and a live Preview is untouched."""
    source, repo = tmp_path / "resources", tmp_path / "config.git"
    now = time.time()
    support.write_manifests(source, support.preview("pr-7", ttl="1h", created=now - 10 * MINUTE),
                            support.preview("pr-8", ttl="72h", created=now - 10 * MINUTE))
    support.ok(support.reconciler("run", "--source", source, "--repo", repo, "--once"))
    assert files_under(repo, "previews/pr-7")

    # two hours later: the same manifest, now older than its ttl
    support.write_manifests(source, support.preview("pr-7", ttl="1h", created=now - 2 * 3600))
    before = len(commits(repo))
    support.ok(support.reconciler("run", "--source", source, "--repo", repo, "--once"))

    [removal] = commits(repo)[: len(commits(repo)) - before]
    assert removal.subject == "preview/pr-7: expired (ttl 1h)"
    assert removal.object == "preview/pr-7" and removal.action == "delete"
    assert files_under(repo, "previews/pr-7") == []
    assert files_under(repo, "previews/pr-8")

    after = len(commits(repo))
    support.ok(support.reconciler("run", "--source", source, "--repo", repo, "--once"))
    assert len(commits(repo)) == after


def test_local_status_shows_the_time_left_and_expired_previews(tmp_path: Path) -> None:
    """``reconciler status`` says ``expires in ...`` for a live Preview (counted from its
    creationTimestamp, or from its first commit when the manifest has none), and state
    Expired with ``expired ... ago`` for one past its ttl."""
    source, repo = tmp_path / "resources", tmp_path / "config.git"
    now = time.time()
    support.write_manifests(source, support.preview("live", ttl="72h", created=now - 3600),
                            support.preview("old", ttl="1h", created=now - 3 * 3600),
                            support.preview("fresh", ttl="72h"))
    support.ok(support.reconciler("run", "--source", source, "--repo", repo, "--once"))

    rows = support.table(support.ok(support.reconciler(
        "status", "--source", source, "--repo", repo)))

    live, old = rows["preview/live"], rows["preview/old"]
    assert live["STATE"] == "InSync"
    assert "expires in 2d22h5" in live["MESSAGE"]  # 71h left, give or take a few seconds
    assert rows["preview/fresh"]["STATE"] == "InSync"
    assert "expires in 2d23h59m" in rows["preview/fresh"]["MESSAGE"]  # committed moments ago
    assert old["STATE"] == "Expired"
    assert "expired 2h ago" in old["MESSAGE"] or "expired 1h59m ago" in old["MESSAGE"]
