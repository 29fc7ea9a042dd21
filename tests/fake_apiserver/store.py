"""The object store behind the fake API server: every object, the resourceVersion, the watches.

Owns: create/get/list/replace/patch/delete of raw objects for any served ``ResourceType``; the
global resourceVersion (incremented once per committed write, never for a no-op); optimistic
concurrency; finalizers (delete marks, removing the last finalizer removes); the cascades the
real server runs for a deleted Namespace or CRD; and starting/stopping CRD-defined types.
Everything happens under one lock, so watch events are queued in resourceVersion order.
Must not know about HTTP; callers pass parsed arguments and get raw objects or ``ApiError``.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from tests.fake_apiserver import errors, patches, resources, strategies, watches

RawObject = errors.RawObject
Predicate = Callable[[RawObject], bool]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_CRDS = (resources.CRD_GROUP, "customresourcedefinitions")
_NAMESPACES = ("", "namespaces")


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _untyped(raw_object: RawObject) -> RawObject:
    """Stored objects carry no apiVersion/kind: every version serves the same object."""
    return {k: v for k, v in raw_object.items() if k not in ("apiVersion", "kind")}


def present(rt: resources.ResourceType, version: str, raw_object: RawObject) -> RawObject:
    """A deep copy of a stored object as served under ``version``."""
    presented: RawObject = {"apiVersion": rt.api_version(version), "kind": rt.kind}
    for key, value in raw_object.items():
        if key not in presented:
            presented[key] = copy.deepcopy(value)
    return presented


class ObjectStore:
    """All objects of all served types, with their history for watches."""

    def __init__(self, *, history_limit: int = 1000, clock: Callable[[], str] = _utc_now) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._resource_version = 0
        self._buckets: dict[tuple[str, str], dict[tuple[str, str], RawObject]] = {}
        self._hub = watches.WatchHub(history_limit=history_limit)
        #: cleared by a test to hold new watch requests (they wait) until it is set again
        self.watch_gate = threading.Event()
        self.watch_gate.set()
        self.registry = resources.Registry()
        namespaces = self.registry.find("", "v1", "namespaces")
        assert namespaces is not None
        for name in BOOT_NAMESPACES:
            self.create(namespaces, "v1", None, {"metadata": {"name": name}})

    # -- reads ---------------------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Held while reading the registry for discovery, so it matches the stored CRDs."""
        return self._lock

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._resource_version

    def find_type(self, group: str, version: str, plural: str) -> resources.ResourceType | None:
        with self._lock:
            return self.registry.find(group, version, plural)

    def _existing(self, rt: resources.ResourceType, namespace: str | None, name: str) -> RawObject:
        found = self._buckets.get(rt.key, {}).get((namespace or "", name))
        if found is None:
            raise errors.not_found(group=rt.group, plural=rt.plural, name=name)
        return found

    def _selected(self, rt: resources.ResourceType, namespace: str | None,
                  predicate: Predicate) -> list[RawObject]:
        bucket = self._buckets.get(rt.key, {})
        return [bucket[key] for key in sorted(bucket)
                if (namespace is None or key[0] == namespace) and predicate(bucket[key])]

    def get(self, rt: resources.ResourceType, version: str, namespace: str | None,
            name: str) -> RawObject:
        with self._lock:
            return present(rt, version, self._existing(rt, namespace, name))

    def list_objects(self, rt: resources.ResourceType, version: str, namespace: str | None,
                     predicate: Predicate) -> RawObject:
        with self._lock:
            return {
                "apiVersion": rt.api_version(version),
                "kind": rt.list_kind,
                "metadata": {"resourceVersion": str(self._resource_version)},
                "items": [present(rt, version, raw)
                          for raw in self._selected(rt, namespace, predicate)],
            }

    # -- writes --------------------------------------------------------------------------------

    def _commit(self, rt: resources.ResourceType, event_type: str, new: RawObject,
                old: RawObject | None) -> RawObject:
        self._resource_version += 1
        new = {**_untyped(new), "metadata": {**new["metadata"],
                                            "resourceVersion": str(self._resource_version)}}
        key = (new["metadata"].get("namespace") or "", new["metadata"]["name"])
        bucket = self._buckets.setdefault(rt.key, {})
        if event_type == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = new
        self._hub.record(watches.Change(event_type, rt.key, self._resource_version, new, old))
        if rt.key == _CRDS:
            self._after_crd_write(new, deleted=event_type == "DELETED")
        elif event_type == "DELETED":
            self._after_removal(rt, new)
        return new

    def create(self, rt: resources.ResourceType, version: str, namespace: str | None,
               raw_body: RawObject, *, dry_run: bool = False) -> RawObject:
        with self._lock:
            strategies.check_body_type(rt, version, raw_body)
            if rt.namespaced:
                assert namespace is not None
                namespaces = self._buckets.get(_NAMESPACES, {})
                if ("", namespace) not in namespaces:
                    raise errors.not_found(group="", plural="namespaces", name=namespace)
                if namespaces[("", namespace)]["metadata"].get("deletionTimestamp"):
                    raise errors.ApiError(
                        code=403, reason="Forbidden",
                        message=f"unable to create new content in namespace {namespace} "
                        "because it is being terminated")
            self._refuse_while_crd_terminating(rt)
            new = strategies.prepare_for_create(
                rt, raw_body, namespace=namespace, uid=str(uuid.uuid4()), now=self._clock())
            name = new["metadata"]["name"]
            if (namespace or "", name) in self._buckets.get(rt.key, {}):
                raise errors.already_exists(group=rt.group, plural=rt.plural, name=name)
            if dry_run:
                return present(rt, version, new)
            return present(rt, version, self._commit(rt, "ADDED", new, None))

    def replace(self, rt: resources.ResourceType, version: str, namespace: str | None, name: str,
                raw_body: RawObject, *, subresource: str | None = None,
                dry_run: bool = False) -> RawObject:
        with self._lock:
            old = self._existing(rt, namespace, name)
            return self._update(rt, version, old, raw_body, subresource=subresource,
                                dry_run=dry_run, from_patch=False)

    def patch(self, rt: resources.ResourceType, version: str, namespace: str | None, name: str,
              *, content_type: str, raw_patch: object, subresource: str | None = None,
              dry_run: bool = False) -> RawObject:
        with self._lock:
            if content_type == STRATEGIC_MERGE_PATCH and not rt.custom:
                content_type = MERGE_PATCH
            if content_type == APPLY_PATCH:
                # server-side apply, approximated: no managedFields, so a field the applier
                # stops sending is kept, and lists are replaced whole (as a merge patch does)
                if not isinstance(raw_patch, dict) or not raw_patch.get("kind"):
                    raise errors.bad_request("apply patch must be an object with kind set")
                raw_patch = {k: v for k, v in raw_patch.items()
                             if k not in ("apiVersion", "kind", "metadata")}
                content_type = MERGE_PATCH
            if content_type not in (JSON_PATCH, MERGE_PATCH):
                strategic = () if rt.custom else (STRATEGIC_MERGE_PATCH,)
                raise errors.unsupported_media_type(
                    (JSON_PATCH, MERGE_PATCH, *strategic, APPLY_PATCH))
            old = self._existing(rt, namespace, name)
            current = present(rt, version, old)
            if content_type == MERGE_PATCH:
                if not isinstance(raw_patch, dict):
                    raise errors.bad_request("merge patch must be a JSON object")
                patched = patches.apply_merge_patch(current, raw_patch)
            else:
                patched = patches.apply_json_patch(current, raw_patch)
            return self._update(rt, version, old, patched, subresource=subresource,
                                dry_run=dry_run, from_patch=True)

    def _update(self, rt: resources.ResourceType, version: str, old: RawObject,
                raw_body: RawObject, *, subresource: str | None, dry_run: bool,
                from_patch: bool) -> RawObject:
        strategies.check_body_type(rt, version, raw_body)
        old_metadata, metadata = old["metadata"], raw_body.get("metadata") or {}
        name = old_metadata["name"]
        if metadata.get("name") and metadata["name"] != name:
            raise errors.bad_request(f"the name of the object ({metadata['name']}) does not "
                                     f"match the name on the URL ({name})")
        if metadata.get("namespace") not in (None, "", old_metadata.get("namespace")):
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        wanted_version = metadata.get("resourceVersion")
        if wanted_version and str(wanted_version) != old_metadata["resourceVersion"]:
            raise errors.conflict(group=rt.group, plural=rt.plural, name=name)
        if not wanted_version and not from_patch and not rt.allows_unconditional_update:
            raise errors.invalid(group=rt.group, kind=rt.kind, name=name,
                                 field="metadata.resourceVersion",
                                 why="Invalid value: 0x0: must be specified for an update")
        if metadata.get("uid") and metadata["uid"] != old_metadata["uid"]:
            raise errors.conflict(
                group=rt.group, plural=rt.plural, name=name,
                why=f"Precondition failed: UID in precondition: {metadata['uid']}, UID in "
                f"object meta: {old_metadata['uid']}")
        new = strategies.prepare_for_update(rt, raw_body, old, subresource=subresource,
                                            now=self._clock())
        if dry_run or _untyped(new) == _untyped(old):
            return present(rt, version, new)
        finalized = new["metadata"].get("deletionTimestamp") and not new["metadata"].get(
            "finalizers")
        committed = self._commit(rt, "DELETED" if finalized else "MODIFIED", new, old)
        return present(rt, version, committed)

    def delete(self, rt: resources.ResourceType, version: str, namespace: str | None, name: str,
               raw_options: RawObject, *, dry_run: bool = False) -> RawObject:
        with self._lock:
            old = self._existing(rt, namespace, name)
            strategies.check_delete_preconditions(rt, old, raw_options)
            if dry_run:
                return present(rt, version, old)
            gone, raw_object = self._delete_object(rt, old)
            if gone and not rt.custom and rt.key != _NAMESPACES:
                details = {"name": name, "group": rt.group, "kind": rt.plural,
                           "uid": old["metadata"]["uid"]}
                return {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "details": details}
            return present(rt, version, raw_object)

    def delete_collection(self, rt: resources.ResourceType, version: str,
                          namespace: str | None, predicate: Predicate, *,
                          dry_run: bool = False) -> RawObject:
        with self._lock:
            items = []
            for old in self._selected(rt, namespace, predicate):
                items.append(old if dry_run else self._delete_object(rt, old)[1])
            return {"apiVersion": rt.api_version(version), "kind": rt.list_kind,
                    "metadata": {"resourceVersion": str(self._resource_version)},
                    "items": [present(rt, version, raw) for raw in items]}

    # -- deletion and the cascades the real server runs ----------------------------------------

    def _delete_object(self, rt: resources.ResourceType, old: RawObject) -> tuple[bool, RawObject]:
        """Delete now, or only mark as deleting while finalizers (or contents) remain.

        Returns whether the object is gone, and its latest state.
        """
        key = (old["metadata"].get("namespace") or "", old["metadata"]["name"])
        if rt.key == _NAMESPACES:
            self._terminate_namespace(rt, old)
        elif old["metadata"].get("finalizers"):
            new = strategies.mark_deleting(old, now=self._clock())
            if new != old:
                self._commit(rt, "MODIFIED", new, old)
            if rt.key == _CRDS:
                self._cleanup_custom_resources(new)
        else:
            return True, self._commit(rt, "DELETED", old, old)
        current = self._buckets.get(rt.key, {}).get(key)
        return current is None, current or old

    def _after_removal(self, rt: resources.ResourceType, raw_object: RawObject) -> None:
        namespace = raw_object["metadata"].get("namespace")
        if namespace:
            self._release_namespace_if_empty(namespace)
        if rt.custom:
            self._release_crd_if_empty(rt)

    def _terminate_namespace(self, rt: resources.ResourceType, old: RawObject) -> None:
        """Mark the namespace Terminating, delete its contents, remove it once empty."""
        name = old["metadata"]["name"]
        if not old["metadata"].get("deletionTimestamp"):
            marked = strategies.mark_deleting(old, now=self._clock())
            marked["status"] = {"phase": "Terminating"}
            self._commit(rt, "MODIFIED", marked, old)
        for bucket_key in list(self._buckets):
            served, bucket = self.registry.by_key(bucket_key), self._buckets[bucket_key]
            for key in [key for key in bucket if key[0] == name]:
                current = bucket.get(key)
                if served is not None and current is not None:
                    self._delete_object(served, current)
        self._release_namespace_if_empty(name)

    def _release_namespace_if_empty(self, name: str) -> None:
        raw_namespace = self._buckets.get(_NAMESPACES, {}).get(("", name))
        if raw_namespace is None or not raw_namespace["metadata"].get("deletionTimestamp"):
            return
        if any(key[0] == name for bucket in self._buckets.values() for key in bucket):
            return
        namespaces = self.registry.by_key(_NAMESPACES)
        assert namespaces is not None
        self._commit(namespaces, "DELETED", raw_namespace, raw_namespace)

    def _refuse_while_crd_terminating(self, rt: resources.ResourceType) -> None:
        if not rt.custom:
            return
        raw_crd = self._buckets.get(_CRDS, {}).get(("", f"{rt.plural}.{rt.group}"))
        if raw_crd and raw_crd["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(code=405, reason="MethodNotAllowed",
                                  message="create not allowed while custom resource definition "
                                  "is terminating")

    def _after_crd_write(self, raw_crd: RawObject, *, deleted: bool) -> None:
        served = resources.resource_type_from_crd(raw_crd)
        if deleted:
            self.registry.remove(served.key)
            self._hub.end_streams(watches.StreamEnd.GRACEFUL, key=served.key)
        else:
            self.registry.add(served)

    def _cleanup_custom_resources(self, raw_crd: RawObject) -> None:
        """Delete every object of a terminating CRD; release the CRD once none is left."""
        rt = resources.resource_type_from_crd(raw_crd)
        bucket = self._buckets.get(rt.key, {})
        for key in list(bucket):
            current = bucket.get(key)
            if current is not None:
                self._delete_object(rt, current)
        self._release_crd_if_empty(rt)

    def _release_crd_if_empty(self, rt: resources.ResourceType) -> None:
        raw_crd = self._buckets.get(_CRDS, {}).get(("", f"{rt.plural}.{rt.group}"))
        if raw_crd is None or not raw_crd["metadata"].get("deletionTimestamp"):
            return
        if self._buckets.get(rt.key):
            return
        crd_type = self.registry.by_key(_CRDS)
        assert crd_type is not None
        released = strategies.without_finalizer(raw_crd, strategies.CRD_CLEANUP_FINALIZER)
        self._commit(crd_type, "DELETED" if not released["metadata"].get("finalizers")
                     else "MODIFIED", released, raw_crd)

    # -- watches -------------------------------------------------------------------------------

    def watch(self, rt: resources.ResourceType, version: str, namespace: str | None,
              predicate: Predicate, *, resource_version: str | None,
              send_initial_events: bool | None, allow_bookmarks: bool) -> watches.Watcher:
        """Open a watch; raises ``ApiError`` 410 when ``resource_version`` is too old."""
        with self._lock:
            watcher = watches.Watcher(key=rt.key, api_version=rt.api_version(version),
                                      kind=rt.kind, namespace=namespace, predicate=predicate)
            from_state = not resource_version or resource_version == "0"
            if send_initial_events or (from_state and send_initial_events is None):
                for raw_object in self._selected(rt, namespace, predicate):
                    watcher.push("ADDED", raw_object)
                if send_initial_events and allow_bookmarks:
                    watcher.push_bookmark(self._resource_version, initial_events_end=True)
                self._hub.subscribe(watcher, since=None)
                return watcher
            since = self._resource_version
            if not from_state:
                assert resource_version is not None
                if not resource_version.isdigit():
                    raise errors.bad_request(f'invalid resource version "{resource_version}"')
                since = int(resource_version)
            self._hub.subscribe(watcher, since=since)
            return watcher

    def unwatch(self, watcher: watches.Watcher) -> None:
        with self._lock:
            self._hub.unsubscribe(watcher)

    def bookmark(self, watcher: watches.Watcher) -> None:
        """Queue a BOOKMARK at the current resourceVersion behind every event already queued."""
        with self._lock:
            watcher.push_bookmark(self._resource_version)

    def compact(self) -> None:
        """Forget the history: watches from any older resourceVersion now get 410."""
        with self._lock:
            self._hub.compact(self._resource_version)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return self._hub.open_streams

    def end_watches(self, how: watches.StreamEnd) -> int:
        with self._lock:
            return self._hub.end_streams(how)
