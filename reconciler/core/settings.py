"""Settings: what the platform team configures once (domain, images, patterns, ...).

Pure: ``load_settings`` is given the config file's text and an environment mapping; it
reads neither itself. Precedence: defaults < config file < ``RECONCILER_*`` variables.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reconciler.core import names, quantities, selection, yamlio

ENV_PREFIX = "RECONCILER_"


#: ``registry/path[:tag][@sha256:<64 hex>]``: a tag, a digest, or both (pinned).
IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$")


def _check_image(value: str) -> str:
    if not IMAGE_REFERENCE.fullmatch(value):
        raise ValueError(f"{value!r} is not an image reference (name[:tag][@sha256:digest])")
    return value


class Images(BaseModel):
    """Container images the rendered workloads run; each may be pinned by digest.

    Where the defaults come from is documented in the README ("Images").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A repository: the tag is the Customer's database version, unless ``database_pins``
    #: names a full reference for that version.
    database: str = "docker.io/library/postgres"
    #: PostgreSQL major version -> full image reference (e.g. with ``@sha256:`` digest).
    database_pins: dict[str, str] = {}
    scheduler: str = "ghcr.io/ahoi/scheduler:1.4.2"
    webhooks: str = "ghcr.io/ahoi/webhooks:1.4.2"
    pgbouncer: str = "ghcr.io/cloudnative-pg/pgbouncer:1.24.1"

    @field_validator("database", "scheduler", "webhooks", "pgbouncer")
    @classmethod
    def _is_a_reference(cls, value: str) -> str:
        return _check_image(value)

    @field_validator("database_pins")
    @classmethod
    def _pins_are_references(cls, value: dict[str, str]) -> dict[str, str]:
        for version, reference in value.items():
            if "@" not in _check_image(reference):
                raise ValueError(f"pin for version {version!r} must contain @sha256:<digest>")
        return value

    def database_image(self, version: str) -> str:
        """The image of a PostgreSQL ``version``: its pin, else the repository at that tag."""
        return self.database_pins.get(version) or f"{self.database}:{version}"


