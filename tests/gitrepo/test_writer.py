"""GitConfigRepo, the pygit2 writer, against real repositories in temporary directories.

The git CLI is the reader throughout: what it sees (trees, blobs, fsck, work trees) is what
Argo CD, Flux and a reviewer will see.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters import looseobjects
from reconciler.adapters.gitrepo import KEEP_BUILDER_ENTRIES, GitConfigRepo
from reconciler.core import errors
from reconciler.core.plan import ChangeSet, git_blob_id
from tests.gitcli import git, git_env, human_commit

BRANCH = "main"


# -- the git CLI ---------------------------------------------------------------------------




def init_bare(path: Path) -> Path:
    """A new bare repository whose HEAD names the main branch."""
    git(path.parent, "init", "-q", "--template=", "--bare", "-b", BRANCH, str(path))
    return path


def open_repo(path: Path) -> GitConfigRepo:
    """The writer on the main branch of the repository at ``path``."""
    return GitConfigRepo.open(path, branch=BRANCH, author_name="Reconciler",
                              author_email="reconciler@example.invalid")


def ls_tree(repo: Path, treeish: str = BRANCH) -> dict[str, str]:
    """Every file at ``treeish``: path -> "mode type id"."""
    out = git(repo, "ls-tree", "-r", "-z", treeish)
    entries = {}
    for line in filter(None, out.split("\0")):
        meta, path = line.split("\t", 1)
        entries[path] = meta
    return entries


def tree_paths(repo: Path, treeish: str = BRANCH) -> set[str]:
    """Every file and directory path at ``treeish``."""
    return set(filter(None, git(repo, "ls-tree", "-r", "-t", "--name-only", "-z", treeish).split("\0")))


def all_objects(repo: Path) -> dict[str, str]:
    """Every object in the repository: id -> type."""
    out = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
    return dict(line.split() for line in out.splitlines())


def fsck(repo: Path) -> None:
    """Fail unless ``git fsck --strict`` finds the repository clean."""
    proc = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--no-dangling", "--full"],
                          capture_output=True, text=True, env=git_env(), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stderr and "warning" not in proc.stderr, proc.stderr



def tenant_files(count: int) -> dict[str, bytes]:
    """One file in each of ``count`` tenant directories (a flat tenants/ tree of that size)."""
    return {f"tenants/t{i:04d}/namespace.yaml": b"name: t%04d\n" % i for i in range(count)}


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare repository."""
    return init_bare(tmp_path / "config.git")


# -- what a commit writes ------------------------------------------------------------------


