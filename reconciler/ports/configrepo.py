"""The config repository port: read the target branch, commit a change set onto it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.history import CommitInfo
from reconciler.core.plan import ChangeSet


class ConfigRepo(Protocol):
    """A branch of a Git repository the reconciler writes rendered files to."""

    def head(self) -> str | None:
        """The id of the branch's head commit, or None for an unborn branch (inside
        ``pinned``: the pinned head)."""

    def pinned(self) -> contextlib.AbstractContextManager[None]:
        """Within it, reads (``head`` too) see the head as it was on entry: one consistent
        snapshot, the branch read once. Our own commits inside build on the branch as it
        is and advance the pin."""

    def list_files(self, directory: str) -> dict[str, str]:
        """Files directly in ``directory`` at the head: name -> blob id ({} when absent)."""

    def list_directories(self, parent: str) -> list[str]:
        """Names of the subdirectories of ``parent`` at the head."""

    def tree_id(self, directory: str) -> str | None:
        """The tree id of ``directory`` at the head, None when absent."""

    def read_file(self, path: str) -> bytes | None:
        """The bytes of ``path`` at the head, None when absent."""

    def read_blob(self, blob_id: str) -> bytes | None:
        """The bytes of a blob by its id (as ``list_files`` gives it), None when absent."""

    def commit(self, changes: ChangeSet, message: str) -> str:
        """Commit ``changes`` on top of the head as one commit; return its id.

        Raises ``errors.HeadMovedError`` when the branch moved underneath.
        """

    def log(self, limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from the head, newest first."""

    def flush(self) -> None:
        """Make committed work visible to others (update a work tree, push, ...)."""

    def resolve(self, revision: str) -> str | None:
        """The commit a revision names, or None."""

    def tree_id_at(self, commit_id: str, path: str) -> str | None:
        """The tree id of directory ``path`` in a commit."""

    def contains(self, commit_id: str, revision: str) -> bool:
        """Whether ``revision`` includes ``commit_id``."""

    def files_at(self, commit_id: str, directory: str) -> dict[str, bytes]:
        """Files directly in ``directory`` at a commit."""

    def commits_touching(self, path: str, since: str | None = None,
                         limit: int | None = None) -> list[CommitInfo]:
        """Commits after ``since``, newest first, that change ``path``."""

    def last_change(self, directory: str) -> str | None:
        """The newest commit of the branch's first-parent line whose change (against its
        first parent) is at or under ``directory``; None when none is."""

    def touches(self, commit_id: str, path: str) -> bool:
        """Whether a commit's change (against its first parent) is at or under ``path``."""

    def changed_after(self, directory: str, commit_id: str) -> bool | None:
        """Whether a commit of the branch's first-parent line newer than ``commit_id``
        changed something at or under ``directory``; None when ``commit_id`` is not on
        that line."""

    def read_commit(self, commit_id: str) -> CommitInfo | None:
        """One commit, None when there is no such commit."""


@dataclass(frozen=True)
class PushResult:
    """How a push went: ``rejected`` holds the server's reason when it refused; ``moved``:
    a compare-and-swap push found the remote ref moved (read it again and rebuild)."""

    ok: bool
    pushed: str | None = None
    rejected: str | None = None
    moved: bool = False


@dataclass(frozen=True)
class ForeignChange:
    """A commit on the remote, not made by the reconciler, that touched these paths."""

    commit: CommitInfo
    paths: tuple[str, ...]


class RemoteConfigRepo(ConfigRepo, Protocol):
    """A ConfigRepo that is a local mirror of a remote branch."""

    url: str

    def fetch(self) -> str | None:
        """Fetch the remote branch; return its head (None when it does not exist yet)."""

    def pending(self) -> list[CommitInfo]:
        """Local commits not yet on the remote branch, oldest first."""

    def push(self) -> PushResult:
        """Push the local branch (never forced); the remote may refuse."""

    def remote_head(self) -> str | None:
        """The remote branch's head as last fetched."""

    def diverged(self) -> bool:
        """Whether the remote head is not in the local branch's history (it moved)."""

    def fork_point(self) -> str | None:
        """The last commit the local branch and the remote head share."""

    def reset_to_remote(self) -> None:
        """Point the local branch at the fetched remote head, dropping pending commits."""

    def foreign_changes(self, old: str | None, new: str | None) -> list[ForeignChange]:
        """Commits in old..new not made by the reconciler, with the paths they touched."""
