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
    """The database keeps its data on one standalone claim (a volumeClaimTemplate could never
    grow) requesting exactly the Customer's storage, with the configured storage class or, by
    default, none (the cluster default); the StatefulSet mounts that claim."""
    checked = 0
    for b in cases_where(built, Customer):
        customer = b.case.objects[0]
        database = customer.spec.features.database
        statefulsets = of_kind(b, "StatefulSet")
        if not database.enabled:
            assert statefulsets == [] and of_kind(b, "PersistentVolumeClaim") == []
            continue
        (statefulset,) = statefulsets
        assert "volumeClaimTemplates" not in statefulset["spec"]
        (claim,) = of_kind(b, "PersistentVolumeClaim")
        assert claim["metadata"]["name"] == "data-database-0"  # what the old template made
        assert claim["spec"]["resources"]["requests"] == {"storage": database.storage}
        assert claim["spec"].get("storageClassName") == b.case.settings.storage_class
        volumes = statefulset["spec"]["template"]["spec"]["volumes"]
        assert volumes == [{"name": "data", "persistentVolumeClaim": {
            "claimName": claim["metadata"]["name"]}}]
        checked += 1
    assert checked >= 4  # acme, big-client-0815, and the full tenant under both settings


def test_tenant_namespace_and_data_survive_a_removed_directory(built):
    """The tenant Namespace and its data claim tell Argo CD and Flux never to prune or delete
    them, so removing a tenant's directory from Git never deletes its volume."""
    checked = 0
    for b in cases_where(built, Customer):
        for obj in of_kind(b, "Namespace") + of_kind(b, "PersistentVolumeClaim"):
            annotations = obj["metadata"]["annotations"]
            assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
            assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
            checked += 1
        for obj in of_kind(b, "Deployment") + of_kind(b, "StatefulSet"):
            assert "argocd.argoproj.io/sync-options" not in obj["metadata"].get("annotations", {})
    assert checked >= 10  # every tenant Namespace, and the claim of each database


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


# -- workload hygiene ----------------------------------------------------------------------

RECOMMENDED = ("name", "instance", "component", "part-of", "managed-by")
#: The selectors shipped since the first release: a Deployment's or StatefulSet's selector is
#: immutable, so a render that changed one could never be applied to a running cluster.
SHIPPED_SELECTORS = {
    ("StatefulSet", "database"): {"app.kubernetes.io/name": "database"},
    ("Deployment", "scheduler"): {"app.kubernetes.io/name": "scheduler"},
    ("Deployment", "webhooks"): {"app.kubernetes.io/name": "webhooks"},
    ("Deployment", "pgbouncer"): {"app.kubernetes.io/name": "pgbouncer"},
}


def pod_templates(b: Built) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) of every Deployment and StatefulSet built."""
    return [(o, o["spec"]["template"]) for o in b.objects
            if o["kind"] in ("Deployment", "StatefulSet")]


def test_every_object_and_pod_carries_the_recommended_labels(built):
    """Every built object and every pod template has all five app.kubernetes.io labels, so a
    tenant's (or the pool's) pods can be selected by label."""
    for b in built.values():
        labelled = [o["metadata"] for o in b.objects] + [t["metadata"] for _, t in pod_templates(b)]
        for meta in labelled:
            missing = [k for k in RECOMMENDED if f"app.kubernetes.io/{k}" not in meta["labels"]]
            assert not missing, (b.case.label, meta.get("name"), missing)
        for workload, template in pod_templates(b):
            assert workload["metadata"]["labels"]["app.kubernetes.io/name"] == \
                template["metadata"]["labels"]["app.kubernetes.io/name"]


def test_selectors_are_the_shipped_ones_and_match_their_pods(built):
    """Workload selectors are exactly the ones already deployed (immutable in the API server)
    and select the pod template; Services and the pool's PodDisruptionBudget select those pods."""
    seen = set()
    for b in built.values():
        for workload, template in pod_templates(b):
            selector = workload["spec"]["selector"]["matchLabels"]
            key = (workload["kind"], workload["metadata"]["name"])
            if key in SHIPPED_SELECTORS:
                assert selector == SHIPPED_SELECTORS[key], b.case.label
                seen.add(key)
            else:  # a preview app
                preview = b.case.objects[0]
                assert selector == {"app.kubernetes.io/name": preview.spec.app,
                                    "reconciler.ahoi.dev/preview": preview.metadata.name}
            assert selector.items() <= template["metadata"]["labels"].items()
        pods = [t["metadata"]["labels"] for _, t in pod_templates(b)]
        for svc in of_kind(b, "Service"):
            assert any(svc["spec"]["selector"].items() <= p.items() for p in pods), b.case.label
    assert seen == set(SHIPPED_SELECTORS)