def test_commit_writes_only_the_changed_blob_and_the_trees_on_its_path(bare):
    """A commit changing one file adds one blob, the trees above it and the commit; every
    other file and directory keeps its object id."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a: 1\n", "tenants/acme/b.yaml": b"b: 1\n",
                           "tenants/zeta/c.yaml": b"c: 1\n", "README.md": b"readme\n"}), "first")
    before_files = ls_tree(bare)
    before_objects = all_objects(bare)
    zeta_tree = git(bare, "rev-parse", f"{BRANCH}:tenants/zeta")

    head = repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a: 2\n"}), "second")

    new = {oid: kind for oid, kind in all_objects(bare).items() if oid not in before_objects}
    assert {oid for oid, kind in new.items() if kind == "blob"} == {git_blob_id(b"a: 2\n")}
    assert {oid for oid, kind in new.items() if kind == "tree"} == {
        git(bare, "rev-parse", f"{BRANCH}^{{tree}}"),
        git(bare, "rev-parse", f"{BRANCH}:tenants"),
        git(bare, "rev-parse", f"{BRANCH}:tenants/acme"),
    }
    assert {oid for oid, kind in new.items() if kind == "commit"} == {head}
    after_files = ls_tree(bare)
    for unchanged in ("tenants/acme/b.yaml", "tenants/zeta/c.yaml", "README.md"):
        assert after_files[unchanged] == before_files[unchanged]
    assert git(bare, "rev-parse", f"{BRANCH}:tenants/zeta") == zeta_tree
    assert git(bare, "diff-tree", "-r", "--name-only", "--no-commit-id", "HEAD^", "HEAD") \
        == "tenants/acme/a.yaml"


def test_commit_makes_one_commit_on_top_of_the_head_with_the_given_message(bare):
    """Each commit has the previous head as its only parent and carries the message verbatim."""
    repo = open_repo(bare)
    first = repo.commit(ChangeSet({"a.txt": b"1\n"}), "first\n\nbody line\n")
    second = repo.commit(ChangeSet({"a.txt": b"2\n"}), "second")
    assert git(bare, "rev-list", "--parents", "-n", "1", second).split() == [second, first]
    assert git(bare, "log", "-1", "--format=%B", first) == "first\n\nbody line"
    assert git(bare, "log", "-1", "--format=%an <%ae>", second) \
        == "Reconciler <reconciler@example.invalid>"
    assert repo.head() == second == git(bare, "rev-parse", BRANCH)


def test_deleting_the_last_file_of_a_directory_removes_the_directory(bare):
    """Git has no empty directories: removing a directory's last file removes it and every
    parent left empty, and nothing else."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a\n", "tenants/acme/db/x.yaml": b"x\n",
                           "tenants/zeta/c.yaml": b"c\n"}), "first")

    repo.commit(ChangeSet({}, frozenset({"tenants/acme/db/x.yaml"})), "drop db")
    assert tree_paths(bare) == {"tenants", "tenants/acme", "tenants/acme/a.yaml",
                                "tenants/zeta", "tenants/zeta/c.yaml"}

    repo.commit(ChangeSet({}, frozenset({"tenants/acme/a.yaml"})), "drop acme")
    assert tree_paths(bare) == {"tenants", "tenants/zeta", "tenants/zeta/c.yaml"}
    assert repo.list_directories("tenants") == ["zeta"]

    repo.commit(ChangeSet({}, frozenset({"tenants/zeta/c.yaml"})), "drop everything")
    assert tree_paths(bare) == set()
    fsck(bare)


def test_an_empty_change_set_is_refused_and_makes_no_commit(bare):
    """Nothing to do is not a commit: an empty ChangeSet raises and the head stays."""
    repo = open_repo(bare)
    head = repo.commit(ChangeSet({"a.txt": b"1\n"}), "first")
    with pytest.raises(ValueError, match="empty"):
        repo.commit(ChangeSet(), "nothing")
    assert git(bare, "rev-parse", BRANCH) == head


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", ".git/config", "tenants/../../x",
                                  "tenants/acme/.GIT/hooks/pre-commit", "a/./b", "a/"])
def test_an_unsafe_path_is_refused_before_anything_is_written(bare, path):
    """A path that could escape the tree or reach .git raises UnsafeWriteError; the head stays
    and not even the safe files of the same change set reach the object database."""
    repo = open_repo(bare)
    head = repo.commit(ChangeSet({"a.txt": b"1\n"}), "first")
    objects = all_objects(bare)
    safe = b"safe file written in the same change set\n"
    with pytest.raises(errors.UnsafeWriteError):
        repo.commit(ChangeSet({"tenants/ok/file.yaml": safe, path: b"evil\n"}), "evil")
    assert git(bare, "rev-parse", BRANCH) == head
    assert all_objects(bare) == objects
    assert git_blob_id(safe) not in objects


def test_an_unsafe_delete_is_refused_like_an_unsafe_write(bare):
    """Deletes are confined too: deleting ``../x`` raises and changes nothing."""
    repo = open_repo(bare)
    head = repo.commit(ChangeSet({"a.txt": b"1\n"}), "first")
    with pytest.raises(errors.UnsafeWriteError):
        repo.commit(ChangeSet({}, frozenset({"../a.txt"})), "evil")
    assert git(bare, "rev-parse", BRANCH) == head


