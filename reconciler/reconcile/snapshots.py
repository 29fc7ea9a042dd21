"""Reading a snapshot (all the I/O a decision needs, in bulk) and executing a plan.

``SnapshotReader`` reads the config repo for a set of objects; what it learnt about a
directory is kept by (tree id, our last commit), both content-addressed, so a pass over an
unchanged fleet reads no file and walks no history again. ``execute`` writes exactly the
commits of a plan, in order, and nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from reconciler.core import errors
from reconciler.core import plan as plan_core
from reconciler.core.decide import Plan
from reconciler.core.models import DIRECTORIES, ObjectKey, Resource, key_of
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render import common
from reconciler.core.snapshot import DirectoryState, Snapshot
from reconciler.core.sources import Parsed
from reconciler.ports.configrepo import ConfigRepo
from reconciler.ports.treecache import TreeCache, TreeSummary
from reconciler.reconcile.ownership import Ownership

log = logging.getLogger(__name__)
#: source records kept by blob id beyond those the directory states hold
RECORDS_KEPT = 4096
#: a full pass reads the tree cache when at least this many directories are not in memory
WARM_MIN = 256


class HeadContents(Mapping[str, bytes]):
    """Files at the branch head, read when looked up (for line counts of changed files)."""

    def __init__(self, repo: ConfigRepo) -> None:
        self._repo = repo

    def __getitem__(self, path: str) -> bytes:
        data = self._repo.read_file(path)
        if data is None:
            raise KeyError(path)
        return data

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class SpecOnDemand(Mapping[str, Any]):
    """A source record's spec, parsed from the record's blob whenever it is read.

    A pass over an unchanged fleet compares input hashes only; keeping every parsed spec
    (~2.3 KB each) would cost 230 MB at 100,000 tenants. The blob is content-addressed,
    so every read gives the same value."""

    __slots__ = ("_blob", "_read")

    def __init__(self, read: Callable[[str], bytes | None], blob: str) -> None:
        # the reader is shared by every record and the id kept raw (20 bytes): ~110 bytes
        # each, where a partial over a bound method and the hex id cost ~340
        self._read = read
        self._blob: str | bytes = blob
        if len(blob) == 40:
            with contextlib.suppress(ValueError):  # an id always is hex; kept as given if not
                self._blob = bytes.fromhex(blob)

    def _data(self) -> dict[str, Any]:
        blob = self._blob
        raw = self._read(blob if isinstance(blob, str) else blob.hex())
        try:
            spec = json.loads(raw)["spec"] if raw is not None else None
        except (ValueError, KeyError, TypeError, RecursionError):
            spec = None
        return spec if isinstance(spec, dict) else {}

    def __getitem__(self, name: str) -> Any:
        return self._data()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __eq__(self, other: object) -> bool:
        return self._data() == (dict(other) if isinstance(other, Mapping) else other)

    __hash__ = None  # type: ignore[assignment]  # a mapping

    def items(self) -> Any:
        """Every entry, from one parse."""
        return self._data().items()


class CompactFiles(Mapping[str, str]):
    """A directory's files (name -> blob id) in ~200 bytes instead of a ~1.2 KB dict: the
    names are shared by every directory with the same files, the ids kept raw."""

    __slots__ = ("_ids", "_names")

    def __init__(self, files: Mapping[str, str]) -> None:
        self._names = _shared_names(tuple(files))
        self._ids = b"".join(bytes.fromhex(blob) for blob in files.values())

    def __getitem__(self, name: str) -> str:
        try:
            index = self._names.index(name)
        except ValueError:
            raise KeyError(name) from None
        return self._ids[index * 20:index * 20 + 20].hex()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@functools.lru_cache(maxsize=1024)
def _shared_names(names: tuple[str, ...]) -> tuple[str, ...]:
    return names


class SnapshotReader:
    """Reads snapshots of one config repo, remembering what cannot have changed."""

    def __init__(self, *, repo: ConfigRepo, ownership: Ownership,
                 trees: TreeCache | None = None) -> None:
        self._repo = repo
        self.ownership = ownership
        self._trees = trees  # what trees hold, kept across processes
        self._learning = False  # a full pass adds the trees it reads from Git to _trees
        # valid while the directory's tree id and our last own commit are those it names
        self._states: dict[ObjectKey, DirectoryState] = {}
        # blob id -> record, bounded: a directory's state keeps its record, so this only
        # saves a parse when a tree changed around an unchanged record (and for the pool)
        self._records: dict[str, common.SourceRecord | None] = {}
        self._read_blob = repo.read_blob  # one bound method for every SpecOnDemand

    def reset(self) -> None:
        """Forget everything (the branch was reset underneath us)."""
        self._states.clear()
        self.ownership.reset()

    def full(self, parsed: Parsed) -> Snapshot:
        """Every resource of ``parsed`` and every directory the repo holds, all read at
        one head."""
        with self._repo.pinned():
            keys = dict.fromkeys([o.key for o in parsed.objects])
            for kind, top in DIRECTORIES.items():
                keys.update(dict.fromkeys(key_of(kind, n)
                                          for n in self._repo.list_directories(top)))
            self._learning = self._warm(keys)
            try:
                for key in keys:
                    self.directory(key)
            finally:
                self._learning = False
            for gone in [k for k in self._states if k not in keys]:
                del self._states[gone]  # neither a resource nor a directory any more
            del keys
            if self._trees is not None:  # also bounds what our commits appended
                self._trees.close({s.tree_id for s in self._states.values()
                                   if s.tree_id is not None})
            # the remembered states are exactly this snapshot's: handed over read-only, not
            # copied (a second map of 100,000 entries, 5 MB); only ``remember`` changes
            # them, once the pass has decided
            return self._snapshot(parsed.objects, MappingProxyType(self._states), parsed,
                                  full=True)

    def _warm(self, keys: Iterable[ObjectKey]) -> bool:
        """Fill the directory cache from the tree cache (a restart: no tree and no record
        read from Git for a tree it knows); True when the pass should teach it the others."""
        if self._trees is None:
            return False
        # tree id -> its directory (a fleet's worth: one key each, not a list; two
        # directories with the same tree, which only a human makes, are read from Git)
        unknown: dict[str, ObjectKey] = {}
        for key in keys:
            tree = self._repo.tree_id(key.directory)
            cached = self._states.get(key)
            if tree is not None and (cached is None or cached.tree_id != tree):
                unknown.setdefault(tree, key)
        if len(unknown) < WARM_MIN:  # a few directories: Git is as quick
            return False
        for tree, summary in self._trees.load(unknown):
            taken = unknown.pop(tree, None)  # a second line of the tree is skipped
            if taken is None:
                continue
            files = _compact(summary.files)
            record = summary.record
            if record is not None and summary.has_spec:
                record = _with_spec_on_demand(record, self._read_blob,
                                              files[common.SOURCE_FILE])
            self._state(taken, tree, files, record, self.ownership.last_own(taken))
        return True

    def scoped(self, objects: Sequence[Resource], keys: Sequence[ObjectKey] = ()) -> Snapshot:
        """Only ``objects`` (and directories ``keys``), plus what the pool needs, read at
        one head."""
        wanted = dict.fromkeys([*(o.key for o in objects), *keys])
        with self._repo.pinned():
            return self._snapshot(objects, {k: self.directory(k) for k in wanted},
                                  Parsed(objects, ()), full=False)

    def _snapshot(self, objects: Sequence[Resource],
                  directories: Mapping[ObjectKey, DirectoryState], parsed: Parsed, *,
                  full: bool) -> Snapshot:
        pool_files = self._repo.list_files(common.POOL_DIRECTORY)
        record = self._record(pool_files.get(common.SOURCE_FILE))
        if record is not None:
            databases = frozenset(record.databases)
        else:  # no pool record (deleted by hand, older release): the tenants say
            databases = frozenset(
                name for name in self._repo.list_directories(DIRECTORIES["Customer"])
                if _has_database(self.directory(key_of("Customer", name))))
        return Snapshot(objects=tuple(objects), refusals=tuple(parsed.refusals),
                        incomplete=parsed.incomplete, directories=directories,
                        pool_files=pool_files, pool_databases=databases,
                        contents=HeadContents(self._repo), full=full, origins=parsed.origins)

    def directory(self, key: ObjectKey) -> DirectoryState:
        """What the repo holds for ``key`` (remembered per tree id and last own commit)."""
        tree = self._repo.tree_id(key.directory)
        last_own = self.ownership.last_own(key)
        cached = self._states.get(key)
        if cached is not None and cached.tree_id == tree and cached.last_own == last_own:
            return cached
        listed = self._repo.list_files(key.directory) if tree is not None else {}
        files = _compact(listed)
        record = self._record(files.get(common.SOURCE_FILE))
        if self._learning and tree is not None and self._trees is not None \
                and (record is not None or common.SOURCE_FILE not in files):
            # (a record blob that could not be read or parsed is not taught: read again)
            self._trees.add(tree, TreeSummary(files, _without_spec(record),
                                              record is not None and record.spec is not None))
        return self._state(key, tree, files, record, last_own)

    def _state(self, key: ObjectKey, tree: str | None, files: Mapping[str, str],
               record: common.SourceRecord | None, last_own: str | None) -> DirectoryState:
        """The directory state of ``key`` holding ``files`` and ``record`` (remembered)."""
        human, at_own = self.ownership.standing(key, tree)
        if last_own is None:
            own_record = None
        elif human is None and at_own:
            own_record = record
        else:
            own_record = self.ownership.record_at_own(key)
        state = DirectoryState(key, tree, files, record, own_record, last_own, human,
                               self.ownership.first_own_time(key))
        self._states[key] = state
        return state

    def remember(self, snapshot: Snapshot, plan: Plan, outcomes: Sequence[Outcome]) -> None:
        """Learn the directories a plan's commits left behind without reading them back
        (what was written is known), so the next pass finds them in the cache."""
        made = {o.key: o.commit for o in outcomes
                if o.key is not None and o.commit and o.result == Result.COMMITTED}
        for planned in plan.commits:
            by_directory: dict[str, list[tuple[str, bytes | None]]] = {}
            for path in planned.changes.deletes:
                directory, _, name = path.rpartition("/")
                by_directory.setdefault(directory, []).append((name, None))
            for path, data in planned.changes.writes.items():
                directory, _, name = path.rpartition("/")
                by_directory.setdefault(directory, []).append((name, data))
            for key in planned.keys:
                commit = made.get(key)
                if key.kind not in DIRECTORIES or commit is None:
                    continue
                files = dict(snapshot.state(key).files)
                raw: bytes | None = None
                for name, written in by_directory.get(key.directory, []):
                    if written is None:
                        files.pop(name, None)
                        continue
                    files[name] = plan_core.git_blob_id(written)
                    if name == common.SOURCE_FILE:
                        raw = written
                tree = self._repo.tree_id(key.directory)
                if not files or tree is None or self.ownership.last_own(key) != commit:
                    continue
                record = common.parse_source_record(raw) if raw is not None \
                    else snapshot.state(key).record
                self._states[key] = DirectoryState(
                    key, tree, files, record, record, commit, None,
                    self.ownership.first_own_time(key))
                # a restart finds it known too; kept only when ``files`` are exactly that
                # tree (another writer may have moved the branch since our commit)
                if self._trees is not None and record is not None \
                        and _tree_id_of(files) == tree:
                    self._trees.add(tree, TreeSummary(files, _without_spec(record),
                                                      record.spec is not None))
        if self._trees is not None:
            self._trees.flush()

    def _record(self, blob: str | None) -> common.SourceRecord | None:
        if blob is None:
            return None
        if blob not in self._records:
            raw = self._repo.read_blob(blob)
            record = common.parse_source_record(raw) if raw is not None else None
            if record is not None and record.spec is not None:  # read again when needed
                record = _with_spec_on_demand(record, self._read_blob, blob)
            if len(self._records) >= RECORDS_KEPT:
                self._records.clear()
            self._records[blob] = record
            return record
        return self._records[blob]


def execute(plan: Plan, repo: ConfigRepo, ownership: Ownership | None = None) -> list[Outcome]:
    """Make the plan's commits, in order; the plan's verdicts with commit ids filled in.

    A commit that fails (a concurrent writer, a Git error) stops the pass: later commits
    were planned on top of it, so they are reported as not written. A write refused as
    unsafe changed nothing: only later commits sharing its files are held back.
    """
    made: dict[ObjectKey, str] = {}
    failed: dict[ObjectKey, Outcome] = {}
    refused_paths: set[str] = set()
    for index, planned in enumerate(plan.commits):
        if refused_paths & set(planned.changes.paths):
            for key in planned.keys:  # planned on top of a refused write to the same files
                failed[key] = Outcome(key, Result.FAILED, Reason.GIT_ERROR,
                                      f"{key}: not written: it shares files with a refused "
                                      "write of this pass")
            refused_paths |= set(planned.changes.paths)
            continue
        try:
            commit = repo.commit(planned.changes.confined_to(planned.confined_to),
                                 planned.message)
        except errors.UnsafeWriteError as exc:
            # refused before anything was written (a symlink a human committed, say): only
            # commits touching the same files depend on it; the others go ahead
            for key in planned.keys:
                failed[key] = _failure(key, exc)
            refused_paths |= set(planned.changes.paths)
            continue
        except errors.ReconcilerError as exc:
            for key in planned.keys:
                failed[key] = _failure(key, exc)
            for later in plan.commits[index + 1:]:
                for key in later.keys:
                    failed[key] = Outcome(key, Result.FAILED, Reason.GIT_ERROR,
                                          f"{key}: not written: an earlier commit of this "
                                          f"pass failed ({exc})")
            break
        log.info("committed %s %s", commit[:12], planned.subject,
                 extra={"object": str(planned.keys[0])} if len(planned.keys) == 1 else None)
        for key in planned.keys:
            made[key] = commit
            if ownership is not None and key.kind in DIRECTORIES:
                ownership.recorded(key, commit, repo.tree_id(key.directory))
    return _outcomes(plan, made, failed)


def _outcomes(plan: Plan, made: dict[ObjectKey, str],
              failed: dict[ObjectKey, Outcome]) -> list[Outcome]:
    """The plan's verdicts with the commits made filled in and the failures in place."""
    outcomes: list[Outcome] = []
    for verdict in plan.verdicts:
        done = verdict.key
        if verdict.result == Result.COMMITTED and done is not None:
            if done in failed:
                outcomes.append(failed[done])
                continue
            outcomes.append(Outcome(done, verdict.result, verdict.reason, verdict.message,
                                    made.get(done)))
        else:
            outcomes.append(verdict)
    return outcomes


