"""Which API server the controller scenario tests run against: a real one, or the fake.

Owns: reading ``RECONCILER_TEST_KUBECONFIG``; the session's own real kube-apiserver
(``tests.kubeapi``, built from Go modules) with ``deploy/base``'s CRDs, namespace,
ServiceAccount and RBAC applied and a token for that ServiceAccount; the ``cluster``
fixture, which hands out the variable's kubeconfig (starting nothing), else that real server
to tests marked ``realcluster``, else the fake API server; the skip of tests that need the
fake's test controls; unique object names per test; and, at teardown, removing what a test
created (on the fake too, so the clean-up is exercised on every run). It must not hold
scenario assertions; those live in the ``test_controller*`` modules.

On the session's own server the reconciler authenticates as ``deploy/``'s ServiceAccount
under RBAC (``Cluster.controller_kubeconfig``): a verb missing from ``deploy/base/rbac.yaml``
fails the test that needs it. kubectl and the clean-up act as an admin. Without a Go
toolchain those tests skip with one line, except under ``CI=true``, where they fail.

On a real cluster the CRDs are applied once per session and never deleted; Customers and
Previews (cluster-scoped) get a per-test suffix and are deleted at teardown, their finalizer
stripped because the reconciler is no longer running then; Events the reconciler recorded
about them in ``default`` are deleted; Leases go in a per-test namespace, deleted with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import kubeapi
from tests.fake_apiserver import fixtures, server

ENV = "RECONCILER_TEST_KUBECONFIG"
ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
DEPLOY_BASE = ROOT / "deploy" / "base"
DEPLOY_NAMESPACE = "gitops-reconciler"  # deploy/base's namespace and ServiceAccount
SERVICE_ACCOUNT = "gitops-reconciler"
CONTROLLER_USER = f"system:serviceaccount:{DEPLOY_NAMESPACE}:{SERVICE_ACCOUNT}"
PROVISIONED = ("CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole",
               "ClusterRoleBinding", "Role", "RoleBinding")
GROUP = "reconciler.ahoi.dev"
VERSION = "v1alpha1"
PLURALS = ("customers", "previews")
EVENTS_NAMESPACE = "default"  # where the reconciler records Events of cluster-scoped objects
SETTLE_SECONDS = 2.0  # a real server cannot say when a watch is open; it opens right after a list
GONE_TIMEOUT = 30.0
StartFake = Callable[[], tuple[server.FakeApiServer, Path]]


def real_kubeconfig(environ: Mapping[str, str]) -> Path | None:
    """The kubeconfig ``RECONCILER_TEST_KUBECONFIG`` names, or None to use the fake server."""
    value = environ.get(ENV, "").strip()
    return Path(value).expanduser().absolute() if value else None


def needs_fake(what: str, *, environ: Mapping[str, str] = os.environ) -> pytest.MarkDecorator:
    """Skip the test on a real cluster: it needs ``what`` from the fake API server."""
    return pytest.mark.skipif(real_kubeconfig(environ) is not None,
                              reason=f"needs the fake API server: {what}")


@dataclass(frozen=True)
class RealServer:
    """A real API server for the session: how the tests and the reconciler reach it."""

    admin: Path  # kubectl and the clean-up
    controller: Path  # the reconciler: deploy/'s ServiceAccount on our own server
    lease_namespace: str | None  # where that ServiceAccount may hold Leases; None: per test
    api: kubeapi.KubeApi | None  # our own server (etcd compaction, tokens); None: external


@dataclass
class Cluster:
    """The API server a scenario test talks to, and what the test created there."""

    kubeconfig: Path
    fake: server.FakeApiServer | None  # None on a real cluster: no test controls there
    kubectl: fixtures.Kubectl
    api: Any  # kubernetes.client.ApiClient, for the clean-up
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    names: dict[str, str] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    controller_kubeconfig: Path | None = None  # the reconciler's, when not ``kubeconfig``
    fixed_lease_namespace: str | None = None
    server: kubeapi.KubeApi | None = None  # the session's own kube-apiserver, if that is it
    leftovers: list[str] = field(default_factory=list)  # manifests deleted at teardown

    @property
    def reconciler_kubeconfig(self) -> Path:
        """The kubeconfig the reconciler under test uses (least privilege on our server)."""
        return self.controller_kubeconfig or self.kubeconfig

    @property
    def real(self) -> bool:
        """True on a real cluster: it validates schemas and has none of the fake's controls."""
        return self.fake is None

    def name(self, base: str) -> str:
        """``base`` made unique to this test (the same answer for the same base).

        Customers and Previews are cluster-scoped, so on a shared real cluster two runs, or a
        leftover of an interrupted one, must never share a name. The fake gets the suffix too,
        so a name a test forgot to make unique shows up as a leftover on every run.
        """
        return self.names.setdefault(base, f"{base}-{self.run_id}")

    def lease_namespace(self) -> str:
        """A namespace of this test's own for the reconciler's Lease, deleted at teardown."""
        if self.fixed_lease_namespace is not None:  # the only one deploy/'s RBAC allows
            return self.fixed_lease_namespace
        name = f"reconciler-test-{self.run_id}"
        if name not in self.namespaces:
            self.kubectl("create", "namespace", name)
            self.namespaces.append(name)
        return name

    def wait_for_watches(self, count: int, *, timeout: float = 5.0) -> None:
        """Until ``count`` watches are open on the fake; a short settle on a real cluster."""
        if self.fake is not None:
            self.fake.wait_for_watches(count, timeout=timeout)
        else:
            time.sleep(SETTLE_SECONDS)


