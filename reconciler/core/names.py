"""Names and paths: what may name an object, and confinement of paths written to Git.

Pure. Every path the reconciler writes is built here and checked here, so a hostile name
can never make a write escape its object's directory.
"""

from __future__ import annotations

import posixpath
import re

from reconciler.core import errors

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: a Kubernetes object UID: the API server hands out RFC 4122 UUIDs
UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class UnsafePathError(errors.UnsafeWriteError, ValueError):
    """A path would leave the directory it is confined to (a ValueError too, as before)."""


def is_uid(value: str) -> bool:
    """Return whether ``value`` is a UID as the API server writes them (a UUID)."""
    return bool(UID.fullmatch(value))


def is_dns1123_label(value: str) -> bool:
    """Return whether ``value`` is a valid Kubernetes DNS-1123 label."""
    return len(value) <= DNS1123_LABEL_MAX and bool(DNS1123_LABEL.fullmatch(value))


def is_dns1123_subdomain(value: str) -> bool:
    """Return whether ``value`` is a valid DNS-1123 subdomain (e.g. a host name)."""
    return len(value) <= 253 and bool(DNS1123_SUBDOMAIN.fullmatch(value))


def confined_path(prefix: str, relative: str) -> str:
    """Join ``relative`` onto ``prefix``, refusing anything that escapes ``prefix``.

    Both must be relative POSIX paths without ``..``, empty or absolute parts.
    """
    for part_of in (prefix, relative):
        check_relative_path(part_of)
    joined = posixpath.join(prefix, relative)
    if not is_within(joined, prefix):  # pragma: no cover - guarded by the checks above
        raise UnsafePathError(f"path {relative!r} escapes {prefix!r}")
    return joined


def check_relative_path(path: str) -> None:
    """Raise UnsafePathError unless ``path`` is a clean, relative, non-hidden-escape path."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise UnsafePathError(f"unsafe path {path!r}")
    for part in path.split("/"):
        if part in ("", ".", "..") or part.lower() == ".git":
            raise UnsafePathError(f"unsafe path {path!r}")


def is_within(path: str, prefix: str) -> bool:
    """Return whether the normalized ``path`` lies inside directory ``prefix``."""
    norm = posixpath.normpath(path)
    return norm.startswith(prefix.rstrip("/") + "/")


def branch_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Git branch (``git check-ref-format --branch`` rules), or None."""
    bad = ("..", "@{", "//", "\\")
    if not name or name == "@" or name.startswith(("-", "/", ".")) or \
            name.endswith(("/", ".", ".lock")) or any(b in name for b in bad) or \
            any(ord(c) < 0x20 or c in " ~^:?*[\x7f" for c in name) or \
            any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return f"{name!r} is not a valid Git branch name"
    return None
