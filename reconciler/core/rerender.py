"""Settings-change commits: the settings record kept in the config repo and the message of
the commit that re-renders many objects at once because settings or the version changed.

Pure. The record (``.reconciler/settings.json``) holds the settings that shape rendered bytes
and the reconciler version of the last re-render, so the next one can say what changed
(``rerender: scheduler image 1.4.2 -> 1.4.3 (3,000 tenants)``). In pull-request mode the
same change is one pull request from ``reconciler/rerender/<digest of the record it starts
from>``; its text is built here too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.core import messages
from reconciler.core.models import ObjectKey

RECORD_DIRECTORY = ".reconciler"
SETTINGS_RECORD = f"{RECORD_DIRECTORY}/settings.json"
TRAILER_SETTING = "Reconciler-Setting"
UNKNOWN_CHANGE = "settings or reconciler version changed"
FILES_LISTED = 200  # beyond this the body says how many instead of listing them
BRANCH_PREFIX = "reconciler/rerender/"
TRAILER_RECORD = "Reconciler-Settings-Record"  # in a PR body: the record the PR would write
OBJECTS_LISTED = 200
NOUNS = {"Customer": ("tenant", "tenants"), "Preview": ("preview", "previews")}


def settings_record(render_settings: Mapping[str, Any], version: str) -> bytes:
    """The record's bytes (deterministic: sorted keys, one trailing newline)."""
    return (json.dumps({"version": version, "settings": render_settings}, indent=2,
                       sort_keys=True) + "\n").encode()


def parse_settings_record(raw: bytes | None) -> dict[str, Any] | None:
    """The record read back, or None when absent or not a record (edited by hand)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        return None
    return data


def setting_changes(previous: Mapping[str, Any] | None, render_settings: Mapping[str, Any],
                    version: str) -> list[tuple[str, str]]:
    """(setting, "old -> new") for every rendered setting and the version that changed."""
    if previous is None:
        return []
    before = messages.flatten(previous.get("settings") or {})
    after = messages.flatten(render_settings)
    out = [(path, f"{_text(before.get(path))} -> {_text(after.get(path))}")
           for path in sorted(set(before) | set(after)) if before.get(path) != after.get(path)]
    if previous.get("version") != version:
        out.append(("version", f"{_text(previous.get('version'))} -> {version}"))
    return out


def describe(changes: Sequence[tuple[str, str]]) -> list[str]:
    """Short phrases: ``scheduler image 1.4.2 -> 1.4.3``, ``domain a -> b``."""
    phrases: list[str] = []
    for path, change in changes:
        old, _, new = change.partition(" -> ")
        if path.startswith("images."):
            old_repo, _, old_tag = old.rpartition(":")
            new_repo, _, new_tag = new.rpartition(":")
            if old_repo and old_repo == new_repo:
                phrases.append(f"{path[len('images.'):]} image {old_tag} -> {new_tag}")
                continue
            phrases.append(f"{path[len('images.'):]} image {change}")
        elif path == "version":
            phrases.append(f"reconciler {change}")
        else:
            phrases.append(f"{path} {change}")
    return phrases


def count_phrase(keys: Sequence[ObjectKey]) -> str:
    """``3,000 tenants``, ``2 tenants, 1 preview``."""
    parts = []
    for kind, (one, many) in NOUNS.items():
        n = sum(1 for k in keys if k.kind == kind)
        if n:
            parts.append(f"{n:,} {one if n == 1 else many}")
    return ", ".join(parts)


def rerender_message(keys: Sequence[ObjectKey], changes: Sequence[tuple[str, str]],
                     files: Sequence[str], extra: Sequence[str], version: str, *,
                     batch: tuple[int, int] = (1, 1)) -> str:
    """One commit re-rendering ``keys``: a subject saying what changed, the files, and
    trailers naming every object (``Reconciler-Object``) and setting (``Reconciler-Setting``)."""
    phrases = describe(changes) or [UNKNOWN_CHANGE]
    tail = f" ({count_phrase(keys)}" + (f", batch {batch[0]}/{batch[1]})" if batch[1] > 1
                                        else ")")
    what = "; ".join(phrases)
    if len("rerender: ") + len(what) + len(tail) > messages.SUBJECT_MAX:
        what = f"{len(phrases)} settings changed" if len(phrases) > 1 else \
            what[: messages.SUBJECT_MAX - len(tail) - 12] + " …"
    subject = " ".join(f"rerender: {what}{tail}".split())
    body = [f"- {path}: {change}" for path, change in changes] or [f"- {UNKNOWN_CHANGE}"]
    body += [f"- re-rendered {count_phrase(keys)}; no spec changed", *extra]
    if len(files) > FILES_LISTED:
        body += ["", f"{len(files):,} files changed (`git show --stat` lists them)."]
    elif files:
        body += ["", "Files:", *files]
    trailers: list[tuple[str, str]] = [(messages.TRAILER_ACTION, "rerender")]
    trailers += [(TRAILER_SETTING, path) for path, _ in changes]
    trailers += [(messages.TRAILER_OBJECT, str(k)) for k in keys]
    trailers.append((messages.TRAILER_VERSION, version))
    return messages.build_message(subject, body, trailers)


def _text(value: object) -> str:
    if value is None:
        return "unset"
    return " ".join(str(value).split())


def record_digest(raw: bytes | None) -> str:
    """A short, stable name for a settings record's bytes (absent: the empty record)."""
    return hashlib.sha256(raw or b"").hexdigest()[:12]


