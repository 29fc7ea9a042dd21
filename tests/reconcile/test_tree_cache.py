"""The tree cache beside the repository: a restart takes what a known tree holds from it
instead of Git, and decides exactly as it would without it; a changed tree, a damaged or
foreign cache file is read from Git again, never trusted.

A real bare repository; the git CLI plays the human.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import treecache
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.settings import Settings
from reconciler.ports.treecache import TreeSummary
from reconciler.reconcile import snapshots
from reconciler.reconcile.engine import Reconciler
from tests.gitcli import git, human_commit
from tests.reconcile.test_cold_start import CountingRepo, assert_record_is_the_file
from tests.reconcile.test_engine import BRANCH, VERSION, customer, parsed

SETTINGS = Settings()
NAMES = [f"c{i:02d}" for i in range(12)]


#: the reads of a directory's files and blobs
COUNTED = ("list_files", "read_blob")


def open_repo(bare: Path) -> GitConfigRepo:
    """The reconciler's writer on ``bare``."""
    return GitConfigRepo.open(bare, branch=BRANCH, author_name=SETTINGS.author_name,
                              author_email=SETTINGS.author_email)


def cache_path(bare: Path) -> Path:
    """Where the composition root keeps the tree cache."""
    return bare / treecache.FILE_NAME


def restart(bare: Path, *, cached: bool = True) -> tuple[Reconciler, CountingRepo]:
    """A fresh reconciler on ``bare`` (with the tree cache, unless ``cached`` is False)."""
    counting = CountingRepo(open_repo(bare), COUNTED)
    trees = treecache.TreeCacheFile(cache_path(bare)) if cached else None
    return Reconciler(repo=counting, settings=SETTINGS, version=VERSION,  # type: ignore[arg-type]
                      trees=trees), counting


def fleet(workers: dict[str, int]) -> list[Any]:
    """The Customers (the first with a database, so the pool has a record), ``workers``
    overriding the default of one."""
    return [customer(name, workers=workers.get(name, 1), database=name == NAMES[0])
            for name in NAMES]


def verdicts(engine: Reconciler, workers: dict[str, int]) -> list[Outcome]:
    """What a full pass over the fleet would do (nothing written)."""
    return list(engine.plan(parsed(*fleet(workers))).verdicts)


