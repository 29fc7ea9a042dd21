"""Which objects one reconciler instance owns when a fleet is split across several:
a label selector and/or a shard index (``2/4``: the third of four stable hash shards).

Pure. Each instance of a split fleet has its own Lease and its own config repository or
branch; an object it does not select is, for it, absent (a relabelled object moves: the
instance that lost it removes its directory, the one that gained it creates it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EQUALITY = re.compile(rf"^\s*(?P<key>{_NAME})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_SET = re.compile(rf"^\s*(?P<key>{_NAME})\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_EXISTS = re.compile(rf"^\s*(?P<not>!?)\s*(?P<key>{_NAME})\s*$")


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this clause (Kubernetes semantics)."""
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


def _split(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """``team=a,tier!=free,env in (prod,staging),!legacy`` -> requirements (ValueError when
    a clause is not one of these forms)."""
    if not text.strip():
        return ()
    out: list[Requirement] = []
    for clause in _split(text):
        if m := _EQUALITY.match(clause):
            out.append(Requirement(m["key"], "notin" if m["op"] == "!=" else "in",
                                   frozenset({m["value"]})))
        elif m := _SET.match(clause):
            values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            out.append(Requirement(m["key"], m["op"], values))
        elif m := _EXISTS.match(clause):
            out.append(Requirement(m["key"], "!exists" if m["not"] else "exists"))
        else:
            raise ValueError(f"{clause.strip()!r} is not a label selector clause "
                             "(key=value, key!=value, key in (a,b), key notin (a,b), key, !key)")
    return tuple(out)


def parse_shard(text: str) -> tuple[int, int] | None:
    """``2/4`` -> (2, 4); empty -> None (ValueError unless 0 <= index < count)."""
    if not text.strip():
        return None
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit() \
            or not 0 <= int(index) < int(count):
        raise ValueError(f"{text!r} is not INDEX/COUNT with 0 <= INDEX < COUNT")
    return int(index), int(count)


def shard_of(name: str, count: int) -> int:
    """The stable shard of an object name (sha256, so every instance agrees)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count


def selected(name: str, labels: Mapping[str, str], selector: str, shard: str) -> bool:
    """Whether the instance configured with ``selector`` and ``shard`` owns this object."""
    if not all(r.matches(labels) for r in parse_selector(selector)):
        return False
    where = parse_shard(shard)
    return where is None or shard_of(name, where[1]) == where[0]
