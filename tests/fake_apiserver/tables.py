"""Server-side printing: the ``meta.k8s.io/v1`` Table kubectl asks for when it prints objects.

Owns: turning an object or a list into the Table kube-apiserver would send (the default Name
and Age columns, plus the few extra columns of the built-ins served here), with
``PartialObjectMetadata`` rows. Pure: the current time comes in as an argument; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tests.fake_apiserver import errors

RawObject = errors.RawObject
Cell = Callable[[RawObject, datetime], str]

_NAME_DESCRIPTION = "Name must be unique within a namespace."


def wants_table(accept: str) -> bool:
    """Whether an Accept header asks for a Table (kubectl get does; -o json does not)."""
    return "as=Table" in accept


def human_duration(seconds: float) -> str:
    """Format an age the way kubectl's AGE column does (``45s``, ``3m12s``, ``5h``, ``2d3h``)."""
    if seconds < -1:
        return "<invalid>"
    secs = max(int(seconds), 0)
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    steps = (  # (applies, main part, remainder, remainder unit), first that applies wins
        (secs < 120, f"{secs}s", 0, ""),
        (mins < 10, f"{mins}m", secs % 60, "s"),
        (mins < 180, f"{mins}m", 0, ""),
        (hours < 8, f"{hours}h", mins % 60, "m"),
        (hours < 48, f"{hours}h", 0, ""),
        (hours < 192, f"{days}d", hours % 24, "h"),
        (days < 730, f"{days}d", 0, ""),
    )
    for applies, main, remainder, unit in steps:
        if applies:
            return f"{main}{remainder}{unit}" if remainder else main
    return f"{days // 365}y"


def _field(*path: str) -> Cell:
    def cell(raw_object: RawObject, now: datetime) -> str:
        node: object = raw_object
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return "" if node is None else str(node)
    return cell


def _age(raw_object: RawObject, now: datetime) -> str:
    created = (raw_object.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    born = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return human_duration((now - born).total_seconds())


_NAME = ("Name", "string", "name", _field("metadata", "name"))
_AGE = ("Age", "string", "", _age)
_COLUMNS: dict[str, tuple[tuple[str, str, str, Cell], ...]] = {
    "CustomResourceDefinition": (
        _NAME, ("Created At", "date", "", _field("metadata", "creationTimestamp"))),
    "Namespace": (_NAME, ("Status", "string", "", _field("status", "phase")), _AGE),
    "Lease": (_NAME, ("Holder", "string", "", _field("spec", "holderIdentity")), _AGE),
}


def to_table(raw: RawObject, *, now: datetime) -> RawObject:
    """Convert a served object or list into a Table."""
    items = raw.get("items", [raw])
    kind = items[0].get("kind", "") if items else raw.get("kind", "").removesuffix("List")
    columns = _COLUMNS.get(kind, (_NAME, _AGE))
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": (raw.get("metadata") or {}).get("resourceVersion", "")},
        "columnDefinitions": [
            {"name": name, "type": type_, "format": format_, "priority": 0,
             "description": _NAME_DESCRIPTION if format_ == "name" else name}
            for name, type_, format_, _ in columns
        ],
        "rows": [
            {"cells": [cell(item, now) for *_, cell in columns],
             "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": item.get("metadata") or {}}}
            for item in items
        ],
    }
