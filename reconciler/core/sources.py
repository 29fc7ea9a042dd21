"""Parsing resource documents: YAML text in, validated Customers and Previews or refusals out.

Pure: the caller reads the files; this module only judges their text. Every refusal is
one line naming the file, the object (when known) and the field.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.core import yamlio
from reconciler.core.models import API_VERSION, KINDS, ObjectKey, Resource
from reconciler.core.text import one_line


@dataclass(frozen=True)
class Refusal:
    """Input the reconciler will not act on, and why (one line)."""

    origin: str
    message: str
    key: ObjectKey | None = None  # known when the document named a valid kind and name

    def __str__(self) -> str:
        return one_line(f"{self.origin}: {self.message}")


@dataclass(frozen=True)
class Parsed:
    """The result of reading a set of documents."""

    objects: Sequence[Resource]
    refusals: Sequence[Refusal]
    #: the file the objects came from (set by parse_text; combine() leaves it empty)
    #: True when some file could not be read as YAML at all: its objects are unknown, so
    #: nothing may be removed on the strength of their absence.
    incomplete: bool = False
    origin: str = ""
    #: where each object was defined (combine() fills it from the per-file results)
    origins: Mapping[ObjectKey, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """How much one source file may hold (settings ``max_source_file_bytes`` and
    ``max_source_documents``): a 48 MB list once took 3 GB of memory to parse."""

    max_bytes: int = 1 << 20
    max_documents: int = 1000


DEFAULT_LIMITS = Limits()


def unreadable(origin: str, why: str) -> Parsed:
    """A file whose objects are unknown: refused, and no removal in this pass."""
    return Parsed((), (Refusal(origin, why),), incomplete=True, origin=origin)


def parse_text(origin: str, text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Parsed:
    """Parse every document in one file's text."""
    if len(text) > limits.max_bytes:
        return unreadable(origin, f"{len(text)} bytes, over the limit of {limits.max_bytes} "
                                  "(setting max_source_file_bytes); not parsed")
    return judge_loaded(origin, load_text(text, limits))


#: what ``load_text`` made of a file: its documents, or why they cannot be read (a message
#: naming no file, so equal text gives an equal result wherever it lies)
Loaded = list[Any] | str


