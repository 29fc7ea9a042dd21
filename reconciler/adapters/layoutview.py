"""The config repo as the core sees it, whatever the tenant layout: logical paths
(``tenants/acme/...``) in, physical paths (``tenants/_3f/acme/...`` when sharded) in Git.

A ConfigRepo wrapping a ConfigRepo, so decisions, trailers, the touch index and the fast
commit path are the same for both layouts. It owns one guard: it never writes tenants in
one layout into a repo laid out in the other (that would leave two copies of a tenant for
Argo CD to fight over); any tenant read or write then raises ``LayoutMismatchError``, one
line naming the migrate command. Reads of old commits (``tree_id_at``, ``files_at``,
history) look in both places, so an object's history and rollbacks cross a migration.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Iterator, Mapping

from reconciler.core import errors, layout
from reconciler.core.history import CommitInfo
from reconciler.core.plan import ChangeSet, Streamed
from reconciler.ports.configrepo import ConfigRepo

log = logging.getLogger(__name__)
TOP = layout.SHARDED_TOP


class LayoutView:
    """``inner`` seen through the tenant layout ``wanted`` (the ``layout`` setting)."""

    def __init__(self, inner: ConfigRepo, wanted: layout.Layout) -> None:
        self.inner = inner
        self.wanted = wanted
        self._checked: tuple[str | None, layout.Layout | None] | None = None
        #: the last check found the repo in the wanted layout: reads trust it without
        #: reading the head again (a per-object cost); writes and full listings re-check,
        #: so a repo migrated underneath is refused before anything is written
        self._agreed = False
        #: tenant name -> a directory holding it outside its shard (a human moved or made
        #: it), as the last full listing found them; writing the tenant would deploy it twice
        self._strays: dict[str, str] = {}

    # -- the guard ------------------------------------------------------------------------

    def repo_layout(self) -> layout.Layout | None:
        """The layout of the tenants at the head: the record's; without one, what the
        directories say (flat when any is not a shard). None when that fits the wanted
        layout without a record: no tenant yet, or shards whose record a human deleted
        (the next sharded commit writes it)."""
        head = self.inner.head()
        if self._checked is not None and self._checked[0] == head:
            return self._checked[1]
        raw = self.inner.read_file(layout.LAYOUT_RECORD)
        found: layout.Layout | None = layout.parse_layout_record(raw)
        if raw is None:
            dirs = [n for n in self.inner.list_directories(TOP) if not n.startswith(".")]
            if not dirs:
                found = None
            elif all(layout.is_shard(n) for n in dirs):
                found = None if self.wanted == layout.SHARDED else layout.SHARDED
        self._checked = (head, found)
        return found

    def _mode(self, *, fresh: bool = False) -> layout.Layout:
        """The layout to read and write tenants in (raises on a mismatch); ``fresh``:
        check the head as it is now, not as the last check found it."""
        if self._agreed and not fresh:
            return self.wanted
        self._agreed = False
        layout.check_layout(self.repo_layout(), self.wanted)
        self._agreed = True
        return self.wanted

    def _path(self, logical: str) -> str:
        if logical != TOP and not logical.startswith(f"{TOP}/"):
            return logical
        return layout.physical_path(logical, self._mode(fresh=logical == TOP))

    # -- reading the head -----------------------------------------------------------------

    def head(self) -> str | None:
        """The head commit (no mapping)."""
        return self.inner.head()

    def pinned(self) -> contextlib.AbstractContextManager[None]:
        """Passed through."""
        return self.inner.pinned()

    def list_files(self, directory: str) -> dict[str, str]:
        """Files directly in a logical directory."""
        return self.inner.list_files(self._path(directory))

    def list_directories(self, parent: str) -> list[str]:
        """Subdirectories of a logical directory: every tenant of every shard for
        ``tenants``; a directory in the wrong shard (moved by hand) is not a tenant."""
        physical = self._path(parent)
        if physical != TOP or self.wanted != layout.SHARDED:
            return self.inner.list_directories(physical)
        out: list[str] = []
        strays: dict[str, str] = {}
        for entry in sorted(self.inner.list_directories(TOP)):
            if entry.startswith("."):
                continue
            if not layout.is_shard(entry):
                strays[entry] = f"{TOP}/{entry}"
                continue
            for name in self.inner.list_directories(f"{TOP}/{entry}"):
                if layout.shard_of(name) == entry:
                    out.append(name)
                else:
                    strays.setdefault(name, f"{TOP}/{entry}/{name}")
        for name in sorted(strays.keys() - self._strays.keys()):
            log.warning("%s/ is not where the sharded layout puts tenant %s (%s/); it is not "
                        "managed, and %s is not written until it is moved or removed",
                        strays[name], name, layout.physical_path(f"{TOP}/{name}",
                                                                 layout.SHARDED), name)
        self._strays = strays
        return out

    def tree_id(self, directory: str) -> str | None:
        """The tree id of a logical directory at the head."""
        return self.inner.tree_id(self._path(directory))

    def read_file(self, path: str) -> bytes | None:
        """The bytes of a logical path at the head."""
        return self.inner.read_file(self._path(path))

    def read_blob(self, blob_id: str) -> bytes | None:
        """A blob by id (no path)."""
        return self.inner.read_blob(blob_id)

    # -- writing --------------------------------------------------------------------------

    def commit(self, changes: ChangeSet, message: str) -> str:
        """Commit logical ``changes`` at their physical paths (streamed directories too);
        the first sharded commit into a repo without tenants also writes the layout
        record."""
        streamed = changes.streamed.directories if changes.streamed is not None else ()
        if not any(p.startswith(f"{TOP}/") for p in [*changes.paths, *streamed]):
            return self.inner.commit(changes, message)
        mode = self._mode(fresh=True)
        for path in [*changes.writes, *(f"{d}/" for d in streamed)]:
            top, _, rest = path.partition("/")
            name = rest.partition("/")[0]
            if mode == layout.SHARDED and top == TOP and name in self._strays:
                raise errors.UnsafeWriteError(
                    f"{self._strays[name]}/ holds tenant {name} outside its shard: move or "
                    f"remove it first (writing {layout.physical_path(path, mode)} too would "
                    "deploy the tenant twice)")
        writes = {layout.physical_path(p, mode): data for p, data in changes.writes.items()}
        deletes = frozenset(layout.physical_path(p, mode) for p in changes.deletes)
        if mode == layout.SHARDED and self.repo_layout() is None and (writes or streamed):
            writes[layout.LAYOUT_RECORD] = layout.layout_record(mode)
        return self.inner.commit(ChangeSet(writes, deletes, _streamed(changes.streamed, mode)),
                                 layout.physical_text(message, mode))

    def flush(self) -> None:
        """Passed through."""
        self.inner.flush()

    # -- history --------------------------------------------------------------------------

    def log(self, limit: int | None = None) -> Iterator[CommitInfo]:
        """Passed through."""
        return self.inner.log(limit)

    def resolve(self, revision: str) -> str | None:
        """Passed through."""
        return self.inner.resolve(revision)

    def contains(self, commit_id: str, revision: str) -> bool:
        """Passed through."""
        return self.inner.contains(commit_id, revision)

    def _places(self, logical: str) -> list[str]:
        """Where a logical directory may be in an old commit: the wanted layout's place
        first, then the other's (commits before or after a migration)."""
        places = [layout.physical_path(logical, self.wanted)]
        other = layout.physical_path(
            logical, layout.FLAT if self.wanted == layout.SHARDED else layout.SHARDED)
        return places if other == places[0] else [*places, other]

    def last_change(self, directory: str) -> str | None:
        """The newest first-parent commit changing a logical directory in either layout."""
        newest: str | None = None
        for place in self._places(directory):
            found = self.inner.last_change(place)
            # the other place's change is newer when this one changed after it
            if found is not None and (newest is None
                                      or self.inner.changed_after(place, newest) is True):
                newest = found
        return newest

    def touches(self, commit_id: str, path: str) -> bool:
        """Whether a commit changed a logical path in either layout."""
        return any(self.inner.touches(commit_id, place) for place in self._places(path))

    def changed_after(self, directory: str, commit_id: str) -> bool | None:
        """Whether a later first-parent commit changed a logical directory in either
        layout (None when ``commit_id`` is not on that line)."""
        answers = [self.inner.changed_after(place, commit_id)
                   for place in self._places(directory)]
        if any(answers):
            return True
        return None if all(a is None for a in answers) else False

    def read_commit(self, commit_id: str) -> CommitInfo | None:
        """Passed through."""
        return self.inner.read_commit(commit_id)

    def tree_id_at(self, commit_id: str, path: str) -> str | None:
        """A logical directory's tree id in a commit, in whichever layout it had then."""
        for place in self._places(path):
            found = self.inner.tree_id_at(commit_id, place)
            if found is not None:
                return found
        return None

    def files_at(self, commit_id: str, directory: str) -> dict[str, bytes]:
        """Files of a logical directory in a commit, in whichever layout it had then."""
        for place in self._places(directory):
            if self.inner.tree_id_at(commit_id, place) is not None:
                return self.inner.files_at(commit_id, place)
        return {}

    def commits_touching(self, path: str, since: str | None = None,
                         limit: int | None = None) -> list[CommitInfo]:
        """Commits changing a logical path in either layout, newest first."""
        places = self._places(path)
        if len(places) == 1:
            return self.inner.commits_touching(places[0], since, limit)
        # each list is newest first; a commit moving the directory is in both
        lists = [self.inner.commits_touching(place, since, limit) for place in places]
        seen: set[str] = set()
        merged: list[CommitInfo] = []
        for commit in heapq.merge(*lists, key=lambda c: -c.time):
            if commit.id not in seen:
                seen.add(commit.id)
                merged.append(commit)
        return merged[:limit] if limit is not None else merged


def _streamed(streamed: Streamed | None, mode: layout.Layout) -> Streamed | None:
    """A streamed change set producing its directories at their physical paths."""
    if streamed is None or mode != layout.SHARDED:
        return streamed
    source = streamed

    def produce() -> Iterator[tuple[str, Mapping[str, bytes]]]:
        for directory, files in source:  # checked against the logical order as it goes
            yield layout.physical_path(directory, mode), files
    return Streamed(tuple(layout.physical_path(d, mode) for d in streamed.directories),
                    produce)