@pytest.fixture(scope="session")
def clusters_with_crds() -> set[Path]:
    """Real clusters (by kubeconfig) the CRDs were applied to in this session."""
    return set()


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """``RECONCILER_TEST_KUBECONFIG``'s cluster, or else one kube-apiserver for the session.

    Ours is built from Go modules on first use (``tests.kubeapi``), gets deploy/base's
    CRDs, namespace, ServiceAccount and RBAC, and the reconciler a token of that account.
    """
    external = real_kubeconfig(os.environ)
    if external is not None:
        yield RealServer(external, external, None, None)
        return
    go = require_go(kubeapi.find_go(), environ=os.environ)
    directory = tmp_path_factory.mktemp("kubeapi")
    audit = directory / "audit.jsonl"
    policy = directory / "audit-policy.yaml"
    policy.write_text(json.dumps({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                                  "omitStages": ["RequestReceived"],
                                  "rules": [{"level": "Metadata", "users": [CONTROLLER_USER]},
                                            {"level": "None"}]}))
    try:
        with kubeapi.running(directory / "server", go=go, extra_args=(
                f"--audit-policy-file={policy}", f"--audit-log-path={audit}")) as api:
            kubectl = fixtures.kubectl_for(api.kubeconfig, home=directory / "kubectl-home")
            provision_deploy_base(kubectl)
            token = api.service_account_token(DEPLOY_NAMESPACE, SERVICE_ACCOUNT)
            controller = api.kubeconfig_for_token(token, directory / "controller.kubeconfig",
                                                  CONTROLLER_USER)
            yield RealServer(api.kubeconfig, controller, DEPLOY_NAMESPACE, api)
    except kubeapi.KubeApiError as exc:
        pytest.fail(f"tests/kubeapi: {exc}", pytrace=False)
    report_rbac_use(audit, tmp_path_factory.getbasetemp() / "rbac-use.txt")


def report_rbac_use(audit: Path, out: Path) -> None:
    """Write which (group, resource, verb, namespace) the ServiceAccount used in the session
    and which were refused, from the API server's audit log (for trimming the RBAC)."""
    used: set[tuple[str, str, str, str]] = set()
    refused: set[tuple[str, str, str, str]] = set()
    if audit.is_file():
        for line in audit.read_text().splitlines():
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            resource = ref.get("resource", "") + (f"/{ref['subresource']}"
                                                  if ref.get("subresource") else "")
            key = (ref.get("apiGroup", ""), resource, entry["verb"], ref.get("namespace", "*"))
            code = (entry.get("responseStatus") or {}).get("code", 0)
            (refused if code == 403 else used).add(key)
    out.write_text("".join(f"used {' '.join(k)}\n" for k in sorted(used))
                   + "".join(f"refused {' '.join(k)}\n" for k in sorted(refused)))


