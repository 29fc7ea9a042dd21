"""Label and field selectors, parsed from query strings and matched against raw objects.

Owns: the label selector grammar kube-apiserver accepts (``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``) and equality field selectors on
``metadata.name``, ``metadata.namespace`` and a resource's extra field labels.
Pure: no I/O; a parse failure is an ``ApiError`` (400) because that is what the client sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.fake_apiserver import errors

RawObject = errors.RawObject

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^)]*)\)$")
_EQUALITY_RE = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")


@dataclass(frozen=True)
class Requirement:
    """One clause: ``operator`` is one of =, !=, in, notin, exists, !exists."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case _:
                return not present


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _parse_requirement(text: str) -> Requirement:
    if match := _SET_RE.match(text):
        key, operator, raw_values = match.groups()
        values = frozenset(value.strip() for value in raw_values.split(",") if value.strip())
        return Requirement(key, operator, values)
    if match := _EQUALITY_RE.match(text):
        key, operator, value = match.groups()
        return Requirement(key, "!=" if operator == "!=" else "=", frozenset({value}))
    if match := _EXISTS_RE.match(text):
        negated, key = match.groups()
        return Requirement(key, "!exists" if negated else "exists")
    raise errors.bad_request(f"unable to parse requirement: {text!r}")


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a ``labelSelector`` query value; empty or missing selects everything."""
    return tuple(_parse_requirement(part) for part in _split_top_level(text or ""))


def _field_value(raw_object: RawObject, path: str) -> str:
    if path == "source":
        path = "source.component"
    node: object = raw_object
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def parse_field_selector(
    text: str | None, *, extra_fields: tuple[str, ...] = ()
) -> Callable[[RawObject], bool]:
    """Parse a ``fieldSelector`` query value into a predicate over raw objects."""
    clauses: list[tuple[str, bool, str]] = []
    for part in _split_top_level(text or ""):
        match = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", part)
        if match is None:
            raise errors.bad_request(f"invalid field selector: {part!r}")
        field, operator, value = match.groups()
        if field not in ("metadata.name", "metadata.namespace", *extra_fields):
            raise errors.bad_request(
                f'field label not supported: {field}'
            )
        clauses.append((field, operator != "!=", value))

    def matches(raw_object: RawObject) -> bool:
        return all(
            (_field_value(raw_object, field) == value) is equal
            for field, equal, value in clauses
        )

    return matches


def matches_labels(requirements: tuple[Requirement, ...], raw_object: RawObject) -> bool:
    """Whether an object's labels satisfy every requirement."""
    labels = (raw_object.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)
