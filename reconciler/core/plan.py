"""Planning: desired files versus what the config repo holds, as a change set value.

Pure. Git blob ids are computed here (SHA-1 of the blob header and bytes) so that an
unchanged file is recognised without reading it back; an empty ChangeSet means "nothing
to do" and stops the pipeline before any write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.core import names
from reconciler.core.render.common import RenderedDir


def git_blob_id(data: bytes) -> str:
    """The id Git gives a blob with these bytes (SHA-1 object format)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def git_blob_id_of(produce: Callable[[], Iterable[bytes]]) -> str:
    """``git_blob_id`` of the bytes ``produce()`` yields (called twice: once for the
    length the header names, once to hash), never holding them all."""
    digest = hashlib.sha1(b"blob %d\x00" % sum(map(len, produce())), usedforsecurity=False)
    for chunk in produce():
        digest.update(chunk)
    return digest.hexdigest()


class StreamRefusedError(Exception):
    """A directory of a streamed change set was refused while it was produced (a guard
    judged its rendering): the commit being built is abandoned, nothing is written."""


@dataclass(frozen=True)
class Streamed:
    """New directories whose files are produced only when iterated, one directory at a
    time (the first import of a large fleet): nothing rendered is kept, so memory does not
    grow with the fleet. Iterating again renders again.

    ``directories`` are known up front (confinement is checked on them); ``produce``
    yields ``(directory, files)`` in that order, files by name relative to the directory,
    and raises ``StreamRefusedError`` for a directory that must not be written.
    """

    directories: tuple[str, ...]
    produce: Callable[[], Iterator[tuple[str, Mapping[str, bytes]]]]

    def __iter__(self) -> Iterator[tuple[str, Mapping[str, bytes]]]:
        expected = iter(self.directories)
        for directory, files in self.produce():
            if directory != next(expected, None):
                raise StreamRefusedError(f"{directory}: produced out of order")
            for relative in files:  # clean and relative: it cannot leave the directory
                names.check_relative_path(relative)
            yield directory, files


@dataclass(frozen=True)
class ChangeSet:
    """Files to write (path -> bytes) and paths to delete, all relative to the repo root;
    ``streamed``: new directories written whole, their files produced while committing."""

    writes: Mapping[str, bytes] = field(default_factory=dict)
    deletes: frozenset[str] = frozenset()
    streamed: Streamed | None = None

    @property
    def empty(self) -> bool:
        """True when applying it would change nothing."""
        return not self.writes and not self.deletes and not (
            self.streamed and self.streamed.directories)

    @property
    def paths(self) -> list[str]:
        """Every path touched, sorted (the streamed directories' files are not listed)."""
        return sorted([*self.writes, *self.deletes])

    def merged(self, other: ChangeSet) -> ChangeSet:
        """Both change sets together (they must not touch the same path)."""
        if self.streamed is not None and other.streamed is not None:
            raise ValueError("two streamed change sets cannot be merged")
        return ChangeSet({**self.writes, **other.writes}, self.deletes | other.deletes,
                         self.streamed or other.streamed)

    def confined_to(self, prefixes: Iterable[str]) -> ChangeSet:
        """Return self after checking every path (and streamed directory) lies under one
        of ``prefixes``."""
        allowed = tuple(prefixes)
        streamed = self.streamed.directories if self.streamed is not None else ()
        for path in [*self.paths, *streamed]:
            names.check_relative_path(path)
            if not any(names.is_within(path, p) for p in allowed):
                raise names.UnsafePathError(f"{path!r} is outside {', '.join(allowed)}")
        return self


def plan_directory(rendered: RenderedDir, current: Mapping[str, str]) -> ChangeSet:
    """Change set turning a directory whose files have blob ids ``current`` into ``rendered``.

    Files in the directory that the renderer no longer produces are deleted: the
    directory belongs to its owner alone.
    """
    writes = {
        names.confined_path(rendered.directory, rel): data
        for rel, data in rendered.files.items()
        if current.get(rel) != git_blob_id(data)
    }
    deletes = frozenset(
        names.confined_path(rendered.directory, rel) for rel in current if rel not in rendered.files
    )
    return ChangeSet(writes, deletes)


def plan_removal(directory: str, current: Mapping[str, str]) -> ChangeSet:
    """Change set deleting every file of ``directory``."""
    return ChangeSet({}, frozenset(names.confined_path(directory, rel) for rel in current))
