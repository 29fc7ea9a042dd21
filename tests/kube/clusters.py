"""Which API server the controller scenario tests run against: the fake, or a real cluster.

Owns: reading ``RECONCILER_TEST_KUBECONFIG``; the ``cluster`` fixture, which hands out that
kubeconfig (starting no fake server) or else starts the fake API server as before; the skip
of tests that need the fake's test controls; unique object names per test; and, at teardown,
removing what a test created (on the fake too, so the clean-up is exercised on every run).
It must not hold scenario assertions; those live in the ``test_controller*`` modules.

On a real cluster the CRDs are applied once per session and never deleted; Customers and
Previews (cluster-scoped) get a per-test suffix and are deleted at teardown, their finalizer
stripped because the reconciler is no longer running then; Events the reconciler recorded
about them in ``default`` are deleted; Leases go in a per-test namespace, deleted with it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import fixtures, server

ENV = "RECONCILER_TEST_KUBECONFIG"
ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
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


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path,
            clusters_with_crds: set[Path]) -> Iterator[Cluster]:
    """The real cluster ``RECONCILER_TEST_KUBECONFIG`` names, or else the fake API server.

    The CRDs from ``crds/`` are applied; everything the test named with ``cluster.name`` is
    removed at teardown.
    """
    if real_kubeconfig(os.environ) is not None and "fake_apiserver" in request.fixturenames:
        pytest.fail("this test uses the fake API server's fixtures but runs against a real "
                    "cluster; mark it with clusters.needs_fake(...)", pytrace=False)

    def start_fake() -> tuple[server.FakeApiServer, Path]:
        return request.getfixturevalue("fake_apiserver"), request.getfixturevalue("fake_kubeconfig")

    with open_cluster(environ=os.environ, start_fake=start_fake, home=tmp_path / "kubectl-home",
                      clusters_with_crds=clusters_with_crds) as selected:
        yield selected


@contextlib.contextmanager
def open_cluster(*, environ: Mapping[str, str], start_fake: StartFake, home: Path,
                 clusters_with_crds: set[Path]) -> Iterator[Cluster]:
    """The body of the ``cluster`` fixture, callable on its own (the selection is tested)."""
    kubeconfig = real_kubeconfig(environ)
    fake: server.FakeApiServer | None = None
    if kubeconfig is None:
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
    strays = sorted(f"{p}/{r['metadata']['name']}" for p, r in list_objects(cluster))
    assert not strays, (f"left on the cluster: {', '.join(strays)}; name every object with "
                        "cluster.name() so that a real cluster is cleaned up too")
