"""The Kubernetes adapter on the official client: the only module importing ``kubernetes``.

Translates client exceptions into the reconciler's errors (401/403 AccessDenied, 404
NotFound, 409 Conflict, 410 WatchExpired, 400/422 permanent, everything else a temporary
ClusterError) and raw API dicts in and out. Writes status with server-side apply under the
field manager ``gitops-reconciler`` and keeps Events within the API server's size limits.
Builds its own ApiClient, never the client library's global configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from reconciler.core import errors
from reconciler.core.leader import Lease
from reconciler.core.models import GROUP, VERSION
from reconciler.ports.cluster import RawObject, WatchEvent

log = logging.getLogger(__name__)
EVENTS_NAMESPACE = "default"  # the API server refuses other namespaces for cluster-scoped objects
FIELD_MANAGER = "gitops-reconciler"  # owner of the status fields in managedFields
EVENT_MESSAGE_BYTES = 1024  # the API server refuses (422) an Event whose message is longer
EVENT_FIELD_CHARS = 128  # reason and action: longer is refused too
LEASES = ("coordination.k8s.io", "v1", "leases")


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, or from the pod's service account when None."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    context=context, client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise errors.UserInputError(f"cannot load Kubernetes configuration: {exc}") from exc
    return client.ApiClient(configuration)


def _server_message(exc: ApiException) -> str:
    """The Status message the API server sent with an error ("" when there is none)."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else ""


_BY_STATUS: dict[int, type[errors.ReconcilerError]] = {
    404: errors.NotFoundError, 409: errors.ConflictError, 410: errors.WatchExpiredError,
    400: errors.PermanentError, 422: errors.PermanentError,
}


def _translate(exc: Exception, what: str) -> errors.ReconcilerError:
    if not isinstance(exc, ApiException):
        return errors.ClusterError(f"{what}: {type(exc).__name__}: {exc}")
    status = exc.status or 0
    detail = f"{what}: HTTP {status} {exc.reason}"
    if status in (401, 403):
        said = _server_message(exc)
        hint = ("the API server refused the credentials" if status == 401 else
                "grant it in the ServiceAccount's Role (deploy/base/rbac.yaml)")
        return errors.AccessDeniedError(f"{detail}: {said + '; ' if said else ''}{hint}")
    if status in (400, 422) and (said := _server_message(exc)):
        detail = f"{detail}: {said}"  # which field the server refused, and why
    return _BY_STATUS.get(status, errors.ClusterError)(detail)


def fit_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary, marked with
    an ellipsis when cut (the API server counts bytes, not characters)."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[:limit - len("…".encode())].decode(errors="ignore") + "…"


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    text = str(value).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(text).timestamp()