def require_go(go: Path | None, *, environ: Mapping[str, str]) -> Path:
    """``go``, or else skip the test with one line (fail it under ``CI=true``)."""
    if go is not None:
        return go
    message = ("no Go toolchain (go on PATH or /usr/local/go/bin/go): cannot build the "
               "real kube-apiserver of tests/kubeapi")
    if environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true needs it", pytrace=False)
    pytest.skip(message)


def provision_deploy_base(kubectl: fixtures.Kubectl) -> None:
    """Apply what deploy/base installs besides the workload: CRDs, namespace, account, RBAC.

    Rendered with ``kubectl kustomize`` as a user would install it, so the namespaces the
    Roles land in are the ones a cluster gets.
    """
    built = [doc for doc in yaml.safe_load_all(kubectl("kustomize", str(DEPLOY_BASE)).stdout)
             if doc and doc["kind"] in PROVISIONED]
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": built}))
    kubectl("wait", "--for=condition=Established", "--timeout=30s",
            f"crd/customers.{GROUP}", f"crd/previews.{GROUP}")
    deadline = time.monotonic() + 10
    while kubectl("auth", "can-i", "watch", f"customers.{GROUP}", "--as", CONTROLLER_USER,
                  check=False).stdout.strip() != "yes":  # the RBAC cache catches up
        if time.monotonic() > deadline:
            raise AssertionError(f"{CONTROLLER_USER} cannot watch customers after applying "
                                 "deploy/base/rbac.yaml")
        time.sleep(0.1)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path,
            clusters_with_crds: set[Path]) -> Iterator[Cluster]:
    """A real API server for tests marked ``realcluster``, or else the fake API server.

    Real is ``RECONCILER_TEST_KUBECONFIG``'s cluster (then for every test), or the session's
    own kube-apiserver. The CRDs from ``crds/`` are applied; everything the test named with
    ``cluster.name`` is removed at teardown.
    """
    if real_kubeconfig(os.environ) is not None and "fake_apiserver" in request.fixturenames:
        pytest.fail("this test uses the fake API server's fixtures but runs against a real "
                    "cluster; mark it with clusters.needs_fake(...)", pytrace=False)
    own: RealServer | None = None
    if real_kubeconfig(os.environ) is None and request.node.get_closest_marker("realcluster"):
        own = request.getfixturevalue("real_server")

    def start_fake() -> tuple[server.FakeApiServer, Path]:
        return request.getfixturevalue("fake_apiserver"), request.getfixturevalue("fake_kubeconfig")

    with open_cluster(environ=os.environ, start_fake=start_fake, home=tmp_path / "kubectl-home",
                      clusters_with_crds=clusters_with_crds, own=own) as selected:
        yield selected


@contextlib.contextmanager
def open_cluster(*, environ: Mapping[str, str], start_fake: StartFake, home: Path,
                 clusters_with_crds: set[Path],
                 own: RealServer | None = None) -> Iterator[Cluster]:
    """The body of the ``cluster`` fixture, callable on its own (the selection is tested)."""
    kubeconfig = real_kubeconfig(environ)
    fake: server.FakeApiServer | None = None
    if kubeconfig is None and own is not None:
        kubeconfig = own.admin
        clusters_with_crds.add(kubeconfig)  # provisioned with deploy/base's CRDs
    elif kubeconfig is None:
        fake, kubeconfig = start_fake()
    elif not kubeconfig.is_file():
        pytest.fail(f"{ENV}={environ[ENV]}: there is no such kubeconfig file", pytrace=False)
    kubectl = fixtures.kubectl_for(kubeconfig, home=home)
    if fake is not None or kubeconfig not in clusters_with_crds:
        apply_crds(kubectl)
        if fake is None:
            clusters_with_crds.add(kubeconfig)
    api = fixtures.api_client_for(kubeconfig)
    try:
        selected = Cluster(kubeconfig=kubeconfig, fake=fake, kubectl=kubectl, api=api)
        if own is not None and own.api is not None:
            selected.controller_kubeconfig = own.controller
            selected.fixed_lease_namespace = own.lease_namespace
            selected.server = own.api
        if selected.real:
            refuse_foreign_objects(selected)
        try:
            yield selected
        finally:
            clean_up(selected)
    finally:
        api.close()


