"""Canonical YAML: the one dumper whose bytes go into the config repo, and the safe loader.

Pure: no I/O. Same input, same bytes — sorted keys, block style, ``---`` between
documents, LF line endings and exactly one trailing newline — so that "nothing changed"
can be decided by comparing bytes.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

_Dumper: type[yaml.SafeDumper]
_Loader: type[yaml.SafeLoader]
try:  # the C implementations are several times faster; fall back when libyaml is absent
    _Dumper = yaml.CSafeDumper  # type: ignore[assignment]
    _Loader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Dumper = yaml.SafeDumper
    _Loader = yaml.SafeLoader

#: which loader reads source files (results cached by their bytes name it)
LOADER_NAME = _Loader.__name__


def dump_document(doc: Mapping[str, Any]) -> str:
    """Return one YAML document in canonical form, ending with a newline.

    The block structure is laid out here (PyYAML's pure-Python representer is the slowest
    step of rendering); every scalar is still written by PyYAML, and anything unusual
    (multi-line strings, nested sequences, odd keys) falls back to PyYAML whole. The
    bytes are identical to ``reference_dump_document``: the tests check that.
    """
    out: list[str] = []
    try:
        _mapping_lines(doc, "", out)
    except _UnsupportedValueError:
        return reference_dump_document(doc)
    return "\n".join(out) + "\n" if out else "{}\n"


def reference_dump_document(doc: Mapping[str, Any]) -> str:
    """The same document written by PyYAML alone (the reference for dump_document)."""
    text: str = yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=_WIDTH,
        indent=2,
    )
    return text


_WIDTH = 4096


class _UnsupportedValueError(Exception):
    """The fast layout does not handle this value; PyYAML writes the whole document."""


_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")

#: strings PyYAML always writes as they are (plain style): ASCII words, single spaces
#: between them, no YAML indicator anywhere, a letter first (so no number, timestamp or
#: syntax), unless one of the resolver's patterns for that first letter (``yes``, ``null``,
#: ...) would read them back as another type. The tests compare with PyYAML.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./-]+)*")
_PLAIN_MAX = 200
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
#: scalar text by string; cleared when full (a fleet's names, each written a few times)
_SCALARS: dict[str, str] = {}
_SCALARS_MAX = 1 << 16  # as many as the lru_cache it replaces: no more memory


def _str_scalar(value: str) -> str:
    text = _SCALARS.get(value)
    if text is not None:
        return text
    if len(value) <= _PLAIN_MAX and _PLAIN.fullmatch(value) and not any(
            regexp.match(value) for _, regexp in _IMPLICIT.get(value[0], ())):
        text = value
    else:
        text = _pyyaml_scalar(value)
    if len(_SCALARS) >= _SCALARS_MAX:
        _SCALARS.clear()
    _SCALARS[str(value)] = text  # a str subclass (an enum) is cached under its plain value
    return text


def _pyyaml_scalar(value: str) -> str:
    if len(value) > 1024 or any(b in value for b in _LINE_BREAKS):
        raise _UnsupportedValueError
    text: str = yaml.dump(value, Dumper=_Dumper, allow_unicode=True, width=_WIDTH)
    text = text.removesuffix("\n...\n").rstrip("\n")
    if "\n" in text:
        raise _UnsupportedValueError
    return text


def _other_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _str_scalar(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise _UnsupportedValueError


#: a mapping's indent and keys in insertion order -> (key, "<indent>key:") in the order
#: they are written; renderings build the same few shapes of mapping over and over
_LAYOUTS: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}
_LAYOUTS_MAX = 4096


def _layout(indent: str, mapping: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    keys = tuple(mapping)
    # libyaml writes keys over 128 bytes as complex keys ("? key"): leave those to it; a
    # key of under 25 characters is under 100 bytes in any encoding
    for key in keys:
        if type(key) is not str or (len(key) >= 25 and len(key.encode()) >= 100):
            raise _UnsupportedValueError
    layout = tuple((key, f"{indent}{_str_scalar(key)}:") for key in sorted(keys))
    if len(_LAYOUTS) >= _LAYOUTS_MAX:
        _LAYOUTS.clear()
    _LAYOUTS[(indent, *keys)] = layout
    return layout


def _mapping_lines(mapping: Mapping[str, Any], indent: str, out: list[str]) -> None:
    inner = indent + "  "
    append = out.append
    layout = _LAYOUTS.get((indent, *mapping)) or _layout(indent, mapping)
    for key, head in layout:
        value = mapping[key]
        kind = type(value)
        # the common types first, by identity: an ABC isinstance check costs more than
        # the line
        if kind is str:
            text = _SCALARS.get(value)
            append(f"{head} {text if text is not None else _str_scalar(value)}")
        elif kind is int:
            append(f"{head} {value}")
        elif kind is bool:
            append(f"{head} {'true' if value else 'false'}")
        elif kind is dict or (kind is not list and isinstance(value, Mapping)):
            if value:
                append(head)
                _mapping_lines(value, inner, out)
            else:
                append(f"{head} {{}}")
        elif kind is list or isinstance(value, list):
            if value:
                append(head)
                _sequence_lines(value, indent, out)
            else:
                append(f"{head} []")
        else:
            append(f"{head} {_other_scalar(value)}")


def _sequence_lines(items: list[Any], indent: str, out: list[str]) -> None:
    inner = indent + "  "
    for item in items:
        kind = type(item)
        if kind is dict or (kind is not list and isinstance(item, Mapping)):
            if not item:
                raise _UnsupportedValueError
            start = len(out)
            _mapping_lines(item, inner, out)
            out[start] = f"{indent}- {out[start][len(indent) + 2:]}"
        elif kind is list or isinstance(item, list):
            raise _UnsupportedValueError
        elif kind is str:
            out.append(f"{indent}- {_str_scalar(item)}")
        elif kind is int:
            out.append(f"{indent}- {item}")
        else:
            out.append(f"{indent}- {_other_scalar(item)}")


def dump_documents(docs: Iterable[Mapping[str, Any]]) -> bytes:
    """Return several documents as one canonical multi-document YAML file."""
    docs = list(docs)
    data = "---\n".join(dump_document(d) for d in docs).encode("utf-8")
    _remember(data, docs)
    return data


#: the documents behind the bytes dumped last (a few hundred files): checks over a fresh
#: rendering (core/guards.py) read them instead of parsing the bytes back, which costs
#: more than rendering itself. The bytes are a function of the documents, so it is exact.
#: An OrderedDict: dropping the oldest entry of a plain dict walks over the slots of every
#: entry dropped before it (it showed in the profile of an import of 10,000 objects).
_DUMPED: collections.OrderedDict[bytes, tuple[Mapping[str, Any], ...]] = \
    collections.OrderedDict()
_DUMPED_MAX = 512


def _remember(data: bytes, docs: list[Mapping[str, Any]]) -> None:
    _DUMPED[data] = tuple(docs)
    while len(_DUMPED) > _DUMPED_MAX:
        try:
            _DUMPED.popitem(last=False)
        except KeyError:  # another thread got there first
            break


def dumped_documents(data: bytes) -> list[Any]:
    """The documents of canonical YAML this module wrote (parsed again when no longer
    remembered); treat them as read-only."""
    docs = _DUMPED.get(data)
    if docs is not None:
        return list(docs)
    return [d for d in yaml.load_all(data, Loader=_Loader) if d is not None]


_TAG = "tag:yaml.org,2002:"
#: scalar tags whose PyYAML constructors are plain functions of the node
_PLAIN_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float"))
_PLAIN_DEPTH = 64


class _UnusualNodeError(Exception):
    """The document needs PyYAML's full constructor (aliases, merge keys, other tags)."""


