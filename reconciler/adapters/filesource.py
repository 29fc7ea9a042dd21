"""Local-mode source: Customer and Preview manifests read from files under a directory.

Reads files; judging their content is the core's job (``core.sources``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from reconciler.core import sources

SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(root: Path) -> Iterator[Path]:
    """Every manifest file under ``root`` (or ``root`` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in SUFFIXES and not any(
                part.startswith(".") for part in path.relative_to(root).parts):
            yield path


def read_sources(roots: list[Path]) -> sources.Parsed:
    """Parse every manifest under ``roots``; unreadable paths become refusals."""
    results: list[sources.Parsed] = []
    for root in roots:
        if not root.exists():
            results.append(sources.Parsed((), (sources.Refusal(str(root), "no such file or directory"),),
                                          incomplete=True))
            continue
        for path in manifest_files(root):
            try:
                text = path.read_bytes()
            except OSError as exc:
                results.append(sources.Parsed((), (sources.Refusal(str(path), exc.strerror or str(exc)),),
                                              incomplete=True))
                continue
            results.append(sources.parse_text(str(path), text))
    return sources.combine(results)


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
