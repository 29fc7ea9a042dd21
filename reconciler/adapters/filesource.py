"""Local-mode source: Customer and Preview manifests read from files under a directory.

Reads files; judging their content is the core's job (``core.sources``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from reconciler.core import errors, sources

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
