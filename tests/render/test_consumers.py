"""Real consumers: every rendered directory builds with `kubectl kustomize` and the built
manifests pass `kubernetes-validate --strict`; then what a cluster would get is checked.

kubernetes-validate exits 0 when every resource passed, 1 when one failed validation, 2 on an
internal error, but also 0 for a kind it has no schema for (it only prints WARN), so the
tests also require one "passed" line per built object and no WARN or ERROR line.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.models import Customer, Preview, Resource
from reconciler.core.render import common, previews
from reconciler.core.settings import Settings
from tests.render import samples

BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
KUBERNETES_VALIDATE = BIN / "kubernetes-validate"
SECRET_KEY = re.compile(r"(?i)pass(word|wd)|token|api_?key")
SECRET_ASSIGNMENT = re.compile(r"(?im)^[ \t-]*\"?[\w.-]*(pass(word|wd)|token)[\w.-]*\"?\s*[:=]")


@dataclass(frozen=True)
class Case:
    """One rendered directory: what it was rendered from, and what it became."""

    label: str
    rendered: common.RenderedDir
    settings: Settings
    objects: tuple[Resource, ...]  # the Customer or Preview, or every Customer of a pool


def all_cases() -> list[Case]:
    """Every example object and the examples' pool, plus generated variants."""
    examples = samples.example_objects()
    example_customers = tuple(o for o in examples if isinstance(o, Customer))
    cases = [Case(f"example-{o.metadata.name}", samples.render_object(o, samples.DEFAULT),
                  samples.DEFAULT, (o,)) for o in examples]
    cases.append(Case("example-pool", samples.render_pool(example_customers, samples.DEFAULT),
                      samples.DEFAULT, example_customers))
    for name, settings in samples.SETTINGS.items():
        for obj in (samples.FULL_CUSTOMER, samples.BARE_CUSTOMER, samples.PREVIEW_DEFAULT_HOST,
                    samples.PREVIEW_OWN_HOST):
            cases.append(Case(f"{name}-{obj.metadata.name}", samples.render_object(obj, settings),
                              settings, (obj,)))
        cases.append(Case(f"{name}-pool-empty", samples.render_pool((), settings), settings, ()))
        cases.append(Case(f"{name}-pool-three", samples.render_pool(samples.POOL_CUSTOMERS, settings),
                          settings, samples.POOL_CUSTOMERS))
    return cases


@dataclass(frozen=True)
class Built:
    """The outcome of `kubectl kustomize` on one case's directory."""

    case: Case
    returncode: int
    stderr: str
    output: Path  # the built YAML stream
    objects: tuple[dict[str, Any], ...]


def build(case: Case, root: Path) -> Built:
    """Write the case's files to disk and build them with the real kustomize."""
    directory = root / "repo" / case.rendered.directory.replace("/", "__") / case.label
    for rel, data in case.rendered.files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    proc = subprocess.run([str(KUBECTL), "kustomize", str(directory)],
                          capture_output=True, text=True, check=False)
    output = root / "built" / f"{case.label}.yaml"
    output.write_text(proc.stdout)
    objects = tuple(d for d in yaml.safe_load_all(proc.stdout) if d) if proc.returncode == 0 else ()
    return Built(case, proc.returncode, proc.stderr, output, objects)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Built]:
    """Every case built with `kubectl kustomize`, in parallel (label -> result)."""
    root = tmp_path_factory.mktemp("consumers")
    (root / "built").mkdir()
    cases = all_cases()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: build(c, root), cases))
    return {b.case.label: b for b in results}


@pytest.fixture(scope="module")
def validation(built) -> subprocess.CompletedProcess[str]:
    """One `kubernetes-validate --strict` run over every built stream."""
    files = [str(b.output) for b in built.values() if b.returncode == 0]
    return subprocess.run([str(KUBERNETES_VALIDATE), "--strict", *files],
                          capture_output=True, text=True, check=False)


def of_kind(b: Built, kind: str) -> list[dict[str, Any]]:
    """The built objects of one kind."""
    return [o for o in b.objects if o["kind"] == kind]


def cases_where(built: dict[str, Built], wanted: type) -> list[Built]:
    """The built directories rendered from a single object of type ``wanted``."""
    return [b for b in built.values()
            if b.case.rendered.directory != common.POOL_DIRECTORY
            and isinstance(b.case.objects[0], wanted)]


def pool_cases(built: dict[str, Built]) -> list[Built]:
    """The built pool directories."""
    return [b for b in built.values() if b.case.rendered.directory == common.POOL_DIRECTORY]


