"""The API: Customer and Preview custom resources, their status, and object keys.

Pure. These pydantic models are the single source of truth for the resources: the CRDs
in ``crds/`` are generated from them (``reconciler crds``), and every object is validated
against them before anything is rendered.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reconciler.core import names

GROUP = "reconciler.ahoi.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?$"
GIT_SHA_PATTERN = r"^([0-9a-f]{40}|[0-9a-f]{64})$"
IMAGE_PATTERN = r"^[a-z0-9]([a-z0-9._/:@-]*[a-zA-Z0-9_.-])?$"

#: a quantity above zero: some digit before or after the point is not 0
POSITIVE_QUANTITY_PATTERN = (r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)"
                             r"(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
#: database storage: a positive size in G, Gi, T or Ti (at least 1Gi and at most the
#: max_database_storage setting are checked on the rendering, core/guards.py)
STORAGE_PATTERN = (r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)"
                   r"(Gi|Ti|G|T)$")
#: Service names (a Preview's app names its Service) are DNS-1035 labels: a letter first
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

Quantity = Annotated[str, Field(pattern=POSITIVE_QUANTITY_PATTERN, max_length=32)]
DnsLabel = Annotated[str, Field(pattern=names.DNS1123_LABEL.pattern, max_length=63)]


class _Spec(BaseModel):
    """Base of every spec part: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatabaseFeature(_Spec):
    """A PostgreSQL database for the tenant, listed in the shared connection pool."""

    enabled: bool = False
    storage: str = Field(default="10Gi", pattern=STORAGE_PATTERN, max_length=16,
                         description="Size of the data volume (G, Gi, T or Ti; at least "
                                     "1Gi); it may grow, never shrink.")
    version: Literal["14", "15", "16", "17"] = Field(default="16", description="PostgreSQL major.")


class SchedulerFeature(_Spec):
    """Background job workers for the tenant."""

    enabled: bool = False
    workers: int = Field(default=1, ge=1, le=100, description="Number of worker replicas.")


class WebhooksFeature(_Spec):
    """An HTTP endpoint receiving the tenant's webhooks."""

    enabled: bool = False
    replicas: int = Field(default=1, ge=1, le=20)


class Features(_Spec):
    """The optional parts a tenant can have."""

    database: DatabaseFeature = DatabaseFeature()
    scheduler: SchedulerFeature = SchedulerFeature()
    webhooks: WebhooksFeature = WebhooksFeature()


class Quota(_Spec):
    """Limits on what the tenant's namespace may request."""

    cpu: Quantity = "4"
    memory: Quantity = "8Gi"
    pods: int = Field(default=50, ge=1, le=10000)


class CustomerSpec(_Spec):
    """Desired state of a tenant."""

    displayName: str | None = Field(default=None, max_length=128)
    suspend: bool = Field(
        default=False, description="When true the reconciler writes no changes for this tenant."
    )
    features: Features = Features()
    quota: Quota = Quota()


class PreviewSpec(_Spec):
    """Desired state of one preview environment for one git branch of an app."""

    app: str = Field(pattern=DNS1035_LABEL_PATTERN, max_length=63,
                     description="Names the Service: a DNS-1035 label (starts with a letter).")
    branch: str = Field(min_length=1, max_length=255)
    commit: str = Field(pattern=GIT_SHA_PATTERN, description="Full commit SHA being previewed.")
    image: str = Field(pattern=IMAGE_PATTERN, max_length=512)
    host: str | None = Field(
        default=None,
        max_length=253,
        pattern=names.DNS1123_SUBDOMAIN.pattern,
        description="Overrides the default host preview-<name>.<domain>; must match "
                    "the preview_host_patterns setting.",
    )
    ttl: str | None = Field(
        default=None, pattern=DURATION_PATTERN, min_length=2, max_length=16,
        description="Time to live, e.g. 72h, 7d, 90m."
    )
    port: int = Field(default=8080, ge=1, le=65535)
    runAsUser: int | None = Field(
        default=None, ge=1, le=2147483647,
        description="UID (and GID) to run the image as: needed when the image's USER is root "
                    "or a name, which the restricted Pod Security Standard cannot verify.",
    )
    suspend: bool = False

    @field_validator("branch")
    @classmethod
    def _branch_is_a_ref_name(cls, value: str) -> str:
        if not is_valid_branch(value):
            raise ValueError(f"not a valid git branch name: {value!r}")
        return value


_BAD_BRANCH = re.compile(r"(\.\.|@\{|//|[\x00-\x20~^:?*\[\\\x7f])")


def is_valid_branch(value: str) -> bool:
    """Return whether ``value`` is acceptable to ``git check-ref-format --branch``."""
    return not (
        _BAD_BRANCH.search(value)
        or value.startswith(("/", "-", "."))
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
        or value == "@"
    )


