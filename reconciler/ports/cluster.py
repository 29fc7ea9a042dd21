"""The cluster port: list, watch and update Customers and Previews; Events; Leases."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.core.leader import Lease

RawObject = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED or BOOKMARK."""

    type: str
    raw_object: RawObject
    resource_version: str | None


class Cluster(Protocol):
    """The Kubernetes API, as far as the controller needs it."""

    def list_objects(self, plural: str) -> tuple[list[RawObject], str]:
        """Every object of ``plural`` and the list's resourceVersion."""

    def watch_objects(self, plural: str, resource_version: str,
                      timeout_seconds: int) -> Iterator[WatchEvent]:
        """Events after ``resource_version``; raises WatchExpiredError on 410."""

    def get_object(self, plural: str, name: str) -> RawObject | None:
        """One object, or None."""

    def patch_status(self, plural: str, name: str, status: Mapping[str, Any]) -> RawObject:
        """Merge-patch the status subresource."""

    def set_finalizers(self, plural: str, name: str, finalizers: list[str],
                       resource_version: str) -> RawObject:
        """Replace metadata.finalizers, guarded by ``resource_version`` (409 on conflict)."""

    def remove_annotation(self, plural: str, name: str, annotation: str) -> None:
        """Drop one annotation (no error when it is already gone)."""

    def list_any(self, group: str, version: str, plural: str) -> list[RawObject]:
        """Objects of any namespaced kind in all namespaces; [] when the kind is not served."""

    def delete_object(self, plural: str, name: str) -> None:
        """Delete a Customer or Preview (finalizers still apply)."""

    def replace_spec(self, plural: str, name: str, spec: Mapping[str, Any],
                     resource_version: str) -> RawObject:
        """Replace the spec, guarded by ``resource_version``."""

    def create_event(self, involved: RawObject, *, event_type: str, reason: str,
                     message: str, component: str, now: float) -> None:
        """Record a Kubernetes Event about ``involved``."""

    def read_lease(self, namespace: str, name: str) -> Lease | None:
        """The Lease, or None."""

    def write_lease(self, namespace: str, name: str, lease: Lease) -> Lease:
        """Create (no resource_version) or replace (guarded) the Lease."""
