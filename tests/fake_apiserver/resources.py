"""The resource types the fake API server serves: the built-ins and those defined by CRDs.

Owns: ``ResourceType`` (what a plural under a group/version is and how the server treats it),
the fixed built-in types, turning a CustomResourceDefinition into a ``ResourceType`` (with the
defaults and status the real server adds to a CRD), and the ``Registry`` that maps URLs to types.
Must not store objects or do I/O; the store decides when a CRD starts or stops being served.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from tests.fake_apiserver import errors

RawObject = errors.RawObject

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")
CRD_GROUP = "apiextensions.k8s.io"


@dataclass(frozen=True)
class ResourceType:
    """One served resource: a plural in a group, reachable under one or more versions."""

    group: str
    versions: tuple[str, ...]  # served versions, preferred first
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    tracks_generation: bool = False
    custom: bool = False  # defined by a CRD: no strategic merge patch, no unconditional update
    extra_field_labels: tuple[str, ...] = ()  # field selectors beyond metadata.name/namespace

    @property
    def key(self) -> tuple[str, str]:
        """The storage key: objects are shared by every version of a resource."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return errors.qualified_resource(self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def allows_unconditional_update(self) -> bool:
        """Whether PUT may omit metadata.resourceVersion (built-ins yes, CRDs and CRs no)."""
        return not self.custom and self.group != CRD_GROUP


_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        group="", versions=("v1",), plural="namespaces", singular="namespace",
        kind="Namespace", namespaced=False, short_names=("ns",), status_subresource=True,
    ),
    ResourceType(
        group="", versions=("v1",), plural="events", singular="event", kind="Event",
        namespaced=True, short_names=("ev",), extra_field_labels=_EVENT_FIELDS,
    ),
    ResourceType(
        group="events.k8s.io", versions=("v1",), plural="events", singular="event",
        kind="Event", namespaced=True, short_names=("ev",),
    ),
    ResourceType(
        group="coordination.k8s.io", versions=("v1",), plural="leases", singular="lease",
        kind="Lease", namespaced=True,
    ),
    ResourceType(
        group=CRD_GROUP, versions=("v1",), plural="customresourcedefinitions",
        singular="customresourcedefinition", kind="CustomResourceDefinition", namespaced=False,
        short_names=("crd", "crds"), categories=("api-extensions",), status_subresource=True,
        tracks_generation=True,
    ),
)

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key giving the kube-aware version order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > x."""
    match = _KUBE_VERSION.match(version)
    if match is None:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    stage_rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (stage_rank, -int(major), -int(minor or 0), version)


def _crd_invalid(name: str, field: str, why: str) -> errors.ApiError:
    return errors.invalid(
        group=CRD_GROUP, kind="CustomResourceDefinition", name=name, field=field, why=why
    )


def resource_type_from_crd(raw_crd: RawObject) -> ResourceType:
    """Validate a CRD body the way the server does (the parts we rely on) and describe its type."""
    name = str(raw_crd.get("metadata", {}).get("name", ""))
    spec = raw_crd.get("spec") or {}
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural, kind = names.get("plural") or "", names.get("kind") or ""
    if not group:
        raise _crd_invalid(name, "spec.group", "Required value")
    if not plural or not kind:
        raise _crd_invalid(name, "spec.names", "Required value: plural and kind are required")
    if name != f"{plural}.{group}":
        raise _crd_invalid(name, "metadata.name", 'must be spec.names.plural+"."+spec.group')
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        raise _crd_invalid(name, "spec.scope",
                           'Unsupported value: must be "Cluster" or "Namespaced"')
    raw_versions = spec.get("versions") or []
    if sum(1 for raw in raw_versions if raw.get("storage")) != 1:
        raise _crd_invalid(name, "spec.versions", "Invalid value: must have exactly one version "
                           "marked as storage version")
    served = [raw for raw in raw_versions if raw.get("served")]
    if not served:
        raise _crd_invalid(name, "spec.versions", "Invalid value: must serve at least one version")
    return ResourceType(
        group=group,
        versions=tuple(sorted((raw["name"] for raw in served), key=_version_priority)),
        plural=plural,
        singular=names.get("singular") or kind.lower(),
        kind=kind,
        namespaced=spec["scope"] == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        status_subresource=any("status" in (raw.get("subresources") or {}) for raw in served),
        tracks_generation=True,
        custom=True,
    )


def default_crd(raw_crd: RawObject, *, now: str) -> RawObject:
    """Return the CRD with the defaults and the Established status the real server fills in."""
    raw_crd = copy.deepcopy(raw_crd)
    spec = raw_crd["spec"]
    names = spec["names"]
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    spec.setdefault("conversion", {"strategy": "None"})
    storage = next(raw["name"] for raw in spec["versions"] if raw.get("storage"))
    previous = (raw_crd.get("status") or {}).get("storedVersions") or []
    raw_crd["status"] = {
        "acceptedNames": copy.deepcopy(names),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
        "storedVersions": sorted({*previous, storage}),
    }
    return raw_crd


class Registry:
    """The served resource types, looked up by URL; callers serialise access (the store lock)."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {rt.key: rt for rt in BUILTIN_TYPES}

    def add(self, rt: ResourceType) -> None:
        self._types[rt.key] = rt

    def remove(self, key: tuple[str, str]) -> None:
        self._types.pop(key, None)

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self._types.get(key)

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and version in rt.versions]

    def group_versions(self) -> dict[str, list[str]]:
        """Map each served group (``""`` is core) to its versions, preferred first."""
        by_group: dict[str, set[str]] = {}
        for rt in self._types.values():
            by_group.setdefault(rt.group, set()).update(rt.versions)
        return {group: sorted(versions, key=_version_priority)
                for group, versions in by_group.items()}