def test_a_directory_replaced_by_a_file_of_the_same_name_keeps_the_file(bare):
    """Writing ``x.y`` and deleting ``x.y/f`` in one change set leaves the file ``x.y``."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/x.y/f": b"in a directory\n", "tenants/keep": b"k\n"}), "first")
    repo.commit(ChangeSet({"tenants/x.y": b"now a file\n"}, frozenset({"tenants/x.y/f"})), "flip")
    assert git(bare, "show", f"{BRANCH}:tenants/x.y") == "now a file"


def test_deleting_a_path_below_a_file_leaves_the_file_alone(bare):
    """Deleting ``a/x`` when ``a`` is a file changes nothing; ``a`` stays."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"a": b"a file\n", "b/c": b"c\n"}), "first")
    repo.commit(ChangeSet({}, frozenset({"a/x"})), "delete below a file")
    assert git(bare, "show", f"{BRANCH}:a") == "a file"


# -- validity for the git CLI, large trees ---------------------------------------------------


def test_many_commits_keep_the_repository_fsck_clean(bare):
    """Fifty commits of writes, rewrites and deletes over nested directories leave a repository
    ``git fsck --strict`` accepts, with the files the commits describe."""
    repo = open_repo(bare)
    expected: dict[str, bytes] = {}
    for step in range(50):
        writes = {f"tenants/t{step % 7}/f{step % 3}.yaml": b"step %d\n" % step,
                  f"previews/p{step % 5}/app.yaml": b"app %d\n" % step}
        deletes = frozenset({f"tenants/t{(step + 3) % 7}/f{(step + 1) % 3}.yaml"}) - set(writes)
        repo.commit(ChangeSet(writes, deletes), f"step {step}")
        expected.update(writes)
        for gone in deletes:
            expected.pop(gone, None)
    fsck(bare)
    assert git(bare, "rev-list", "--count", BRANCH) == "50"
    files = ls_tree(bare)
    assert set(files) == set(expected)
    assert all(files[p].split()[2] == git_blob_id(data) for p, data in expected.items())


TRICKY_NAMES = ["x", "x-1", "x.y", "x0", "x_", "x~", "X", "a", "z" * 60]


def test_a_directory_of_more_than_256_entries_stays_valid_across_commits(bare):
    """The flat tenants/ tree (above the large-tree threshold, kept in memory and written as a
    loose object) sorts like Git, reads back with the git CLI and survives many commits,
    including names that sort differently as files and as directories."""
    assert KEEP_BUILDER_ENTRIES <= 300
    repo = open_repo(bare)
    repo.commit(ChangeSet(tenant_files(300)), "bootstrap")
    names = {f"t{i:04d}" for i in range(300)}
    for step, name in enumerate(TRICKY_NAMES):
        as_dir = step % 2 == 0
        path = f"tenants/{name}/f.yaml" if as_dir else f"tenants/{name}"
        repo.commit(ChangeSet({path: b"%d\n" % step},
                              frozenset({f"tenants/t{step:04d}/namespace.yaml"})), f"step {step}")
        names.add(name)
        names.discard(f"t{step:04d}")
    repo.commit(ChangeSet({"tenants/t0299/namespace.yaml": b"changed\n"}), "change one")

    fsck(bare)
    tenants = git(bare, "rev-parse", f"{BRANCH}:tenants")
    loose = bare / "objects" / tenants[:2] / tenants[2:]
    assert loose.is_file(), "the large tree is stored as a loose object"
    raw = zlib.decompress(loose.read_bytes())
    assert hashlib.sha1(raw, usedforsecurity=False).hexdigest() == tenants
    assert git(bare, "cat-file", "-t", tenants) == "tree"
    printed = git(bare, "cat-file", "-p", tenants)
    assert set(git(bare, "ls-tree", "--name-only", tenants).splitlines()) == names
    assert git(bare, "mktree", stdin=git(bare, "ls-tree", tenants) + "\n") == tenants
    assert len(printed.splitlines()) == len(names)
    assert git(bare, "show", f"{BRANCH}:tenants/t0299/namespace.yaml") == "changed"


