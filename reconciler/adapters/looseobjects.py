"""Large Git trees kept in memory and written as loose objects without recompressing.

A flat ``tenants/`` directory of 10,000 entries is a ~450 KB tree object that every commit
rewrites. libgit2 deflates each loose object (level 1): ~5 ms for that tree, most of a
commit's cost, to save little, because a tree is mostly SHA-1 bytes that do not compress.
This module keeps such a tree's entries sorted in memory, patches only the changed ones,
and stores the object as a valid zlib stream of stored (uncompressed) blocks. Git and
libgit2 read it as any loose object; ``git gc`` or a push packs and deltifies it later.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import hashlib
import itertools
import logging
import os
import queue
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MODE_TREE = 0o040000
MODE_BLOB = 0o100644


@dataclass(frozen=True, slots=True)  # one per entry of a 100,000-entry tree
class Entry:
    """A tree entry: its raw 20-byte id and its file mode."""

    raw_id: bytes
    filemode: int


def _encode(name: str) -> bytes:
    """A tree entry's name as Git stores it. pygit2 hands over names that are not UTF-8
    (a human may commit any bytes) with surrogate escapes: they go back byte for byte."""
    return name.encode("utf-8", "surrogateescape")


def _sort_key(name: str, filemode: int) -> bytes:
    # git orders entries bytewise, comparing a tree's name as if it ended with "/"
    encoded = _encode(name)
    return encoded + b"/" if filemode == MODE_TREE else encoded


class LargeTree:
    """The entries of one tree, sorted as Git sorts them, serialisable in one join."""

    def __init__(self, entries: Iterable[tuple[str, bytes, int]] = ()) -> None:
        self._entries: dict[str, Entry] = {}
        self._chunks: dict[bytes, bytes] = {}
        self._order: list[bytes] = []
        for name, raw_id, filemode in entries:
            self._entries[name] = Entry(raw_id, filemode)
            key = _sort_key(name, filemode)
            self._chunks[key] = b"%o %s\x00%s" % (filemode, _encode(name), raw_id)
        self._order = sorted(self._chunks)
        # the serialised tree and where each entry ends in it, kept for in-place patches
        self._bytes: bytearray | None = None
        self._ends: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Entry | None:
        """The entry called ``name``, if any."""
        return self._entries.get(name)

    def insert(self, name: str, raw_id: bytes, filemode: int) -> None:
        """Add or replace an entry."""
        old = self._entries.get(name)
        if old is not None and old.filemode == filemode and self._bytes is not None:
            # the common case, a changed directory: patch its 20-byte id in place
            key = _sort_key(name, filemode)
            end = self._ends[key]
            self._bytes[end - len(raw_id):end] = raw_id
            self._entries[name] = Entry(raw_id, filemode)
            self._chunks[key] = b"%o %s\x00%s" % (filemode, _encode(name), raw_id)
            return
        if old is not None:
            self.remove(name)
        self._bytes = None
        self._entries[name] = Entry(raw_id, filemode)
        key = _sort_key(name, filemode)
        self._chunks[key] = b"%o %s\x00%s" % (filemode, _encode(name), raw_id)
        bisect.insort(self._order, key)

    def remove(self, name: str) -> None:
        """Drop an entry (no error when absent)."""
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        self._bytes = None
        key = _sort_key(name, entry.filemode)
        del self._chunks[key]
        del self._order[bisect.bisect_left(self._order, key)]

    def serialize(self) -> bytes:
        """The tree object's content, exactly as Git would write it."""
        if self._bytes is None:
            chunks = [self._chunks[key] for key in self._order]
            self._bytes = bytearray(b"".join(chunks))
            self._ends = dict(zip(self._order, itertools.accumulate(map(len, chunks)),
                                  strict=True))
        return bytes(self._bytes)


def flat_tree(blobs: Iterable[tuple[str, bytes]]) -> bytes:
    """The content of a tree holding only files (name, raw blob id), as Git writes it:
    what a ``LargeTree`` of the same entries serialises to, without keeping one."""
    return b"".join(b"100644 %s\x00%s" % item for item in sorted(
        (_encode(name), raw_id) for name, raw_id in blobs))


def write_loose(objects_dir: Path, kind: bytes, content: bytes) -> bytes:
    """Store an object as a loose object (stored zlib blocks); return its raw id."""
    data = b"%s %d\x00" % (kind, len(content)) + content
    raw_id = hashlib.sha1(data, usedforsecurity=False).digest()
    hex_id = raw_id.hex()
    target = objects_dir / hex_id[:2] / hex_id[2:]
    if target.exists():
        return raw_id
    target.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_obj_")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(zlib.compress(data, 0))
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return raw_id


# -- keeping the object store packed (the files; the pack itself is written by libgit2) --

_HEX = frozenset("0123456789abcdef")


def estimate_loose(objects_dir: Path) -> int:
    """About how many loose objects there are: one fan-out directory times 256 (as
    ``git gc --auto`` estimates), so the check costs one directory listing."""
    try:
        return len(os.listdir(objects_dir / "17")) * 256
    except OSError:
        return 0


