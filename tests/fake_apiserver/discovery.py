"""Legacy (non-aggregated) discovery documents, built from the served resource types.

Owns: the bodies of ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>`` and
``/apis/<group>/<version>``. kubectl asks for aggregated discovery first and falls back to these
when the answer is plain ``application/json``. Pure functions over a ``Registry``; no I/O.
"""

from __future__ import annotations

from tests.fake_apiserver import resources

RawObject = resources.RawObject

SERVER_VERSION: RawObject = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def core_versions(server_address: str) -> RawObject:
    """The ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> RawObject:
    entries = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def group_list(registry: resources.Registry) -> RawObject:
    """The ``/apis`` document: every named group, built-ins first, then CRD groups by name."""
    served = registry.group_versions()
    builtin = list(dict.fromkeys(rt.group for rt in resources.BUILTIN_TYPES if rt.group))
    names = [name for name in builtin if name in served]
    names += sorted(name for name in served if name and name not in builtin)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name, served[name]) for name in names],
    }


def group(registry: resources.Registry, name: str) -> RawObject | None:
    """The ``/apis/<group>`` document, or None when the group is not served."""
    versions = registry.group_versions().get(name)
    if not name or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _resource_entries(rt: resources.ResourceType) -> list[RawObject]:
    main: RawObject = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(resources.ALL_VERBS),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    entries = [main]
    if rt.status_subresource:
        entries.append({
            "name": f"{rt.plural}/status",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(resources.STATUS_VERBS),
        })
    return entries


def resource_list(registry: resources.Registry, group: str, version: str) -> RawObject | None:
    """The ``/api/v1`` or ``/apis/<group>/<version>`` document, or None when not served."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for rt in sorted(types, key=lambda rt: rt.plural)
                      for entry in _resource_entries(rt)],
    }
