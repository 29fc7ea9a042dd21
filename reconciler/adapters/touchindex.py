"""Which directories each commit changed: a file of lines, one per commit, kept beside the
repository so that an object's history is a lookup, not a diff of every commit.

Content-addressed (a commit's changes never change), so an entry is never stale: a
missing or unreadable line is simply computed again by the caller. Each line carries a
CRC-32 of itself: a torn, garbled or foreign line is a miss, never trusted — a line that
names the wrong directories would make a restart take a person's change for none and
write over it. Appended to (one ``write``; a torn tail is ended first so the next line
stays whole); a file holding damaged lines is rewritten (temp file and rename) with only
the sound ones. ``reconciler-touched-v1`` (no checksums) is ignored and removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from reconciler.adapters import cachefile

FILE_NAME = "reconciler-touched-v2"
_LEGACY = ("reconciler-touched-v1",)
#: a file larger than this is not read (about 200 bytes a commit: millions of commits)
MAX_FILE_BYTES = 1 << 30
#: one entry of a raw Git tree object: ``<octal mode> <name>\\0<20-byte id>``
_ENTRY = re.compile(rb"[0-7]+ [^\x00]*\x00.{20}", re.DOTALL)
_TREE_MODES = (b"40000", b"040000")  # the second written by old, broken tools
#: trees this large are kept for the next comparison of a walk, at most this many
_KEPT_TREE_ENTRIES = 256
_KEPT_TREES = 4
_NOTHING: frozenset[str] = frozenset()
_ROOT = frozenset({""})
#: a temp file of a rewrite older than this was left by a killed process
_STALE_SECONDS = 60


def _line(commit: str, dirs: Iterable[str]) -> bytes:
    """``<commit> <crc32 of the rest> <dir>\\t<dir>\\t.`` and a newline."""
    body = f"{commit} {''.join(d + chr(9) for d in sorted(dirs))}.".encode()
    return b"%s %08x%s\n" % (body[:40], zlib.crc32(body), body[40:])


def _parse(raw: bytes) -> tuple[str, frozenset[str]] | None:
    """A sound line's (commit, directories); None for anything else (its CRC-32 catches a
    flipped byte or a torn line)."""
    if len(raw) < 51 or raw[40] != 32 or raw[49] != 32 or raw[-1] != 46:  # " ", " ", "."
        return None
    try:
        if zlib.crc32(raw[49:], zlib.crc32(raw[:40])) != int(raw[41:49], 16):
            return None
        text = raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if len(text) == 51:  # "<commit> <crc> .": changed nothing
        return text[:40], _NOTHING
    if text[-2] != "\t":
        return None
    dirs = frozenset(text[50:-2].split("\t"))
    return text[:40], dirs - _ROOT if "" in dirs else dirs  # the top is not recorded


def load(path: Path) -> dict[str, frozenset[str]]:
    """commit id -> directories its first-parent diff changed ({} when absent/unreadable).

    Damaged lines are left out (computed again by the caller) and the file rewritten
    without them; an index of the old format beside it is removed."""
    for legacy in _LEGACY:
        with contextlib.suppress(OSError):
            (path.parent / legacy).unlink()
    data = cachefile.read_regular(path, MAX_FILE_BYTES)
    out: dict[str, frozenset[str]] = {}
    if data is None:  # not a regular file, or absurd: nothing trusted, replaced below
        _rewrite(path, b"")
        return out
    sound: list[bytes] = []
    lines = data.split(b"\n")
    damaged = lines[-1] != b""  # a torn last line (a crash mid-write)
    for raw in lines[:-1]:
        entry = _parse(raw)
        if entry is None:
            damaged = True
            continue
        out[entry[0]] = entry[1]
        sound.append(raw + b"\n")
    if damaged:
        _rewrite(path, b"".join(sound))
    return out


def append(path: Path, entries: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Add entries (one ``write``, so concurrent appenders do not interleave lines)."""
    lines = b"".join(_line(commit, dirs) for commit, dirs in entries)
    if not lines:
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = b"\n" + lines  # end a torn line first: ours must not be glued to it
            os.write(fd, lines)
        finally:
            os.close(fd)
    except OSError:
        return  # a read-only repository: the index is only a cache


