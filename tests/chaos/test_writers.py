"""One writer and what a killed one leaves: a second reconciler on the same repository stops
with one line; ref locks and temporary objects left by a ``kill -9`` are cleared only when
they provably have no live owner, and the next run commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.support import (
    copy_examples,
    fsck,
    no_traceback,
    reconciler,
    seeded,
    write_customer,
)
from tests.gitcli import git, git_env


def test_second_reconciler_on_the_same_repository_stops_in_one_line(tmp_path: Path) -> None:
    """While one ``reconciler run`` watches a repository, a second one exits at once with one
    line naming the first one's pid, and writes nothing."""
    sources, repo = seeded(tmp_path)
    env = {k: v for k, v in git_env().items() if not k.startswith("RECONCILER_")}
    first = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--source",
                              str(sources), "--repo", str(repo)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        lock = repo / "reconciler.lock"
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline, "the first reconciler never took the lock"
            time.sleep(0.1)
        head = git(repo, "rev-parse", "main")
        write_customer(sources, "acme", 7)
        second = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")
    finally:
        first.terminate()
        first.wait(timeout=30)

    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and no_traceback(second), second.stderr
    assert f"pid {first.pid}" in lines[0] and "another reconciler" in lines[0]
    assert git(repo, "rev-parse", "main") != "" and head


def test_ref_lock_left_by_a_killed_run_is_cleared_and_the_next_run_commits(
    tmp_path: Path,
) -> None:
    """A refs/heads/main.lock holding a commit the reconciler made (a run killed mid-update)
    and an old temporary object file are removed at start; the run commits, fsck is clean."""
    sources, repo = seeded(tmp_path)
    head = git(repo, "rev-parse", "main")
    (repo / "refs" / "heads" / "main.lock").write_text(head + "\n")
    leftover = repo / "objects" / "tmp_object_git2_Xyz123"
    leftover.write_bytes(b"half an object")
    old = time.time() - 3600  # a temporary object may belong to a live writer while fresh
    os.utime(leftover, (old, old))
    write_customer(sources, "acme", 6)

    done = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")

    assert done.returncode == 0, done.stderr
    assert no_traceback(done)
    assert not (repo / "refs" / "heads" / "main.lock").exists()
    assert not leftover.exists()
    assert git(repo, "rev-parse", "main") != head
    assert fsck(repo) == ""


def test_fresh_foreign_ref_lock_is_left_alone_and_reported_in_one_line(tmp_path: Path) -> None:
    """An empty ref lock only a moment old may belong to a live git process (a human's commit
    in progress): the run does not remove it, fails the commit in one line per object, and
    the next run after it is gone commits."""
    sources, repo = seeded(tmp_path)
    lock = repo / "refs" / "heads" / "main.lock"
    lock.write_text("")
    write_customer(sources, "acme", 6)

    blocked = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")
    still_there = lock.exists()
    lock.unlink()
    after = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")

    assert blocked.returncode == 1 and no_traceback(blocked), blocked.stderr
    assert "locked" in blocked.stderr
    assert still_there
    assert after.returncode == 0, after.stderr


def test_stale_ref_lock_of_unknown_origin_is_cleared_once_old(tmp_path: Path) -> None:
    """An empty ref lock older than any git process holds one is cleared; the run commits."""
    sources, repo = seeded(tmp_path)
    lock = repo / "refs" / "heads" / "main.lock"
    lock.write_text("")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    write_customer(sources, "acme", 6)

    done = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")

    assert done.returncode == 0, done.stderr
    assert not lock.exists()


def test_readers_beside_a_running_writer_read_its_mirror_and_leave_it_alone(
    tmp_path: Path,
) -> None:
    """``history`` and ``status`` on a remote whose mirror a running reconciler holds answer
    from that mirror, take no lock from it and do not move its branch."""
    from tests import gitservers

    sources = copy_examples(tmp_path / "src")
    state = tmp_path / "state"
    env = {k: v for k, v in git_env().items() if not k.startswith("RECONCILER_")}
    with gitservers.DaemonGitServer(workdir=tmp_path / "server") as server:
        server.create_bare_repo("config")
        url = server.url_for("config")
        first = reconciler("run", "--source", str(sources), "--repo", url, "--state-dir",
                           str(state), "--once")
        assert first.returncode == 0, first.stderr
        writer = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--source",
                                   str(sources), "--repo", url, "--state-dir", str(state),
                                   "--push-window", "60"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not any(p.read_text().strip() == str(writer.pid)
                          for p in (state / "mirrors").glob("*.lock")):
                assert time.monotonic() < deadline, "the writer never took the mirror's lock"
                time.sleep(0.1)
            write_customer(sources, "acme", 9)
            mirror = next((state / "mirrors").glob("*.git"))
            deadline = time.monotonic() + 30
            while "customer/acme" not in git(mirror, "log", "-1", "--format=%s", "main"):
                assert time.monotonic() < deadline, "the writer never committed"
                time.sleep(0.1)
            waiting = git(mirror, "rev-parse", "main")
            history = reconciler("history", "customer/acme", "--repo", url, "--state-dir",
                                 str(state))
            status = reconciler("status", "--source", str(sources), "--repo", url,
                                "--state-dir", str(state))
            still = git(mirror, "rev-parse", "main")
            alive = writer.poll() is None
        finally:
            writer.terminate()
            writer.wait(timeout=30)

    assert history.returncode == 0 and no_traceback(history), history.stderr
    assert status.returncode == 0 and no_traceback(status), status.stderr
    assert history.stdout.count("customer/acme:") == 2  # the waiting commit included
    assert still == waiting and alive
