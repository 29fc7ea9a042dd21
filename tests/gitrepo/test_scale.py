"""The writer at fleet scale: large commits land as one pack, loose objects stay bounded,
and an object's history is read from the changed-directories index, not by diffing.

The git CLI is the reader: what it sees is what Argo CD, Flux and a reviewer see.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters import gitrepo, touchindex
from reconciler.core.plan import ChangeSet
from tests.gitcli import git, human_commit
from tests.gitrepo.test_writer import fsck, init_bare, ls_tree, open_repo, tenant_files


def loose_count(repo: Path) -> int:
    """Loose objects, as ``git count-objects`` counts them."""
    out = git(repo, "count-objects", "-v")
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("count:")))


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare repository."""
    return init_bare(tmp_path / "config.git")


def test_a_large_commit_lands_as_one_pack_that_git_reads_and_fsck_accepts(bare):
    """An import of thousands of files writes one pack (no loose file per object) and the
    git CLI sees every file with its bytes."""
    files = tenant_files(gitrepo.BULK_WRITES + 10)
    repo = open_repo(bare)
    repo.commit(ChangeSet(files), "import")
    assert loose_count(bare) <= 2  # the commit (and at most an empty tree)
    assert len(list((bare / "objects" / "pack").glob("pack-*.idx"))) == 1
    assert set(ls_tree(bare)) == set(files)
    assert git(bare, "show", "main:tenants/t0007/namespace.yaml") == "name: t0007"
    fsck(bare)
    # a later small commit builds on the packed trees
    repo.commit(ChangeSet({"tenants/t0007/namespace.yaml": b"name: seven\n"}), "edit")
    assert git(bare, "show", "main:tenants/t0007/namespace.yaml") == "name: seven"
    fsck(bare)


def test_loose_objects_are_packed_once_they_pile_up_and_nothing_is_lost(bare, monkeypatch):
    """Many single-file commits never leave more than about LOOSE_LIMIT loose objects, and
    every commit stays readable after packing."""
    monkeypatch.setattr(gitrepo, "LOOSE_LIMIT", 40)
    repo = open_repo(bare)
    for i in range(60):
        repo.commit(ChangeSet({f"tenants/t{i % 7}/values.yaml": b"n: %d\n" % i}), f"c{i}")
        assert loose_count(bare) <= 40 + 10
    assert git(bare, "rev-list", "--count", "main") == "60"
    assert git(bare, "show", "main~59:tenants/t0/values.yaml") == "n: 0"
    fsck(bare)


def test_many_packs_are_combined_into_one(bare, monkeypatch):
    """Past PACKS_LIMIT packs, one pack of every object replaces them."""
    monkeypatch.setattr(gitrepo, "LOOSE_LIMIT", 8)
    monkeypatch.setattr(gitrepo, "PACKS_LIMIT", 3)
    repo = open_repo(bare)
    for i in range(40):
        repo.commit(ChangeSet({f"tenants/t{i}/values.yaml": b"n: %d\n" % i}), f"c{i}")
    assert len(list((bare / "objects" / "pack").glob("pack-*.pack"))) <= 3
    assert len(ls_tree(bare)) == 40
    fsck(bare)


def test_history_of_a_directory_names_our_commits_and_a_humans_and_uses_the_index(bare):
    """commits_touching finds our commits and a human's (made with the git CLI), newest
    first; the answer is the same when read back from the index file alone."""
    repo = open_repo(bare)
    ours = [repo.commit(ChangeSet({f"tenants/{name}/values.yaml": b"v: 1\n"}), name)
            for name in ("a", "b")]
    theirs = human_commit(bare, {"tenants/a/values.yaml": b"v: human\n"})
    found = [c.id for c in repo.commits_touching("tenants/a")]
    assert found == [theirs, ours[0]]
    index = touchindex.load(bare / touchindex.FILE_NAME)
    assert index[theirs] == frozenset({"tenants/a"})
    assert index[ours[1]] == frozenset({"tenants/b"})
    fresh = open_repo(bare)  # a restart reads the index instead of diffing
    assert [c.id for c in fresh.commits_touching("tenants/a")] == found
    assert [c.id for c in fresh.commits_touching("tenants")] == [theirs, ours[1], ours[0]]


def test_a_torn_or_garbled_index_is_recomputed_not_trusted(bare):
    """A half-written last line or garbage in the index file never hides a commit."""
    repo = open_repo(bare)
    first = repo.commit(ChangeSet({"tenants/a/values.yaml": b"v: 1\n"}), "a")
    path = bare / touchindex.FILE_NAME
    path.write_text("garbage\n" + first[:30])
    assert [c.id for c in open_repo(bare).commits_touching("tenants/a")] == [first]