@pytest.fixture(autouse=True)
def small_fleets_warm_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tree cache is read for a dozen directories, not only past a few hundred."""
    monkeypatch.setattr(snapshots, "WARM_MIN", 1)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A fleet the reconciler imported and changed, and whose full pass filled the cache."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", BRANCH, str(path))
    engine = Reconciler(repo=open_repo(path), settings=SETTINGS, version=VERSION,
                        trees=treecache.TreeCacheFile(cache_path(path)))
    engine.sync(parsed(*fleet({})))
    assert engine.apply(customer("c01", workers=3)).result == Result.COMMITTED
    # a restart's full pass teaches the cache every tree
    assert restart(path)[0].sync(parsed(*fleet({"c01": 3}))).commits == []
    return path


def test_a_restart_reads_no_known_tree_from_git_and_decides_the_same(bare):
    """Over an unchanged fleet a restart reads no tenant's listing or record from Git, and
    every verdict equals that of a restart without the cache."""
    engine, counting = restart(bare)
    with_cache = verdicts(engine, {"c01": 3})
    assert counting.calls["list_files"] <= 2  # the pool's directory, not one per tenant
    assert counting.calls["read_blob"] <= 2  # the pool's record, not one per tenant
    assert all(v.result == Result.UNCHANGED for v in with_cache)
    assert with_cache == verdicts(restart(bare, cached=False)[0], {"c01": 3})


def test_a_record_from_the_cache_equals_the_record_file_spec_included(bare):
    """A snapshot's source record taken from the cache says what the record file says,
    field for field, its spec read from the blob on demand."""
    engine, _ = restart(bare)
    state = engine.snapshot(parsed(*fleet({"c01": 3}))).state(customer("c01").key)
    assert_record_is_the_file(bare, state, "c01")


def test_a_tree_changed_by_a_human_is_read_from_git_and_held(bare):
    """A human's edit makes a new tree: the restart reads it from Git (not what the cache
    said of the old one), holds the edit, and teaches the cache the new tree."""
    edit = human_commit(bare, {"tenants/c03/scheduler.yaml": b"# mine now\n",
                               "tenants/c04/.reconciler.json": None}, "tune c03, c04")
    engine, counting = restart(bare)
    with_cache = verdicts(engine, {"c01": 3})
    assert 2 <= counting.calls["list_files"] <= 4
    held = {str(v.key): v for v in with_cache if v.result == Result.HELD}
    assert held["customer/c03"].reason == Reason.MODIFIED_IN_GIT
    assert edit[:12] in held["customer/c03"].message
    assert with_cache == verdicts(restart(bare, cached=False)[0], {"c01": 3})
    again, counting = restart(bare)
    assert verdicts(again, {"c01": 3}) == with_cache
    assert counting.calls["list_files"] <= 2


@pytest.mark.parametrize("damage", ["garbage", "torn", "forged", "foreign", "symlink", "fifo"])
def test_a_damaged_or_foreign_cache_file_is_read_from_git_again(bare, tmp_path, damage):
    """Garbage, a torn line, a line whose checksum does not hold, a line of another
    release, a symlink or a FIFO in the cache's place: every tree it cannot vouch for is
    read from Git, the verdicts are those without a cache, and a symlink's target is
    neither read nor written."""
    path = cache_path(bare)
    lines = path.read_bytes().splitlines(keepends=True)
    tree = git(bare, "rev-parse", f"{BRANCH}:tenants/c02")
    ours = next(line for line in lines if line.startswith(tree.encode()))
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not the cache\n")
    if damage == "garbage":
        path.write_bytes(b"\x00\xff garbage\n" * 50 + b"x" * 3_000_000)
    elif damage == "torn":
        path.write_bytes(ours[:-40])
    elif damage == "forged":  # another tenant's listing under c02's tree, checksum kept
        tree_id, checksum, payload = ours.split(b" ", 2)
        path.write_bytes(b" ".join([tree_id, checksum, payload.replace(b"c02", b"c03")]))
    elif damage == "foreign":
        path.write_bytes(ours.replace(ours.split(b" ")[1], b"0" * 16))
    elif damage == "symlink":
        path.unlink()
        path.symlink_to(target)
    else:
        path.unlink()
        os.mkfifo(path)
    engine, counting = restart(bare)
    assert verdicts(engine, {"c01": 3}) == verdicts(restart(bare, cached=False)[0], {"c01": 3})
    assert counting.calls["list_files"] >= len(NAMES)
    assert target.read_bytes() == b"not the cache\n"


def test_the_cache_file_stays_about_the_size_of_the_live_trees(tmp_path, monkeypatch):
    """Entries of trees no pass sees any more are dropped once they outweigh the live ones;
    the live ones survive the rewrite."""
    monkeypatch.setattr(treecache, "_REWRITE_MIN_BYTES", 0)
    cache = treecache.TreeCacheFile(tmp_path / treecache.FILE_NAME)
    summary = TreeSummary({"a.yaml": "1" * 40}, None)
    for batch in range(10):  # ten passes, each over 50 new trees (nothing else live)
        trees = [f"{batch:02d}{i:038d}" for i in range(50)]
        assert list(cache.load(trees)) == []
        for tree in trees:
            cache.add(tree, summary)
        cache.close(trees)
    size = (tmp_path / treecache.FILE_NAME).stat().st_size
    assert size < 4 * 50 * len(b"%s\n" % (b"x" * 150))
    assert [t for t, _ in cache.load(trees)] == trees


def test_directories_a_running_reconciler_commits_are_known_after_a_restart(bare):
    """Each commit of a running reconciler teaches the cache its new tree: a restart after
    changes reads none of the changed directories from Git, and decides as without it."""
    running = restart(bare)[0]
    for name in ("c02", "c03"):
        assert running.apply(customer(name, workers=4)).result == Result.COMMITTED
    engine, counting = restart(bare)
    workers = {"c01": 3, "c02": 4, "c03": 4}
    with_cache = verdicts(engine, workers)
    assert counting.calls["list_files"] <= 2
    assert all(v.result == Result.UNCHANGED for v in with_cache)
    assert with_cache == verdicts(restart(bare, cached=False)[0], workers)


def test_large_entries_are_not_rewritten_on_every_pass(tmp_path, monkeypatch):
    """Directories with many files make entries far larger than the size estimate: the
    file is rewritten to the live entries at most once, later passes leave it alone."""
    monkeypatch.setattr(treecache, "_REWRITE_MIN_BYTES", 0)
    path = tmp_path / treecache.FILE_NAME
    cache = treecache.TreeCacheFile(path)
    big = TreeSummary({f"file-{i:03d}.yaml": f"{i:040d}" for i in range(60)}, None)
    trees = [f"{i:040d}" for i in range(20)]
    for tree in trees:
        cache.add(tree, big)
    cache.close(trees)
    cache.close(trees)  # a pass that loads nothing (every directory in memory)
    settled = path.stat().st_ino
    for _ in range(3):  # and more of them: the file is already the live entries
        cache.close(trees)
        assert path.stat().st_ino == settled
    assert [t for t, _ in cache.load(trees)] == trees


def test_two_directories_with_the_same_tree_are_both_seen(bare):
    """A human copies a tenant's directory under another name (the same tree twice): a
    restart sees both, and decides as without the cache."""
    files: dict[str, bytes | None] = {}
    for name in git(bare, "ls-tree", "--name-only", f"{BRANCH}:tenants/c02").splitlines():
        files[f"tenants/zz/{name}"] = subprocess.run(
            ["git", "-C", str(bare), "cat-file", "blob", f"{BRANCH}:tenants/c02/{name}"],
            capture_output=True, check=True).stdout
    human_commit(bare, files, "a copy of c02")
    assert git(bare, "rev-parse", f"{BRANCH}:tenants/zz") \
        == git(bare, "rev-parse", f"{BRANCH}:tenants/c02")
    engine, _ = restart(bare)
    with_cache = verdicts(engine, {"c01": 3})
    assert with_cache == verdicts(restart(bare, cached=False)[0], {"c01": 3})
    assert engine.snapshot(parsed(*fleet({"c01": 3}))).state(customer("zz").key).files