def rerender_branch(base_record: bytes | None) -> str:
    """The branch of the re-render PR that starts from ``base_record`` (the target branch's
    record): a newer settings change before it merges updates the same branch and PR."""
    return BRANCH_PREFIX + record_digest(base_record)


def proposes(body: str, target_record: bytes | None) -> bool:
    """Whether a re-render PR's ``body`` proposes exactly ``target_record``."""
    return f"{TRAILER_RECORD}: {record_digest(target_record)}" in body.splitlines()


def pull_request_text(keys: Sequence[ObjectKey], base_record: bytes | None,
                      target_record: bytes | None, commits: int) -> tuple[str, str]:
    """Title and body of the re-render PR moving the target branch from ``base_record`` to
    ``target_record`` over ``keys`` in ``commits`` commits."""
    target = parse_settings_record(target_record) or {}
    version = str(target.get("version") or "unknown")
    changes = setting_changes(parse_settings_record(base_record),
                              target.get("settings") or {}, version)
    title = rerender_message(keys, changes, [], [], version).split("\n", 1)[0]
    lines = [f"- {path}: {change}" for path, change in changes] or [f"- {UNKNOWN_CHANGE}"]
    lines.append(f"- re-rendered {count_phrase(keys)} in {commits:,} "
                 f"commit{'s' if commits != 1 else ''}; no spec changed")
    listed = sorted(str(k) for k in keys)
    objects = "\n".join(listed) if len(listed) <= OBJECTS_LISTED else \
        f"{len(listed):,} objects (the Reconciler-Object trailers of the commits name them)"
    trailers = "\n".join([f"{messages.TRAILER_ACTION}: rerender",
                          *(f"{TRAILER_SETTING}: {path}" for path, _ in changes),
                          f"{TRAILER_RECORD}: {record_digest(target_record)}",
                          f"{messages.TRAILER_VERSION}: {version}"])
    body = ("Proposed by gitops-reconciler: the settings or the reconciler version changed "
            "the rendering of objects whose spec did not change.\n\n" + "\n".join(lines)
            + f"\n\nObjects:\n```\n{objects}\n```\n\n```\n{trailers}\n```\n\n"
            "Merge to apply. A newer settings change updates this pull request. Closing it "
            "unmerged declines this change: it is not proposed again (the objects keep their "
            "current rendering; a change of an object's spec still gets its own pull "
            "request) until the settings or the version change again.\n")
    return title, body
