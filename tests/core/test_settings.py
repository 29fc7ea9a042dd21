"""Settings: documented defaults, the config file, RECONCILER_* variables winning over it,
errors naming the setting, and which settings count as changing the rendered bytes."""

from __future__ import annotations

import re

import pytest

from reconciler import app
from reconciler.core import errors
from reconciler.core.render import customers, previews
from reconciler.core.settings import Settings, SettingsError, load_settings
from tests.render import samples


def test_defaults_are_the_documented_ones():
    """Without a file or variables the domain is example.com and the README's defaults hold."""
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.domain == "example.com"
    assert settings.namespace_pattern == "customer-{name}"
    assert settings.preview_namespace_pattern == "preview-{name}"
    assert settings.platform_namespace == "platform"
    assert settings.storage_class is None
    assert (settings.ingress_class, settings.ingress_namespace) == ("nginx", "ingress-nginx")
    assert settings.cluster_issuer == "letsencrypt"
    assert (settings.database_secret, settings.pool_auth_secret) == (
        "database-credentials", "pgbouncer-userlist")
    assert (settings.branch, settings.import_batch, settings.resync_seconds) == ("main", 100, 300)
    assert settings.max_database_storage == "1Ti"
    assert settings.preview_host_patterns == ("preview-*.{domain}",)
    assert (settings.max_source_file_bytes, settings.max_source_documents) == (1 << 20, 1000)


def test_host_patterns_come_comma_separated_from_the_environment():
    """RECONCILER_PREVIEW_HOST_PATTERNS=a,b is a list of two patterns."""
    settings = load_settings(None, {"RECONCILER_PREVIEW_HOST_PATTERNS":
                                    "preview-*.{domain}, *.review.corp.example"})
    assert settings.preview_host_patterns == ("preview-*.{domain}", "*.review.corp.example")


def test_config_file_values_are_used():
    """Values in the config file replace the defaults, nested images included."""
    text = ("domain: corp.example\nstorage_class: fast-ssd\nnamespace_pattern: t-{name}\n"
            "images:\n  scheduler: registry.corp/scheduler:2.0\nresync_seconds: 60\n")
    settings = load_settings(text, {})
    assert settings.domain == "corp.example"
    assert settings.storage_class == "fast-ssd"
    assert settings.namespace_pattern == "t-{name}"
    assert settings.images.scheduler == "registry.corp/scheduler:2.0"
    assert settings.images.pgbouncer == Settings().images.pgbouncer
    assert settings.resync_seconds == 60


def test_environment_overrides_the_file():
    """RECONCILER_* variables win over the file; other variables are ignored."""
    text = "domain: corp.example\nstorage_class: fast-ssd\n"
    env = {"RECONCILER_DOMAIN": "env.example", "RECONCILER_RESYNC_SECONDS": "30",
           "DOMAIN": "ignored.example", "HOME": "/root"}
    settings = load_settings(text, env)
    assert settings.domain == "env.example"
    assert settings.storage_class == "fast-ssd"
    assert settings.resync_seconds == 30


def test_image_variable_sets_one_image():
    """RECONCILER_IMAGES_PGBOUNCER sets the pool image and leaves the file's other images."""
    text = "images:\n  pgbouncer: file/pgbouncer:1\n  webhooks: file/webhooks:1\n"
    settings = load_settings(text, {"RECONCILER_IMAGES_PGBOUNCER": "env/pgbouncer:2"})
    assert settings.images.pgbouncer == "env/pgbouncer:2"
    assert settings.images.webhooks == "file/webhooks:1"
    rendered = samples.render_pool(samples.POOL_CUSTOMERS, settings)
    assert b"image: env/pgbouncer:2" in rendered.files["deployment.yaml"]


@pytest.mark.parametrize(("text", "env", "setting"), [
    pytest.param("domain: Not_A_Domain\n", {}, "domain", id="domain"),
    pytest.param(None, {"RECONCILER_DOMAIN": "a..b"}, "domain", id="domain-env"),
    pytest.param("namespace_pattern: tenant\n", {}, "namespace_pattern", id="pattern-without-name"),
    pytest.param("namespace_pattern: Tenant-{name}\n", {}, "namespace_pattern", id="pattern-uppercase"),
    pytest.param("preview_namespace_pattern: pr_{name}\n", {}, "preview_namespace_pattern",
                 id="preview-pattern"),
    pytest.param(None, {"RECONCILER_RESYNC_SECONDS": "soon"}, "resync_seconds", id="not-a-number"),
    pytest.param(None, {"RECONCILER_RESYNC_SECONDS": "1"}, "resync_seconds", id="too-small"),
    pytest.param("import_batch: 0\n", {}, "import_batch", id="import-batch-0"),
    pytest.param("storage_class: [a]\n", {}, "storage_class", id="storage-class-list"),
    pytest.param("images:\n  pgbouncer: 5\n", {}, "images.pgbouncer", id="image-number"),
])
def test_bad_value_names_the_setting(text, env, setting):
    """A bad value is a SettingsError naming the setting, on one line."""
    with pytest.raises(SettingsError) as caught:
        load_settings(text, env)
    message = str(caught.value)
    assert message.startswith(f"setting {setting}: "), message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "env", "setting"), [
    pytest.param("domian: corp.example\n", {}, "domian", id="typo"),
    pytest.param("images:\n  pgbouncr: x/y:1\n", {}, "images.pgbouncr", id="image-typo"),
    pytest.param(None, {"RECONCILER_IMAGES_POSTGRES": "x/y:1"}, "images.postgres", id="image-env-typo"),
])
def test_unknown_settings_are_rejected(text, env, setting):
    """An unknown key in the file (or an unknown image variable) is an error naming it."""
    with pytest.raises(SettingsError, match=f"^setting {setting}: Extra inputs are not permitted"):
        load_settings(text, env)