def _all_sha1(files: Mapping[str, str]) -> bool:
    return all(len(blob) == 40 for blob in files.values())


def _tree_id_of(files: Mapping[str, str]) -> str:
    """The id Git gives a tree of exactly ``files``, regular files all (what we write)."""
    entries = sorted((name.encode("utf-8", "surrogateescape"), blob)
                     for name, blob in files.items())
    body = b"".join(b"100644 " + name + b"\0" + bytes.fromhex(blob) for name, blob in entries)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


def _compact(files: Mapping[str, str]) -> Mapping[str, str]:
    return CompactFiles(files) if _all_sha1(files) else files


def _with_spec_on_demand(record: common.SourceRecord, read: Callable[[str], bytes | None],
                         blob: str) -> common.SourceRecord:
    # built directly: dataclasses.replace inspects the fields on every call
    return common.SourceRecord(
        kind=record.kind, name=record.name, input_hash=record.input_hash, uid=record.uid,
        generation=record.generation, spec=SpecOnDemand(read, blob),
        databases=record.databases)


def _without_spec(record: common.SourceRecord | None) -> common.SourceRecord | None:
    if record is None or record.spec is None:
        return record
    return common.SourceRecord(
        kind=record.kind, name=record.name, input_hash=record.input_hash, uid=record.uid,
        generation=record.generation, spec=None, databases=record.databases)


def _has_database(directory: DirectoryState) -> bool:
    record = directory.record
    if record is None or record.kind != "Customer" or not record.spec:
        return False
    features = record.spec.get("features") or {}
    return bool((features.get("database") or {}).get("enabled"))


def _failure(key: ObjectKey, exc: errors.ReconcilerError) -> Outcome:
    if isinstance(exc, errors.UnsafeWriteError):
        return Outcome(key, Result.REFUSED, Reason.UNSAFE_PATH, f"{key}: {exc}")
    return Outcome(key, Result.FAILED, Reason.GIT_ERROR, f"{key}: {exc}")
