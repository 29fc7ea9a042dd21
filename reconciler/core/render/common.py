"""Pieces every renderer shares: the rendered-directory value, labels, kustomization, source.

Pure. ``RENDER_VERSION`` is bumped whenever a renderer's output changes for the same input,
so that a new release re-renders exactly what it must.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import names, yamlio
from reconciler.core.models import API_VERSION, ObjectKey, Resource, spec_data
from reconciler.core.settings import Settings

RENDER_VERSION = "2"  # 2: a Preview's default host is preview-<name>.<domain>
MANAGED_BY = "gitops-reconciler"
SOURCE_FILE = ".reconciler.json"
KUSTOMIZATION = "kustomization.yaml"
POOL_DIRECTORY = "platform/pgbouncer"


@dataclass(frozen=True)
class RenderedDir:
    """Everything one owner writes: its directory and the files in it (relative path -> bytes).

    ``input_hash`` identifies the inputs the files were rendered from; equal hashes mean
    equal files, which lets a resync skip rendering altogether.
    """

    directory: str
    files: Mapping[str, bytes]
    input_hash: str
    summary: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # what names.confined_path checks, the directory once and each file name once per
        # process (every tenant has the same few)
        names.check_relative_path(self.directory)
        for relative in self.files:
            _check_file_name(relative)


@functools.lru_cache(maxsize=1024)
def _check_file_name(relative: str) -> None:
    """Raise UnsafePathError unless ``relative`` is a clean relative path (cached: an
    unsafe one raises every time)."""
    names.check_relative_path(relative)


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, two-space indent, trailing newline).

    The bytes of ``json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)``: the
    standard library writes an indented document in pure Python (its C encoder does only
    compact output), which cost an import of 10,000 objects seconds; this writes the common
    types directly and leaves anything else to ``json`` (the tests compare the two).
    """
    out: list[str] = []
    try:
        _json_value(data, "\n", out)
    except _UnusualJSONError:
        out = [json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)]
    out.append("\n")
    return "".join(out).encode()


class _UnusualJSONError(Exception):
    """A value the fast JSON writer leaves to ``json`` (floats, non-string keys, ...)."""


_encode_string = json.encoder.encode_basestring  # the C version, as ensure_ascii=False uses


def _json_value(value: Any, newline: str, out: list[str]) -> None:
    """Append ``value`` written as ``json.dumps(indent=2, sort_keys=True)`` would, its
    nested lines starting with ``newline`` (a line break and the current indent)."""
    kind = type(value)
    if kind is str:
        out.append(_encode_string(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key in sorted(value):  # a non-str key (json turns it into one) fails the type check
            if type(key) is not str:
                raise _UnusualJSONError
            out.append(separator)
            out.append(_encode_string(key))
            out.append(": ")
            _json_value(value[key], inner, out)
            separator = "," + inner
        out.append(newline + "}")
    elif kind is list:
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _json_value(item, inner, out)
            separator = "," + inner
        out.append(newline + "]")
    elif kind is int:
        out.append(int.__repr__(value))
    elif value is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if value else "false")
    else:
        raise _UnusualJSONError


def digest(data: Any) -> str:
    """A short stable hash of JSON-able data."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:32]


def object_input_hash(obj: Resource, settings: Settings,
                      spec: Mapping[str, Any] | None = None) -> str:
    """Hash of everything an object's rendering depends on (``spec``: ``spec_data(obj)``
    when the caller has it already)."""
    return digest([RENDER_VERSION, obj.kind, obj.metadata.name,
                   spec_data(obj) if spec is None else spec, settings.fingerprint])


def spec_hash(obj: Resource) -> str:
    """Hash of the object's spec alone (the ``Reconciler-Spec-Hash`` trailer)."""
    return digest(spec_data(obj))


#: Database names pgbouncer reserves (its admin console): one such ``[databases]`` line makes
#: pgbouncer refuse its whole configuration, i.e. every tenant's connections.
POOL_RESERVED_NAMES = frozenset({"pgbouncer"})