@pytest.mark.parametrize("text", ["domain: [\n", "- domain\n- example.com\n", "just words\n"])
def test_config_that_is_not_a_mapping_is_refused(text):
    """A config file that is not YAML, or not a mapping, is a one-line SettingsError."""
    with pytest.raises(SettingsError) as caught:
        load_settings(text, {})
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("config file ")


def test_bad_config_file_is_a_user_error_naming_the_file(tmp_path):
    """Through the composition root, a bad file becomes a user error naming the file."""
    config = tmp_path / "reconciler.yaml"
    config.write_text("domain: Not_A_Domain\n")
    with pytest.raises(errors.UserInputError, match=f"^{re.escape(str(config))}: setting domain: "):
        app.settings_from(config, {})
    config.write_text("domain: corp.example\n")
    assert app.settings_from(config, {"RECONCILER_STORAGE_CLASS": "fast"}).storage_class == "fast"
    with pytest.raises(errors.UserInputError, match=r"missing\.yaml"):
        app.settings_from(tmp_path / "missing.yaml", {})


@pytest.mark.parametrize(("text", "env", "setting"), [
    pytest.param("images: 5\n", {}, "images", id="images-number"),
    pytest.param("images: registry.corp\n", {}, "images", id="images-string"),
    pytest.param("images: [a, b]\n", {}, "images", id="images-list"),
    pytest.param(None, {"RECONCILER_DOMAIN": "example.com\n"}, "domain", id="domain-trailing-newline"),
    pytest.param('namespace_pattern: "t-{name}\\n"\n', {}, "namespace_pattern",
                 id="pattern-trailing-newline"),
    pytest.param("platform_namespace: Shared Platform\n", {}, "platform_namespace",
                 id="platform-namespace"),
    pytest.param(None, {"RECONCILER_INGRESS_NAMESPACE": "ingress_nginx"}, "ingress_namespace",
                 id="ingress-namespace"),
    pytest.param("max_database_storage: 500Mi\n", {}, "max_database_storage",
                 id="max-storage-below-1gi"),
    pytest.param("max_database_storage: lots\n", {}, "max_database_storage",
                 id="max-storage-not-a-quantity"),
    pytest.param(None, {"RECONCILER_PREVIEW_HOST_PATTERNS": "preview_*.{domain}"},
                 "preview_host_patterns", id="host-pattern-not-dns"),
    pytest.param("max_source_file_bytes: 0\n", {}, "max_source_file_bytes", id="size-limit-0"),
    pytest.param(None, {"RECONCILER_DATABASE_SECRET": "DB Creds"}, "database_secret",
                 id="database-secret"),
    pytest.param("pool_auth_secret: 'a\\nb'\n", {}, "pool_auth_secret", id="pool-secret"),
    pytest.param("external_secrets: {store: 'Vault Store'}\n", {}, "external_secrets.store",
                 id="store-name"),
    pytest.param("external_secrets: {store: vault, key_pattern: tenants/db}\n", {},
                 "external_secrets.key_pattern", id="key-pattern-without-name"),
    pytest.param("external_secrets: {store: vault, refresh_interval: often}\n", {},
                 "external_secrets.refresh_interval", id="refresh-interval"),
])
def test_values_that_would_break_rendering_are_refused(text, env, setting):
    """Values that would otherwise reach rendered manifests broken (a non-mapping images,
    a trailing newline from $(cat ...), a namespace Kubernetes rejects) are refused by name,
    not with a traceback."""
    with pytest.raises(SettingsError) as caught:
        load_settings(text, env)
    assert str(caught.value).startswith(f"setting {setting}: "), str(caught.value)
    assert "\n" not in str(caught.value)