def test_every_container_has_startup_liveness_and_readiness_probes(built):
    """Each container of every workload has a startup, a liveness and a readiness probe."""
    for b in built.values():
        for _, template in pod_templates(b):
            for container in template["spec"]["containers"]:
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in container, (b.case.label, container["name"], probe)


def test_pool_has_a_disruption_budget_for_its_pods(built):
    """The pool's PodDisruptionBudget selects its pods and lets at most one go at a time,
    while it runs more than one replica."""
    for b in pool_cases(built):
        (pdb,) = of_kind(b, "PodDisruptionBudget")
        (deployment,) = of_kind(b, "Deployment")
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
        assert deployment["spec"]["replicas"] >= 2


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and Exists/In expressions) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def namespace_labels(b: Built) -> dict[str, str]:
    """The labels a namespace built from ``b`` has in a cluster (with the automatic one)."""
    (ns,) = of_kind(b, "Namespace")
    return {**ns["metadata"]["labels"], "kubernetes.io/metadata.name": ns["metadata"]["name"]}


def test_pool_admits_tenant_namespaces_and_the_platform_only(built):
    """The pool's NetworkPolicy admits every rendered tenant namespace and the platform on
    port 6432, and no preview namespace and no other namespace."""
    (pool_policy,) = of_kind(built["default-pool-three"], "NetworkPolicy")
    (rule,) = pool_policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6432}]
    sources = [peer["namespaceSelector"] for peer in rule["from"]]

    def admitted(labels: dict[str, str]) -> bool:
        return any(selects(s, labels) for s in sources)

    defaults = [b for b in built.values() if b.case.settings == samples.DEFAULT]
    tenants = [namespace_labels(b) for b in cases_where(built, Customer) if b in defaults]
    preview_ns = [namespace_labels(b) for b in cases_where(built, Preview) if b in defaults]
    assert tenants and preview_ns
    assert all(admitted(labels) for labels in tenants)
    assert not any(admitted(labels) for labels in preview_ns)
    assert admitted({"kubernetes.io/metadata.name": "platform"})
    assert not admitted({"kubernetes.io/metadata.name": "kube-system"})


def test_preview_namespaces_are_isolated_and_limited_like_tenants(built):
    """A preview namespace enforces the restricted Pod Security Standard, admits only its own
    pods and the ingress controller, and has a quota its app fits in."""
    for b in cases_where(built, Preview):
        labels = namespace_labels(b)
        for mode in ("enforce", "warn", "audit"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        (policy,) = of_kind(b, "NetworkPolicy")
        assert policy["spec"]["podSelector"] == {}
        (rule,) = policy["spec"]["ingress"]
        ingress_ns = {"kubernetes.io/metadata.name": b.case.settings.ingress_namespace}
        assert any(selects(p.get("namespaceSelector", {"matchLabels": {"x": "never"}}), ingress_ns)
                   for p in rule["from"])
        assert not any(selects(p.get("namespaceSelector", {"matchLabels": {"x": "never"}}),
                               {"kubernetes.io/metadata.name": "customer-acme"})
                       for p in rule["from"])
        (quota,) = of_kind(b, "ResourceQuota")
        hard = quota["spec"]["hard"]
        assert hard == {"requests.cpu": b.case.settings.preview_quota.cpu,
                        "requests.memory": b.case.settings.preview_quota.memory,
                        "pods": str(b.case.settings.preview_quota.pods)}


def reachable(policies: list[dict[str, Any]], *, pod: dict[str, str], port: int,
              from_namespace: dict[str, str], from_pod: dict[str, str], same_namespace: bool,
              ) -> bool:
    """Whether the NetworkPolicies of a namespace let a connection in (Kubernetes semantics:
    a pod selected by no policy is open; otherwise the union of the selecting policies'
    rules; a peer with both selectors needs both to match)."""
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], pod)]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"]["ingress"]:
            if "ports" in rule and port not in [p["port"] for p in rule["ports"]]:
                continue
            for peer in rule["from"]:
                ns_ok = (selects(peer["namespaceSelector"], from_namespace)
                         if "namespaceSelector" in peer else same_namespace)
                pod_ok = selects(peer["podSelector"], from_pod) if "podSelector" in peer else True
                if ns_ok and pod_ok:
                    return True
    return False