def namespace_problem(obj: Resource, settings: Settings) -> str | None:
    """Why ``obj`` cannot be rendered under ``settings`` (None when fine).

    A name is a valid label on its own but the namespace pattern adds to it, so a long
    name can still make a namespace Kubernetes rejects; and a Customer with a database
    must not take a name the connection pool reserves.
    """
    if (obj.kind == "Customer" and obj.metadata.name in POOL_RESERVED_NAMES
            and obj.spec.features.database.enabled):
        return (f"metadata.name: {obj.metadata.name!r} is reserved by the connection pool "
                "(pgbouncer's admin console); a Customer with a database needs another name")
    pattern = (settings.namespace_pattern if obj.kind == "Customer"
               else settings.preview_namespace_pattern)
    namespace = pattern.replace("{name}", obj.metadata.name)
    if len(namespace) > names.DNS1123_LABEL_MAX:
        room = names.DNS1123_LABEL_MAX - (len(pattern) - len("{name}"))
        return (f"metadata.name: namespace {namespace!r} would be longer than 63 characters; "
                f"with namespace pattern {pattern!r} a name may have at most {room}")
    return None


#: Annotations that keep Argo CD and Flux from ever deleting what they carry (a tenant's
#: Namespace and its data volume), even when the tenant's directory is removed from Git.
KEEP_ON_PRUNE = {
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def labels_for(key: ObjectKey, component: str, app: str | None = None) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels (and the owner's label) for ``key``.

    ``app`` is the application's name (default: ``component``). The instance is the owner
    (as Helm uses its release name): with ``name`` it tells every workload apart, and like
    every value here it stays within the 63 characters a label value may have.
    """
    name = app or component
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": key.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": key.name,
        f"reconciler.ahoi.dev/{key.kind.lower()}": key.name,
    }


def kustomization(resources: list[str], extra: Mapping[str, Any] | None = None) -> bytes:
    """A kustomization.yaml listing ``resources`` in a stable order."""
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(resources),
    }
    doc.update(extra or {})
    return yamlio.dump_documents([doc])


def source_record(obj: Resource, input_hash: str,
                  spec: Mapping[str, Any] | None = None) -> bytes:
    """The file recording which resource a directory was rendered from (``spec``:
    ``spec_data(obj)`` when the caller has it already).

    kustomize, Argo CD and Flux never apply it (it is not listed in kustomization.yaml);
    rollback and audit read it back.
    """
    return canonical_json({
        "apiVersion": API_VERSION,
        "kind": obj.kind,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "generation": obj.metadata.generation,
        "inputHash": input_hash,
        "spec": spec_data(obj) if spec is None else spec,
    })


@dataclass(frozen=True, slots=True)  # one per object of the fleet: no __dict__
class SourceRecord:
    """A directory's source record read back from the repo."""

    kind: str
    name: str
    input_hash: str
    uid: str | None = None
    generation: int | None = None
    spec: Mapping[str, Any] | None = None
    databases: tuple[str, ...] = ()


def parse_source_record(raw: bytes) -> SourceRecord | None:
    """Read a source record back; None when it is missing or not ours."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # a human may commit anything, 5,000 nested [ too
        return None
    if not isinstance(data, dict) or not isinstance(data.get("inputHash"), str):
        return None
    generation = data.get("generation")
    spec = data.get("spec")
    databases = data.get("databases")
    return SourceRecord(
        kind=sys.intern(str(data.get("kind", ""))),  # one string per name for the process
        name=sys.intern(str(data.get("name", ""))),
        input_hash=data["inputHash"],
        uid=data["uid"] if isinstance(data.get("uid"), str) else None,
        generation=generation if isinstance(generation, int) else None,
        spec=spec if isinstance(spec, dict) else None,
        databases=tuple(str(d) for d in databases) if isinstance(databases, list) else (),
    )


def container_resources(cpu: str, memory: str) -> dict[str, Any]:
    """Requests equal to limits for memory, a CPU request: what the ResourceQuota needs."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def probes(handler: Mapping[str, Any], *, startup_seconds: int = 60) -> dict[str, Any]:
    """Startup, liveness and readiness probes sharing one check.

    The startup probe allows ``startup_seconds`` before liveness starts counting, so a slow
    start (a database replaying its WAL) is not killed; liveness then needs 3 failures in
    30 s, readiness takes the pod out of its Service after 2.
    """
    return {
        "startupProbe": {**handler, "periodSeconds": 5,
                         "failureThreshold": max(1, startup_seconds // 5)},
        "livenessProbe": {**handler, "periodSeconds": 10, "failureThreshold": 3,
                          "timeoutSeconds": 5},
        "readinessProbe": {**handler, "periodSeconds": 5, "failureThreshold": 2,
                           "timeoutSeconds": 3},
    }


def restricted_security() -> dict[str, Any]:
    """A container securityContext that satisfies the 'restricted' Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