class ExternalSecrets(BaseModel):
    """Where External Secrets Operator finds the credentials (``ExternalSecret`` objects)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(description="Name of the SecretStore or ClusterSecretStore.")
    store_kind: Literal["ClusterSecretStore", "SecretStore"] = "ClusterSecretStore"
    key_pattern: str = Field(
        default="tenants/{name}/database",
        description="Remote key of a tenant's database credentials ({name}: the Customer).")
    refresh_interval: str = Field(default="1h", pattern=r"^[0-9]+(s|m|h)$")

    @field_validator("key_pattern")
    @classmethod
    def _pattern_has_name(cls, value: str) -> str:
        if "{name}" not in value or not value.isprintable():
            raise ValueError("must contain {name} (and no control characters)")
        return value

    @field_validator("store")
    @classmethod
    def _store_is_a_name(cls, value: str) -> str:
        if not names.is_dns1123_subdomain(value):
            raise ValueError(f"{value!r} is not a valid object name")
        return value


class PreviewQuota(BaseModel):
    """The ResourceQuota of every preview namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: str = Field(default="1", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str = Field(default="1Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$")
    pods: int = Field(default=5, ge=1, le=1000)


class Settings(BaseModel):
    """Every setting, with its documented default (see README, "Settings")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = Field(default="example.com", description="Base domain of preview hosts.")
    namespace_pattern: str = Field(default="customer-{name}")
    preview_namespace_pattern: str = Field(default="preview-{name}")
    platform_namespace: str = Field(default="platform")
    storage_class: str | None = Field(
        default=None,
        description="Storage class of tenant database volumes (None: the cluster default). "
                    "Growing a volume needs a class with allowVolumeExpansion: true.")
    ingress_class: str = "nginx"
    ingress_namespace: str = Field(
        default="ingress-nginx", description="Namespace of the ingress controller (let in)."
    )
    cluster_issuer: str = Field(default="letsencrypt", description="cert-manager ClusterIssuer.")
    database_secret: str = Field(
        default="database-credentials",
        description="Secret (created out of band) holding each tenant database's password.",
    )
    pool_auth_secret: str = Field(
        default="pgbouncer-userlist",
        description="Secret (created out of band) in the platform namespace holding the pool's "
                    "userlist.txt, one line per tenant database role.",
    )
    external_secrets: ExternalSecrets | None = Field(
        default=None,
        description="When set, ExternalSecret objects (external-secrets.io) are rendered that "
                    "create the database and pool Secrets from this store.",
    )
    database_run_as_user: int = Field(
        default=999, ge=1, description="UID (and GID) of the database image's postgres user.")
    pool_run_as_user: int = Field(default=998, ge=1, description="UID of the pgbouncer image.")
    pool_run_as_group: int = Field(default=996, ge=1, description="GID of the pgbouncer image.")
    pool_replicas: int = Field(default=2, ge=1, le=50)
    preview_quota: PreviewQuota = PreviewQuota()
    images: Images = Images()
    branch: str = "main"
    author_name: str = "gitops-reconciler"
    author_email: str = "gitops-reconciler@localhost"
    import_batch: int = Field(
        default=100,
        ge=1,
        description="A pass creating more objects than this adds them in one import commit.",
    )
    resync_seconds: int = Field(default=300, ge=5)
    human_change_policy: Literal["report", "overwrite"] = Field(
        default="report",
        description="What to do when a human reverted or edited an object's files.",
    )
    orphan_grace_seconds: float = Field(
        default=0, ge=0,
        description="In the cluster, how long a directory with no resource is only reported "
                    "before it is pruned.",
    )
    removal_budget_min: int = Field(
        default=5, ge=0,
        description="One pass removes at most max(this, removal_budget_percent of the kind) "
                    "objects of a kind; beyond it nothing is removed until confirmed.",
    )
    removal_budget_percent: float = Field(default=10.0, ge=0, le=100)
    expiry_check_seconds: float = Field(default=60, ge=1)
    applied_check_seconds: float = Field(default=30, ge=1)
    push_window_seconds: float = Field(
        default=10.0, ge=0,
        description="A remote is pushed once its oldest unpushed commit is this old.",
    )
    selector: str = Field(
        default="",
        description="Label selector of the objects this instance owns (a split fleet).",
    )
    shard: str = Field(
        default="", description="INDEX/COUNT: own only this hash shard of object names.")
    layout: Literal["flat", "sharded"] = Field(
        default="flat",
        description="Tenant directories: flat tenants/<name>/, or sharded "
                    "tenants/_<first 2 hex of sha256(name)>/<name>/ for large fleets.")
    rerender_batch: int = Field(
        default=5000, ge=1,
        description="A settings change re-rendering objects commits them this many at a time.",
    )
    max_database_storage: str = Field(
        default="1Ti", description="Largest spec.features.database.storage accepted.")
    preview_host_patterns: tuple[str, ...] = Field(
        default=("preview-*.{domain}",),
        description="Hosts a Preview may use; '*' stands for one DNS label part, {domain} "
                    "for the domain setting. Comma-separated in the environment.")
    max_source_file_bytes: int = Field(
        default=1 << 20, ge=1, description="Larger source files are refused unread.")
    max_source_documents: int = Field(
        default=1000, ge=1, description="Source files with more YAML documents are refused.")

    @field_validator("namespace_pattern", "preview_namespace_pattern")
    @classmethod
    def _pattern_has_name(cls, value: str) -> str:
        if "{name}" not in value or not names.is_dns1123_label(value.replace("{name}", "x")):
            raise ValueError("must contain {name} and form a DNS-1123 label")
        return value

    @field_validator("database_secret", "pool_auth_secret")
    @classmethod
    def _secret_is_a_name(cls, value: str) -> str:
        if not names.is_dns1123_subdomain(value):
            raise ValueError(f"{value!r} is not a valid Secret name")
        return value

    @field_validator("platform_namespace", "ingress_namespace")
    @classmethod
    def _namespace_is_a_label(cls, value: str) -> str:
        if not names.is_dns1123_label(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
        return value

    @field_validator("selector")
    @classmethod
    def _selector_parses(cls, value: str) -> str:
        selection.parse_selector(value)
        return value

    @field_validator("shard")
    @classmethod
    def _shard_parses(cls, value: str) -> str:
        selection.parse_shard(value)
        return value

    def owns(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether this instance's selector and shard select the object."""
        return selection.selected(name, labels, self.selector, self.shard)
    @field_validator("max_database_storage")
    @classmethod
    def _storage_is_a_quantity(cls, value: str) -> str:
        try:
            size = quantities.parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a quantity") from exc
        if size < quantities.GI:
            raise ValueError(f"{value!r} is below the 1Gi minimum of database storage")
        return value

    @field_validator("preview_host_patterns", mode="before")
    @classmethod
    def _patterns_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # RECONCILER_PREVIEW_HOST_PATTERNS=a,b
            return tuple(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list):
            return tuple(value)
        return value

    @field_validator("preview_host_patterns")
    @classmethod
    def _patterns_are_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            example = pattern.replace("{domain}", "example.com").replace("*", "x")
            if not names.is_dns1123_subdomain(example):
                raise ValueError(f"{pattern!r} is not a host pattern (DNS name, '*', {{domain}})")
        return value

    @field_validator("domain")
    @classmethod
    def _domain_is_dns(cls, value: str) -> str:
        if not names.is_dns1123_subdomain(value):
            raise ValueError(f"{value!r} is not a DNS name")
        return value

    @functools.cached_property
    def fingerprint(self) -> str:
        """``render_fingerprint()``, computed once (settings are immutable)."""
        return self.render_fingerprint()

    def render_settings(self) -> dict[str, Any]:
        """The settings that change rendered bytes (not author, branch, timing), as JSON data."""
        return self.model_dump(
            mode="json", exclude={"branch", "author_name", "author_email", "import_batch",
                                  "resync_seconds", "push_window_seconds",
                                  "human_change_policy", "orphan_grace_seconds",
                                  "removal_budget_min", "removal_budget_percent",
                                  "expiry_check_seconds", "applied_check_seconds",
                                  "rerender_batch", "selector", "shard", "layout",
                                  "max_database_storage", "preview_host_patterns",
                                  "max_source_file_bytes", "max_source_documents"}
        )

    def render_fingerprint(self) -> str:
        """Hash of ``render_settings()``."""
        blob = json.dumps(self.render_settings(), sort_keys=True,
                          separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class SettingsError(ValueError):
    """The configuration is invalid; the message names the setting."""


def load_settings(config_text: str | None, environ: Mapping[str, str]) -> Settings:
    """Build Settings from a YAML config text (or None) and ``RECONCILER_*`` variables.

    Nested image settings are ``RECONCILER_IMAGES_<NAME>``, e.g. ``RECONCILER_IMAGES_PGBOUNCER``.
    """
    data: dict[str, Any] = {}
    if config_text:
        try:
            loaded = yamlio.load_document(config_text)
        except yamlio.YAMLError as exc:
            raise SettingsError(f"config file is not valid YAML: {exc}".splitlines()[0]) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError("config file must be a mapping of setting names to values")
        data.update(loaded or {})
    raw_images = data.get("images") or {}
    if not isinstance(raw_images, dict):
        raise SettingsError("setting images: must be a mapping of image names to references")
    images = dict(raw_images)
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        field = key[len(ENV_PREFIX):].lower()
        if field.startswith("images_"):
            images[field[len("images_"):]] = value
        elif field in Settings.model_fields and field != "images":
            data[field] = value
    if images:
        data["images"] = images
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SettingsError(f"setting {where}: {err['msg']}") from exc