def _rewrite(path: Path, data: bytes) -> None:
    """Replace the file with ``data`` (temp file and rename: never half-written)."""
    for stale in path.parent.glob(f".{FILE_NAME}.*"):  # left by a killed rewrite
        with contextlib.suppress(OSError):
            if stale.lstat().st_mtime < time.time() - _STALE_SECONDS:
                stale.unlink()
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=path.parent)
    except OSError:
        return  # a read-only repository: the index is only a cache
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError:
        Path(temp).unlink(missing_ok=True)


def touches(dirs: frozenset[str], path: str) -> bool:
    """Whether a change of ``dirs`` changed something at or under ``path``."""
    if path in dirs:
        return True
    prefix = path + "/"
    return any(d.startswith(prefix) for d in dirs)


def _with_parents(directory: str) -> Iterator[str]:
    """``a/b/c`` -> ``a``, ``a/b``, ``a/b/c`` (a change under a directory changes it)."""
    end = directory.find("/")
    while end != -1:
        yield directory[:end]
        end = directory.find("/", end + 1)
    yield directory


class Line:
    """The branch's first-parent line, as an object's history needs it: each commit's
    position on it (higher is newer) and, per directory, the newest commit that changed
    something at or under it.

    Kept current by the Git adapter, which walks only the commits added since the head it
    last saw (one for each of our own commits); a head that does not continue the line (a
    reset, a rewritten branch) starts it again.
    """

    def __init__(self) -> None:
        self.head: str | None = None
        self.position: dict[str, int] = {}
        self.newest: dict[str, str] = {}

    def advance(self, head: str | None, commits: Sequence[tuple[str, Iterable[str]]], *,
                continues: bool) -> None:
        """Move to ``head``; ``commits``: (id, changed directories) from ``head`` back to
        the old head (excluded) when ``continues``, else back to the root."""
        base = self.position.get(self.head, -1) if self.head is not None else -1
        if not continues:
            self.position.clear()
            self.newest.clear()
            base = -1
        newest = self.newest
        for offset, (commit, dirs) in enumerate(reversed(commits), start=1):
            self.position[commit] = base + offset
            for directory in dirs:
                for path in _with_parents(directory):
                    newest[path] = commit
        self.head = head


class TreeDiffer:
    """The directories holding the files changed between two trees, from raw tree objects.

    libgit2's diff walks every entry of both sides through its iterators (about 70 ms for
    two 10,000-entry trees); comparing the raw entries as byte strings costs a few, and a
    walk down the first-parent line reads each tree once (a commit's tree is its child's
    parent tree). ``read`` returns a tree object's raw content by its raw id.
    """

    def __init__(self, read: Callable[[bytes], bytes]) -> None:
        self._read = read
        self._recent: dict[bytes, frozenset[bytes]] = {}  # large trees, least recent first

    def _entries(self, tree: bytes | None) -> frozenset[bytes]:
        if tree is None:
            return frozenset()
        found = self._recent.pop(tree, None)
        if found is None:
            found = frozenset(_ENTRY.findall(self._read(tree)))
        if len(found) >= _KEPT_TREE_ENTRIES:  # the parent's tree is the next one's
            self._recent[tree] = found
            while len(self._recent) > _KEPT_TREES:
                del self._recent[next(iter(self._recent))]
        return found

    def forget(self) -> None:
        """Drop the trees kept for the next comparison (a walk is over)."""
        self._recent.clear()

    def changed(self, old: bytes | None, new: bytes | None, at: str = "") -> set[str]:
        """Directories (``at``-relative paths) holding a file that differs."""
        out: set[str] = set()
        self._compare(old, new, at, out)
        return out

    def _compare(self, old: bytes | None, new: bytes | None, at: str, out: set[str]) -> None:
        after = self._entries(new)  # first: on a walk back it is the one kept
        before = self._entries(old)
        sides: dict[bytes, list[bytes | None]] = {}  # name -> [old tree id, new tree id]
        for index, changed in ((0, before - after), (1, after - before)):
            for entry in changed:
                mode, _, rest = entry.partition(b" ")
                name, raw_id = rest[:-21], rest[-20:]
                if mode in _TREE_MODES:
                    sides.setdefault(name, [None, None])[index] = raw_id
                else:
                    out.add(at)  # a file here was added, removed or changed
        for name, (old_tree, new_tree) in sides.items():
            path = name.decode("utf-8", "replace")
            self._compare(old_tree, new_tree, f"{at}/{path}" if at else path, out)
