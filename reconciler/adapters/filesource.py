"""Local-mode source: Customer and Preview manifests read from files under a directory.

Reads files; judging their content is the core's job (``core.sources``). A file that
cannot be read for any reason (dangling symlink, a symlink leading outside the source,
permissions, I/O error, not a regular file, over the size limit) and a directory that
cannot be listed become refusals that mark the pass incomplete, so nothing is removed on
the strength of their objects' absence. The size is checked before anything is parsed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from reconciler.adapters import parsecache
from reconciler.core import errors, ignore, sources
from reconciler.core.models import ObjectKey

SUFFIXES = (".yaml", ".yml", ".json")

_Entry = tuple[Path, str | None]  # a manifest path, and why it cannot be read (or None)


def manifest_files(root: Path, *, ignoring: bool = True) -> Iterator[Path]:
    """Every readable-looking manifest file under ``root`` (or ``root`` itself), in a
    stable order, skipping hidden ones and (``ignoring``) those ``.reconcilerignore`` and
    the default ignore patterns name."""
    for path, problem in walk(root, ignoring=ignoring):
        if problem is None:
            yield path


def walk(root: Path, *, ignoring: bool = True) -> Iterator[_Entry]:
    """Every manifest under ``root`` with the reason it must not be read, if any."""
    if not root.is_dir():
        yield root, None if root.exists() else "no such file or directory"
        return
    base = root.resolve()
    rules = ignore.parse_rules(_ignore_text(root)) if ignoring else \
        ignore.parse_rules(defaults=())
    problems: list[_Entry] = []

    def unlistable(exc: OSError) -> None:
        problems.append((Path(exc.filename or root),
                         f"cannot list directory: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        here = Path(dirpath)
        relative = here.relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        kept = []
        for name in sorted(dirnames):
            if name.startswith(".") or rules.ignored(prefix + name, is_dir=True):
                continue
            path = here / name
            if path.is_symlink():  # never followed; one leading outside is reported
                problem = _symlink_problem(path, base)
                if problem is not None:
                    problems.append((path, problem))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith(".") or not name.endswith(SUFFIXES) \
                    or rules.ignored(prefix + name):
                continue
            path = here / name
            yield path, _symlink_problem(path, base) if path.is_symlink() else None
    yield from sorted(problems)


def _ignore_text(root: Path) -> str:
    try:
        return (root / ignore.FILE_NAME).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _symlink_problem(path: Path, base: Path) -> str | None:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "dangling symlink: its target does not exist"
    if not target.is_relative_to(base):
        return f"symlink to {target}, outside the source directory: not read"
    return None


def read_file(path: Path, limits: sources.Limits,
              cache: parsecache.ParseCache | None = None) -> sources.Parsed:
    """Parse one file, or the refusal saying why it cannot be read (documents seen before
    come from ``cache``)."""
    return _read_file(path, limits, cache)[0]


def _read_file(path: Path, limits: sources.Limits, cache: parsecache.ParseCache | None
               ) -> tuple[sources.Parsed, str | None]:
    """The file's result, and its cache key (None when it was not parsed)."""
    origin = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the pass for ever
            return sources.unreadable(origin, "not a regular file"), None
        if info.st_size > limits.max_bytes:
            return sources.unreadable(
                origin, f"{info.st_size} bytes, over the limit of {limits.max_bytes} "
                        "(setting max_source_file_bytes); not read"), None
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)  # it may have grown since
    except OSError as exc:
        return sources.unreadable(origin, f"cannot read: {exc.strerror or exc}"), None
    if cache is None or len(data) > limits.max_bytes:
        return sources.parse_text(origin, data, limits), None
    key = parsecache.key_of(data, limits)
    loaded = cache.get(key)
    if loaded is None:
        loaded = sources.load_text(data, limits)
        cache.put(key, loaded, len(data))
    return sources.judge_loaded(origin, loaded), key


def read_sources(roots: list[Path], limits: sources.Limits = sources.DEFAULT_LIMITS,
                 cache: parsecache.ParseCache | None = None) -> sources.Parsed:
    """Parse every manifest under ``roots``; unreadable paths become refusals. Files whose
    bytes ``cache`` knows are not parsed again; it keeps what this read learnt.

    A root that is missing or cannot be read is a usage error: a pass over it would take
    every object for deleted.
    """
    results: list[sources.Parsed] = []
    keys: list[str] = []
    for root in roots:
        check_root(root)
        for path, problem in walk(root):
            if problem is not None:
                results.append(sources.unreadable(str(path), problem))
                continue
            result, key = _read_file(path, limits, cache)
            results.append(result)
            if key is not None:
                keys.append(key)
    if cache is not None:
        cache.save(keys)
    return sources.combine(results)


def check_root(root: Path) -> None:
    """Raise a usage error when ``root`` is missing or cannot be read."""
    if not root.exists():
        raise errors.UserInputError(f"--source {root}: no such file or directory")
    if not os.access(root, os.R_OK | (os.X_OK if root.is_dir() else 0)):
        raise errors.UserInputError(f"--source {root}: permission denied")


