"""Who last changed an object's directory: the reconciler for that object, or someone else.

A human's ``git revert``, hand edit or ``reconciler rollback`` of an object's files is found
by comparing the directory at the head with the directory at the reconciler's own last
commit for that object (from trailers), then naming the newest commit in between that
touched it. Costs one history walk at start, then a tree lookup per check.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.core import messages
from reconciler.core.history import CommitInfo
from reconciler.core.models import ObjectKey
from reconciler.core.outcomes import Reason
from reconciler.core.render import common
from reconciler.core.snapshot import HumanChange
from reconciler.ports.configrepo import ConfigRepo


def classify(commit: CommitInfo) -> Reason:
    """Why a foreign commit changed the files: revert, rollback or edit."""
    if messages.trailer_values(commit.message, messages.TRAILER_ACTION) == ["rollback"]:
        return Reason.ROLLED_BACK
    if commit.subject.startswith('Revert "') or "This reverts commit" in commit.message:
        return Reason.REVERTED_IN_GIT
    return Reason.MODIFIED_IN_GIT


class Ownership:
    """Tracks the reconciler's last own commit per object."""

    def __init__(self, *, repo: ConfigRepo, author_email: str) -> None:
        self._repo = repo
        self._email = author_email
        self._last: dict[ObjectKey, str] | None = None
        self._first_time: dict[ObjectKey, int] = {}
        # key -> the directory's tree id at our last own commit (saves reading old trees)
        self._own_tree: dict[ObjectKey, str | None] = {}

    def reset(self) -> None:
        """Forget the index (the branch was reset)."""
        self._last = None
        self._own_tree.clear()

    def _index(self) -> dict[ObjectKey, str]:
        if self._last is None:
            self._last = {}
            for commit in self._repo.log():
                if not self.is_own(commit):
                    continue
                for key in messages.object_keys(commit.message):
                    self._last.setdefault(key, commit.id)
                    self._first_time[key] = commit.time  # the walk goes back in time
        return self._last

    def is_own(self, commit: CommitInfo) -> bool:
        """Whether the reconciler made ``commit`` to express a resource's spec."""
        actions = messages.trailer_values(commit.message, messages.TRAILER_ACTION)
        return commit.author_email == self._email and bool(actions) \
            and actions[0] in messages.OWN_ACTIONS

    def recorded(self, key: ObjectKey, commit: str, tree_id: str | None = None) -> None:
        """We just committed ``commit`` for ``key`` (leaving its directory at ``tree_id``)."""
        if self._last is not None:
            self._last[key] = commit
            self._own_tree[key] = tree_id
            self._first_time.setdefault(key, int(time.time()))

    def first_own_time(self, key: ObjectKey) -> int | None:
        """When the reconciler first wrote ``key`` (its creation time in local mode)."""
        self._index()
        return self._first_time.get(key)

    def last_own(self, key: ObjectKey) -> str | None:
        """The reconciler's last own commit for ``key``."""
        return self._index().get(key)

    def own_tree(self, key: ObjectKey) -> str | None:
        """The tree id of ``key``'s directory at our last own commit (None: none or absent)."""
        ours = self.last_own(key)
        if ours is None:
            return None
        if key not in self._own_tree:
            self._own_tree[key] = self._repo.tree_id_at(ours, key.directory)
        return self._own_tree[key]

    def human_change(self, key: ObjectKey, tree_id: str | bool | None = False
                     ) -> HumanChange | None:
        """The foreign change standing on ``key``'s directory, if any (``tree_id``: the
        directory's tree id at the head, when the caller already knows it)."""
        ours = self.last_own(key)
        if ours is None:
            return None
        head_tree = self._repo.tree_id(key.directory) if tree_id is False else tree_id
        if head_tree == self.own_tree(key):
            return None
        touching = [c for c in self._repo.commits_touching(key.directory, since=ours)
                    if not self.is_own(c)]
        if not touching:
            return None
        return HumanChange(classify(touching[0]), touching[0], ours)

    def record_at_own(self, key: ObjectKey) -> common.SourceRecord | None:
        """The source record of the reconciler's last own commit for ``key``."""
        ours = self.last_own(key)
        if ours is None:
            return None
        raw = self._repo.files_at(ours, key.directory).get(common.SOURCE_FILE)
        return common.parse_source_record(raw) if raw is not None else None

    def spec_at_own(self, key: ObjectKey) -> dict[str, Any] | None:
        """The spec the reconciler last rendered for ``key`` (from its source record)."""
        record = self.record_at_own(key)
        return dict(record.spec) if record and record.spec is not None else None