#: tags of the scalar values seen first (bounded: a fleet's names would fill it otherwise)
_RESOLVED: dict[tuple[type[yaml.Node], str | None, Any], str] = {}
_RESOLVED_MAX = 4096


class _UniqueKeyLoader(_Loader):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a mapping that names a key twice (YAML says keys are
    unique; PyYAML would silently keep the last value, even of ``kind:``).

    A plain document (string keys, no anchors or aliases, merge keys or unusual tags: what
    manifests are) is built by one direct walk over its nodes, several times faster than
    PyYAML's general constructor; anything else, or a duplicate key, goes to that
    constructor, which builds it or names the problem as before.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        try:
            return self._plain(node, set(), 0)
        except _UnusualNodeError:
            return super().construct_document(node)

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: Any) -> str:
        """The tag of a node, as the safe loader's resolver says, remembered for the most
        common values (keys, booleans, small numbers: 15 % of loading 10,000 Customers).
        A function of its arguments: the safe loader has no path resolvers."""
        key = (kind, value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) < _RESOLVED_MAX:  # the first values seen: keys recur
                _RESOLVED[key] = tag
        return tag

    def _plain(self, node: yaml.Node, seen: set[int], depth: int) -> Any:
        kind, tag = type(node), node.tag
        if kind is yaml.ScalarNode:
            if tag == "tag:yaml.org,2002:str":
                return node.value
            if tag in _PLAIN_SCALAR_TAGS:
                return self.yaml_constructors[tag](self, node)
            raise _UnusualNodeError
        # a node met twice is an alias: the full constructor shares one object for it
        # (copies would let a "billion laughs" document take all memory)
        if id(node) in seen or depth > _PLAIN_DEPTH:
            raise _UnusualNodeError
        seen.add(id(node))
        if kind is yaml.MappingNode and tag == "tag:yaml.org,2002:map":
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if type(key_node) is not yaml.ScalarNode or \
                        key_node.tag != "tag:yaml.org,2002:str":
                    raise _UnusualNodeError
                key = key_node.value
                if key in out:
                    raise _UnusualNodeError  # the full constructor names the duplicate
                out[key] = self._plain(value_node, seen, depth + 1)
            return out
        if kind is yaml.SequenceNode and tag == "tag:yaml.org,2002:seq":
            return [self._plain(item, seen, depth + 1) for item in node.value]
        raise _UnusualNodeError

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *base`` merges; its keys may be overridden on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class refuses it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r} (first at line {first.line + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map",
                                 _UniqueKeyLoader.construct_yaml_map)


def load_documents(text: str | bytes) -> Iterator[Any]:
    """Yield the documents of a YAML stream with the safe loader (raises yaml.YAMLError,
    also for a key that appears twice in one mapping)."""
    return iter(yaml.load_all(text, Loader=_UniqueKeyLoader))


def load_document(text: str | bytes) -> Any:
    """Return the single document of a YAML stream (duplicate keys refused)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


YAMLError = yaml.YAMLError
