"""Local-mode source: Customer and Preview manifests read from files under a directory.

Reads files; judging their content is the core's job (``core.sources``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from reconciler.core import errors, sources
from reconciler.core.models import ObjectKey

SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(root: Path, problems: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """Every manifest file under ``root`` (or ``root`` itself), in a stable order.

    ``problems`` collects what could not be listed or followed (an unreadable directory,
    a dangling symlink): their objects are unknown, which must hold back removals.
    """
    if root.is_file():
        yield root
        return

    def unreadable(exc: OSError) -> None:
        if problems is not None:
            problems.append((Path(exc.filename or root), exc.strerror or str(exc)))
    found: list[Path] = []
    for top, dirs, files in os.walk(root, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(top, name)
            if name.startswith(".") or path.suffix not in SUFFIXES:
                continue
            if path.is_file():
                found.append(path)
            elif path.is_symlink() and problems is not None:
                problems.append((path, "dangling symlink"))
    yield from sorted(found)


def read_sources(roots: list[Path]) -> sources.Parsed:
    """Parse every manifest under ``roots``; unreadable paths become refusals.

    A root that is missing or cannot be listed is a usage error: a pass over it would
    take every object for deleted.
    """
    results: list[sources.Parsed] = []
    for root in roots:
        check_root(root)
        problems: list[tuple[Path, str]] = []
        for path in manifest_files(root, problems):
            try:
                text = path.read_bytes()
            except OSError as exc:
                problems.append((path, exc.strerror or str(exc)))
                continue
            results.append(sources.parse_text(str(path), text))
        results += [sources.Parsed((), (sources.Refusal(
            str(path), f"cannot be read ({why}): nothing is removed in this pass"),),
            incomplete=True) for path, why in problems]
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
        if not root.exists():
            continue
        for path in manifest_files(root):
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

    ``rescan`` stats every file (the fallback without notifications, and the periodic
    resync); ``update`` looks only at the paths a notification named.
    """

    def __init__(self, roots: list[Path]) -> None:
        self._roots = roots
        self._files: dict[str, tuple[Identity, sources.Parsed]] = {}
        self._problems: list[tuple[Path, str]] = []
        self._before: set[ObjectKey] = set()  # keys of files replaced since ``affected``

    def affected(self, paths: set[str]) -> set[ObjectKey]:
        """Objects the changed ``paths`` defined before or define now (and forget the
        former)."""
        keys, self._before = self._before | self.objects_of(paths), set()
        return keys

    def rescan(self) -> set[str]:
        """Walk every root; re-read what changed. Returns the paths that changed."""
        problems: list[tuple[Path, str]] = []
        seen: set[str] = set()
        changed: set[str] = set()
        for root in self._roots:
            check_root(root)
            for path in manifest_files(root, problems):
                seen.add(str(path))
                if self._refresh(path, problems):
                    changed.add(str(path))
        for gone in set(self._files) - seen:
            self._forget(gone)
            changed.add(gone)
        if problems != self._problems:
            changed.update(str(p) for p, _ in [*problems, *self._problems])
        self._problems = problems
        return changed

    def update(self, paths: set[str]) -> set[str]:
        """Look at ``paths`` only (from notifications). Returns the paths that changed."""
        changed: set[str] = set()
        for text in paths:
            path = Path(text)
            if not self._is_manifest(path):
                continue
            if path.is_file():
                problems: list[tuple[Path, str]] = []
                if self._refresh(path, problems):
                    changed.add(text)
                self._problems = [p for p in self._problems if p[0] != path] + problems
            elif self._forget(text):
                changed.add(text)
        return changed

    def objects_of(self, paths: set[str]) -> set[ObjectKey]:
        """The keys of every object the (cached) files at ``paths`` define or refuse."""
        keys: set[ObjectKey] = set()
        for path in paths:
            cached = self._files.get(path)
            if cached is not None:
                keys |= self.objects_of_parsed(cached[1])
        return keys

    def parsed(self) -> sources.Parsed:
        """Everything, combined as ``read_sources`` would return it."""
        results = [parsed for _, parsed in self._files.values()]
        results += [sources.Parsed((), (sources.Refusal(
            str(path), f"cannot be read ({why}): nothing is removed in this pass"),),
            incomplete=True) for path, why in self._problems]
        return sources.combine(results)

    def _is_manifest(self, path: Path) -> bool:
        if path.suffix not in SUFFIXES:
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

    def _refresh(self, path: Path, problems: list[tuple[Path, str]]) -> bool:
        """Re-read ``path`` when its identity changed; True when it did."""
        key = str(path)
        try:
            st = path.stat()
            identity = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._files.get(key)
            if cached is not None and cached[0] == identity:
                return False
            text = path.read_bytes()
        except OSError as exc:
            problems.append((path, exc.strerror or str(exc)))
            return self._forget(key)
        self._forget(key)
        self._files[key] = (identity, sources.parse_text(key, text))
        return True

    def _forget(self, path: str) -> bool:
        cached = self._files.pop(path, None)
        if cached is None:
            return False
        self._before |= self.objects_of_parsed(cached[1])
        return True

    @staticmethod
    def objects_of_parsed(parsed: sources.Parsed) -> set[ObjectKey]:
        """The keys ``parsed`` defines or refuses."""
        return {o.key for o in parsed.objects} | {
            r.key for r in parsed.refusals if r.key is not None}
