"""The config repo adapter on libgit2 (pygit2): reads trees and writes commits, no work tree.

The only module that imports pygit2. Commits are built from the head tree by rewriting
only the trees on the changed paths; blobs that did not change are never re-read or
re-written. The branch is advanced with compare-and-swap semantics (libgit2 refuses to
create a commit whose first parent is not the current tip), so a concurrent writer is
detected, never overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pygit2

from reconciler.adapters import looseobjects, touchindex, treelisting
from reconciler.adapters.signing import Signer
from reconciler.core import errors, names
from reconciler.core.history import CommitInfo
from reconciler.core.plan import ChangeSet, Streamed

log = logging.getLogger(__name__)
#: how far a long write has come (the CLI shows it; off a terminal, a few log lines)
progress = logging.getLogger("reconciler.progress")

_BLOB = pygit2.enums.FileMode.BLOB
_TREE = pygit2.enums.FileMode.TREE
#: trees with at least this many entries keep their builder between commits
KEEP_BUILDER_ENTRIES = 256
#: pack the loose objects once about this many have piled up (git's gc.auto is 6,700)
LOOSE_LIMIT = 4096
#: more packs than this are combined into one
PACKS_LIMIT = 16
#: a commit writing at least this many files writes its objects as one pack, not loose
BULK_WRITES = 2000
#: libgit2's object cache and its mapped pack windows, at most (see tune_libgit2)
CACHE_BYTES = 4 << 20
MAPPED_BYTES = 4 << 20
#: root tree ids of this many commits are remembered (a few hundred bytes each)
ROOTS_KEPT = 65536


#: a lock or temporary object file older than this belongs to no live git process: git
#: holds a ref lock for milliseconds (used where other writers may exist, e.g. humans)
STALE_SECONDS = 10.0
_SYMLINK = 0o120000
_HEX_ID = 40  # a SHA-1 object id in hex


def tune_libgit2() -> None:
    """Process-wide libgit2 settings, applied once by the composition root.

    libgit2 caches only small trees by default; the flat tenants/ tree is large and hot.
    Its other defaults grow with the repository: every pack stays mapped (a pass over
    100,000 tenants touches most of a 240 MB pack, all of it resident) and the object
    cache may hold 256 MB; both are bounded here (mapped windows are reused, LRU).
    """
    pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.TREE, 64 << 20)
    pygit2.settings.cache_max_size(CACHE_BYTES)
    pygit2.settings.mwindow_size = MAPPED_BYTES // 4  # windows of 1 GB would defeat the limit
    pygit2.settings.mwindow_mapped_limit = MAPPED_BYTES


class GitConfigRepo:
    """A branch of a local repository (bare or not) used as the config repo."""

    def __init__(self, repo: pygit2.Repository, *, branch: str, author_name: str,
                 author_email: str, signer: Signer | None = None) -> None:
        self._repo = repo
        self.signer = signer
        self._ref = f"refs/heads/{branch}"
        self.branch = branch
        self._author = (author_name, author_email)
        self._pass_base: str | None = self._branch_head()
        self._index_head: str | None = None
        self._dirs: dict[str, MutableMapping[str, tuple[bool, pygit2.Oid]]] = {}
        self._builders: dict[str, tuple[Any, Any]] = {}
        self._head_tree: tuple[str | None, Any] = (None, None)
        # commit id -> root tree id: commits are immutable, and libgit2 caches commits only
        # up to 4 KB, so an import commit (its message names every object) was re-read and
        # re-parsed for every object whose last own commit it is
        self._roots: dict[str, pygit2.Oid] = {}
        self._loose: int | None = None  # loose objects, estimated; None: not counted yet
        self._pack: looseobjects.PackWriter | None = None  # set while a bulk commit builds
        self._touched: dict[str, frozenset[str]] | None = None  # commit -> changed dirs
        self._line = touchindex.Line()  # the first-parent line at the head it was built for
        self._differ = touchindex.TreeDiffer(self._read_raw)
        #: no other process writes this repository (a mirror under our lock): any lock file
        #: found in it was left by a killed run of ours
        self.sole_writer = False
        self._pins: list[str | None] = []  # heads pinned by ``pinned`` (nested: the outer)

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, branch: str, author_name: str, author_email: str,
             create: bool = False, signer: Signer | None = None) -> GitConfigRepo:
        """Open the repository at ``path``; with ``create`` make a bare one when missing."""
        path = Path(path)
        try:
            # only PATH itself, never an enclosing repository found by walking up
            is_repo = (path / ".git").exists() or (path / "HEAD").is_file()
            discovered = str(path) if is_repo else None
            if discovered is None:
                if not create:
                    raise errors.UserInputError(f"{path}: not a Git repository")
                if path.exists() and (not path.is_dir() or any(path.iterdir())):
                    # never turn someone's files into a bare repository's clutter
                    raise errors.UserInputError(
                        f"{path}: exists and is neither a Git repository nor an empty "
                        "directory; give --repo a repository, an empty or a new path")
                repo = pygit2.init_repository(str(path), bare=True, initial_head=branch)
            else:
                repo = pygit2.Repository(discovered)
        except pygit2.GitError as exc:
            raise errors.RepoError(f"{path}: cannot open repository: {exc}") from exc
        return cls(repo, branch=branch, author_name=author_name, author_email=author_email,
                   signer=signer)

    @property
    def path(self) -> str:
        """The repository's git directory."""
        return str(self._repo.path)

    @property
    def repository(self) -> pygit2.Repository:
        """The pygit2 repository, for adapters composed with this one (the mirror)."""
        return self._repo

    @property
    def ref_name(self) -> str:
        """The full name of the branch's reference (``refs/heads/main``)."""
        return self._ref

    @property
    def author(self) -> tuple[str, str]:
        """The (name, email) commits are made with."""
        return self._author

    def forget_trees(self) -> None:
        """Drop the kept tree builders: the branch was moved to a commit we did not make."""
        self._builders.clear()

    # -- reading --------------------------------------------------------------------------

    def point_head_at_branch(self) -> bool:
        """Make ``HEAD`` name the target branch when it names an unborn one (``git init``
        defaults to ``master``), so that ``git clone`` checks the branch out; True if
        changed. A HEAD on an existing branch (a work tree's checkout) is left alone."""
        try:
            current = self._repo.references.get("HEAD")
            target = current.target if current is not None else None
            if target == self._ref or (isinstance(target, str)
                                       and self._repo.references.get(target) is not None):
                return False
            if self._repo.references.get(self._ref) is None:
                return False
            self._repo.set_head(self._ref)
        except pygit2.GitError as exc:
            raise errors.RepoError(f"{self.path}: cannot point HEAD at {self.branch}: {exc}") from exc
        return True

    def head(self) -> str | None:
        """The id of the branch's head commit, or None for an unborn branch; inside
        ``pinned``, the head it pinned (what every read there sees)."""
        return self._pins[-1] if self._pins else self._branch_head()

    def _branch_head(self) -> str | None:
        """The branch's head as it is now (a commit builds on it, whatever is pinned)."""
        ref = self._repo.references.get(self._ref)
        return str(ref.target) if ref is not None else None

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Reads inside see the head as it was on entry (our own commits inside advance
        it): one consistent snapshot, and the branch's reference is read once, not four
        times per object (a reference lookup reads a file: 0.4 s of CPU per 10,000
        objects). ``head()`` answers the pinned head too, so what callers cache by head
        (the layout check) is keyed by the commit they read."""
        self._pins.append(self.head())
        try:
            yield
        finally:
            self._pins.pop()

    def _children(self, directory: str, *, checked: bool = False
                  ) -> MutableMapping[str, tuple[bool, pygit2.Oid]] | None:
        """Entries of ``directory`` at the head: name -> (is a tree, id); None when absent.

        Listings are cached per head commit and patched after our own commits, so a pass
        over thousands of objects reads each large tree once, not once per object.
        ``checked``: the caller already compared the head with the cache's.
        """
        if checked:
            head = self._index_head
        else:
            head = self.head()
            if head != self._index_head:
                self._dirs.clear()
                self._index_head = head
        cached = self._dirs.get(directory)
        if cached is not None:
            return cached
        if head is None:
            return None
        children: MutableMapping[str, tuple[bool, pygit2.Oid]]
        if directory == "":
            # names interned: a tenant's name is also in its model, records and trailers
            children = {sys.intern(str(e.name)): (e.type_str == "tree", e.id)
                        for e in self._root_tree(head)}
        else:
            parent, _, name = directory.rpartition("/")
            siblings = self._children(parent, checked=True)
            entry = siblings.get(name) if siblings is not None else None
            if entry is None or not entry[0]:
                return None
            listed = self._raw_listing(entry[1])
            if listed is None:
                return None
            children = listed
        if directory == "" or any(is_tree for is_tree, _ in children.values()):
            # listings of leaf directories (one per tenant) are not kept: read again from
            # libgit2's cache, they cost less than 100,000 kept dicts (~130 MB)
            self._dirs[directory] = children
        return children

    def _raw_listing(self, oid: pygit2.Oid) -> MutableMapping[str, tuple[bool, pygit2.Oid]] | None:
        """The entries of tree ``oid``, parsed from its raw bytes.

        Not through ``repo[oid]``: libgit2 would cache the parsed tree, at about twice the
        size its cache accounts for, and a pass lists every tenant's directory once (126 MB
        of parsed trees at 100,000 tenants). The raw object is cached at its own size, and
        the listing keeps it instead of an object per entry (``treelisting``)."""
        try:
            kind, data = self._repo.odb.read(oid)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise errors.RepoError(f"{self.path}: cannot read tree {oid}: {exc}") from exc
        if kind != pygit2.enums.ObjectType.TREE:
            return None
        try:
            return treelisting.read(data, len(oid.raw))
        except ValueError as exc:  # a truncated entry: no id, no NUL
            raise errors.RepoError(f"{self.path}: tree {oid} is damaged") from exc

    def _tree_of(self, commit_id: str | None) -> Any:
        """The root tree id of a commit (remembered for the commit we made last)."""
        if commit_id is None:
            return None
        if self._head_tree[0] == commit_id:
            return self._head_tree[1]
        return self._root_tree(commit_id).id

    def _commit_at(self, commit_id: str) -> pygit2.Commit:
        commit = self._repo.get(commit_id)
        if not isinstance(commit, pygit2.Commit):
            raise errors.RepoError(f"{commit_id} is not a commit")
        return commit

    def _entry(self, path: str, *, checked: bool = False) -> tuple[bool, pygit2.Oid] | None:
        parent, _, name = path.rpartition("/")
        siblings = self._children(parent, checked=checked)
        return siblings.get(name) if siblings is not None else None

    def list_files(self, directory: str) -> dict[str, str]:
        """Files directly in ``directory`` at the head: name -> blob id."""
        children = self._children(directory) or {}
        return {name: str(oid) for name, (is_tree, oid) in children.items() if not is_tree}

    def list_directories(self, parent: str) -> list[str]:
        """Names of the subdirectories of ``parent`` at the head."""
        children = self._children(parent) or {}
        if isinstance(children, treelisting.Listing):  # a large tree: no id object per entry
            return children.subtrees()
        return [name for name, (is_tree, _) in children.items() if is_tree]

    def tree_id(self, directory: str) -> str | None:
        """The tree id of ``directory`` at the head."""
        entry = self._entry(directory)
        return str(entry[1]) if entry is not None and entry[0] else None

    def read_blob(self, blob_id: str) -> bytes | None:
        """The bytes of a blob by its id (a directory listing names it: no path walk)."""
        if len(blob_id) == _HEX_ID:
            # straight from the object database: ``repo.get`` of a hex id goes through the
            # abbreviated-id lookup and builds a Blob object (0.3 s per 10,000 records)
            try:
                kind, data = self._repo.odb.read(pygit2.Oid(hex=blob_id))
            except (KeyError, ValueError):
                return None
            except pygit2.GitError as exc:
                raise errors.RepoError(f"{self.path}: cannot read blob {blob_id}: {exc}") \
                    from exc
            return data if kind == pygit2.enums.ObjectType.BLOB else None
        try:
            blob = self._repo.get(blob_id)
        except ValueError:
            return None
        return blob.data if isinstance(blob, pygit2.Blob) else None

    def read_file(self, path: str) -> bytes | None:
        """The bytes of ``path`` at the head."""
        entry = self._entry(path)
        if entry is None or entry[0]:
            return None
        blob = self._repo.get(entry[1])
        return blob.data if isinstance(blob, pygit2.Blob) else None

    # -- history ------------------------------------------------------------------------

    def resolve(self, revision: str) -> str | None:
        """The commit a revision (id, abbreviated id, ref) names, or None."""
        try:
            obj = self._repo.revparse_single(revision)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        commit = obj.peel(pygit2.Commit) if not isinstance(obj, pygit2.Commit) else obj
        return str(commit.id)

    def contains(self, commit_id: str, revision: str) -> bool:
        """Whether ``revision`` is ``commit_id`` or a descendant of it (False if unknown)."""
        if commit_id == revision:
            return True
        try:
            return bool(self._repo.descendant_of(revision, commit_id))
        except (pygit2.GitError, KeyError, ValueError):
            return False

    def _root_tree(self, commit_id: str) -> pygit2.Tree:
        """The root tree of a commit, its id remembered (the commit is read once)."""
        oid = self._roots.get(commit_id)
        if oid is None:
            if len(self._roots) >= ROOTS_KEPT:
                self._roots.clear()
            oid = self._roots[commit_id] = self._commit_at(commit_id).tree_id
        tree = self._repo[oid]
        assert isinstance(tree, pygit2.Tree)
        return tree

    def tree_id_at(self, commit_id: str, path: str) -> str | None:
        """The tree id of directory ``path`` in ``commit_id`` (None when absent)."""
        tree = self._root_tree(commit_id)
        try:
            entry = tree[path]
        except KeyError:
            return None
        return str(entry.id) if entry.type_str == "tree" else None

    def files_at(self, commit_id: str, directory: str) -> dict[str, bytes]:
        """Files directly in ``directory`` at ``commit_id``: name -> bytes."""
        tree_id = self.tree_id_at(commit_id, directory)
        if tree_id is None:
            return {}
        tree = self._repo.get(tree_id)
        out: dict[str, bytes] = {}
        for entry in tree if isinstance(tree, pygit2.Tree) else []:
            blob = self._repo.get(entry.id)
            if isinstance(blob, pygit2.Blob):
                out[str(entry.name)] = blob.data
        return out

    def commits_touching(self, path: str, since: str | None = None,
                         limit: int | None = None) -> list[CommitInfo]:
        """Commits after ``since`` (newest first) whose first-parent diff changes something
        at or under ``path``. Each commit's changed directories are diffed once and kept in
        an index file beside the repository; later calls only walk the commit ids."""
        head = self.head()
        if head is None:
            return []
        walker = self._repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL
                                 | pygit2.enums.SortMode.TIME)
        if since is not None:
            walker.hide(since)
        index = self._touch_index()
        learnt: list[tuple[str, frozenset[str]]] = []
        out: list[CommitInfo] = []
        for commit in walker:
            commit_id = str(commit.id)
            dirs = index.get(commit_id)
            if dirs is None:
                dirs = index[commit_id] = self._changed_directories(commit)
                learnt.append((commit_id, dirs))
            if touchindex.touches(dirs, path):
                out.append(commit_info(commit))
                if limit is not None and len(out) >= limit:
                    break
        self._differ.forget()
        touchindex.append(Path(self._repo.path) / touchindex.FILE_NAME, learnt)
        return out

    def last_change(self, directory: str) -> str | None:
        """The newest commit of the branch's first-parent line whose change (against its
        first parent) is at or under ``directory``; None when none is."""
        return self._first_parent_line().newest.get(directory)

    def touches(self, commit_id: str, path: str) -> bool:
        """Whether ``commit_id``'s change (against its first parent) is at or under
        ``path`` (from the index; a commit it lacks is diffed once and added)."""
        index = self._touch_index()
        dirs = index.get(commit_id)
        if dirs is None:
            commit = self._repo.get(pygit2.Oid(hex=commit_id))
            if not isinstance(commit, pygit2.Commit):
                return False
            dirs = index[commit_id] = self._changed_directories(commit)
            touchindex.append(Path(self._repo.path) / touchindex.FILE_NAME, [(commit_id, dirs)])
        return touchindex.touches(dirs, path)

    def changed_after(self, directory: str, commit_id: str) -> bool | None:
        """Whether a commit of the branch's first-parent line newer than ``commit_id``
        changed something at or under ``directory``; None when ``commit_id`` is not on
        that line (a commit of a merged branch, or not in the branch at all)."""
        line = self._first_parent_line()
        mine = line.position.get(commit_id)
        if mine is None:
            return None
        newest = line.newest.get(directory)
        return newest is not None and line.position[newest] > mine

    def read_commit(self, commit_id: str) -> CommitInfo | None:
        """One commit as plain data, None when there is no such commit."""
        try:
            commit = self._repo.get(pygit2.Oid(hex=commit_id))
        except ValueError:
            return None
        return commit_info(commit) if isinstance(commit, pygit2.Commit) else None

    def _first_parent_line(self) -> touchindex.Line:
        """The line at the current head: extended by the commits added since the head it
        was built for (each one's changed directories from the index, a diff only for a
        commit the index lacks), rebuilt when the head does not continue it."""
        line, head = self._line, self.head()
        if line.head == head:
            return line
        index = self._touch_index()
        learnt: list[tuple[str, frozenset[str]]] = []
        added: list[tuple[str, frozenset[str]]] = []
        continues = False
        commit_id = head
        while commit_id is not None:
            if commit_id == line.head:
                continues = True
                break
            commit = self._repo.get(pygit2.Oid(hex=commit_id))
            if not isinstance(commit, pygit2.Commit):
                break  # beyond a shallow clone's edge: the line starts here
            dirs = index.get(commit_id)
            if dirs is None:
                dirs = index[commit_id] = self._changed_directories(commit)
                learnt.append((commit_id, dirs))
            added.append((commit_id, dirs))
            parents = commit.parent_ids
            commit_id = str(parents[0]) if parents else None
        self._differ.forget()
        touchindex.append(Path(self._repo.path) / touchindex.FILE_NAME, learnt)
        line.advance(head, added, continues=continues)
        return line

    def _remember_touched(self, commit_id: str, paths: Iterable[str],
                          directories: Iterable[str] = ()) -> None:
        """Index our own new commit's changed directories (we know them: no diff later)."""
        dirs = frozenset([*(p.rpartition("/")[0] for p in paths), *directories])
        if self._touched is not None:
            self._touched[commit_id] = dirs
        touchindex.append(Path(self._repo.path) / touchindex.FILE_NAME, [(commit_id, dirs)])

    def _touch_index(self) -> dict[str, frozenset[str]]:
        if self._touched is None:
            self._touched = touchindex.load(Path(self._repo.path) / touchindex.FILE_NAME)
        return self._touched

    def _changed_directories(self, commit: pygit2.Commit) -> frozenset[str]:
        """The directories holding the files a commit changed against its first parent
        (identical subtrees are skipped by id, so this costs the trees on changed paths)."""
        parents = commit.parent_ids
        parent = self._repo.get(parents[0]) if parents else None
        old = parent.tree_id.raw if isinstance(parent, pygit2.Commit) else None
        return frozenset(self._differ.changed(old, commit.tree_id.raw))

    def _read_raw(self, raw_id: bytes) -> bytes:
        data: bytes = self._repo.odb.read(pygit2.Oid(raw=raw_id))[1]
        return data

    def log(self, limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from the head, newest first (topological, then time)."""
        head = self.head()
        if head is None:
            return
        order = pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME
        for count, commit in enumerate(self._repo.walk(head, order)):
            if limit is not None and count >= limit:
                return
            yield commit_info(commit)

    # -- writing --------------------------------------------------------------------------

    def commit(self, changes: ChangeSet, message: str) -> str:
        """Commit ``changes`` on top of the head as one commit; return its id."""
        return self.commit_moves({}, changes, message)

    def commit_moves(self, moves: Mapping[str, str], changes: ChangeSet, message: str) -> str:
        """Commit directories moved whole (source -> destination, both absent from
        ``changes``) together with ``changes``. A moved directory keeps its tree id: nothing
        in it is read or written again, so moving 100,000 tenants writes only the trees
        above them."""
        if changes.empty and not moves:
            raise ValueError("refusing to make an empty commit")
        streamed = changes.streamed.directories if changes.streamed is not None else ()
        for path in [*changes.paths, *streamed, *moves, *moves.values()]:
            try:
                names.check_relative_path(path)
            except names.UnsafePathError as exc:
                raise errors.UnsafeWriteError(str(exc)) from exc
        head = self._branch_head()
        # a commit builds on the branch as it is now: reads inside a pin see that head too
        self._pins[:] = [head] * len(self._pins)
        if head != self._index_head:  # listings of another head must not be carried over
            self._dirs.clear()
            self._index_head = head
        self._refuse_symlinks(head, [*changes.paths, *streamed, *moves.values()])
        trees: dict[str, _Subtree] = {}
        for source, destination in moves.items():
            entry = self._entry(source)
            if entry is None or not entry[0]:
                raise errors.RepoError(f"cannot move {source}: not a directory at the head")
            trees[destination] = _Subtree(entry[1])  # the same tree, at its new path
        try:
            return self._commit_on(head, changes, message, moves, trees)
        except OSError:
            # a lock left by a killed process: clear it when it provably has no live owner
            if not self.clear_stale_locks():
                raise errors.RepoError(f"commit failed: {self._ref} is locked by another "
                                       "git process") from None
        try:
            return self._commit_on(head, changes, message, moves, trees)
        except OSError as exc:
            raise errors.RepoError(f"commit failed: {exc}") from exc

    def _commit_on(self, head: str | None, changes: ChangeSet, message: str,
                   moves: Mapping[str, str], trees: Mapping[str, _Subtree]) -> str:
        # bytes, None (delete) or a _Subtree (a streamed directory or one moved whole)
        ops: dict[str, Any] = dict(changes.writes)
        ops.update(dict.fromkeys(changes.deletes))
        ops.update(dict.fromkeys(moves))
        ops.update(trees)
        changed: dict[str, tuple[bool, pygit2.Oid] | None] = {}
        objects_dir = Path(self._repo.path) / "objects"
        bulk = self._pack = looseobjects.PackWriter(objects_dir) \
            if len(ops) >= BULK_WRITES or changes.streamed is not None else None
        touched: set[str] = set()
        try:
            base = self._tree_of(head)
            if changes.streamed is not None:
                ops.update(self._write_streamed(head, changes.streamed, touched))
            # a streamed commit drops every kept listing afterwards: nothing to patch, so
            # no record of its 100,000 changed entries either
            tree_id = self._build("", base, ops, changed if changes.streamed is None else {})
            if bulk is not None:  # the pack must be in place before the commit names it
                self._pack = None
                bulk.finish()
            if tree_id is None:
                tree_id = self._repo.TreeBuilder().write()
            author = pygit2.Signature(*self._author)
            parents = [pygit2.Oid(hex=head)] if head else []
            if self.signer is None:
                oid = self._repo.create_commit(self._ref, author, author, message, tree_id,
                                               parents)
            else:
                oid = self._signed_commit(head, author, message, tree_id, parents)
        except OSError:  # libgit2 reports a held lock as OSError (error class GIT_ERROR_OS)
            self._builders.clear()
            if self._branch_head() != head:
                raise errors.HeadMovedError(f"{self._ref} moved during the commit") from None
            raise
        except pygit2.GitError as exc:
            self._builders.clear()
            # recognised by the state it leaves, not by libgit2's wording: the tip moved
            if self._branch_head() != head:
                raise errors.HeadMovedError(f"{self._ref} moved during the commit") from exc
            raise errors.RepoError(f"commit failed: {exc}") from exc
        finally:
            if self._pack is not None:  # failed before the pack was finished
                self._pack.abandon()
            self._pack = None
        if changes.streamed is not None:  # the listings inside were never patched
            self._dirs.clear()
        self._pins[:] = [str(oid)] * len(self._pins)
        self._patch_listings(str(oid), changed)
        self._head_tree = (str(oid), tree_id)
        self._remember_touched(str(oid), [p for p, v in ops.items()
                                          if not isinstance(v, _Subtree)],
                               touched | set(moves) | set(moves.values()))
        # loose objects written: the changed entries, the root tree, the commit
        self._after_write(1 if bulk is not None else len(changed) + 2)
        return str(oid)

    # -- maintenance ----------------------------------------------------------------------

    def _after_write(self, objects: int) -> None:
        """Count what a commit wrote; pack once enough loose objects piled up. Runs inside
        ``commit``, so under whatever lock the writer holds: no other writer of ours is
        mid-commit, and git's own readers and writers cope with a pack appearing."""
        objects_dir = Path(self._repo.path) / "objects"
        if self._loose is None:
            self._loose = looseobjects.estimate_loose(objects_dir)
        self._loose += objects
        if self._loose >= LOOSE_LIMIT:
            self.maintain()

    def maintain(self) -> int:
        """Pack every loose object into one new pack and delete the loose copies; with more
        than ``PACKS_LIMIT`` packs, write one pack of every object and drop the others.

        Nothing is ever deleted before the pack holding it is complete (libgit2 writes the
        pack, then renames its index into place). Returns the number of objects packed.
        """
        objects_dir = Path(self._repo.path) / "objects"
        loose = looseobjects.loose_ids(objects_dir)
        old_packs = looseobjects.pack_names(objects_dir)
        whole = len(old_packs) >= PACKS_LIMIT
        self._loose = 0
        if not whole and len(loose) < LOOSE_LIMIT // 4:
            return 0  # someone else packed them (or the estimate was off)

        def add_loose(builder: Any) -> None:
            for hex_id in loose:
                builder.add(pygit2.Oid(hex=hex_id))
        try:
            packed = self._repo.pack(pack_delegate=None if whole else add_loose, n_threads=1)
        except (pygit2.GitError, OSError, ValueError) as exc:  # a full disk: try again later
            log.warning("packing %s failed: %s", self._repo.path, exc)
            return 0
        looseobjects.remove_loose(objects_dir, loose)
        if whole:
            current = set(looseobjects.pack_names(objects_dir))
            newest = [n for n in current if n not in old_packs]
            if newest:  # the old packs' objects are all in the new one
                looseobjects.remove_packs(objects_dir, old_packs)
        log.info("packed %d objects (%d were loose) in %s", packed, len(loose), self._repo.path)
        return int(packed)

    def _refuse_symlinks(self, head: str | None, paths: Iterable[str]) -> None:
        """Refuse to write at or below a symbolic link, in the branch or in the work tree.

        Git stores a symlink as a blob, so the tree we build never follows one; but a work
        tree checked out from it would, and the write would land outside the repository.
        """
        tree = self._commit_at(head).tree if head is not None else None
        workdir = None if self._repo.is_bare else Path(self._repo.workdir)
        seen: set[str] = set()
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                if prefix in seen:
                    continue
                seen.add(prefix)
                linked = False
                if tree is not None:
                    with contextlib.suppress(KeyError):
                        linked = tree[prefix].filemode == _SYMLINK
                if not linked and workdir is not None:
                    linked = (workdir / prefix).is_symlink()
                if linked:
                    raise errors.UnsafeWriteError(
                        f"{prefix} is a symbolic link in the config repo; refusing to write "
                        f"{path} through it (replace the link with a directory)")

    def _signed_commit(self, head: str | None, author: pygit2.Signature, message: str,
                       tree_id: Any, parents: list[pygit2.Oid]) -> pygit2.Oid:
        """Create a signed commit and move the branch to it by compare-and-swap."""
        assert self.signer is not None
        content: Any = self._repo.create_commit_string(author, author, message, tree_id,
                                                       list(parents))
        signature = self.signer.sign(str(content).encode("utf-8"))
        oid: pygit2.Oid = self._repo.create_commit_with_signature(str(content), signature)
        ref = self._repo.references.get(self._ref)
        if ref is None:
            if head is not None:
                raise errors.HeadMovedError(f"{self._ref} was deleted during the commit")
            self._repo.references.create(self._ref, oid)  # fails if someone created it
        elif str(ref.target) != head:
            raise errors.HeadMovedError(f"{self._ref} moved during the commit")
        else:
            # libgit2 updates the ref only if it still holds the value read above
            ref.set_target(oid, "commit (signed)")
        return oid

    def clear_stale_locks(self) -> list[str]:
        """Remove ref locks and temporary object files no live process owns; their paths.

        A ``kill -9`` while libgit2 holds ``refs/heads/main.lock`` leaves it behind and every
        later commit fails. Proof that nobody owns one: this repository has no other writer
        (``sole_writer``: a mirror under our process lock); or the lock holds a commit we
        made (we hold the process lock, so that writer is dead); or it is older than any
        git process holds a lock.
        """
        root = Path(self._repo.path)
        now = time.time()
        removed: list[str] = []
        candidates = [*root.glob("refs/**/*.lock"), root / "packed-refs.lock",
                      *root.glob("objects/tmp_object_git2_*"),
                      *root.glob("objects/??/tmp_obj_*")]
        for path in candidates:
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if self.sole_writer or age > STALE_SECONDS or self._ours(path):
                try:
                    path.unlink()
                except OSError as exc:
                    raise errors.RepoError(f"cannot remove stale {path}: {exc.strerror}") from exc
                removed.append(str(path))
                log.warning("removed %s, left by a process that no longer runs", path)
        return removed

    def _ours(self, lock: Path) -> bool:
        """Whether a ref lock names a commit made by this reconciler."""
        if not lock.name.endswith(".lock") or "objects" in lock.parts:
            return False
        try:
            text = lock.read_text(errors="replace").strip()
            commit = self._repo.get(text) if len(text) == 40 else None
        except (OSError, ValueError):
            return False
        return isinstance(commit, pygit2.Commit) and commit.author.email == self._author[1]

    def is_signed(self, commit_id: str) -> bool:
        """Whether the commit carries a signature header."""
        commit = self._commit_at(commit_id)
        return commit.gpg_signature[0] is not None

    def _patch_listings(self, new_head: str, changed: Mapping[str, tuple[bool, Any] | None]) -> None:
        """Carry the cached listings over to our own new commit instead of re-reading them."""
        for path in sorted(changed, key=len, reverse=True):
            entry = changed[path]
            if path == "":
                continue
            parent, _, name = path.rpartition("/")
            siblings = self._dirs.get(parent)
            if siblings is not None:
                if entry is None:
                    siblings.pop(name, None)
                else:
                    siblings[name] = entry
            if entry is None or not entry[0]:
                self._drop_listings(path)
        self._index_head = new_head

    def _drop_listings(self, directory: str) -> None:
        """Forget the cached listings of ``directory`` and below. A listing is cached only
        with its parent's, so following cached listings finds them all: this costs the
        dropped listings, never a scan of every cached one."""
        listing = self._dirs.pop(directory, None)
        for name, (is_tree, _) in (listing or {}).items():
            if is_tree:
                self._drop_listings(f"{directory}/{name}")

    def _write_streamed(self, head: str | None, streamed: Streamed,
                        touched: set[str]) -> dict[str, Any]:
        """Write each streamed directory's blobs and trees into the pack as it is produced;
        only its tree id is kept (an op inserting that subtree). ``touched`` collects the
        directories whose files changed."""
        out: dict[str, Any] = {}
        workdir = None if self._repo.is_bare else Path(self._repo.workdir)
        total, every = len(streamed.directories), max(1000, len(streamed.directories) // 10)
        for count, (directory, files) in enumerate(streamed, start=1):
            # the listings are those of ``head`` (commit_moves checked): no ref read per
            # directory (about 0.5 s of CPU in an import of 10,000)
            entry = self._entry(directory, checked=True)
            if entry is not None and not entry[0]:
                raise errors.UnsafeWriteError(f"{directory} is a file in the config repo; "
                                              "refusing to write a directory over it")
            if entry is not None or workdir is not None:  # an existing directory: its links
                self._refuse_symlinks(head, [f"{directory}/{name}" for name in files])
            if entry is None and self._pack is not None and files and \
                    not any("/" in name for name in files):
                # a new directory of files (every tenant of an import): its tree written
                # straight from the blob ids, without a tree builder per directory
                pack = self._pack
                sub_id = pygit2.Oid(raw=pack.add(b"tree", looseobjects.flat_tree(
                    (name, pack.add(b"blob", data)) for name, data in files.items())))
            else:
                sub_ops: dict[str, bytes | _Subtree | None] = dict(files)
                scratch: dict[str, tuple[bool, Any] | None] = {}
                sub_id = self._build(directory, entry[1] if entry is not None else None,
                                     sub_ops, scratch)
            touched.add(directory)
            touched.update(_join(directory, name).rpartition("/")[0] for name in files
                           if "/" in name)
            if sub_id is not None:
                out[directory] = _Subtree(sub_id)
            if count % every == 0 or count == total:
                progress.info("written %d/%d directories", count, total)
        return out

    def _build(self, at: str, base_id: Any, ops: Mapping[str, bytes | _Subtree | None],
               changed: dict[str, tuple[bool, Any] | None]) -> Any:
        """Write the tree at path ``at`` (currently ``base_id``) with ``ops`` applied.

        Returns the new tree id, or None when the tree ends up empty. Records every entry
        it changes in ``changed`` (path -> (is a tree, id) or None).
        """
        builder = self._builder(at, base_id)
        nested: dict[str, dict[str, bytes | _Subtree | None]] = {}
        for path, data in ops.items():
            head, sep, rest = path.partition("/")
            if sep:
                nested.setdefault(head, {})[rest] = data
            else:
                self._apply_file(builder, at, head, data, changed)
        for name, sub_ops in nested.items():
            entry = builder.get(name)
            if (entry is None or entry.filemode != _TREE) and \
                    all(data is None for data in sub_ops.values()):
                continue  # deleting below something that is not a directory: nothing to do
            sub_base = _entry_id(entry) if entry is not None and entry.filemode == _TREE else None
            sub_id = self._build(_join(at, name), sub_base, sub_ops, changed)
            if sub_id is None:
                if entry is not None:
                    builder.remove(name)
                    changed[_join(at, name)] = None
            else:
                _insert(builder, name, sub_id, _TREE)
                changed[_join(at, name)] = (True, sub_id)
        if len(builder) == 0:
            self._builders.pop(at, None)
            return None
        return self._write_tree(at, builder)

    def _write_tree(self, at: str, builder: Any) -> Any:
        """Write a built tree; keep the builder of a large one for the next commit."""
        if isinstance(builder, looseobjects.LargeTree) and self._pack is not None:
            tree_id = pygit2.Oid(raw=self._pack.add(b"tree", builder.serialize()))
        elif isinstance(builder, looseobjects.LargeTree):
            raw = looseobjects.write_loose(Path(self._repo.path) / "objects", b"tree",
                                           builder.serialize())
            tree_id = pygit2.Oid(raw=raw)
        else:
            tree_id = builder.write()
        if len(builder) >= KEEP_BUILDER_ENTRIES:
            if not isinstance(builder, looseobjects.LargeTree):
                written = self._repo.get(tree_id)
                if isinstance(written, pygit2.Tree):
                    builder = _large_tree(written)
            self._builders[at] = (tree_id, builder)
        elif at == "":
            self._builders[at] = (tree_id, builder)  # the root is on every commit's path
        return tree_id

    def _apply_file(self, builder: Any, at: str, name: str, data: bytes | _Subtree | None,
                    changed: dict[str, tuple[bool, Any] | None]) -> None:
        if isinstance(data, _Subtree):  # a streamed directory, already written
            _insert(builder, name, data.oid, _TREE)
            changed[_join(at, name)] = (True, data.oid)
            return
        if data is None:
            if builder.get(name) is not None:
                builder.remove(name)
                changed[_join(at, name)] = None
            return
        blob = pygit2.Oid(raw=self._pack.add(b"blob", data)) if self._pack is not None \
            else self._repo.create_blob(data)
        _insert(builder, name, blob, _BLOB)
        changed[_join(at, name)] = (False, blob)

    def _builder(self, at: str, base_id: Any) -> Any:
        """A tree builder holding the entries of ``base_id``.

        Builders of large trees (the flat tenants/ directory) are kept between commits:
        re-reading a 10,000-entry tree for every commit costs more than the commit.
        """
        kept = self._builders.pop(at, None)
        bulk = self._pack is not None  # every tree serialised here, written into the pack
        if kept is not None and kept[0] == base_id and \
                (not bulk or isinstance(kept[1], looseobjects.LargeTree)):
            return kept[1]
        if base_id is None:
            return looseobjects.LargeTree() if bulk else self._repo.TreeBuilder()
        tree = self._repo.get(base_id)
        if not isinstance(tree, pygit2.Tree):
            raise errors.RepoError(f"{at or '/'}: {base_id} is not a tree")
        if bulk or len(tree) >= KEEP_BUILDER_ENTRIES:
            return _large_tree(tree)
        return self._repo.TreeBuilder(tree)

    def uncommitted(self) -> list[str]:
        """Paths a human changed in the work tree or index and did not commit, untracked
        files included ([] for a bare repository)."""
        if self._repo.is_bare:
            return []
        ignored = pygit2.enums.FileStatus.IGNORED
        return sorted(path for path, flags in self._repo.status().items()
                      if not flags & ignored)

    def flush(self) -> None:
        """Bring a non-bare repository's work tree up to date when it was clean."""
        base, head = self._pass_base, self._branch_head()
        self._pass_base = head
        repo = self._repo
        if repo.is_bare or head is None or head == base:
            return
        if repo.head_is_unborn or repo.head.name != self._ref:
            return
        if base is not None:
            base_tree = repo[pygit2.Oid(hex=base)].tree
            dirty = repo.index.diff_to_tree(base_tree).stats.files_changed or repo.diff().stats.files_changed
            if dirty:
                log.warning("work tree of %s has local changes; not updating it", repo.workdir)
                return
        repo.checkout(self._ref, strategy=pygit2.enums.CheckoutStrategy.FORCE)


class _Subtree:
    """An op placing a tree already written (a streamed directory) at its path."""

    __slots__ = ("oid",)

    def __init__(self, oid: pygit2.Oid) -> None:
        self.oid = oid


def _large_tree(tree: pygit2.Tree) -> looseobjects.LargeTree:
    return looseobjects.LargeTree((str(e.name), e.id.raw, int(e.filemode)) for e in tree)


def _insert(builder: Any, name: str, oid: pygit2.Oid, mode: int) -> None:
    if isinstance(builder, looseobjects.LargeTree):
        builder.insert(name, oid.raw, int(mode))
    else:
        builder.insert(name, oid, mode)


def _entry_id(entry: Any) -> pygit2.Oid:
    if isinstance(entry, looseobjects.Entry):
        return pygit2.Oid(raw=entry.raw_id)
    oid: pygit2.Oid = entry.id
    return oid


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def commit_info(commit: pygit2.Commit) -> CommitInfo:
    """A pygit2 commit as plain data."""
    return CommitInfo(
        id=str(commit.id),
        author_name=commit.author.name,
        author_email=commit.author.email,
        time=commit.commit_time,
        offset_minutes=commit.commit_time_offset,
        message=commit.message,
        parents=tuple(str(p) for p in commit.parent_ids),
    )
