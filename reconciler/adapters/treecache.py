"""What each directory's tree holds (file names and blob ids, its source record without
the spec), by tree id, in a file of lines beside the repository: a restart over an
unchanged fleet reads one file instead of a tree and a record blob per object from the
packs (1.2 s of CPU at 10,000 tenants).

Content-addressed (a tree id names its files exactly, and the record is a function of its
blob), so an entry is never stale. Each line carries a checksum over the parse rules
(this module's and the record reader's code, the release) and the entry: a torn, garbled,
foreign or older line is a miss, read from Git again, never trusted. Loading streams the
file and keeps only the wanted trees' entries, so memory holds no more than the snapshot
does. Appended to (one ``write``); rewritten (temp file and rename) with only the live
trees' entries once the file is much larger than they are. A read-only repository only
means nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import stat
import sys
import tempfile
import time
from collections.abc import Collection, Container, Iterator
from pathlib import Path
from typing import BinaryIO

import reconciler
from reconciler.core.render import common
from reconciler.ports.treecache import TreeSummary

FILE_NAME = "reconciler-trees-v1"
#: a file larger than this is not read (about 600 bytes a directory: a million of them)
MAX_FILE_BYTES = 1 << 30
#: rewritten with the live entries only once it is this many times their size (and more
#: than _REWRITE_MIN_BYTES): appends of a running controller stay bounded
_GROWTH = 3
_REWRITE_MIN_BYTES = 4 << 20
_LINE_BYTES = 700  # a tenant's entry, about
_BATCH_BYTES = 1 << 20
_MAX_LINE_BYTES = 1 << 20
_STR = frozenset({str})
#: a temporary file of a rewrite this old was left by a killed process
_STALE_SECONDS = 600


@functools.cache
def _rules() -> bytes:
    """What an entry's meaning depends on besides the tree: a release or a change of the
    record reader makes every line a miss."""
    digest = hashlib.sha256(FILE_NAME.encode() + b"\0" + reconciler.__version__.encode())
    for function in (common.parse_source_record, _summary):
        try:
            digest.update(inspect.getsource(function).encode())
        except (OSError, TypeError):
            digest.update(b"(source unavailable)")
    return digest.digest()


def _checksum(tree_id: str, payload: str) -> str:
    return hashlib.sha256(_rules() + tree_id.encode() + b" " + payload.encode()).hexdigest()[:16]


def _checked(raw: bytes) -> tuple[str, str | None]:
    """A line's tree id, and its payload when the line is whole and its checksum holds."""
    tree_id, _, rest = raw.decode("ascii", "replace").partition(" ")
    checksum, _, payload = rest.partition(" ")
    if not payload.endswith("\n"):
        return tree_id, None
    payload = payload[:-1]
    return tree_id, payload if checksum == _checksum(tree_id, payload) else None


def _line(tree_id: str, summary: TreeSummary) -> bytes:
    record = summary.record
    fields = None if record is None else [
        record.kind, record.name, record.input_hash, record.uid, record.generation,
        list(record.databases), summary.has_spec]
    payload = json.dumps([list(summary.files), list(summary.files.values()), fields],
                         separators=(",", ":"))  # ASCII: one line per entry
    return f"{tree_id} {_checksum(tree_id, payload)} {payload}\n".encode()


def _summary(payload: str) -> TreeSummary | None:
    """The entry a checked line holds; None when it is not one this release wrote."""
    try:
        names, ids, fields = json.loads(payload)
    except (ValueError, TypeError, RecursionError):
        return None
    if not (type(names) is list and type(ids) is list and len(names) == len(ids)
            and set(map(type, names)) | set(map(type, ids)) <= _STR):
        return None
    files = dict(zip(names, ids, strict=True))
    if fields is None:
        return TreeSummary(files, None)
    if not isinstance(fields, list) or len(fields) != 7 or common.SOURCE_FILE not in files:
        return None
    kind, name, input_hash, uid, generation, databases, has_spec = fields
    if not (type(kind) is str and type(name) is str and type(input_hash) is str
            and (uid is None or type(uid) is str)
            and (generation is None or type(generation) is int)
            and type(databases) is list and set(map(type, databases)) <= _STR
            and type(has_spec) is bool):
        return None
    record = common.SourceRecord(kind=sys.intern(kind), name=sys.intern(name),
                                 input_hash=input_hash, uid=uid, generation=generation,
                                 spec=None, databases=tuple(databases))
    return TreeSummary(files, record, has_spec)