def test_a_fresh_writer_on_an_existing_large_tree_commits_valid_trees(bare):
    """A newly started writer (no tree kept in memory) edits a 300-entry directory made by an
    earlier one and the result reads back identically with the git CLI."""
    open_repo(bare).commit(ChangeSet(tenant_files(300)), "bootstrap")
    fresh = open_repo(bare)
    fresh.commit(ChangeSet({"tenants/new/namespace.yaml": b"new\n"},
                           frozenset({"tenants/t0000/namespace.yaml"})), "add and remove")
    fsck(bare)
    tenants = git(bare, "rev-parse", f"{BRANCH}:tenants")
    assert git(bare, "mktree", stdin=git(bare, "ls-tree", tenants) + "\n") == tenants
    listed = git(bare, "ls-tree", "--name-only", tenants).splitlines()
    assert len(listed) == 300 and "new" in listed and "t0000" not in listed
    assert sorted(fresh.list_directories("tenants")) == sorted(listed)


def test_large_tree_serialises_exactly_like_git_mktree(bare):
    """looseobjects.LargeTree with inserts, replacements and removals produces the object
    ``git mktree`` makes from the same entries, and write_loose stores it so git reads it."""
    blob = git(bare, "hash-object", "-w", "--stdin", stdin=b"content\n")
    subtree = git(bare, "mktree", stdin=f"100644 blob {blob}\tf\n")
    tree = looseobjects.LargeTree()
    for i in range(260):
        tree.insert(f"n{i:03d}", bytes.fromhex(subtree), looseobjects.MODE_TREE)
    for i, name in enumerate(TRICKY_NAMES):
        mode = looseobjects.MODE_TREE if i % 2 else looseobjects.MODE_BLOB
        oid = subtree if i % 2 else blob
        tree.insert(name, bytes.fromhex(oid), mode)
    tree.insert("x", bytes.fromhex(blob), looseobjects.MODE_BLOB)  # directory -> file
    tree.insert("x.y", bytes.fromhex(subtree), looseobjects.MODE_TREE)  # file -> directory
    tree.remove("n000")
    tree.remove("does-not-exist")

    raw = looseobjects.write_loose(bare / "objects", b"tree", tree.serialize())
    written = raw.hex()
    assert git(bare, "cat-file", "-t", written) == "tree"
    listing = git(bare, "ls-tree", written)
    assert git(bare, "mktree", stdin=listing + "\n") == written
    modes = {line.split("\t")[1]: line.split()[0] for line in listing.splitlines()}
    assert modes["x"] == "100644" and modes["x.y"] == "040000" and "n000" not in modes
    assert len(tree) == len(modes) == 259 + len(TRICKY_NAMES)
    assert looseobjects.write_loose(bare / "objects", b"tree", tree.serialize()) == raw


# -- other writers ---------------------------------------------------------------------------