RENDERING = {
    "domain": "corp.example",
    "storage_class": "fast-ssd",
    "namespace_pattern": "t-{name}",
    "preview_namespace_pattern": "pr-{name}",
    "platform_namespace": "db",
    "ingress_class": "traefik",
    "cluster_issuer": "internal-ca",
    "database_secret": "pg-creds",
    "images": {"database": "mirror/postgres"},
    "external_secrets": {"store": "vault"},
    "database_run_as_user": 70,
    "pool_run_as_user": 1001,
    "pool_replicas": 3,
    "preview_quota": {"pods": 3},
}
NOT_RENDERING = {
    "branch": "rendered",
    "author_name": "Someone Else",
    "author_email": "someone@corp.example",
    "import_batch": 7,
    "resync_seconds": 60,
    "max_database_storage": "4Ti",
    "preview_host_patterns": ["*.review.corp.example"],
    "max_source_file_bytes": 4096,
    "max_source_documents": 10,
}


@pytest.mark.parametrize(("field", "value"), list(RENDERING.items()))
def test_rendering_setting_changes_fingerprint_and_output(field, value):
    """A setting that changes rendered bytes changes render_fingerprint(), so a new value
    re-renders every object."""
    changed = Settings.model_validate({field: value})
    assert changed.render_fingerprint() != Settings().render_fingerprint()
    before = render_everything(Settings())
    after = render_everything(changed)
    assert before != after


@pytest.mark.parametrize(("field", "value"), list(NOT_RENDERING.items()))
def test_non_rendering_setting_keeps_fingerprint_and_output(field, value):
    """Author, branch and timing settings neither change the fingerprint nor the output."""
    changed = Settings.model_validate({field: value})
    assert changed.render_fingerprint() == Settings().render_fingerprint()
    assert render_everything(changed) == render_everything(Settings())


def render_everything(settings: Settings) -> dict[str, bytes]:
    """Every file the samples render under ``settings`` (Customer, Preview and pool)."""
    out: dict[str, bytes] = {}
    for rendered in (customers.render_customer(samples.FULL_CUSTOMER, settings),
                     previews.render_preview(samples.PREVIEW_DEFAULT_HOST, settings),
                     samples.render_pool(samples.POOL_CUSTOMERS, settings)):
        out.update({f"{rendered.directory}/{rel}": data for rel, data in rendered.files.items()})
    return out


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("reference", [
    "ghcr.io/cloudnative-pg/pgbouncer:1.24.1",
    f"ghcr.io/cloudnative-pg/pgbouncer:1.24.1@{DIGEST}",
    f"registry.corp:5000/mirror/pgbouncer@{DIGEST}",
])
def test_images_may_be_pinned_by_digest(reference):
    """Every image setting takes a tag, a digest, or both, and renders exactly that."""
    settings = load_settings(None, {"RECONCILER_IMAGES_PGBOUNCER": reference,
                                    "RECONCILER_IMAGES_SCHEDULER": reference})
    assert f"image: {reference}".encode() in samples.render_pool(
        samples.POOL_CUSTOMERS, settings).files["deployment.yaml"]
    assert f"image: {reference}".encode() in customers.render_customer(
        samples.FULL_CUSTOMER, settings).files["scheduler.yaml"]


@pytest.mark.parametrize("reference", ["Upper/Case:1", "x/y:1 ; rm -rf /", "x/y@sha256:short",
                                       "x/y:1\n", "-x/y:1"])
def test_a_malformed_image_reference_is_refused_by_name(reference):
    """An image that is not a reference is one clear line naming the setting."""
    with pytest.raises(SettingsError, match=r"^setting images.webhooks: .*not an image reference"):
        load_settings(None, {"RECONCILER_IMAGES_WEBHOOKS": reference})


def test_database_versions_are_pinned_by_digest():
    """images.database_pins pins a PostgreSQL major version to a digest; other versions keep
    the repository at the version's tag, and a pin without a digest is refused."""
    text = f"images:\n  database_pins:\n    '15': docker.io/library/postgres:15.10@{DIGEST}\n"
    settings = load_settings(text, {})
    assert settings.images.database_image("15") == f"docker.io/library/postgres:15.10@{DIGEST}"
    assert settings.images.database_image("16") == "docker.io/library/postgres:16"
    database = customers.render_customer(samples.FULL_CUSTOMER, settings).files["database.yaml"]
    assert f"image: docker.io/library/postgres:15.10@{DIGEST}".encode() in database  # v15
    with pytest.raises(SettingsError, match=r"^setting images.database_pins: .*@sha256"):
        load_settings("images:\n  database_pins:\n    '15': postgres:15.10\n", {})


def test_default_images_are_the_documented_ones():
    """The defaults are those the README names (and says where they come from)."""
    images = Settings().images
    assert images.pgbouncer == "ghcr.io/cloudnative-pg/pgbouncer:1.24.1"
    assert images.database == "docker.io/library/postgres"
    readme = (samples.ROOT / "README.md").read_text()
    for reference in (images.pgbouncer, images.database, images.scheduler, images.webhooks):
        assert f"`{reference}`" in readme, reference