def test_tenant_pods_are_reached_only_by_their_own_pods_the_pool_and_the_ingress(built):
    """In a tenant namespace, the tenant's own pods reach everything; the pool's pods reach
    only the database on 5432; the ingress controller only the webhooks on 8080; other
    platform pods, other tenants and previews reach nothing."""
    checked = 0
    for b in cases_where(built, Customer):
        customer = b.case.objects[0]
        settings = b.case.settings
        policies = of_kind(b, "NetworkPolicy")
        pods = {t["metadata"]["labels"]["app.kubernetes.io/name"]: t["metadata"]["labels"]
                for _, t in pod_templates(b)}
        platform = {"kubernetes.io/metadata.name": settings.platform_namespace}
        ingress = {"kubernetes.io/metadata.name": settings.ingress_namespace}
        other_tenant = {"kubernetes.io/metadata.name": "customer-someone-else",
                        "reconciler.ahoi.dev/customer": "someone-else"}
        pool_pod = {"app.kubernetes.io/name": "pgbouncer"}

        def can(pod: str, port: int, ns: dict[str, str], from_pod: dict[str, str], *,
                same: bool = False, policies=policies, pods=pods) -> bool:
            return reachable(policies, pod=pods[pod], port=port, from_namespace=ns,
                             from_pod=from_pod, same_namespace=same)

        for name in pods:
            own = namespace_labels(b)
            assert can(name, 5432, own, {"app.kubernetes.io/name": "scheduler"}, same=True)
            assert not can(name, 5432, other_tenant, {"app.kubernetes.io/name": "scheduler"})
            assert not can(name, 8080, platform, {"app.kubernetes.io/name": "other"})
        if "database" in pods:
            assert can("database", 5432, platform, pool_pod)
            assert not can("database", 5432, ingress, {})
            assert not can("database", 5432, other_tenant, pool_pod)
        if "webhooks" in pods:
            assert can("webhooks", 8080, ingress, {"app.kubernetes.io/name": "ingress-nginx"})
            assert not can("webhooks", 8080, platform, pool_pod)
            assert not can("webhooks", 5432, ingress, {})
        if "scheduler" in pods:
            assert not can("scheduler", 8080, ingress, {}) and not can("scheduler", 8080,
                                                                        platform, pool_pod)
        checked += customer.spec.features.database.enabled
    assert checked >= 4


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def test_label_values_stay_valid_for_the_longest_names():
    """With the longest names the namespace patterns allow (and a 63-character preview app),
    every label value of every rendered object and pod template is a valid label value (at
    most 63 characters), so the API server accepts them."""
    longest = 63 - len("customer-")
    customer = Customer.model_validate({"metadata": {"name": "c" * longest}, "spec": {
        "features": {"database": {"enabled": True}, "scheduler": {"enabled": True},
                     "webhooks": {"enabled": True}}}})
    preview = Preview.model_validate({**samples.PREVIEW_DEFAULT_HOST.model_dump(mode="json"),
                                      "metadata": {"name": "p" * (63 - len("preview-"))}})
    preview = preview.model_copy(update={"spec": preview.spec.model_copy(update={"app": "a" * 63})})
    rendered = [samples.render_object(customer, samples.DEFAULT),
                samples.render_object(preview, samples.DEFAULT),
                samples.render_pool((customer,), samples.DEFAULT)]
    for directory in rendered:
        for rel, data in directory.files.items():
            if not rel.endswith(".yaml"):
                continue
            for doc in yaml.safe_load_all(data):
                for node in walk(doc):
                    if isinstance(node, dict) and isinstance(node.get("labels"), dict):
                        for key, value in node["labels"].items():
                            assert len(value) <= 63 and LABEL_VALUE.match(value), (rel, key, value)
