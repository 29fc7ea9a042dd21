"""Commit records and the audit trail of one object, derived from trailers.

Pure: works on CommitInfo values the Git adapter produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from reconciler.core import messages
from reconciler.core.models import ObjectKey


@dataclass(frozen=True)
class CommitInfo:
    """One commit as the reconciler sees it."""

    id: str
    author_name: str
    author_email: str
    time: int  # seconds since the epoch
    offset_minutes: int
    message: str
    parents: Sequence[str] = ()

    @property
    def subject(self) -> str:
        """The first line of the message."""
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of an object's audit trail."""

    commit: CommitInfo
    action: str
    generation: int | None


def object_history(commits: Iterable[CommitInfo], key: ObjectKey) -> Iterator[HistoryEntry]:
    """The commits (newest first, as given) whose trailers name ``key``."""
    wanted = str(key)
    for commit in commits:
        trailers = messages.parse_trailers(commit.message)
        if not any(k == messages.TRAILER_OBJECT and v == wanted for k, v in trailers):
            continue
        values = dict(trailers)
        generation = values.get(messages.TRAILER_GENERATION)
        yield HistoryEntry(
            commit,
            values.get(messages.TRAILER_ACTION, "update"),
            messages.parse_generation(generation),
        )
