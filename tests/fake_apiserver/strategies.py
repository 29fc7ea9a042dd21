"""What the server changes in a body before it stores it, per resource type (kube "strategies").

Owns: system metadata on create, carrying it over on update, the split between the main resource
and the status subresource, ``metadata.generation`` (bumped when anything outside metadata
changes; status is outside the comparison because the main resource cannot change it when a
status subresource exists), the finalizer rules, and the Namespace/CRD specifics.
Pure: the clock and the uid come in as arguments; no I/O, no storage.
"""

from __future__ import annotations

import copy
import random
import re

from tests.fake_apiserver import errors, resources

RawObject = errors.RawObject

_SYSTEM_FIELDS = (
    "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
    "generation", "resourceVersion", "name", "namespace",
)
_DROPPED_FIELDS = ("managedFields", "selfLink")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _invalid(rt: resources.ResourceType, name: str, field: str, why: str) -> errors.ApiError:
    return errors.invalid(group=rt.group, kind=rt.kind, name=name, field=field, why=why)


def check_body_type(rt: resources.ResourceType, version: str, raw_body: RawObject) -> None:
    """Reject a body whose apiVersion or kind names another type than the URL (HTTP 400)."""
    api_version, kind = raw_body.get("apiVersion"), raw_body.get("kind")
    if api_version and api_version != rt.api_version(version):
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version(version)})"
        )
    if kind and kind != rt.kind:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected "
                                 f"kind ({rt.kind})")


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))


def _name_for_create(rt: resources.ResourceType, metadata: RawObject) -> str:
    if not metadata.get("name") and metadata.get("generateName"):
        metadata["name"] = generate_name(metadata["generateName"])
    name = str(metadata.get("name") or "")
    if not name:
        raise _invalid(rt, name, "metadata.name",
                       "Required value: name or generateName is required")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise _invalid(rt, name, "metadata.name", f'Invalid value: "{name}": a lowercase RFC '
                       "1123 subdomain must consist of lower case alphanumeric characters, "
                       "'-' or '.', and must start and end with an alphanumeric character")
    return name


def prepare_for_create(
    rt: resources.ResourceType, raw_body: RawObject, *, namespace: str | None, uid: str, now: str
) -> RawObject:
    """Return the object to store for a create: names checked, system metadata filled in."""
    raw_object = copy.deepcopy(raw_body)
    metadata = raw_object.setdefault("metadata", {})
    if rt.namespaced:
        if metadata.get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    _name_for_create(rt, metadata)
    if metadata.get("resourceVersion"):
        raise errors.ApiError(code=500, reason="InternalError",
                              message="resourceVersion should not be set on objects to be created")
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                  *_DROPPED_FIELDS):
        metadata.pop(field, None)
    metadata["uid"] = uid
    metadata["creationTimestamp"] = now
    if rt.tracks_generation:
        metadata["generation"] = 1
    if rt.status_subresource:
        raw_object.pop("status", None)
    if rt.key == ("", "namespaces"):
        raw_object["status"] = {"phase": "Active"}
    elif rt.key == (resources.CRD_GROUP, "customresourcedefinitions"):
        resources.resource_type_from_crd(raw_object)
        finalizers = metadata.setdefault("finalizers", [])
        if CRD_CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CRD_CLEANUP_FINALIZER)
        raw_object = resources.default_crd(raw_object, now=now)
    return raw_object


def _without_metadata(raw_object: RawObject) -> RawObject:
    return {k: v for k, v in raw_object.items() if k not in ("metadata", "apiVersion", "kind")}


def _status_update(raw_body: RawObject, old: RawObject) -> RawObject:
    """A write to /status changes the status and nothing else."""
    new = copy.deepcopy(old)
    if "status" in raw_body:
        new["status"] = copy.deepcopy(raw_body["status"])
    else:
        new.pop("status", None)
    return new


def _check_no_new_finalizers(rt: resources.ResourceType, metadata: RawObject,
                             old_metadata: RawObject) -> None:
    if not old_metadata.get("deletionTimestamp"):
        return
    added = sorted(set(metadata.get("finalizers") or ()) - set(old_metadata.get("finalizers")
                                                                or ()))
    if added:
        raise _invalid(rt, old_metadata["name"], "metadata.finalizers",
                       "Forbidden: no new finalizers can be added if the object is being "
                       f"deleted, found new finalizers {added}")


def prepare_for_update(
    rt: resources.ResourceType,
    raw_body: RawObject,
    old: RawObject,
    *,
    subresource: str | None,
    now: str,
) -> RawObject:
    """Return the object to store for a PUT (or the result of a patch) over ``old``."""
    if subresource == "status":
        return _status_update(raw_body, old)
    new = copy.deepcopy(raw_body)
    if rt.status_subresource:
        new.pop("status", None)
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
    metadata = new.setdefault("metadata", {})
    old_metadata = old["metadata"]
    for field in _DROPPED_FIELDS:
        metadata.pop(field, None)
    for field in _SYSTEM_FIELDS:
        metadata.pop(field, None)
        if field in old_metadata:
            metadata[field] = old_metadata[field]
    _check_no_new_finalizers(rt, metadata, old_metadata)
    if rt.key == (resources.CRD_GROUP, "customresourcedefinitions"):
        resources.resource_type_from_crd(new)
        new = resources.default_crd(new, now=now)
        new["status"]["conditions"] = old["status"]["conditions"]
    if rt.tracks_generation and _without_metadata(new) != _without_metadata(old):
        new["metadata"]["generation"] = int(old_metadata.get("generation", 0)) + 1
    return new


def mark_deleting(old: RawObject, *, now: str) -> RawObject:
    """Return the object with deletionTimestamp set, as the server does when finalizers remain."""
    new = copy.deepcopy(old)
    metadata = new["metadata"]
    if metadata.get("deletionTimestamp"):
        return new
    if metadata.get("generation"):
        metadata["generation"] = int(metadata["generation"]) + 1
    metadata["deletionTimestamp"] = now
    metadata["deletionGracePeriodSeconds"] = 0
    return new


def without_finalizer(raw_object: RawObject, finalizer: str) -> RawObject:
    new = copy.deepcopy(raw_object)
    finalizers = [f for f in new["metadata"].get("finalizers") or () if f != finalizer]
    if finalizers:
        new["metadata"]["finalizers"] = finalizers
    else:
        new["metadata"].pop("finalizers", None)
    return new


def check_delete_preconditions(
    rt: resources.ResourceType, old: RawObject, raw_options: RawObject
) -> None:
    """Raise 409 when DeleteOptions.preconditions name another uid or resourceVersion."""
    preconditions = raw_options.get("preconditions") or {}
    metadata = old["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = preconditions.get(field)
        if wanted and wanted != metadata.get(field):
            raise errors.conflict(
                group=rt.group, plural=rt.plural, name=metadata["name"],
                why=f"Precondition failed: {label} in precondition: {wanted}, {label} in object "
                f"meta: {metadata.get(field)}",
            )