def snapshot(roots: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """A cheap fingerprint (path, size, mtime) of every manifest: changes when a file does."""
    out: list[tuple[str, int, int]] = []
    for root in roots:
        for path, problem in walk(root):
            if problem is not None:
                out.append((f"{path}: {problem}", 0, 0))
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


Identity = tuple[int, int, int]  # (inode, size, mtime_ns): a file is re-read when it changes


class SourceCache:
    """The manifests under ``roots``, each file parsed once and re-read only when its
    identity (inode, size, mtime_ns) changed: watch mode's cost per edit is the edit's.

    ``rescan`` walks every root (the fallback without notifications, and the periodic
    resync); ``update`` looks only at the known files a notification named (a new file, a
    symlink or a changed ``.reconcilerignore`` goes through a rescan, so the walk's rules
    on ignores and symlinks always apply).
    """

    def __init__(self, roots: list[Path], limits: sources.Limits = sources.DEFAULT_LIMITS,
                 parse_cache: parsecache.ParseCache | None = None) -> None:
        self._roots = roots
        self._limits = limits
        #: read by the first rescan (the start); after it, files re-read are only added
        #: to it, so that a restart finds them (see ``parsecache.ParseCache``)
        self._parse_cache = parse_cache
        self._files: dict[str, tuple[Identity | None, sources.Parsed]] = {}
        self._problems: dict[str, sources.Parsed] = {}
        self._before: set[ObjectKey] = set()  # keys of files replaced since ``affected``
        self._cache_keys: dict[str, str] = {}  # path -> the parse cache's key of its bytes

    def affected(self, paths: set[str]) -> set[ObjectKey]:
        """Objects the changed ``paths`` defined before or define now (and forget the
        former)."""
        keys, self._before = self._before | self.objects_of(paths), set()
        return keys

    def rescan(self) -> set[str]:
        """Walk every root; re-read what changed. Returns the paths that changed."""
        problems: dict[str, sources.Parsed] = {}
        seen: set[str] = set()
        changed: set[str] = set()
        for root in self._roots:
            check_root(root)
            for path, problem in walk(root):
                if problem is not None:
                    problems[str(path)] = sources.unreadable(str(path), problem)
                    continue
                seen.add(str(path))
                if self._refresh(path):
                    changed.add(str(path))
        for gone in set(self._files) - seen:
            self._forget(gone)
            changed.add(gone)
        changed |= set(problems) ^ set(self._problems)
        self._problems = problems
        self._save_parse_cache()
        return changed

    def update(self, paths: set[str]) -> set[str]:
        """Look at ``paths`` only (from notifications). Returns the paths that changed."""
        changed: set[str] = set()
        for text in paths:
            path = Path(text)
            if path.name == ignore.FILE_NAME:
                return changed | self.rescan()
            if not self._is_manifest(path):
                continue
            if text not in self._files or path.is_symlink():
                return changed | self.rescan()
            if path.exists():
                if self._refresh(path):
                    changed.add(text)
            elif self._forget(text):
                changed.add(text)
        self._save_parse_cache()
        return changed

    def objects_of(self, paths: set[str]) -> set[ObjectKey]:
        """The keys of every object the (cached) files at ``paths`` define or refuse."""
        keys: set[ObjectKey] = set()
        for path in paths:
            cached = self._files.get(path)
            if cached is not None:
                keys |= _keys_of(cached[1])
        return keys

    def parsed(self) -> sources.Parsed:
        """Everything, combined as ``read_sources`` would return it."""
        return sources.combine([*(p for _, p in self._files.values()),
                                *self._problems.values()])

    def _is_manifest(self, path: Path) -> bool:
        if not path.name.endswith(SUFFIXES):
            return False
        for root in self._roots:
            if path == root:
                return True
            try:
                relative = path.relative_to(root)
            except ValueError:
                continue
            return not any(part.startswith(".") for part in relative.parts)
        return False

    def _refresh(self, path: Path) -> bool:
        """Re-read ``path`` when its identity changed; True when it did."""
        key = str(path)
        try:
            st = path.stat()
            identity: Identity | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            identity = None  # read_file says why; never cached as known
        cached = self._files.get(key)
        if cached is not None and identity is not None and cached[0] == identity:
            return False
        self._forget(key)
        parsed, cache_key = _read_file(path, self._limits, self._parse_cache)
        self._files[key] = (identity, parsed)
        if cache_key is not None:
            self._cache_keys[key] = cache_key
        return True

    def _save_parse_cache(self) -> None:
        if self._parse_cache is not None:
            self._parse_cache.save(self._cache_keys.values())

    def _forget(self, path: str) -> bool:
        self._cache_keys.pop(path, None)
        cached = self._files.pop(path, None)
        if cached is None:
            return False
        self._before |= _keys_of(cached[1])
        return True


def _keys_of(parsed: sources.Parsed) -> set[ObjectKey]:
    """The keys ``parsed`` defines or refuses."""
    return {o.key for o in parsed.objects} | {r.key for r in parsed.refusals if r.key is not None}