def test_readers_never_fail_while_the_writer_packs(bare, tmp_path, monkeypatch):
    """While single-file commits pack their loose objects (and combine packs) again and
    again, a git CLI clone and fetch over the repository and a second libgit2 reader (what
    `reconciler status` opens) never fail and always see a complete tree."""
    import subprocess
    import threading

    import pygit2

    from tests.gitcli import git_env

    monkeypatch.setattr(gitrepo, "LOOSE_LIMIT", 24)
    monkeypatch.setattr(gitrepo, "PACKS_LIMIT", 3)
    repo = open_repo(bare)
    repo.commit(ChangeSet({f"tenants/t{i}/values.yaml": b"n: 0\n" for i in range(20)}), "seed")
    stop, failures, reads = threading.Event(), [], {"cli": 0, "libgit2": 0}
    clone = tmp_path / "clone.git"
    git(tmp_path, "clone", "-q", "--bare", "--no-local", str(bare), str(clone))

    def cli_reader() -> None:
        while not stop.is_set():
            done = subprocess.run(["git", "-C", str(clone), "fetch", "-q", "--no-auto-gc",
                                   str(bare), "+refs/heads/main:refs/heads/main"],
                                  capture_output=True, text=True, env=git_env(), check=False)
            if done.returncode != 0:
                failures.append(f"fetch: {done.stderr}")
            reads["cli"] += 1

    def libgit2_reader() -> None:
        while not stop.is_set():
            try:
                reader = pygit2.Repository(str(bare))
                tree = reader.revparse_single("main").peel(pygit2.Tree)
                files = [reader[e.id].data for d in tree["tenants"].peel(pygit2.Tree)
                         for e in reader[d.id].peel(pygit2.Tree)]
                if len(files) != 20:
                    failures.append(f"libgit2 saw {len(files)} files")
            except (KeyError, pygit2.GitError, ValueError) as exc:
                failures.append(f"libgit2: {exc!r}")
            reads["libgit2"] += 1

    threads = [threading.Thread(target=cli_reader), threading.Thread(target=libgit2_reader)]
    for thread in threads:
        thread.start()
    try:
        for i in range(150):
            repo.commit(ChangeSet({f"tenants/t{i % 20}/values.yaml": b"n: %d\n" % (i + 1)}),
                        f"c{i}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert reads["cli"] > 0 and reads["libgit2"] > 0
    assert loose_count(bare) <= 24 + 10
    fsck(bare)
    git(tmp_path, "clone", "-q", "--bare", "--no-local", str(bare), str(tmp_path / "after.git"))
    fsck(tmp_path / "after.git")


def test_only_a_writer_packs_read_only_commands_leave_the_objects_alone(tmp_path):
    """With more loose objects than the packing threshold, `status`, `history` and `plan`
    leave every loose object and pack as they are; the next `run` that commits packs them."""
    import shutil
    import subprocess
    import sys

    import pygit2

    source = tmp_path / "resources"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples", source)
    config = tmp_path / "config.git"

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "reconciler.cli", *args],
                              capture_output=True, text=True, check=False, timeout=120,
                              env={k: v for k, v in __import__("os").environ.items()
                                   if not k.startswith(("RECONCILER_", "GIT_"))})
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
        return done.stdout

    cli("run", "--once", "--source", str(source), "--repo", str(config))
    raw = pygit2.Repository(str(config))
    # e.g. a human's objects or a killed run's; thrice the threshold, as the writer estimates
    # the count from one fan-out directory (as git gc --auto does)
    for i in range(3 * gitrepo.LOOSE_LIMIT):
        raw.create_blob(b"stray %d\n" % i)
    packs = sorted((config / "objects" / "pack").glob("pack-*"))
    loose = loose_count(config)
    assert loose > gitrepo.LOOSE_LIMIT

    cli("status", "--source", str(source), "--repo", str(config))
    cli("history", "customer/acme", "--repo", str(config))
    cli("plan", "--source", str(source), "--repo", str(config))

    assert loose_count(config) == loose
    assert sorted((config / "objects" / "pack").glob("pack-*")) == packs
    (source / "customers" / "acme.yaml").write_text(
        (source / "customers" / "acme.yaml").read_text().replace("workers: 2", "workers: 3"))
    cli("run", "--once", "--source", str(source), "--repo", str(config))
    assert loose_count(config) < 50
    fsck(config)
