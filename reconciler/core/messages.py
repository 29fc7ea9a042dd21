"""Commit messages: a subject a reviewer reads, a body listing files, and parseable trailers.

Pure. Trailers follow git's format (``Key: value`` lines in the last paragraph), so
``git interpret-trailers --parse`` and ``git log --format=%(trailers)`` read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.models import ObjectKey
from reconciler.core.text import one_line

SUBJECT_MAX = 100
TRAILER_OBJECT = "Reconciler-Object"
TRAILER_GENERATION = "Reconciler-Generation"
TRAILER_UID = "Reconciler-UID"
TRAILER_SPEC_HASH = "Reconciler-Spec-Hash"
TRAILER_VERSION = "Reconciler-Version"
TRAILER_ACTION = "Reconciler-Action"
TRAILER_SUPERSEDES = "Reconciler-Supersedes"
TRAILER_ROLLBACK_TO = "Reconciler-Rollback-To"
#: actions whose commits express the resource's spec (a rollback expresses a person's choice)
OWN_ACTIONS = frozenset({"create", "update", "rerender", "restore", "import", "delete",
                         "adopt"})

FEATURE_NAMES = ("database", "scheduler", "webhooks")


@dataclass(frozen=True)
class ObjectChange:
    """What happened to one object, as the message builder needs it."""

    key: ObjectKey
    action: str  # "create", "update", "delete", "rerender"
    old_spec: Mapping[str, Any] | None
    new_spec: Mapping[str, Any] | None
    generation: int | None = None
    uid: str | None = None
    spec_hash: str | None = None
    supersedes: str | None = None  # a human's commit this change overrides
    note: str | None = None  # why, when the spec alone does not say (e.g. an expiry)


def flatten(data: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"a.b.c": leaf}."""
    out: dict[str, Any] = {}
    for key, value in (data or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(str(value).split())  # free text (displayName) never spans lines
    return text[:7] if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text) else text


def _workers(count: object) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _feature_phrase(feature: str, spec: Mapping[str, Any]) -> str:
    if feature == "database":
        return f"database {spec.get('storage', '?')}"
    if feature == "scheduler":
        return f"scheduler {_workers(spec.get('workers'))}"
    return feature


def describe_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Phrases describing a spec change, e.g. ``["scheduler 2 -> 4 workers"]``."""
    before, after = flatten(old), flatten(new)
    phrases: list[str] = []
    toggled: set[str] = set()
    for feature in FEATURE_NAMES:
        was = before.get(f"features.{feature}.enabled")
        now = after.get(f"features.{feature}.enabled")
        if was != now and now is not None:
            toggled.add(feature)
            feature_spec = (new.get("features") or {}).get(feature) or {}
            phrases.append(f"{_feature_phrase(feature, feature_spec)} enabled" if now
                           else f"{feature} disabled")
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        parts = path.split(".")
        if parts[0] == "features" and len(parts) == 3:
            feature, leaf = parts[1], parts[2]
            if feature in toggled or (leaf != "enabled" and not after.get(f"features.{feature}.enabled")):
                continue
            if feature == "scheduler" and leaf == "workers":
                phrases.append(f"scheduler {before.get(path)} -> {_workers(after.get(path))}")
                continue
            phrases.append(f"{feature} {leaf} {_fmt(before.get(path))} -> {_fmt(after.get(path))}")
            continue
        phrases.append(f"{path} {_fmt(before.get(path))} -> {_fmt(after.get(path))}")
    return phrases


def describe_creation(key: ObjectKey, spec: Mapping[str, Any]) -> str:
    """A short summary of a new object's spec."""
    if key.kind == "Preview":
        return f"{spec.get('app')} {spec.get('branch')}@{_fmt(spec.get('commit'))}"
    features = spec.get("features") or {}
    enabled = [_feature_phrase(f, features[f]) for f in FEATURE_NAMES
               if (features.get(f) or {}).get("enabled")]
    return ", ".join(enabled) if enabled else "namespace only"


def phrases_for(change: ObjectChange) -> list[str]:
    """Everything worth saying about one object change."""
    if change.action == "delete":
        return [change.note or "removed"]
    if change.action == "restore":
        return ["restored the rendered files"]
    if change.action == "create" or change.old_spec is None:
        return [f"created ({describe_creation(change.key, change.new_spec or {})})"]
    phrases = describe_update(change.old_spec, change.new_spec or {})
    return phrases or ["re-rendered (settings or reconciler version changed)"]