def apply_crds(kubectl: fixtures.Kubectl) -> None:
    """Apply the generated Customer and Preview CRDs and wait until they are served."""
    kubectl("apply", "--validate=false", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=30s",
            f"crd/customers.{GROUP}", f"crd/previews.{GROUP}")


def list_objects(cluster: Cluster) -> list[tuple[str, dict[str, Any]]]:
    """Every Customer and Preview on the cluster, as (plural, raw object)."""
    from kubernetes import client

    custom = client.CustomObjectsApi(cluster.api)
    return [(plural, raw) for plural in PLURALS
            for raw in custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]]


def refuse_foreign_objects(cluster: Cluster) -> None:
    """Fail when the cluster already holds Customers or Previews.

    The reconciler under test acts on every object of the cluster, so another object would
    add commits, metrics and log lines the scenarios do not expect (and be written to).
    """
    found = sorted(f"{plural}/{raw['metadata']['name']}" for plural, raw in list_objects(cluster))
    if found:
        pytest.fail(f"the cluster in {ENV} already holds {', '.join(found)}; the scenario tests "
                    "need a cluster without Customers or Previews (see tests/kube/README.md)",
                    pytrace=False)


def clean_up(cluster: Cluster) -> None:
    """Remove the test's objects, their Events and its namespaces; fail on anything left over."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ours = set(cluster.names.values())
    custom = client.CustomObjectsApi(cluster.api)
    core = client.CoreV1Api(cluster.api)
    for plural, raw in list_objects(cluster):
        name = raw["metadata"]["name"]
        if name not in ours:
            continue
        # Deleting first means nobody may add a finalizer any more; the reconciler has
        # stopped (its fixtures end before this one), so its finalizer is released here.
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        with contextlib.suppress(ApiException):
            custom.patch_cluster_custom_object(GROUP, VERSION, plural, name,
                                               {"metadata": {"finalizers": None}})
    deadline = time.monotonic() + GONE_TIMEOUT
    while left := [f"{p}/{r['metadata']['name']}" for p, r in list_objects(cluster)
                   if r["metadata"]["name"] in ours]:
        if time.monotonic() > deadline:
            raise AssertionError(f"not deleted within {GONE_TIMEOUT}s: {', '.join(left)}")
        time.sleep(0.1)
    for event in core.list_namespaced_event(EVENTS_NAMESPACE).items:
        involved = event.involved_object
        if involved.name in ours and (involved.api_version or "").startswith(f"{GROUP}/"):
            with contextlib.suppress(ApiException):
                core.delete_namespaced_event(event.metadata.name, EVENTS_NAMESPACE)
    for namespace in cluster.namespaces:
        with contextlib.suppress(ApiException):
            core.delete_namespace(namespace)
    for manifest in cluster.leftovers:
        cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=manifest, check=False)
    if cluster.fixed_lease_namespace is not None:  # shared: the test's Leases go, not it
        with contextlib.suppress(ApiException):
            client.CoordinationV1Api(cluster.api).delete_collection_namespaced_lease(
                cluster.fixed_lease_namespace)
    strays = sorted(f"{p}/{r['metadata']['name']}" for p, r in list_objects(cluster))
    assert not strays, (f"left on the cluster: {', '.join(strays)}; name every object with "
                        "cluster.name() so that a real cluster is cleaned up too")