class RacyRepository(pygit2.Repository):
    """A repository in which another writer commits with the git CLI while ours builds its
    tree (after our writer read the head, before it advances the branch)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.race: Mapping[str, bytes | None] | None = None
        self.raced: str | None = None

    def create_blob(self, data: bytes) -> pygit2.Oid:
        oid = super().create_blob(data)
        if self.race is not None:
            race, self.race = self.race, None
            self.raced = human_commit(Path(self.path), race, "human commit during ours")
        return oid


@pytest.mark.parametrize("size", [2, 300], ids=["small-tree", "large-tree"])
def test_a_concurrent_commit_makes_ours_fail_and_loses_nothing(bare, size):
    """When the branch moves while we commit, commit raises HeadMovedError, the other commit
    stays the tip, and a retry lands on top of it with both changes."""
    repo_obj = RacyRepository(str(bare))
    repo = GitConfigRepo(repo_obj, branch=BRANCH, author_name="Reconciler",
                         author_email="reconciler@example.invalid")
    base = repo.commit(ChangeSet(tenant_files(size)), "bootstrap")
    repo.commit(ChangeSet({"tenants/t0001/namespace.yaml": b"ours before\n"}), "warm")
    repo_obj.race = {"tenants/human/notes.md": b"written by a human\n",
                     "tenants/t0000/namespace.yaml": b"human edit\n"}
    ours = ChangeSet({"tenants/t0001/namespace.yaml": b"ours\n", "tenants/ours/f.yaml": b"o\n"})

    with pytest.raises(errors.HeadMovedError):
        repo.commit(ours, "ours")

    human = repo_obj.raced
    assert human is not None and git(bare, "rev-parse", BRANCH) == human
    assert git(bare, "show", f"{BRANCH}:tenants/human/notes.md") == "written by a human"
    assert "tenants/ours/f.yaml" not in ls_tree(bare)

    retried = repo.commit(ours, "ours, again")
    assert git(bare, "rev-parse", f"{retried}^") == human
    assert git(bare, "merge-base", "--is-ancestor", base, retried) == ""
    files = ls_tree(bare)
    assert git(bare, "show", f"{BRANCH}:tenants/t0000/namespace.yaml") == "human edit"
    assert git(bare, "show", f"{BRANCH}:tenants/t0001/namespace.yaml") == "ours"
    assert {"tenants/human/notes.md", "tenants/ours/f.yaml"} <= set(files)
    assert len([p for p in files if p.startswith("tenants/t")]) == size
    fsck(bare)


@pytest.mark.parametrize("size", [2, 300], ids=["small-tree", "large-tree"])
def test_a_commit_after_another_writer_moved_the_branch_builds_on_its_commit(bare, size):
    """Between two of our commits someone else commits with the git CLI; our next commit has
    theirs as parent and keeps their files, also in a large directory kept in memory."""
    repo = open_repo(bare)
    repo.commit(ChangeSet(tenant_files(size)), "bootstrap")
    repo.commit(ChangeSet({"tenants/t0000/namespace.yaml": b"ours 1\n"}), "ours 1")
    human = human_commit(bare, {"tenants/human/notes.md": b"h\n", "tenants/t0001/namespace.yaml": None})
    ours = repo.commit(ChangeSet({"tenants/t0000/namespace.yaml": b"ours 2\n"}), "ours 2")
    assert git(bare, "rev-parse", f"{ours}^") == human
    files = ls_tree(bare)
    assert "tenants/human/notes.md" in files and "tenants/t0001/namespace.yaml" not in files
    assert git(bare, "show", f"{BRANCH}:tenants/t0000/namespace.yaml") == "ours 2"
    fsck(bare)


def test_reads_follow_the_branch_when_someone_else_moves_it(bare):
    """list_files, list_directories, tree_id and read_file answer for the new head after the
    branch was moved by another writer, not from what they read before."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a\n", "tenants/zeta/z.yaml": b"z\n"}), "first")
    assert repo.list_files("tenants/acme") == {"a.yaml": git_blob_id(b"a\n")}
    assert sorted(repo.list_directories("tenants")) == ["acme", "zeta"]
    assert repo.read_file("tenants/acme/a.yaml") == b"a\n"
    old_tree = repo.tree_id("tenants/acme")

    human_commit(bare, {"tenants/acme/a.yaml": b"edited\n", "tenants/acme/new.yaml": b"n\n",
                        "tenants/zeta/z.yaml": None, "tenants/human/h.yaml": b"h\n"})

    assert repo.list_files("tenants/acme") == {"a.yaml": git_blob_id(b"edited\n"),
                                               "new.yaml": git_blob_id(b"n\n")}
    assert sorted(repo.list_directories("tenants")) == ["acme", "human"]
    assert repo.read_file("tenants/acme/a.yaml") == b"edited\n"
    assert repo.read_file("tenants/zeta/z.yaml") is None
    assert repo.tree_id("tenants/zeta") is None
    assert repo.tree_id("tenants/acme") == git(bare, "rev-parse", f"{BRANCH}:tenants/acme") != old_tree