class KubeCluster:
    """The Cluster port on a kubernetes ApiClient."""

    def __init__(self, api: client.ApiClient) -> None:
        # the typed client models reject the raw dicts this adapter trades in: keep them Any
        self._api: Any = api
        self._custom: Any = client.CustomObjectsApi(api)

    def list_objects(self, plural: str) -> tuple[list[RawObject], str]:
        """Every object of ``plural`` and the list's resourceVersion."""
        try:
            raw: RawObject = self._custom.list_cluster_custom_object(GROUP, VERSION, plural)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _translate(exc, f"list {plural}") from exc
        return list(raw.get("items", [])), str(raw["metadata"]["resourceVersion"])

    def watch_objects(self, plural: str, resource_version: str,
                      timeout_seconds: int) -> Iterator[WatchEvent]:
        """Events after ``resource_version`` until the server ends the watch."""
        watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in watcher.stream(
                self._custom.list_cluster_custom_object, GROUP, VERSION, plural,
                resource_version=resource_version, allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
            ):
                raw = event["raw_object"]
                rv = (raw.get("metadata") or {}).get("resourceVersion")
                yield WatchEvent(event["type"], raw, rv)
        except (ApiException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise _translate(exc, f"watch {plural}") from exc
        finally:
            watcher.stop()

    def get_object(self, plural: str, name: str) -> RawObject | None:
        """One object, or None."""
        try:
            raw: RawObject = self._custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _translate(exc, f"get {plural}/{name}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _translate(exc, f"get {plural}/{name}") from exc
        return raw

    def patch_status(self, plural: str, name: str, status: Mapping[str, Any]) -> RawObject:
        """Server-side apply of the status subresource, as field manager ``gitops-reconciler``.

        Forced: the status fields are the reconciler's, so another manager's claim on one is
        taken over instead of failing with a conflict; fields of other writers that the
        reconciler does not send are left to them. Never creates the object (a 404 when it
        is gone, not a new object made of a status).
        """
        kind = {"customers": "Customer", "previews": "Preview"}.get(plural, plural)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                "metadata": {"name": name}, "status": dict(status)}
        try:
            raw: RawObject = self._custom.patch_cluster_custom_object_status(
                GROUP, VERSION, plural, name, body, field_manager=FIELD_MANAGER, force=True,
                _content_type="application/apply-patch+yaml")
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _translate(exc, f"patch {plural}/{name} status") from exc
        return raw

    def set_finalizers(self, plural: str, name: str, finalizers: list[str],
                       resource_version: str) -> RawObject:
        """Replace metadata.finalizers, guarded by ``resource_version``."""
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        try:
            raw: RawObject = self._custom.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, body)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _translate(exc, f"update {plural}/{name} finalizers") from exc
        return raw

    def remove_annotation(self, plural: str, name: str, annotation: str) -> None:
        """Drop one annotation with a merge patch (null deletes the key)."""
        body = {"metadata": {"annotations": {annotation: None}}}
        try:
            self._custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, body)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            error = _translate(exc, f"annotate {plural}/{name}")
            if not isinstance(error, errors.NotFoundError):
                raise error from exc

    def list_any(self, group: str, version: str, plural: str) -> list[RawObject]:
        """Objects of ``group/version/plural`` in every namespace; [] when not served."""
        try:
            raw: RawObject = self._custom.list_cluster_custom_object(group, version, plural)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            error = _translate(exc, f"list {plural}.{group}")
            if isinstance(error, errors.NotFoundError):
                return []
            raise error from exc
        return list(raw.get("items", []))

    def delete_object(self, plural: str, name: str) -> None:
        """Delete a Customer or Preview (its finalizers still run)."""
        try:
            self._custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            error = _translate(exc, f"delete {plural}/{name}")
            if not isinstance(error, errors.NotFoundError):
                raise error from exc

    def replace_spec(self, plural: str, name: str, spec: Mapping[str, Any],
                     resource_version: str) -> RawObject:
        """Replace the spec, guarded by ``resource_version``."""
        body = [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
                {"op": "replace", "path": "/spec", "value": dict(spec)}]
        try:
            raw: RawObject = self._custom.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, body,
                _content_type="application/json-patch+json")
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _translate(exc, f"update {plural}/{name} spec") from exc
        return raw

    def create_event(self, involved: RawObject, *, event_type: str, reason: str,
                     message: str, component: str, now: float) -> None:
        """Record a core/v1 Event about ``involved`` (failures are logged, not raised)."""
        meta = involved.get("metadata") or {}
        stamp = _iso(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}",
                         "namespace": EVENTS_NAMESPACE},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                "name": meta.get("name"), "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason[:EVENT_FIELD_CHARS],
            "message": fit_bytes(message, EVENT_MESSAGE_BYTES),
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": _micro(now),
            "action": reason[:EVENT_FIELD_CHARS],
            "count": 1,
        }
        try:
            self._post(f"/api/v1/namespaces/{EVENTS_NAMESPACE}/events", body)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            log.warning("could not record event %s: %s", reason, _translate(exc, "create event"))

    def _post(self, path: str, body: RawObject) -> None:
        """POST a raw object as JSON. The typed client would first turn it into its model and
        back, re-encoding timestamps: a MicroTime whose fraction is zero then loses its six
        digits, and the API server refuses it (400)."""
        params = self._api.param_serialize(
            method="POST", resource_path=path, body=body, auth_settings=["BearerToken"],
            header_params={"Content-Type": "application/json", "Accept": "application/json"})
        response = self._api.call_api(*params)
        response.read()
        self._api.response_deserialize(response, {"200": "object", "201": "object"})

    def read_lease(self, namespace: str, name: str) -> Lease | None:
        """The Lease, or None."""
        try:
            raw: RawObject = self._custom.get_namespaced_custom_object(
                *LEASES[:2], namespace, LEASES[2], name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _translate(exc, f"read lease {namespace}/{name}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise _translate(exc, f"read lease {namespace}/{name}") from exc
        spec = raw.get("spec") or {}
        return Lease(
            holder=spec.get("holderIdentity"),
            acquire_time=_seconds(spec.get("acquireTime")),
            renew_time=_seconds(spec.get("renewTime")),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 15),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=raw["metadata"]["resourceVersion"],
        )

    def write_lease(self, namespace: str, name: str, lease: Lease) -> Lease:
        """Create (no resource_version) or replace (guarded) the Lease."""
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "holderIdentity": lease.holder,
                "leaseDurationSeconds": lease.duration_seconds,
                "leaseTransitions": lease.transitions,
                "acquireTime": _micro(lease.acquire_time) if lease.acquire_time else None,
                "renewTime": _micro(lease.renew_time) if lease.renew_time else None,
            },
        }
        # raw dicts through the generic client, as for Events: no typed model re-encoding
        # the MicroTimes on the way
        try:
            if lease.resource_version is None:
                raw: RawObject = self._custom.create_namespaced_custom_object(
                    *LEASES[:2], namespace, LEASES[2], body)
            else:
                body["metadata"]["resourceVersion"] = lease.resource_version
                raw = self._custom.replace_namespaced_custom_object(
                    *LEASES[:2], namespace, LEASES[2], name, body)
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise _translate(exc, f"write lease {namespace}/{name}") from exc
        return Lease(lease.holder, lease.acquire_time, lease.renew_time, lease.duration_seconds,
                     lease.transitions, raw["metadata"]["resourceVersion"])
