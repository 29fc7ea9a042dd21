"""The tree cache port: what a directory's tree holds (its files, its source record), by
tree id, kept across processes so that a restart over an unchanged fleet reads no tree and
no record from Git.

A tree id names its content exactly, so an entry is never stale; a missing or doubtful
one is a miss, and the caller reads Git.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.render.common import SourceRecord


@dataclass(frozen=True, slots=True)
class TreeSummary:
    """What one directory's tree holds, as a snapshot needs it."""

    files: Mapping[str, str]  # name -> blob id
    #: the source record parsed from ``files[SOURCE_FILE]``, its spec left out (None)
    record: SourceRecord | None
    has_spec: bool = False  # the record's spec was a mapping (read from the blob on demand)


class TreeCache(Protocol):
    """Summaries of trees by id."""

    def load(self, tree_ids: Container[str]) -> Iterator[tuple[str, TreeSummary]]:
        """The summaries known for the trees in ``tree_ids``, streamed (a fleet's worth is
        not held at once; a tree may come twice, and the caller may take trees out of
        ``tree_ids`` meanwhile)."""

    def add(self, tree_id: str, summary: TreeSummary) -> None:
        """Learn a tree read from Git (written in batches, by ``close`` at the latest)."""

    def flush(self) -> None:
        """Write what was learnt. Never raises: it is only a cache."""

    def close(self, live: Collection[str]) -> None:
        """Write what was learnt; entries of trees not in ``live`` (the trees a full pass
        saw) may be dropped. Never raises: it is only a cache."""