def test_reads_after_our_commit_include_what_another_writer_committed_before_it(bare):
    """When another writer moved the branch before our commit, reads after our commit show
    their files as well as ours."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a\n"}), "first")
    assert repo.list_files("tenants/acme") == {"a.yaml": git_blob_id(b"a\n")}
    human_commit(bare, {"tenants/acme/human.yaml": b"h\n", "tenants/human/h.yaml": b"h\n"})
    repo.commit(ChangeSet({"tenants/zeta/z.yaml": b"z\n"}), "ours")
    assert set(repo.list_files("tenants/acme")) == {"a.yaml", "human.yaml"}
    assert sorted(repo.list_directories("tenants")) == ["acme", "human", "zeta"]
    assert repo.tree_id("tenants/acme") == git(bare, "rev-parse", f"{BRANCH}:tenants/acme")


def test_reads_inside_a_pin_see_the_head_of_its_start_and_follow_after_it(bare):
    """A snapshot read inside ``pinned`` sees one head even when another writer moves the
    branch meanwhile (no mix of two commits); after the pin, reads follow the new head."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a\n", "tenants/zeta/z.yaml": b"z\n"}), "first")
    first = repo.head()
    with repo.pinned():
        assert repo.list_files("tenants/acme") == {"a.yaml": git_blob_id(b"a\n")}
        human = human_commit(bare, {"tenants/acme/a.yaml": b"edited\n", "tenants/zeta/z.yaml": None})
        assert repo.head() == first != human
        assert repo.list_files("tenants/acme") == {"a.yaml": git_blob_id(b"a\n")}
        assert repo.read_file("tenants/zeta/z.yaml") == b"z\n"
        assert [c.id for c in repo.log()] == [first]
    assert repo.list_files("tenants/acme") == {"a.yaml": git_blob_id(b"edited\n")}
    assert repo.read_file("tenants/zeta/z.yaml") is None
    assert [c.id for c in repo.log()] == [human, first]
    assert repo.head() == human


def test_a_commit_inside_a_pin_builds_on_the_branch_and_later_reads_see_it(bare):
    """Our own commit inside a pin goes on top of whatever the branch holds now (another
    writer's commit is kept), and reads after it inside the pin see both."""
    repo = open_repo(bare)
    repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a\n"}), "first")
    with repo.pinned():
        assert repo.tree_id("tenants/acme") is not None
        human = human_commit(bare, {"tenants/human/h.yaml": b"h\n"})
        ours = repo.commit(ChangeSet({"tenants/zeta/z.yaml": b"z\n"}), "ours")
        assert git(bare, "rev-parse", f"{ours}^") == human
        assert sorted(repo.list_directories("tenants")) == ["acme", "human", "zeta"]
        assert repo.read_file("tenants/human/h.yaml") == b"h\n"
    fsck(bare)


