"""Which directories each commit changed: a file of lines, one per commit, kept beside the
repository so that an object's history is a lookup, not a diff of every commit.

Content-addressed (a commit's changes never change), so an entry is never stale: a
missing or unreadable line is simply computed again by the caller. Appended to, never
rewritten; a torn last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

FILE_NAME = "reconciler-touched-v1"


def load(path: Path) -> dict[str, frozenset[str]]:
    """commit id -> directories its first-parent diff changed ({} when absent/unreadable)."""
    out: dict[str, frozenset[str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.split("\n"):
        commit, sep, rest = line.partition(" ")
        if not sep or len(commit) != 40 or not rest.endswith("\t."):
            continue  # a torn or foreign line: computed again when needed
        out[commit] = frozenset(d for d in rest[:-2].split("\t") if d)
    return out


def append(path: Path, entries: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Add entries (one ``write``, so concurrent appenders do not interleave lines)."""
    lines = "".join(f"{commit} {''.join(d + chr(9) for d in sorted(dirs))}.\n"
                    for commit, dirs in entries)
    if not lines:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError:
        return  # a read-only repository: the index is only a cache


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