class TreeCacheFile:
    """The cache file at ``path`` (beside a repository)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._size = 0  # bytes of the file as last loaded
        self._live_bytes = 0  # of those, the lines of the trees asked for
        self._pending: list[bytes] = []  # learnt, not written yet
        self._pending_bytes = 0
        self._written = 0  # bytes appended since the load
        self._kept = 0  # bytes of live entries the last rewrite kept (a floor for the next)

    def load(self, tree_ids: Container[str]) -> Iterator[tuple[str, TreeSummary]]:
        """The summaries known for the trees in ``tree_ids`` (looked up as the file is
        streamed: the caller may take out those it has), streamed."""
        self._size = self._live_bytes = self._written = 0
        for raw in self._lines():
            self._size += len(raw)
            key = raw.partition(b" ")[0].decode("ascii", "replace")
            if key not in tree_ids:
                continue
            payload = _checked(raw)[1]
            summary = _summary(payload) if payload is not None else None
            if summary is not None:
                self._live_bytes += len(raw)
                yield key, summary

    def add(self, tree_id: str, summary: TreeSummary) -> None:
        """Learn a tree read from Git (appended in batches of about a megabyte)."""
        line = _line(tree_id, summary)
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= _BATCH_BYTES:
            self.flush()

    def close(self, live: Collection[str]) -> None:
        """Write what was learnt; rewrite the file with only the ``live`` trees' entries
        when the others outweigh them. Never raises: it is only a cache."""
        self.flush()
        size, live_bytes = self._size, self._live_bytes
        if not size:  # not loaded: judged by its size (the appends are in it)
            with contextlib.suppress(OSError):
                size = self._path.stat().st_size - self._written
            # at least what the last rewrite kept: entries larger than the estimate must
            # not make every pass rewrite the file
            live_bytes = max(len(live) * _LINE_BYTES, self._kept)
        if size + self._written > max(_REWRITE_MIN_BYTES,
                                      _GROWTH * (live_bytes + self._written)):
            with contextlib.suppress(OSError):
                self._kept = self._rewrite(set(live))
        self._size = self._live_bytes = self._written = 0

    def flush(self) -> None:
        """Write what was learnt (one append)."""
        lines = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if lines:
            with contextlib.suppress(OSError):  # a read-only repository: nothing kept
                self._append(lines)
                self._written += len(lines)

    def _lines(self) -> Iterator[bytes]:
        """The file's lines, streamed; nothing from a symlink, a FIFO, an unreadable or
        absurdly large file (the next rewrite replaces it)."""
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                os.close(fd)
                return
            handle: BinaryIO = os.fdopen(fd, "rb")
        except OSError:
            os.close(fd)
            return
        with handle, contextlib.suppress(OSError):
            # a line longer than any entry (a damaged file) comes in pieces, each a miss
            yield from iter(lambda: handle.readline(_MAX_LINE_BYTES), b"")

    def _append(self, lines: bytes) -> None:
        """One ``write``, so concurrent appenders do not interleave lines; a torn last
        line is ended first."""
        fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return
            if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                lines = b"\n" + lines
            os.write(fd, lines)
        finally:
            os.close(fd)

    def _rewrite(self, keep: set[str]) -> int:
        """Replace the file with the entries of ``keep`` it holds, the newest of each (temp
        file and rename: never half-written)."""
        folder = self._path.parent
        for stale in folder.glob(f".{FILE_NAME}.*"):  # left by a killed rewrite
            with contextlib.suppress(OSError):
                if stale.lstat().st_mtime < time.time() - _STALE_SECONDS:
                    stale.unlink()
        fd, temp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=folder)
        try:
            kept = 0
            with os.fdopen(fd, "wb") as out:
                for raw in self._lines():  # streamed: a fleet's lines are not held at once
                    tree_id, checked = _checked(raw)
                    if checked is not None and tree_id in keep:
                        keep.discard(tree_id)  # one line per tree
                        out.write(raw)
                        kept += len(raw)
            os.chmod(temp, 0o644)
            os.replace(temp, self._path)
        except OSError:
            Path(temp).unlink(missing_ok=True)
            raise
        return kept

