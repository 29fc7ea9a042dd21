"""A directory listing parsed from a raw Git tree object, kept compact.

Owns: reading a tree object's bytes (``<octal mode> <name>\\0<raw id>`` entries, as git
writes them) into a mapping ``name -> (is_tree, Oid)`` that keeps the bytes, one offset
and one flag per entry, instead of a tuple and an ``Oid`` per entry: the ``tenants/``
listing of 100,000 tenants costs ~5 MB where a dict of tuples cost ~22 MB. Our own commits
patch a listing in place; the patches sit in a small overlay that is folded in when it
grows, so a change costs what changed.

Must not: read the repository (the caller hands over the bytes), or trust them: a damaged
tree raises ``ValueError`` for the caller to name.
"""

from __future__ import annotations

import itertools
import sys
from array import array
from bisect import bisect_left
from collections.abc import ItemsView, Iterator, MutableMapping, ValuesView

import pygit2

Entry = tuple[bool, pygit2.Oid]
#: an overlay larger than this share of the listing is folded in (and at least this many)
_FOLD_SHARE, _FOLD_MIN = 8, 64
#: trees smaller than this (a tenant's own directory: a few files) are read into a dict,
#: which costs less to make and is not kept
SMALL_TREE_BYTES = 4096


def read(data: bytes, width: int) -> MutableMapping[str, Entry]:
    """The listing of a raw tree: a plain dict for a small tree, a ``Listing`` for a large
    one; ValueError when an entry is cut short."""
    if len(data) >= SMALL_TREE_BYTES:
        return Listing(data, width)
    out: dict[str, Entry] = {}
    start, end = 0, len(data)
    while start < end:  # as ``_entries``, written out: 100,000 of these are read a pass
        space = data.index(b" ", start)
        nul = data.index(b"\0", space)
        stop = nul + 1 + width
        if stop > end:
            raise ValueError("an entry's id is cut short")
        out[sys.intern(data[space + 1:nul].decode("utf-8", "surrogateescape"))] = (
            data[start:space] == b"40000", pygit2.Oid(raw=data[nul + 1:stop]))
        start = stop
    return out


def _entries(data: bytes, width: int) -> Iterator[tuple[str, int, bool]]:
    """(name, offset of its id, is a tree) of each entry, in the tree's order."""
    start, end = 0, len(data)
    while start < end:
        space = data.index(b" ", start)
        nul = data.index(b"\0", space)
        if nul + 1 + width > end:
            raise ValueError("an entry's id is cut short")
        yield (sys.intern(data[space + 1:nul].decode("utf-8", "surrogateescape")), nul + 1,
               data[start:space] == b"40000")
        start = nul + 1 + width


class Listing(MutableMapping[str, Entry]):
    """The entries of one tree, looked up by name (bisection over the names in order)."""

    __slots__ = ("_at", "_data", "_index", "_last", "_names", "_overlay", "_trees", "_width")

    def __init__(self, data: bytes, width: int) -> None:
        """Parse a raw tree (``width``: the length of a raw object id); ValueError when
        an entry is cut short."""
        names: list[str] = []
        at = array("I")
        trees = bytearray()
        for name, offset, is_tree in _entries(data, width):
            names.append(name)
            at.append(offset)
            trees.append(is_tree)
        self._width = width
        self._overlay: dict[str, Entry | None] = {}
        # the last entry read: a pass asks for one tenant's entry a few times in a row
        self._last: tuple[str, Entry] | None = None
        self._set_base(names, data, at, trees)

    def _set_base(self, names: list[str], data: bytes, at: array[int],
                  trees: bytearray) -> None:
        self._data, self._at, self._trees = data, at, trees
        if all(a < b for a, b in itertools.pairwise(names)):
            self._names, self._index = names, None
        else:  # git's order (a tree sorts as "name/"), or a damaged tree naming one twice
            self._index = {name: i for i, name in enumerate(names)}  # the last one counts
            self._names = list(self._index)

    def _find(self, name: str) -> int:
        if self._index is not None:
            return self._index.get(name, -1)
        names = self._names
        i = bisect_left(names, name)
        return i if i < len(names) and names[i] == name else -1

    def _base(self, i: int) -> Entry:
        start = self._at[i]
        return bool(self._trees[i]), pygit2.Oid(raw=self._data[start:start + self._width])

    def get(self, name: str, default: Entry | None = None) -> Entry | None:  # type: ignore[override]
        """The entry called ``name``, or ``default``."""
        last = self._last
        if last is not None and last[0] == name:
            return last[1]
        if name in self._overlay:
            patched = self._overlay[name]
            return default if patched is None else patched
        i = self._find(name)
        if i < 0:
            return default
        entry = self._base(i)
        self._last = name, entry
        return entry

    def __getitem__(self, name: str) -> Entry:
        entry = self.get(name)
        if entry is None:
            raise KeyError(name)
        return entry

    def __setitem__(self, name: str, entry: Entry) -> None:
        self._last = None
        self._overlay[name] = entry
        self._fold_if_large()

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._last = None
        self._overlay[name] = None
        self._fold_if_large()

    def _pairs(self) -> Iterator[tuple[str, Entry]]:
        """Every entry in a dict's order: the tree's, then names added since."""
        overlay = self._overlay
        for i, name in enumerate(self._names):
            if name in overlay:
                patched = overlay[name]
                if patched is not None:
                    yield name, patched
            else:
                yield name, self._base(i if self._index is None else self._index[name])
        for name, patched in overlay.items():
            if patched is not None and self._find(name) < 0:
                yield name, patched

    def subtrees(self) -> list[str]:
        """The names of the entries that are trees, in iteration order (no id is made)."""
        overlay, trees, index = self._overlay, self._trees, self._index
        if not overlay and index is None:
            return [name for name, is_tree in zip(self._names, trees, strict=True) if is_tree]
        out = []
        for i, name in enumerate(self._names):
            if name in overlay:
                patched = overlay[name]
                if patched is not None and patched[0]:
                    out.append(name)
            elif trees[i if index is None else index[name]]:
                out.append(name)
        out += [name for name, patched in overlay.items()
                if patched is not None and patched[0] and self._find(name) < 0]
        return out

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._pairs())

    def __len__(self) -> int:
        count = len(self._names)
        for name, patched in self._overlay.items():
            count += (patched is not None) - (self._find(name) >= 0)
        return count

    def items(self) -> ItemsView[str, Entry]:
        """Every (name, entry), read in one sweep (no lookup per name)."""
        return _Items(self)

    def values(self) -> ValuesView[Entry]:
        """Every entry, read in one sweep."""
        return _Values(self)

    def _fold_if_large(self) -> None:
        if len(self._overlay) <= max(_FOLD_MIN, len(self._names) // _FOLD_SHARE):
            return
        pairs = sorted(self._pairs())  # names in order: looked up by bisection again
        width = self._width
        self._overlay = {}
        self._set_base([name for name, _ in pairs], b"".join(oid.raw for _, (_, oid) in pairs),
                       array("I", range(0, len(pairs) * width, width)),
                       bytearray(is_tree for _, (is_tree, _) in pairs))


class _Items(ItemsView[str, Entry]):
    _mapping: Listing

    def __iter__(self) -> Iterator[tuple[str, Entry]]:
        return self._mapping._pairs()


class _Values(ValuesView[Entry]):
    _mapping: Listing

    def __iter__(self) -> Iterator[Entry]:
        return (entry for _, entry in self._mapping._pairs())