def walk(node: Any):
    """Every mapping and scalar inside a decoded document."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# -- the consumers accept everything -------------------------------------------------------


def test_every_rendered_directory_builds_with_kustomize(built):
    """`kubectl kustomize DIR` succeeds on every rendered directory and yields objects."""
    failures = {label: b.stderr for label, b in built.items() if b.returncode != 0}
    assert not failures
    assert all(b.objects for b in built.values())
    assert len(built) >= 18


def test_every_built_manifest_passes_strict_validation(built, validation):
    """kubernetes-validate --strict accepts every built object: exit 0, one "passed" line per
    object, and no kind it could not find a schema for."""
    assert validation.returncode == 0, validation.stdout + validation.stderr
    lines = validation.stdout.splitlines()
    assert not [line for line in lines if not line.startswith("INFO ")], validation.stdout
    passed = [line for line in lines if " passed for resource " in line]
    assert len(passed) == sum(len(b.objects) for b in built.values())


def test_kustomization_lists_every_manifest_and_not_the_source_record(built):
    """Everything rendered except the source record reaches the build; the source record
    (.reconciler.json) is never applied."""
    for b in built.values():
        files = set(b.case.rendered.files)
        assert common.SOURCE_FILE in files
        kustomization = yaml.safe_load(b.case.rendered.files[common.KUSTOMIZATION])
        listed = set(kustomization["resources"])
        listed |= {f for g in kustomization.get("configMapGenerator", []) for f in g["files"]}
        assert listed == files - {common.SOURCE_FILE, common.KUSTOMIZATION}, b.case.label
        assert not [o for o in b.objects if o.get("apiVersion", "").startswith("reconciler.")]


# -- what a tenant gets --------------------------------------------------------------------


def test_database_volume_claim_requests_exactly_the_customer_storage(built):
    """The database StatefulSet's one volumeClaimTemplate requests exactly the Customer's
    storage, with the configured storage class or, by default, none (the cluster default)."""
    checked = 0
    for b in cases_where(built, Customer):
        customer = b.case.objects[0]
        database = customer.spec.features.database
        statefulsets = of_kind(b, "StatefulSet")
        if not database.enabled:
            assert statefulsets == []
            continue
        (statefulset,) = statefulsets
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"] == {"storage": database.storage}
        assert claim["spec"].get("storageClassName") == b.case.settings.storage_class
        checked += 1
    assert checked >= 4  # acme, big-client-0815, and the full tenant under both settings


def test_scheduler_replicas_equal_workers(built):
    """The scheduler Deployment runs exactly `workers` replicas, and exists only when enabled."""
    checked = 0
    for b in cases_where(built, Customer):
        scheduler = b.case.objects[0].spec.features.scheduler
        deployments = [d for d in of_kind(b, "Deployment") if d["metadata"]["name"] == "scheduler"]
        if not scheduler.enabled:
            assert deployments == []
            continue
        (deployment,) = deployments
        assert deployment["spec"]["replicas"] == scheduler.workers
        checked += 1
    assert checked >= 4


def test_everything_a_customer_owns_lives_in_its_namespace(built):
    """Every namespaced object of a tenant is in the namespace the pattern gives it, and
    that Namespace is part of the build."""
    for b in cases_where(built, Customer):
        name = b.case.objects[0].metadata.name
        namespace = b.case.settings.namespace_pattern.replace("{name}", name)
        assert [n["metadata"]["name"] for n in of_kind(b, "Namespace")] == [namespace]
        others = [o for o in b.objects if o["kind"] != "Namespace"]
        assert {o["metadata"]["namespace"] for o in others} == {namespace}


def test_webhooks_ingress_has_tls_for_its_host(built):
    """An enabled webhooks feature gets an Ingress at <name>.hooks.<domain> with TLS for it."""
    checked = 0
    for b in cases_where(built, Customer):
        customer = b.case.objects[0]
        ingresses = of_kind(b, "Ingress")
        if not customer.spec.features.webhooks.enabled:
            assert ingresses == []
            continue
        (ingress,) = ingresses
        host = f"{customer.metadata.name}.hooks.{b.case.settings.domain}"
        assert [r["host"] for r in ingress["spec"]["rules"]] == [host]
        assert [t["hosts"] for t in ingress["spec"]["tls"]] == [[host]]
        checked += 1
    assert checked >= 3


# -- what a preview gets -------------------------------------------------------------------


def ingress_hosts(b: Built) -> tuple[list[str], list[str]]:
    """The preview Ingress's rule hosts and TLS hosts."""
    (ingress,) = of_kind(b, "Ingress")
    return ([r["host"] for r in ingress["spec"]["rules"]],
            [h for t in ingress["spec"]["tls"] for h in t["hosts"]])


