"""The pack an import writes: every object once, readable by the git CLI, written by a
second thread whose failure stops the import instead of leaving a broken pack."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from reconciler.adapters import looseobjects
from tests.gitcli import git


def blob_id(data: bytes) -> str:
    """The id git gives a blob with these bytes."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def test_pack_holds_every_object_once_and_git_reads_them(tmp_path: Path):
    """Several batches' worth of blobs (duplicates among them) and a tree over some of them
    land in one pack that git verifies, each readable by its id with its exact bytes."""
    git(tmp_path, "init", "-q", "--bare", "repo.git")
    repo = tmp_path / "repo.git"
    blobs = [(b"tenant %d\n" % (i % 3000)) * (1 + i % 50) for i in range(4000)]
    writer = looseobjects.PackWriter(repo / "objects")
    ids = [writer.add(b"blob", data).hex() for data in blobs]
    tree = writer.add(b"tree", looseobjects.flat_tree(
        [(f"f{i}.yaml", bytes.fromhex(ids[i])) for i in range(5)]))
    assert len(writer) == 3001
    name = writer.finish()
    assert name is not None
    git(repo, "verify-pack", str(repo / "objects" / "pack" / f"{name}.idx"))
    assert ids == [blob_id(data) for data in blobs]
    for i in (0, 1, 2999, 3999):
        assert git(repo, "cat-file", "blob", ids[i]) == blobs[i].decode().strip()
    assert git(repo, "ls-tree", "--name-only", tree.hex()).split() == \
        ["f0.yaml", "f1.yaml", "f2.yaml", "f3.yaml", "f4.yaml"]
    assert not list((repo / "objects" / "pack").glob(looseobjects.TMP_PACK_PREFIX + "*"))


def test_a_failed_write_stops_the_import_and_leaves_no_pack(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    """When writing an entry fails (a full disk), the next add or the finish raises an
    OSError naming it, nothing hangs, and neither a pack nor its temporary file remains."""
    def full_disk(self: looseobjects.PackWriter, type_number: int, content: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(looseobjects.PackWriter, "_write_entry", full_disk)
    objects = tmp_path / "objects"
    writer = looseobjects.PackWriter(objects)
    with pytest.raises(OSError, match="No space left on device"):
        for i in range(20000):  # far more than the queue holds: the failure must surface
            writer.add(b"blob", b"%d" % i * 100)
        writer.finish()
    writer.abandon()
    assert list((objects / "pack").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "pack-writer"]


def test_an_abandoned_pack_is_removed_with_its_thread(tmp_path: Path):
    """Abandoning a pack half-way (a guard refused a rendering) removes the temporary file
    and ends the writing thread."""
    objects = tmp_path / "objects"
    writer = looseobjects.PackWriter(objects)
    for i in range(3000):
        writer.add(b"blob", b"x%d" % i * 200)
    writer.abandon()
    assert list((objects / "pack").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "pack-writer"]