def loose_ids(objects_dir: Path) -> list[str]:
    """The hex ids of every loose object."""
    out: list[str] = []
    for fan in sorted(os.listdir(objects_dir)) if objects_dir.is_dir() else []:
        if len(fan) != 2 or not set(fan) <= _HEX:
            continue
        try:
            names = os.listdir(objects_dir / fan)
        except OSError:
            continue
        out += [fan + name for name in names if len(name) == 38 and set(name) <= _HEX]
    return out


def remove_loose(objects_dir: Path, ids: Iterable[str]) -> None:
    """Delete loose objects (already safe in a pack); a vanished one is no error."""
    for hex_id in ids:
        try:
            os.unlink(objects_dir / hex_id[:2] / hex_id[2:])
        except FileNotFoundError:
            continue


def pack_names(objects_dir: Path) -> list[str]:
    """The names (``pack-<id>``) of the packs with an index, oldest first."""
    packs = objects_dir / "pack"
    if not packs.is_dir():
        return []
    found = [p for p in packs.glob("pack-*.pack") if p.with_suffix(".idx").exists()]
    return [p.stem for p in sorted(found, key=lambda p: p.stat().st_mtime)]


def remove_packs(objects_dir: Path, names: Iterable[str]) -> None:
    """Delete packs whose every object another pack now holds (index first: a reader
    never finds an index without its pack)."""
    for name in names:
        if (objects_dir / "pack" / (name + ".keep")).exists():
            continue  # someone asked git to keep it
        for suffix in (".idx", ".pack", ".rev", ".bitmap", ".mtimes"):
            try:
                os.unlink(objects_dir / "pack" / (name + suffix))
            except FileNotFoundError:
                continue


_PACK_TYPES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
#: our temporary packs (git's own are tmp_pack_*: never touched)
TMP_PACK_PREFIX = "tmp_reconciler_pack_"
#: a temporary pack not written to for this long was left by a killed import (a live
#: writer appends to it many times a second)
STALE_PACK_SECONDS = 60.0


def remove_stale_packs(pack_dir: Path) -> list[Path]:
    """Delete temporary packs a killed import left behind (they can be hundreds of MB)."""
    removed: list[Path] = []
    now = time.time()
    for path in pack_dir.glob(TMP_PACK_PREFIX + "*"):
        try:
            if now - path.stat().st_mtime > STALE_PACK_SECONDS:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to remove
    if removed:
        logging.getLogger(__name__).warning(
            "removed %d temporary pack(s) left by an import that did not finish", len(removed))
    return removed
PROGRESS_EVERY = 100_000
progress = logging.getLogger("reconciler.progress")
#: objects go to the writing thread in batches of about this many bytes, at most this many
#: batches queued (a few MB held at any time)
_BATCH_BYTES = 256 * 1024
_QUEUED_BATCHES = 8


