"""Planning: desired files versus what the config repo holds, as a change set value.

Pure. Git blob ids are computed here (SHA-1 of the blob header and bytes) so that an
unchanged file is recognised without reading it back; an empty ChangeSet means "nothing
to do" and stops the pipeline before any write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.core import names
from reconciler.core.render.common import RenderedDir


def git_blob_id(data: bytes) -> str:
    """The id Git gives a blob with these bytes (SHA-1 object format)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class ChangeSet:
    """Files to write (path -> bytes) and paths to delete, all relative to the repo root."""

    writes: Mapping[str, bytes] = field(default_factory=dict)
    deletes: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """True when applying it would change nothing."""
        return not self.writes and not self.deletes

    @property
    def paths(self) -> list[str]:
        """Every path touched, sorted."""
        return sorted([*self.writes, *self.deletes])

    def merged(self, other: ChangeSet) -> ChangeSet:
        """Both change sets together (they must not touch the same path)."""
        return ChangeSet({**self.writes, **other.writes}, self.deletes | other.deletes)

    def confined_to(self, prefixes: Iterable[str]) -> ChangeSet:
        """Return self after checking every path lies under one of ``prefixes``."""
        allowed = tuple(prefixes)
        for path in self.paths:
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