# -- work trees ------------------------------------------------------------------------------


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A non-bare repository with main checked out and one commit made with the git CLI."""
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", BRANCH, str(work))
    (work / "README.md").write_text("config repo\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    return work


def test_flush_updates_a_clean_work_tree_with_the_branch_checked_out(clone):
    """After our commits, flush() checks them out: the files appear and git status is clean."""
    repo = open_repo(clone)
    repo.commit(ChangeSet({"tenants/acme/ns.yaml": b"ns\n", "README.md": b"updated\n"}), "ours")
    repo.commit(ChangeSet({"tenants/zeta/ns.yaml": b"z\n"}), "ours 2")
    assert not (clone / "tenants").exists(), "nothing reaches the work tree before flush"
    repo.flush()
    assert (clone / "tenants/acme/ns.yaml").read_text() == "ns\n"
    assert (clone / "tenants/zeta/ns.yaml").read_text() == "z\n"
    assert (clone / "README.md").read_text() == "updated\n"
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "rev-parse", "HEAD") == repo.head()


def test_flush_removes_deleted_files_from_a_clean_work_tree(clone):
    """A file our commit deleted disappears from a clean work tree on flush()."""
    repo = open_repo(clone)
    repo.commit(ChangeSet({"tenants/acme/ns.yaml": b"ns\n"}), "add")
    repo.flush()
    repo.commit(ChangeSet({}, frozenset({"tenants/acme/ns.yaml"})), "remove")
    repo.flush()
    assert not (clone / "tenants/acme/ns.yaml").exists()
    assert git(clone, "status", "--porcelain") == ""


@pytest.mark.parametrize("edit", ["modified", "staged"])
def test_flush_leaves_a_work_tree_with_local_changes_alone(clone, edit):
    """A work tree holding someone's uncommitted (or staged) edits is not touched by flush();
    the commits are on the branch all the same."""
    (clone / "README.md").write_text("my local edit\n")
    if edit == "staged":
        git(clone, "add", "README.md")
    repo = open_repo(clone)
    head = repo.commit(ChangeSet({"tenants/acme/ns.yaml": b"ns\n"}), "ours")
    repo.flush()
    assert (clone / "README.md").read_text() == "my local edit\n"
    assert not (clone / "tenants").exists()
    assert git(clone, "rev-parse", BRANCH) == head


def test_flush_leaves_a_work_tree_on_another_branch_alone(clone):
    """When the user has another branch checked out, flush() changes neither it nor its files."""
    git(clone, "checkout", "-q", "-b", "feature")
    repo = open_repo(clone)
    repo.commit(ChangeSet({"tenants/acme/ns.yaml": b"ns\n"}), "ours")
    repo.flush()
    assert git(clone, "symbolic-ref", "HEAD") == "refs/heads/feature"
    assert not (clone / "tenants").exists()
    assert git(clone, "status", "--porcelain") == ""


def test_flush_on_a_bare_repository_changes_nothing(bare):
    """A bare repository has no work tree: flush() leaves the branch and the directory as is."""
    repo = open_repo(bare)
    head = repo.commit(ChangeSet({"a.txt": b"1\n"}), "first")
    entries = sorted(p.name for p in bare.iterdir())
    repo.flush()
    assert git(bare, "rev-parse", BRANCH) == head
    assert sorted(p.name for p in bare.iterdir()) == entries


# -- equivalence with the git CLI ----------------------------------------------------------

# Directory "d" next to files "d-1", "d.x" and "d0" sorts differently as a tree than as a
# file (git compares a tree's name as if it ended in "/"), also inside the large big/ tree.
# No file name is ever a directory name, so a work tree can hold every combination.
DIRS = ("", "d", "d/sub", "d-e", "big", "big/d")
FILE_NAMES = ("f", "d-1", "d.x", "d0", "sub.txt", "e")
# one content for every bulk file: what matters is the size of big/, not 270 distinct blobs
BULK = dict.fromkeys((f"big/b{i:03d}" for i in range(KEEP_BUILDER_ENTRIES + 14)), b"bulk\n")

paths = st.builds(lambda d, f: f"{d}/{f}" if d else f, st.sampled_from(DIRS), st.sampled_from(FILE_NAMES))
batches = st.lists(st.dictionaries(paths, st.none() | st.binary(max_size=16), min_size=1, max_size=6),
                   min_size=1, max_size=6)


def apply_to_work_tree(work: Path, batch: Mapping[str, bytes | None]) -> None:
    """Write and delete files in a work tree as a person would."""
    for path, data in batch.items():
        target = work / path
        if data is None:
            if target.exists():
                target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bulk=st.sampled_from([False, False, True]), steps=batches)
def test_random_writes_and_deletes_give_the_tree_git_add_gives(bulk, steps):
    """Any sequence of change sets committed through GitConfigRepo ends in the same tree as the
    same writes and deletes made in a work tree and recorded with ``git add -A``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare_repo = init_bare(root / "ours.git")
        work = root / "work"
        git(root, "init", "-q", "--template=", "-b", BRANCH, str(work))
        repo = open_repo(bare_repo)
        if bulk:
            steps = [dict(BULK), *steps]
        for batch in steps:
            writes = {p: d for p, d in batch.items() if d is not None}
            deletes = frozenset(p for p, d in batch.items() if d is None)
            repo.commit(ChangeSet(writes, deletes), "step")
            apply_to_work_tree(work, batch)
        git(work, "add", "-A")
        theirs = git(work, "write-tree")
        assert ls_tree(bare_repo) == ls_tree(work, theirs)
        assert git(bare_repo, "rev-parse", f"{BRANCH}^{{tree}}") == theirs
        fsck(bare_repo)


