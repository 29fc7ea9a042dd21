"""Reads of the Git adapter by object id and by directory, against real repositories: the
fast paths (straight from the object database) answer exactly what git itself does."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core.plan import ChangeSet, git_blob_id
from tests.gitcli import git, human_commit

BRANCH = "main"


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, GitConfigRepo]:
    """A bare repository with one tenant directory, and the writer on it."""
    bare = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--template=", "--bare", "-b", BRANCH, str(bare))
    writer = GitConfigRepo.open(bare, branch=BRANCH, author_name="Reconciler",
                                author_email="reconciler@example.invalid")
    writer.commit(ChangeSet({"tenants/acme/a.yaml": b"a: 1\n",
                             "tenants/acme/.reconciler.json": b'{"x": 1}\n'}), "first")
    return bare, writer


def test_read_blob_gives_the_bytes_of_a_blob_and_nothing_for_other_ids(repo):
    """A blob's id gives its bytes; a tree's or commit's id, an unknown id and text that is no
    id give None, never an exception."""
    bare, writer = repo
    assert writer.read_blob(git_blob_id(b"a: 1\n")) == b"a: 1\n"
    assert writer.read_blob(git(bare, "rev-parse", f"{BRANCH}:tenants/acme")) is None
    assert writer.read_blob(git(bare, "rev-parse", BRANCH)) is None
    assert writer.read_blob("0" * 40) is None
    assert writer.read_blob("z" * 40) is None
    assert writer.read_blob("not an id") is None


def test_list_files_of_a_leaf_directory_names_every_blob_as_git_does(repo):
    """A tenant directory's listing (names and blob ids, subdirectories left out) is what
    ``git ls-tree`` shows, also after another writer changed it."""
    bare, writer = repo
    human_commit(bare, {"tenants/acme/b c.yaml": b"b\n", "tenants/acme/sub/d.yaml": b"d\n",
                        "tenants/acme/a.yaml": None})
    listed = {}
    for line in git(bare, "ls-tree", f"{BRANCH}:tenants/acme").splitlines():
        meta, name = line.split("\t", 1)
        _mode, kind, oid = meta.split()
        if kind == "blob":
            listed[name] = oid
    assert writer.list_files("tenants/acme") == listed
    assert writer.list_directories("tenants/acme") == ["sub"]
    assert writer.list_files("tenants/nobody") == {}
