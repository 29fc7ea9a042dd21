"""Settings: what the platform team configures once (domain, images, patterns, ...).

Pure: ``load_settings`` is given the config file's text and an environment mapping; it
reads neither itself. Precedence: defaults < config file < ``RECONCILER_*`` variables.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reconciler.core import names, yamlio

ENV_PREFIX = "RECONCILER_"


class Images(BaseModel):
    """Container images the rendered workloads run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str = "docker.io/library/postgres"  # tag is the Customer's database version
    scheduler: str = "ghcr.io/ahoi/scheduler:1.4.2"
    webhooks: str = "ghcr.io/ahoi/webhooks:1.4.2"
    pgbouncer: str = "docker.io/bitnami/pgbouncer:1.23.1"


class Settings(BaseModel):
    """Every setting, with its documented default (see README, "Settings")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = Field(default="example.com", description="Base domain of preview hosts.")
    namespace_pattern: str = Field(default="customer-{name}")
    preview_namespace_pattern: str = Field(default="preview-{name}")
    platform_namespace: str = Field(default="platform")
    storage_class: str | None = Field(default=None, description="None: the cluster default.")
    ingress_class: str = "nginx"
    ingress_namespace: str = Field(
        default="ingress-nginx", description="Namespace of the ingress controller (let in)."
    )
    cluster_issuer: str = Field(default="letsencrypt", description="cert-manager ClusterIssuer.")
    database_secret: str = Field(
        default="database-credentials",
        description="Secret (created out of band) holding each tenant database's password.",
    )
    pool_auth_secret: str = Field(default="pgbouncer-userlist")
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

    @field_validator("namespace_pattern", "preview_namespace_pattern")
    @classmethod
    def _pattern_has_name(cls, value: str) -> str:
        if "{name}" not in value or not names.is_dns1123_label(value.replace("{name}", "x")):
            raise ValueError("must contain {name} and form a DNS-1123 label")
        return value

    @field_validator("platform_namespace", "ingress_namespace")
    @classmethod
    def _namespace_is_a_label(cls, value: str) -> str:
        if not names.is_dns1123_label(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
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

    def render_fingerprint(self) -> str:
        """Hash of the settings that change rendered bytes (not author, branch, timing)."""
        relevant = self.model_dump(
            mode="json", exclude={"branch", "author_name", "author_email", "import_batch",
                                  "resync_seconds", "push_window_seconds",
                                  "human_change_policy", "orphan_grace_seconds",
                                  "removal_budget_min", "removal_budget_percent",
                                  "expiry_check_seconds", "applied_check_seconds"}
        )
        blob = json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()
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
