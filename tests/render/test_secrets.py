"""Secrets without guessing: every Secret and key the manifests reference is documented,
and the optional ExternalSecret objects create them from a store without holding a value.

Also the per-Preview way to run images that need a specific UID (``spec.runAsUser``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from reconciler.core.models import Preview
from reconciler.core.render import customers, pool, previews
from reconciler.core.settings import ExternalSecrets, Settings
from tests.render import samples
from tests.render.test_consumers import KUBECTL, walk

STORE = ExternalSecrets(store="vault-backend", key_pattern="platform/{name}/postgres")
WITH_STORE = Settings(external_secrets=STORE)
READMES = (samples.ROOT / "README.md", samples.ROOT / "repo-layout" / "README.md")


def built(files: dict[str, bytes], tmp_path: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` builds from a rendered directory."""
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    proc = subprocess.run([str(KUBECTL), "kustomize", str(tmp_path)], capture_output=True,
                          text=True, check=True)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def referenced_secrets(objects: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    """(Secret name, key) of every secretKeyRef, and (name, None) of every secret volume."""
    refs: set[tuple[str, str | None]] = set()
    for node in (n for o in objects for n in walk(o) if isinstance(n, dict)):
        if "secretKeyRef" in node:
            refs.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        if isinstance(node.get("secret"), dict):
            refs.add((node["secret"]["secretName"], None))
    return refs


def test_every_referenced_secret_and_key_is_documented(tmp_path):
    """Each Secret name and key a tenant or the pool references is named in the README and
    in the config repo's README, so nobody has to guess what to create."""
    (tmp_path / "tenant").mkdir()
    (tmp_path / "pool").mkdir()
    objects = built(dict(customers.render_customer(samples.FULL_CUSTOMER, Settings()).files),
                    tmp_path / "tenant")
    objects += built(dict(samples.render_pool(samples.POOL_CUSTOMERS, Settings()).files),
                     tmp_path / "pool")
    refs = referenced_secrets(objects)
    assert refs == {("database-credentials", "password"), ("pgbouncer-userlist", None)}
    for readme in READMES:
        text = readme.read_text()
        for name, key in refs:
            assert f"`{name}`" in text, (readme, name)
            assert key is None or f"`{key}`" in text, (readme, key)
        assert f"`{pool.USERLIST_KEY}`" in text, readme


def test_tenant_external_secret_creates_the_referenced_secret_from_the_store(tmp_path):
    """With external_secrets set, a tenant with a database gets an ExternalSecret whose target
    is exactly the Secret its workloads reference, fetched from the configured store by key."""
    objects = built(dict(customers.render_customer(samples.FULL_CUSTOMER, WITH_STORE).files),
                    tmp_path)
    (external,) = [o for o in objects if o["kind"] == "ExternalSecret"]
    assert external["apiVersion"] == "external-secrets.io/v1"
    spec = external["spec"]
    assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "vault-backend"}
    assert spec["target"]["name"] == WITH_STORE.database_secret
    assert spec["data"] == [{"secretKey": "password", "remoteRef": {
        "key": "platform/full-tenant/postgres", "property": "password"}}]
    assert {(WITH_STORE.database_secret, "password")} == referenced_secrets(
        [o for o in objects if o["kind"] != "ExternalSecret"])
    bare = customers.render_customer(samples.BARE_CUSTOMER, WITH_STORE).files
    assert "externalsecret.yaml" not in bare  # no database, no credentials


def test_pool_external_secret_assembles_one_userlist_line_per_tenant(tmp_path):
    """The pool's ExternalSecret fetches each database tenant's password under its role and
    templates one "role" "password" line per key into userlist.txt (the pool test executes
    the template); its text holds names, no value."""
    objects = built(dict(samples.render_pool(samples.POOL_CUSTOMERS, WITH_STORE).files), tmp_path)
    (external,) = [o for o in objects if o["kind"] == "ExternalSecret"]
    spec = external["spec"]
    assert external["metadata"]["namespace"] == WITH_STORE.platform_namespace
    assert spec["target"]["name"] == WITH_STORE.pool_auth_secret
    assert [d["secretKey"] for d in spec["data"]] == ["alpha", "charlie", "delta"]  # not bravo
    assert {d["remoteRef"]["key"] for d in spec["data"]} == {
        f"platform/{n}/postgres" for n in ("alpha", "charlie", "delta")}
    assert spec["target"]["template"] == {"engineVersion": "v2",
                                          "data": {pool.USERLIST_KEY: pool.USERLIST_TEMPLATE}}
    many = samples.render_pool(tuple(samples.customer(f"t{i}", database=True) for i in range(50)),
                               WITH_STORE).files["externalsecret.yaml"]
    assert many.count(pool.USERLIST_TEMPLATE.encode()) == 1  # one template for any fleet


def test_no_external_secret_without_the_setting():
    """By default nothing but references to out-of-band Secrets is rendered."""
    assert "externalsecret.yaml" not in customers.render_customer(
        samples.FULL_CUSTOMER, Settings()).files
    assert "externalsecret.yaml" not in samples.render_pool(samples.POOL_CUSTOMERS, Settings()).files


def test_preview_run_as_user_runs_images_that_need_a_uid():
    """spec.runAsUser sets the pod's UID and GID (an image whose USER is root or a name then
    starts under the restricted standard); without it the image's own numeric USER is used."""
    def pod_security(preview: Preview) -> dict[str, Any]:
        app = yaml.safe_load_all(previews.render_preview(preview, Settings()).files["app.yaml"])
        return next(iter(app))["spec"]["template"]["spec"]["securityContext"]

    assert pod_security(samples.PREVIEW_OWN_HOST) == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert "runAsUser" not in pod_security(samples.PREVIEW_DEFAULT_HOST)
    raw = samples.PREVIEW_OWN_HOST.model_dump(mode="json")
    for bad in (0, -1, "1000"):
        raw["spec"]["runAsUser"] = bad
        with pytest.raises(pydantic.ValidationError, match="runAsUser"):
            Preview.model_validate(raw)