class PackWriter:
    """Objects of one large commit (an import) written straight into a new pack file.

    Writing 600,000 loose files for a 100,000-tenant import, and deleting them again when
    packing, costs minutes of file-system work; one pack is a single sequential file.
    Entries are streamed to a temporary file; only ids, offsets and checksums stay in
    memory (about 30 bytes per object). Not deltified: ``maintain`` or a push may later.

    The caller's thread hashes each object (its id is needed at once); a second thread
    compresses and writes the entries in order, in batches: zlib runs without the GIL, so
    on a machine with a free core the compression (a tenth of an import's CPU) overlaps
    with rendering.
    """

    def __init__(self, objects_dir: Path) -> None:
        self._dir = objects_dir / "pack"
        self._dir.mkdir(parents=True, exist_ok=True)
        remove_stale_packs(self._dir)
        fd, self._tmp = tempfile.mkstemp(dir=self._dir, prefix=TMP_PACK_PREFIX)
        self._file = os.fdopen(fd, "w+b")
        self._file.write(b"PACK" + (2).to_bytes(4, "big") + bytes(4))  # count patched later
        self._end = 12  # where the next entry goes
        # per object, in the order written: its raw id, offset and crc32, packed in arrays
        # (a dict of tuples cost ~200 bytes an object: 140 MB for a 100,000-tenant import)
        self._ids = bytearray()
        self._count = 0
        self._offsets = array.array("Q")
        self._crcs = array.array("I")
        self._table = array.array("l", [-1]) * 1024  # open addressing: slot -> object number
        # objects not yet handed to the writing thread, and their size
        self._batch: list[tuple[int, bytes]] = []
        self._batch_bytes = 0
        self._queue: queue.Queue[list[tuple[int, bytes]] | None] = queue.Queue(_QUEUED_BATCHES)
        self._failure: BaseException | None = None
        self._writer = threading.Thread(target=self._write_batches, name="pack-writer",
                                        daemon=True)
        self._writer.start()

    def __len__(self) -> int:
        return self._count

    def _slot(self, raw_id: bytes) -> int:
        """The table slot holding ``raw_id``, or the empty slot where it would go (ids are
        SHA-1 digests: their first bytes are already uniformly spread)."""
        table, ids = self._table, self._ids
        mask = len(table) - 1
        slot = int.from_bytes(raw_id[:8], "little") & mask
        while True:
            number = table[slot]
            if number < 0 or ids[number * 20:number * 20 + 20] == raw_id:
                return slot
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        self._table = array.array("l", [-1]) * (len(self._table) * 2)
        for number in range(self._count):
            self._table[self._slot(bytes(self._ids[number * 20:number * 20 + 20]))] = number

    def add(self, kind: bytes, content: bytes) -> bytes:
        """Add an object (once); return its raw id."""
        if self._failure is not None:
            raise OSError(f"writing the pack failed: {self._failure}") from self._failure
        digest = hashlib.sha1(b"%s %d\x00" % (kind, len(content)), usedforsecurity=False)
        digest.update(content)  # not header + content: that copies every blob once more
        raw_id = digest.digest()
        slot = self._slot(raw_id)
        if self._table[slot] >= 0:
            return raw_id
        self._table[slot] = self._count
        self._ids += raw_id
        self._count += 1
        self._batch.append((_PACK_TYPES[kind], content))
        self._batch_bytes += len(content)
        if self._batch_bytes >= _BATCH_BYTES:
            self._hand_over()
        if self._count * 2 > len(self._table):
            self._grow()
        if self._count % PROGRESS_EVERY == 0:
            progress.info("%d objects written to the new pack", self._count)
        return raw_id

    def _hand_over(self) -> None:
        if self._batch:
            self._queue.put(self._batch)  # blocks while the writer is behind: memory bounded
            self._batch, self._batch_bytes = [], 0

    def _write_batches(self) -> None:
        """The writing thread: compress and append each entry, in order, until None."""
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._failure is not None:
                continue  # keep taking batches so that the caller never blocks on a put
            try:
                for type_number, content in batch:
                    self._write_entry(type_number, content)
            except BaseException as exc:  # handed to the caller's thread
                self._failure = exc

    def _write_entry(self, type_number: int, content: bytes) -> None:
        size = len(content)
        header = bytearray([(type_number << 4) | (size & 0x0F)])
        size >>= 4
        while size:
            header[-1] |= 0x80
            header.append(size & 0x7F)
            size >>= 7
        entry = bytes(header) + zlib.compress(content, 1)
        self._offsets.append(self._end)
        self._crcs.append(zlib.crc32(entry))
        self._file.write(entry)
        self._end += len(entry)

    def _stop_writer(self) -> None:
        """Hand over what is left and wait for the writing thread to end."""
        if self._writer.is_alive():
            self._hand_over()
            self._queue.put(None)
            self._writer.join()
        if self._failure is not None:
            raise OSError(f"writing the pack failed: {self._failure}") from self._failure

    def finish(self) -> str | None:
        """Write the pack and its index into place (index last); None when empty."""
        try:
            self._stop_writer()
            if not self._offsets:
                return None
            handle = self._file
            handle.seek(8)
            handle.write(len(self._offsets).to_bytes(4, "big"))
            handle.seek(0)
            digest = hashlib.sha1(usedforsecurity=False)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
            pack_sum = digest.digest()
            handle.seek(0, os.SEEK_END)
            handle.write(pack_sum)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            name = f"pack-{pack_sum.hex()}"
            os.chmod(self._tmp, 0o444)
            os.replace(self._tmp, self._dir / f"{name}.pack")
            self._write_index(self._dir / f"{name}.idx", pack_sum)
            return name
        finally:
            if not self._file.closed:
                self._file.close()
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def abandon(self) -> None:
        """Drop the partial pack (the commit failed)."""
        self._batch = []
        with contextlib.suppress(OSError):  # it failed already: the pack goes anyway
            self._stop_writer()
        self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def _write_index(self, target: Path, pack_sum: bytes) -> None:
        ids = self._ids
        buckets = [array.array("I") for _ in range(256)]  # object numbers by first byte
        for number in range(len(self._offsets)):
            buckets[ids[number * 20]].append(number)
        order = array.array("I")
        for bucket in buckets:  # sorted a bucket at a time: no list of every id at once
            order.extend(sorted(bucket, key=lambda n: ids[n * 20:n * 20 + 20]))
        fanout = itertools.accumulate(len(bucket) for bucket in buckets)
        body = bytearray(b"\xfftOc" + (2).to_bytes(4, "big"))
        body += b"".join(n.to_bytes(4, "big") for n in fanout)
        for number in order:
            body += ids[number * 20:number * 20 + 20]
        crcs = array.array("I", (self._crcs[n] for n in order))
        offsets = array.array("I")
        big: list[int] = []
        for number in order:
            offset = self._offsets[number]
            if offset < 0x80000000:
                offsets.append(offset)
            else:
                offsets.append(0x80000000 | len(big))
                big.append(offset)
        for table in (crcs, offsets):  # 4-byte big-endian entries
            if sys.byteorder == "little":
                table.byteswap()
            body += table.tobytes()
        body += b"".join(o.to_bytes(8, "big") for o in big) + pack_sum
        body += hashlib.sha1(body, usedforsecurity=False).digest()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_idx_")
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