def subject_for(change: ObjectChange) -> str:
    """``customer/acme: scheduler 2 -> 4 workers``, shortened to fit a subject line."""
    subject = " ".join(f"{change.key}: {'; '.join(phrases_for(change))}".split())
    if len(subject) <= SUBJECT_MAX:
        return subject
    return subject[: SUBJECT_MAX - 1].rsplit(" ", 1)[0] + " …"


def trailers_for(change: ObjectChange, version: str) -> list[tuple[str, str]]:
    """The trailers of one object's commit, in a fixed order."""
    out = [(TRAILER_OBJECT, str(change.key)), (TRAILER_ACTION, change.action)]
    if change.generation is not None:
        out.append((TRAILER_GENERATION, str(change.generation)))
    if change.uid:
        out.append((TRAILER_UID, change.uid))
    if change.spec_hash:
        out.append((TRAILER_SPEC_HASH, change.spec_hash))
    if change.supersedes:
        out.append((TRAILER_SUPERSEDES, change.supersedes))
    out.append((TRAILER_VERSION, version))
    return out


def build_message(
    subject: str, body_lines: Sequence[str], trailers: Sequence[tuple[str, str]]
) -> str:
    """Assemble subject, body and trailers into one commit message."""
    parts = [one_line(subject)]
    if body_lines:
        parts.append("\n".join(one_line(line) for line in body_lines))
    parts.append("\n".join(f"{one_line(k)}: {one_line(v)}" for k, v in trailers))
    return "\n\n".join(parts) + "\n"


def file_lines(paths_written: Sequence[str], paths_deleted: Sequence[str],
               existed: Mapping[str, bool]) -> list[str]:
    """``A path`` / ``M path`` / ``D path`` lines for the body."""
    lines = [f"{'M' if existed.get(p) else 'A'} {p}" for p in sorted(paths_written)]
    lines += [f"D {p}" for p in sorted(paths_deleted)]
    return lines


def object_message(change: ObjectChange, files: Sequence[str], extra: Sequence[str],
                   version: str) -> str:
    """The full message of one object's commit."""
    body = [f"- {p}" for p in phrases_for(change)]
    if change.supersedes:
        body.append(f"- supersedes {change.supersedes[:12]}, a change made in Git by hand")
    body += list(extra)
    if files:
        body += ["", "Files:", *files]
    return build_message(subject_for(change), body, trailers_for(change, version))


def import_message(keys: Sequence[ObjectKey], extra: Sequence[str], version: str) -> str:
    """One commit adding many new objects at once (first import of a large fleet)."""
    kinds = sorted({k.kind.lower() + "s" for k in keys})
    subject = f"import: add {len(keys)} {' and '.join(kinds)}"
    body = [f"{len(keys)} new objects, each rendered into its own directory.", *extra]
    trailers: list[tuple[str, str]] = [(TRAILER_ACTION, "import")]
    trailers += [(TRAILER_OBJECT, str(k)) for k in keys]
    trailers.append((TRAILER_VERSION, version))
    return build_message(subject, body, trailers)


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """The ``Key: value`` trailers of a commit message's last paragraph (git's rules, simplified)."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return []
    out: list[tuple[str, str]] = []
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or not key or " " in key:
            return []
        out.append((key, value.strip()))
    return out


def parse_generation(value: str | None) -> int | None:
    """A ``Reconciler-Generation`` value as a number; None for anything but ASCII digits
    (a human may write ``²``, which ``str.isdigit`` accepts and ``int`` refuses)."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def trailer_values(message: str, key: str) -> list[str]:
    """All values of trailer ``key`` in ``message``."""
    return [v for k, v in parse_trailers(message) if k.lower() == key.lower()]


def object_keys(message: str) -> list[ObjectKey]:
    """The objects a commit names in its ``Reconciler-Object`` trailers (unparseable skipped)."""
    keys: dict[ObjectKey, None] = {}  # ordered and O(1) per key: an import names thousands
    for value in trailer_values(message, TRAILER_OBJECT):
        try:
            keys[ObjectKey.parse(value)] = None
        except ValueError:
            continue
    return list(keys)