class Condition(BaseModel):
    """A Kubernetes-style status condition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    lastTransitionTime: str | None = None
    observedGeneration: int | None = Field(default=None, ge=0)


class ObjectStatus(BaseModel):
    """What the reconciler last observed and did for an object."""

    model_config = ConfigDict(extra="allow")

    observedGeneration: int | None = None
    conditions: list[Condition] = []
    lastCommit: str | None = None
    renderedPath: str | None = None


class ObjectMeta(BaseModel):
    """The parts of Kubernetes object metadata the reconciler reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    uid: str | None = None
    generation: int | None = None
    resourceVersion: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    deletionTimestamp: str | None = None
    creationTimestamp: str | None = None
    finalizers: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name_is_a_dns_label(cls, value: str) -> str:
        if not names.is_dns1123_label(value):
            raise ValueError(
                f"{value!r} is not a DNS-1123 label (lowercase letters, digits and '-', "
                "at most 63 characters, starting and ending with a letter or digit)"
            )
        return value

    @field_validator("uid")
    @classmethod
    def _uid_is_a_uuid(cls, value: str | None) -> str | None:
        # it is copied into commit trailers: a newline there would forge other trailers
        if value is not None and not names.is_uid(value):
            raise ValueError(f"{value[:80]!r} is not a UID (a UUID such as "
                             "'2f6c1d1e-0000-4000-8000-000000000001')")
        return value


class Customer(BaseModel):
    """A tenant: its namespace and optional database, scheduler and webhooks."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    apiVersion: Literal["reconciler.ahoi.dev/v1alpha1"] = "reconciler.ahoi.dev/v1alpha1"
    kind: Literal["Customer"] = "Customer"
    metadata: ObjectMeta
    spec: CustomerSpec = CustomerSpec()
    status: ObjectStatus | None = None

    @property
    def key(self) -> ObjectKey:
        """The object's platform-wide key (made when asked: caching it in each model's
        ``__dict__`` cost ~250 bytes per object, 25 MB at 100,000 tenants)."""
        return key_of("Customer", self.metadata.name)


class Preview(BaseModel):
    """One preview environment for one branch of an app."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    apiVersion: Literal["reconciler.ahoi.dev/v1alpha1"] = "reconciler.ahoi.dev/v1alpha1"
    kind: Literal["Preview"] = "Preview"
    metadata: ObjectMeta
    spec: PreviewSpec
    status: ObjectStatus | None = None

    @property
    def key(self) -> ObjectKey:
        """The object's platform-wide key (made when asked, as for Customer)."""
        return key_of("Preview", self.metadata.name)


Resource = Customer | Preview

KINDS: dict[str, type[Customer] | type[Preview]] = {"Customer": Customer, "Preview": Preview}
PLURALS = {"Customer": "customers", "Preview": "previews"}
SINGULAR_PREFIX = {"Customer": "customer", "Preview": "preview"}
DIRECTORIES = {"Customer": "tenants", "Preview": "previews"}
#: directories rendered from all objects together (named in trailers, e.g. ``pool/pgbouncer``)
SHARED_DIRECTORIES = {"Pool": "platform"}


@dataclass(frozen=True, order=True, slots=True)
class ObjectKey:
    """Kind and name: the identity of a cluster-scoped resource, e.g. ``customer/acme``."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{SINGULAR_PREFIX.get(self.kind, self.kind.lower())}/{self.name}"

    @property
    def directory(self) -> str:
        """The directory of the config repo this object owns, e.g. ``tenants/acme``."""
        return f"{DIRECTORIES.get(self.kind) or SHARED_DIRECTORIES[self.kind]}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ObjectKey:
        """Parse ``customer/NAME`` or ``preview/NAME`` (kind names are case-insensitive)."""
        kind_text, sep, name = text.partition("/")
        kind = _KIND_PREFIXES.get(kind_text.lower())
        if not sep or kind is None:
            raise ValueError(f"expected customer/NAME or preview/NAME, got {text!r}")
        if not names.is_dns1123_label(name):
            raise ValueError(f"{name!r} is not a valid object name")
        return key_of(kind, sys.intern(name))  # shared with the listing's and the model's


#: key objects kept for reuse, per kind; the table is emptied when it holds this many
KEYS_KEPT = 1 << 18
_KEYS: dict[str, dict[str, ObjectKey]] = {}


def key_of(kind: str, name: str) -> ObjectKey:
    """The key of ``kind``/``name``, one object for all who ask (equal keys are equal
    anyway): a pass holds each object's key in half a dozen maps (sources, snapshot,
    ownership, verdicts), ~25 MB of copies at 100,000 tenants. A memo, so still pure."""
    table = _KEYS.get(kind)
    if table is None:
        table = _KEYS[kind] = {}
    key = table.get(name)
    if key is None:
        if len(table) >= KEYS_KEPT:
            table.clear()
        key = table[name] = ObjectKey(kind, name)
    return key


#: the kind a key's prefix names (``customer``, ``Customer``, ``customers``): built once, as
#: a restart parses a key for every object an import commit's trailers name
_KIND_PREFIXES = {**{v: k for k, v in SINGULAR_PREFIX.items()}, **{k.lower(): k for k in KINDS},
                  **{v: k for k, v in PLURALS.items()}}


def spec_data(obj: Resource) -> dict[str, Any]:
    """The object's spec as plain JSON-able data with every default filled in."""
    return obj.spec.model_dump(mode="json")