def load_text(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Loaded:
    """The YAML documents of one file's text (empty ones left out), or the one-line reason
    they cannot be read. The size limit is the caller's to check first."""
    try:
        docs = []
        for doc in yamlio.load_documents(text):
            if doc is not None:
                docs.append(doc)
            if len(docs) > limits.max_documents:
                return (f"more than {limits.max_documents} documents "
                        "(setting max_source_documents); not parsed")
    except yamlio.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"invalid YAML{where}: {problem}"
    return docs


def judge_loaded(origin: str, loaded: Loaded) -> Parsed:
    """Validate what ``load_text`` returned for the file at ``origin``."""
    if isinstance(loaded, str):
        return unreadable(origin, loaded)
    objects: list[Resource] = []
    refusals: list[Refusal] = []
    for index, doc in enumerate(loaded):
        where = origin if len(loaded) == 1 else f"{origin}[{index}]"
        result = parse_document(where, doc)
        if isinstance(result, Refusal):
            refusals.append(result)
        else:
            objects.append(result)
    return Parsed(objects, refusals, origin=origin)


def parse_document(origin: str, doc: Any) -> Resource | Refusal:
    """Validate one decoded document as a Customer or Preview."""
    if not isinstance(doc, dict):
        return Refusal(origin, f"expected a mapping (a Kubernetes object), got {type(doc).__name__}")
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if kind not in KINDS or api_version != API_VERSION:
        return Refusal(
            origin,
            one_line(f"unknown kind {api_version}/{kind}: expected Customer or Preview in "
                     f"{API_VERSION}"),
        )
    metadata = doc.get("metadata")
    raw_name = metadata.get("name") if isinstance(metadata, dict) else None
    label = f"{kind} {raw_name!r}" if isinstance(raw_name, str) else f"{kind} (no name)"
    try:
        obj: Resource = KINDS[kind].model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        key = _safe_key(kind, raw_name)
        return Refusal(origin, one_line(f"{label}: {field}: {msg}{suffix}"), key)
    return _compact(obj)


def _compact(obj: Resource) -> Resource:
    """``obj`` sharing equal parts with the objects parsed before it, its own parts kept
    lean: a fleet's tenants mostly differ in name and display name, and a validated model
    costs ~3.6 KB whole, ~1.1 KB with its feature and quota parts and its fields-set
    bookkeeping shared, ~0.5 KB with its fields kept in the instance (``_lean``).

    Only equal, immutable values are swapped in (the models are frozen; pydantic copies a
    fields set before it changes one), so nothing observable changes."""
    meta = obj.metadata.__dict__
    # one string per tenant name for the whole process: the config repo's listing, its
    # trailers and records name the same tenants (interned there too)
    meta["name"] = sys.intern(meta["name"])
    for name in ("labels", "annotations"):  # most objects have none: one empty dict each
        if not meta[name]:
            meta[name] = _EMPTY
    spec = obj.spec.__dict__
    for name, value in spec.items():
        if isinstance(value, BaseModel):
            spec[name] = _shared(value)
    whole = obj.__dict__
    whole["metadata"] = _lean(obj.metadata, meta)
    whole["spec"] = _lean(obj.spec, spec)
    lean: Resource = _lean(obj, whole)
    return lean


def _lean(model: Any, fields: dict[str, Any]) -> Any:
    """A model equal to ``model`` (whose fields are ``fields``), its fields set one by one
    on a new instance.

    Pydantic hands each model a dict of its own (184-272 bytes); attributes set on the
    instance are kept in CPython's split table, their names stored once per class (~100
    bytes): 100,000 tenants parse into 40 MB less. The model behaves the same: its
    ``__dict__`` is made when something (a dump, a copy, ``==``) asks for it."""
    lean = _new(type(model))
    for name, value in fields.items():
        _set(lean, name, value)
    _set(lean, "__pydantic_fields_set__", _shared_set(frozenset(model.__pydantic_fields_set__)))
    _set(lean, "__pydantic_extra__", model.__pydantic_extra__)
    _set(lean, "__pydantic_private__", model.__pydantic_private__)
    return lean


_new, _set = object.__new__, object.__setattr__


#: the labels or annotations of every object that has none (never changed: models are
#: frozen and nothing writes into a model's mappings; a test checks it stays empty)
_EMPTY: dict[str, str] = {}


def _shared(value: BaseModel) -> BaseModel:
    """The first of the equal (frozen, hashable) values seen: later ones are dropped."""
    try:
        return _first_equal(value)
    except TypeError:  # not hashable (a part holding a dict): kept as it is
        return value


@functools.lru_cache(maxsize=4096)
def _first_equal(value: BaseModel) -> BaseModel:
    return value


@functools.lru_cache(maxsize=256)
def _shared_set(names: frozenset[str]) -> set[str]:
    return set(names)


def _safe_key(kind: str, name: object) -> ObjectKey | None:
    from reconciler.core import names

    if isinstance(name, str) and names.is_dns1123_label(name):
        return ObjectKey(kind, name)
    return None


def combine(results: Iterable[Parsed]) -> Parsed:
    """Merge per-file results, refusing every object whose kind and name appear twice."""
    results = list(results)
    objects = [o for r in results for o in r.objects]
    refusals = [f for r in results for f in r.refusals]
    counts = Counter(o.key for o in objects)
    origins = Origins(tuple((r.origin, tuple(o.key for o in r.objects)) for r in results))
    kept: list[Resource] = []
    for obj in objects:
        if counts[obj.key] > 1:
            refusals.append(Refusal(
                origins.get(obj.key) or str(obj.key),
                f"duplicate name: {counts[obj.key]} documents define {obj.key}", obj.key))
        else:
            kept.append(obj)
    unique_refusals = list(dict.fromkeys(refusals))
    return Parsed(kept, unique_refusals, any(r.incomplete for r in results), origins=origins)


class Origins(Mapping[ObjectKey, str]):
    """Where each object was defined ("a.yaml", or "a.yaml, b.yaml" for a duplicate).

    Only a refusal names its file, so the map is made on the first lookup: a pass that
    refuses nothing keeps one tuple of keys per file, not a dict of 100,000 (5 MB)."""

    __slots__ = ("_files", "_made")

    def __init__(self, files: tuple[tuple[str, tuple[ObjectKey, ...]], ...]) -> None:
        self._files = files
        self._made: dict[ObjectKey, str] | None = None

    def _map(self) -> dict[ObjectKey, str]:
        if self._made is None:
            found: dict[ObjectKey, list[str]] = {}
            for origin, keys in self._files:
                for key in keys:
                    found.setdefault(key, []).append(origin)
            self._made = {key: ", ".join(dict.fromkeys(where)) for key, where in found.items()}
        return self._made

    def __getitem__(self, key: ObjectKey) -> str:
        return self._map()[key]

    def __iter__(self) -> Iterator[ObjectKey]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())