def test_preview_host_is_its_name_under_the_domain_with_tls(built):
    """Without spec.host the preview is served at preview-<name>.<domain>, over TLS."""
    b = built["example-campaigns-feat-xyz"]
    assert ingress_hosts(b) == (["preview-campaigns-feat-xyz.example.com"],
                                ["preview-campaigns-feat-xyz.example.com"])
    custom = built["custom-shop-feat-login"]
    assert ingress_hosts(custom) == (["preview-shop-feat-login.apps.corp.test"],
                                     ["preview-shop-feat-login.apps.corp.test"])


def test_spec_host_overrides_the_default_host(built):
    """spec.host replaces the default host in the rule, the TLS entry and PUBLIC_URL."""
    for label in ("example-billing-fix-invoices", "default-shop-fix-cart", "custom-shop-fix-cart"):
        b = built[label]
        preview = b.case.objects[0]
        assert isinstance(preview, Preview)
        host = preview.spec.host
        assert host is not None
        assert ingress_hosts(b) == ([host], [host])
        assert host != previews.preview_host(preview.model_copy(
            update={"spec": preview.spec.model_copy(update={"host": None})}), b.case.settings)
        (deployment,) = of_kind(b, "Deployment")
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]
               ["containers"][0]["env"]}
        assert env["PUBLIC_URL"] == f"https://{host}"


def test_preview_runs_its_image_at_its_commit(built):
    """The preview Deployment runs spec.image and its Service routes to it."""
    for b in cases_where(built, Preview):
        preview = b.case.objects[0]
        assert isinstance(preview, Preview)
        (deployment,) = of_kind(b, "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == preview.spec.image
        assert container["ports"][0]["containerPort"] == preview.spec.port
        (service,) = of_kind(b, "Service")
        assert service["spec"]["selector"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()
        namespace = previews.namespace_of(preview.metadata.name, b.case.settings)
        assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in b.objects} == {namespace}


# -- the shared connection pool ------------------------------------------------------------


def pool_databases(b: Built) -> list[str]:
    """The [databases] lines of the pgbouncer.ini that kustomize put in the ConfigMap."""
    (config_map,) = of_kind(b, "ConfigMap")
    parser = configparser.ConfigParser(delimiters=("=",), comment_prefixes=(";",))
    parser.read_string(config_map["data"]["pgbouncer.ini"])
    return [f"{k} = {v}" for k, v in parser.items("databases")]


def test_pool_lists_one_line_per_database_customer_in_name_order(built):
    """pgbouncer.ini has exactly one [databases] line per Customer with a database, sorted by
    name, pointing at that tenant's database Service."""
    for b in pool_cases(built):
        settings = b.case.settings
        with_db = sorted(c.metadata.name for c in b.case.objects
                         if isinstance(c, Customer) and c.spec.features.database.enabled)
        expected = [f"{n} = host=database.{settings.namespace_pattern.replace('{name}', n)}"
                    f".svc.cluster.local port=5432 dbname=app" for n in with_db]
        assert pool_databases(b) == expected
    assert pool_databases(built["example-pool"])[0].startswith("acme = ")
    assert [line.split(" ")[0] for line in pool_databases(built["default-pool-three"])] == [
        "alpha", "charlie", "delta"]
    assert pool_databases(built["default-pool-empty"]) == []


def test_pool_configmap_change_rolls_the_pool(built):
    """The pool mounts the generated, content-hashed ConfigMap, so a new database list gives
    a new ConfigMap name and a rollout."""
    names = set()
    for b in pool_cases(built):
        (config_map,) = of_kind(b, "ConfigMap")
        (deployment,) = of_kind(b, "Deployment")
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
        assert config_map["metadata"]["name"].startswith("pgbouncer-config-")
        assert config_map["metadata"]["namespace"] == b.case.settings.platform_namespace
        names.add((b.case.settings.platform_namespace, config_map["metadata"]["name"]))
    assert len(names) == len(pool_cases(built))


# -- no secret material --------------------------------------------------------------------


def test_no_secret_and_no_password_value_is_rendered(built):
    """No Secret object is rendered and no password has a literal value: credentials are only
    referenced (secretKeyRef, a secret volume), in the built output and in every raw file."""
    for b in built.values():
        assert not of_kind(b, "Secret"), b.case.label
        for node in (n for o in b.objects for n in walk(o) if isinstance(n, dict)):
            assert not [k for k in node if SECRET_KEY.search(k)], b.case.label
            if isinstance(node.get("name"), str) and SECRET_KEY.search(node["name"]):
                assert "value" not in node and "secretKeyRef" in node["valueFrom"], b.case.label
        for rel, data in b.case.rendered.files.items():
            text = data.decode()
            assert not SECRET_ASSIGNMENT.search(text), (b.case.label, rel)
            assert "kind: Secret" not in text, (b.case.label, rel)
    referenced = [b for b in cases_where(built, Customer) if of_kind(b, "StatefulSet")]
    assert referenced  # the check above did meet a password reference