# -- reading directories -------------------------------------------------------------------


def _graft(bare: Path, name: str, entries: bytes) -> None:
    """Commit a raw tree object made of ``entries`` as directory ``name`` onto main (what
    another tool may write; git's own commands would refuse some of it)."""
    tree = pygit2.Repository(str(bare)).odb.write(pygit2.enums.ObjectType.TREE, entries)
    root = git(bare, "rev-parse", "main^{tree}")
    top = git(bare, "mktree", "--missing",
              stdin=git(bare, "ls-tree", root) + f"\n040000 tree {tree}\t{name}\n")
    git(bare, "update-ref", "refs/heads/main",
        git(bare, "commit-tree", top, "-p", "main", "-m", name))


def test_listings_read_from_raw_trees_match_git_for_every_kind_of_entry(bare):
    """A directory read from its raw tree object lists what git holds: files, an
    executable, a symlink, a submodule, a subdirectory and a name that is not UTF-8
    (named as pygit2 names it)."""
    open_repo(bare).commit(ChangeSet(dict(tenant_files(3))), "import")
    sub = git(bare, "rev-parse", "main:tenants/t0000")

    def entry(mode: str, name: bytes, oid: str) -> bytes:
        return mode.encode() + b" " + name + b"\0" + bytes.fromhex(oid)
    _graft(bare, "odd", b"".join([
        entry("100644", b"a.yaml", git_blob_id(b"a")),
        entry("120000", b"link", git_blob_id(b"a.yaml")),
        entry("160000", b"module", "1" * 40),
        entry("100644", b"odd\xffname", git_blob_id(b"c")),
        entry("100755", b"run.sh", git_blob_id(b"b")),
        entry("40000", b"sub", sub)]))
    repo = open_repo(bare)
    assert repo.list_files("odd") == {
        "a.yaml": git_blob_id(b"a"), "link": git_blob_id(b"a.yaml"), "module": "1" * 40,
        "odd\udcffname": git_blob_id(b"c"), "run.sh": git_blob_id(b"b")}
    expected = pygit2.Repository(str(bare)).revparse_single("main:odd")
    assert set(repo.list_files("odd")) | {"sub"} == {e.name for e in expected}
    assert repo.list_directories("odd") == ["sub"]
    assert repo.tree_id("odd/sub") == sub
    assert repo.list_files("odd/sub") == repo.list_files("tenants/t0000")


def test_a_damaged_tree_is_a_repository_error_not_a_crash(bare):
    """A truncated tree object (a broken tool, a disk error) gives one RepoError naming
    it, not a crash."""
    open_repo(bare).commit(ChangeSet(dict(tenant_files(2))), "import")
    _graft(bare, "broken", b"100644 a.yaml\0" + bytes.fromhex(git_blob_id(b"a"))
           + b"100644 b.yaml\0\x01\x02")
    with pytest.raises(errors.RepoError, match="damaged"):
        open_repo(bare).list_files("broken")
