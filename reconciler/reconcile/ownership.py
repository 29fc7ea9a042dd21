"""Who last changed an object's directory: the reconciler for that object, or someone else.

A human's ``git revert``, hand edit or ``reconciler rollback`` of an object's files is found
by comparing the directory at the head with the directory at the reconciler's own last
commit for that object (from trailers), then naming the newest commit in between that
touched it.

Costs one walk of the history at start (each commit's trailers parsed once). The branch's
first-parent line (from the Git adapter's changed-directories index) says which commit
last changed each directory: when that is our own last commit for the object, nothing
came after it and the head's directory *is* ours, so no old tree is read. Only an object
that something changed after our commit costs a look at our commit's tree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

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
        # key -> newest commit naming it, kept only when that is not our last own commit
        # (at 100,000 tenants each such map costs ~5 MB)
        self._named: dict[ObjectKey, str] = {}
        self._first_time: dict[ObjectKey, int] = {}  # Previews only: their ttl counts from it
        # key -> the directory's tree id at our last own commit (saves reading old trees)
        self._own_tree: dict[ObjectKey, str | None] = {}

    def reset(self) -> None:
        """Forget the index (the branch was reset)."""
        self._last = None
        self._named.clear()
        self._own_tree.clear()

    def _index(self) -> dict[ObjectKey, str]:
        if self._last is None:
            last: dict[ObjectKey, str] = {}
            for commit in self._repo.log():
                trailers = messages.parse_trailers(commit.message)
                keys = _object_keys(trailers)
                own = self._is_own(commit, trailers)
                for key in keys:
                    if key not in last and key not in self._named and not own:
                        self._named[key] = commit.id  # someone else's, newer than ours
                if not own:
                    continue
                for key in keys:
                    last.setdefault(key, commit.id)
                    if key.kind == "Preview":
                        self._first_time[key] = commit.time  # the walk goes back in time
            self._last = last
        return self._last

    def is_own(self, commit: CommitInfo) -> bool:
        """Whether the reconciler made ``commit`` to express a resource's spec."""
        return self._is_own(commit, messages.parse_trailers(commit.message))

    def _is_own(self, commit: CommitInfo, trailers: list[tuple[str, str]]) -> bool:
        if commit.author_email != self._email:
            return False
        action = messages.TRAILER_ACTION.lower()
        actions = [v for k, v in trailers if k.lower() == action]
        return bool(actions) and actions[0] in messages.OWN_ACTIONS

    def recorded(self, key: ObjectKey, commit: str, tree_id: str | None = None) -> None:
        """We just committed ``commit`` for ``key`` (leaving its directory at ``tree_id``)."""
        if self._last is not None:
            self._last[key] = commit
            self._named.pop(key, None)
            self._own_tree[key] = tree_id
            if key.kind == "Preview":
                self._first_time.setdefault(key, int(time.time()))

    def first_own_time(self, key: ObjectKey) -> int | None:
        """When the reconciler first wrote Preview ``key`` (its creation time in local mode,
        from which its ttl counts); None for a Customer, which has no ttl."""
        self._index()
        return self._first_time.get(key)

    def last_own(self, key: ObjectKey) -> str | None:
        """The reconciler's last own commit for ``key``."""
        return self._index().get(key)

    def last_named(self) -> Mapping[ObjectKey, str]:
        """The newest commit naming each object in its trailers, by anyone."""
        return {**self._index(), **self._named}

    def _settled(self, key: ObjectKey, ours: str) -> bool | None:
        """Whether nothing changed ``key``'s directory after our commit ``ours``: True (the
        head's directory is exactly as ours left it), False (a later commit of the
        branch's first-parent line did), None (ours is not on that line, e.g. it came in
        through a merge: only the trees can tell)."""
        changed = self._repo.changed_after(key.directory, ours)
        return None if changed is None else not changed

    def own_tree(self, key: ObjectKey) -> str | None:
        """The tree id of ``key``'s directory at our last own commit (None: none or absent)."""
        ours = self.last_own(key)
        if ours is None:
            return None
        if key in self._own_tree:
            return self._own_tree[key]
        if self._settled(key, ours):
            return self._repo.tree_id(key.directory)  # not kept: the head's listing has it
        self._own_tree[key] = self._repo.tree_id_at(ours, key.directory)
        return self._own_tree[key]

    def standing(self, key: ObjectKey, tree_id: str | None
                 ) -> tuple[HumanChange | None, bool]:
        """(the foreign change standing on ``key``'s directory, if any; whether the
        directory at the head, ``tree_id``, is as our last own commit left it)."""
        ours = self.last_own(key)
        if ours is None:
            return None, False
        settled = self._settled(key, ours)
        if settled:  # nothing after ours: no old tree to read
            return None, True
        if tree_id == self.own_tree(key):
            return None, True
        return self._foreign_change(key, ours, newest_known=settled is False), False

    def human_change(self, key: ObjectKey) -> HumanChange | None:
        """The foreign change standing on ``key``'s directory at the head, if any."""
        return self.standing(key, self._repo.tree_id(key.directory))[0]

    def _foreign_change(self, key: ObjectKey, ours: str, *, newest_known: bool
                        ) -> HumanChange | None:
        """The newest commit not ours that changed ``key``'s directory since ``ours``."""
        if newest_known:  # the first-parent line names it: one commit read
            newest = self._repo.last_change(key.directory)
            commit = self._repo.read_commit(newest) if newest is not None else None
            if commit is not None and not self.is_own(commit):
                return HumanChange(classify(commit), commit, ours)
        # an own commit of another object came last, or ours came through a merge
        touching = [c for c in self._repo.commits_touching(key.directory, since=ours)
                    if not self.is_own(c)]
        return HumanChange(classify(touching[0]), touching[0], ours) if touching else None

    def record_at_own(self, key: ObjectKey) -> common.SourceRecord | None:
        """The source record of the reconciler's last own commit for ``key``."""
        ours = self.last_own(key)
        if ours is None:
            return None
        path = f"{key.directory}/{common.SOURCE_FILE}"
        if self._settled(key, ours):
            raw = self._repo.read_file(path)  # the head's directory is ours
        else:
            raw = self._repo.files_at(ours, key.directory).get(common.SOURCE_FILE)
        return common.parse_source_record(raw) if raw is not None else None


def _object_keys(trailers: list[tuple[str, str]]) -> list[ObjectKey]:
    """The objects named by ``Reconciler-Object`` trailers (unparseable ones skipped)."""
    name = messages.TRAILER_OBJECT.lower()
    keys: dict[ObjectKey, None] = {}  # ordered and O(1) per key: an import names thousands
    for key, value in trailers:
        if key.lower() != name:
            continue
        try:
            keys[ObjectKey.parse(value)] = None
        except ValueError:
            continue
    return list(keys)
