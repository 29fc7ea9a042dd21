"""The compact listing of large trees (adapters/treelisting.py), against git and pygit2."""

from __future__ import annotations

import random
from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters import treelisting
from reconciler.core.plan import ChangeSet
from tests.gitcli import git
from tests.gitrepo.test_writer import fsck, open_repo, tenant_files

names = st.text(st.sampled_from("ab.-_/0z"), min_size=1, max_size=4).filter(
    lambda n: "/" not in n and n not in (".", ".."))


def _raw_tree(repo: pygit2.Repository, entries: dict[str, bool]
              ) -> tuple[bytes, dict[str, tuple[bool, pygit2.Oid]]]:
    """A tree of ``entries`` (name -> is a tree) written by libgit2, its raw bytes and what
    pygit2 reads back from it."""
    builder = repo.TreeBuilder()
    empty = repo.TreeBuilder().write()
    for name, is_tree in entries.items():
        if is_tree:
            builder.insert(name, empty, pygit2.enums.FileMode.TREE)
        else:
            builder.insert(name, repo.create_blob(name.encode()), pygit2.enums.FileMode.BLOB)
    tree = repo[builder.write()]
    assert isinstance(tree, pygit2.Tree)
    return (repo.odb.read(tree.id)[1],
            {str(e.name): (e.type_str == "tree", e.id) for e in tree})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(names, st.booleans(), min_size=1, max_size=60),
       patches=st.lists(st.tuples(names, st.sampled_from([None, False, True])), max_size=150))
def test_a_listing_reads_and_patches_like_a_dict(tmp_path_factory, entries, patches):
    """Whatever the names (git sorts a tree as ``name/``), a compact listing looks up,
    iterates and counts what pygit2 reads, and after any sequence of our own patches
    (enough to fold them in) it still holds exactly what a dict patched alike holds."""
    repo = pygit2.init_repository(str(tmp_path_factory.mktemp("r")), bare=True)
    raw, expected = _raw_tree(repo, entries)
    listing = treelisting.Listing(raw, 20)
    assert dict(listing.items()) == expected and list(listing) == list(expected)
    assert all(listing[name] == entry for name, entry in expected.items())
    assert listing.subtrees() == [name for name, (is_tree, _) in expected.items() if is_tree]
    blob = repo.create_blob(b"x")
    for name, change in patches:
        if change is None:
            listing.pop(name, None)
            expected.pop(name, None)
        else:
            listing[name] = expected[name] = (change, blob)
        assert len(listing) == len(expected)
    assert dict(listing.items()) == expected and set(listing) == set(expected)
    assert [listing.get(n) for n in [*expected, "absent"]] == [*expected.values(), None]
    assert list(listing.values()) == [listing[n] for n in listing]
    assert listing.subtrees() == [n for n, (is_tree, _) in expected.items() if is_tree] or \
        sorted(listing.subtrees()) == sorted(n for n, (t, _) in expected.items() if t)


def test_a_cut_short_tree_is_refused():
    """A tree whose last id is cut short is a ValueError (the repository names it)."""
    with pytest.raises(ValueError, match="cut short"):
        treelisting.Listing(b"100644 a\0" + b"\1" * 20 + b"100644 b\0" + b"\2" * 7, 20)


def test_a_tree_naming_an_entry_twice_keeps_the_last_as_a_dict_did():
    """A damaged tree naming a file twice lists it once, with its last id."""
    raw = b"100644 a\0" + b"\1" * 20 + b"100644 a\0" + b"\2" * 20
    listing = treelisting.Listing(raw, 20)
    assert list(listing) == ["a"] and listing["a"][1].raw == b"\2" * 20 and len(listing) == 1


def test_a_large_directory_read_compactly_follows_our_commits(tmp_path: Path):
    """A tenants/ tree too large for a dict is read compactly; through 150 commits adding
    and removing tenants (its patches folded in along the way) the running writer lists
    what git holds, and a fresh one reads the same."""
    bare = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "--template=", "-b", "main", str(bare))
    repo = open_repo(bare)
    repo.commit(ChangeSet(dict(tenant_files(400))), "import")
    assert isinstance(repo._children("tenants"), treelisting.Listing)  # the case under test
    rnd = random.Random(7)
    present = {f"t{i:04d}" for i in range(400)}
    for step in range(150):
        name = f"t{rnd.randrange(600):04d}"
        path = f"tenants/{name}/namespace.yaml"
        if name in present and step % 3:
            repo.commit(ChangeSet({}, frozenset({path})), f"remove {name}")
            present.discard(name)
        else:
            repo.commit(ChangeSet({path: b"step %d\n" % step}), f"write {name}")
            present.add(name)
        assert repo.tree_id(f"tenants/{name}") == (
            git(bare, "rev-parse", f"main:tenants/{name}") if name in present else None)
    listed = git(bare, "ls-tree", "--name-only", "main", "tenants/").split()
    assert sorted(repo.list_directories("tenants")) == sorted(p.split("/")[1] for p in listed) \
        == sorted(present)
    assert sorted(open_repo(bare).list_directories("tenants")) == sorted(present)
    fsck(bare)
