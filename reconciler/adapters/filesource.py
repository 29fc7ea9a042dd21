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

from reconciler.core import errors, ignore, sources

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


def read_file(path: Path, limits: sources.Limits) -> sources.Parsed:
    """Parse one file, or the refusal saying why it cannot be read."""
    origin = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the pass for ever
            return sources.unreadable(origin, "not a regular file")
        if info.st_size > limits.max_bytes:
            return sources.unreadable(
                origin, f"{info.st_size} bytes, over the limit of {limits.max_bytes} "
                        "(setting max_source_file_bytes); not read")
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)  # it may have grown since
    except OSError as exc:
        return sources.unreadable(origin, f"cannot read: {exc.strerror or exc}")
    return sources.parse_text(origin, data, limits)


def read_sources(roots: list[Path], limits: sources.Limits = sources.DEFAULT_LIMITS
                 ) -> sources.Parsed:
    """Parse every manifest under ``roots``; unreadable paths become refusals.

    A root that is missing or cannot be read is a usage error: a pass over it would take
    every object for deleted.
    """
    results: list[sources.Parsed] = []
    for root in roots:
        check_root(root)
        for path, problem in walk(root):
            if problem is not None:
                results.append(sources.unreadable(str(path), problem))
            else:
                results.append(read_file(path, limits))
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
