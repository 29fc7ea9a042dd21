"""Helpers of the scheduled-work tests (this module holds no tests).

Owns: a clock the test moves by hand, Customer/Preview/Application/Kustomization documents,
the in-process Controller wired to the fake API server (with the real KubeCluster adapter,
a real config repo and Prometheus metrics), running it on a thread, and the ``reconciler``
command as a subprocess. Objects are read back the way a user reads them: kubectl, git, the
command's output, the metrics registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import app
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.adapters.kube import KubeCluster, api_client
from reconciler.adapters.layoutview import LayoutView
from reconciler.adapters.observability import PrometheusMetrics
from reconciler.core import sources
from reconciler.reconcile.controller import Controller
from reconciler.reconcile.engine import Reconciler
from tests.fake_apiserver import fixtures, server
from tests.kube.test_controller_support import wait_until

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CONSOLE_SCRIPT = Path(sys.executable).parent / "reconciler"
API_VERSION = "reconciler.ahoi.dev/v1alpha1"
SHA = "4f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6"


class FakeClock:
    """A wall clock (seconds since the epoch) that moves only when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


def iso(seconds: float) -> str:
    """RFC 3339 in UTC, as the API server writes timestamps."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(stamp: str) -> float:
    """An API server timestamp as seconds since the epoch."""
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# -- documents -----------------------------------------------------------------------------


def customer(name: str, *, workers: int = 2) -> dict[str, Any]:
    """A Customer with a scheduler."""
    return {"apiVersion": API_VERSION, "kind": "Customer", "metadata": {"name": name},
            "spec": {"displayName": name.title(),
                     "features": {"scheduler": {"enabled": True, "workers": workers}}}}


def preview(name: str, *, ttl: str | None = None, created: float | None = None) -> dict[str, Any]:
    """A Preview of the billing app (with a ttl and a creationTimestamp when given)."""
    metadata: dict[str, Any] = {"name": name}
    if created is not None:
        metadata["creationTimestamp"] = iso(created)
    spec: dict[str, Any] = {"app": "billing", "branch": f"feature/{name}", "commit": SHA,
                            "image": f"registry.example.com/billing:{SHA[:7]}"}
    if ttl is not None:
        spec["ttl"] = ttl
    return {"apiVersion": API_VERSION, "kind": "Preview", "metadata": metadata, "spec": spec}


def application(name: str, path: str, *, revision: str, sync: str = "Synced",
                health: str = "Healthy", multi_source: bool = False) -> dict[str, Any]:
    """An Argo CD Application deploying ``path`` of the config repo, with its status."""
    source = {"repoURL": "https://git.example.com/platform/config.git",
              "targetRevision": "main", "path": path}
    spec: dict[str, Any] = {"project": "config-repo",
                            "destination": {"server": "https://kubernetes.default.svc"}}
    if multi_source:
        spec["sources"] = [{"repoURL": "https://charts.example.com", "chart": "base",
                            "targetRevision": "1.0.0"}, source]
    else:
        spec["source"] = source
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"}, "spec": spec,
            "status": {"sync": {"status": sync, "revision": revision},
                       "health": {"status": health}}}


def kustomization(name: str, path: str, *, revision: str, ready: str = "True",
                  message: str = "Applied revision") -> dict[str, Any]:
    """A Flux Kustomization applying ``path``, with ``lastAppliedRevision`` and Ready."""
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "config-repo"},
                     "path": path, "prune": True, "interval": "10m"},
            "status": {"lastAppliedRevision": f"main@sha1:{revision}",
                       "conditions": [{"type": "Ready", "status": ready, "reason": "Succeeded",
                                       "message": f"{message}: main@sha1:{revision}"}]}}


def _crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    """A minimal namespaced CRD (no status subresource, so kubectl apply sets the status the
    way Argo CD and Flux would)."""
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": f"{kind}List"},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True}}}]}}


DEPLOYER_CRDS = [
    _crd("argoproj.io", "v1alpha1", "Application", "applications"),
    _crd("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}},
]


@pytest.fixture(name="kube")
def kube_fixture(kubectl: fixtures.Kubectl) -> fixtures.Kubectl:
    """kubectl, after applying the generated Customer and Preview CRDs from ``crds/``."""
    kubectl("apply", "--validate=false", "-f", str(CRDS))
    return kubectl


@pytest.fixture(name="kube_with_deployers")
def kube_with_deployers_fixture(kube: fixtures.Kubectl) -> fixtures.Kubectl:
    """``kube``, plus the Argo CD Application and Flux Kustomization CRDs and their
    namespaces (argocd, flux-system)."""
    apply(kube, DEPLOYER_CRDS)
    return kube


def apply(kubectl: fixtures.Kubectl, docs: list[dict[str, Any]] | dict[str, Any]) -> None:
    """``kubectl apply`` documents (one call, as a List)."""
    items = docs if isinstance(docs, list) else [docs]
    kubectl("apply", "--validate=false", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


# -- the controller, in-process against the fake API server --------------------------------


@dataclass
class Wired:
    """A Controller on the fake API server and the config repo it commits to."""

    controller: Controller
    repo_path: Path
    repo: GitConfigRepo
    engine: Reconciler
    metrics: PrometheusMetrics

    def seed(self, *docs: dict[str, Any]) -> None:
        """Render objects into the config repo directly (as an earlier run would have)."""
        for doc in docs:
            obj = sources.parse_document("seed", doc)
            assert not isinstance(obj, sources.Refusal), obj
            assert self.engine.apply(obj).ok

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one Prometheus sample (0 when never set)."""
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@contextlib.contextmanager
def wired(kubeconfig: Path, repo_path: Path, *, clock: FakeClock | None = None,
          orphan_grace_seconds: float = 0.0,
          environ: dict[str, str] | None = None) -> Iterator[Wired]:
    """Build the Controller as ``run --source kubernetes`` does, with a fake clock
    (``environ``: ``RECONCILER_*`` settings)."""
    settings = app.settings_from(None, environ=environ or {})
    repo = app.open_repo(repo_path, settings, create=True)
    view = LayoutView(repo, settings.layout)  # as the composition root wires it
    engine = Reconciler(repo=view, settings=settings, version="test")
    metrics = PrometheusMetrics()
    api = api_client(str(kubeconfig))
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    controller = Controller(cluster=KubeCluster(api), engine=engine, repo=view, metrics=metrics,
                            orphan_grace_seconds=orphan_grace_seconds, settings=settings,
                            **extra)
    try:
        yield Wired(controller, repo_path, repo, engine, metrics)
    finally:
        api.close()  # type: ignore[no-untyped-call]  # the client is untyped


@contextlib.contextmanager
def running(wiring: Wired, apiserver: server.FakeApiServer) -> Iterator[Wired]:
    """The controller's watch-and-work loop on a thread, stopped afterwards."""
    stop = threading.Event()
    thread = threading.Thread(target=wiring.controller.run, args=(stop,), daemon=True,
                              name="scheduled-controller-under-test")
    thread.start()
    try:
        apiserver.wait_for_watches(2)
        wait_until(lambda: all(i.synced.is_set()
                               for i in wiring.controller.informers.values()),
                   what="informers synced")
        yield wiring
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive(), "the controller did not stop"


# -- the command line ----------------------------------------------------------------------


def reconciler(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the ``reconciler`` console script to completion, without the user's Git config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "RECONCILER_")) and k != "KUBECONFIG"}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [
        sys.executable, "-m", "reconciler.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The command's stdout; fails the test on a non-zero exit."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def write_manifests(where: Path, *docs: Mapping[str, Any]) -> None:
    """One ``<kind>-<name>.yaml`` per document (replacing what was there)."""
    where.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        name = f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        (where / name).write_text(yaml.safe_dump(dict(doc), sort_keys=False))


def table(output: str) -> dict[str, dict[str, str]]:
    """A ``reconciler status`` table as rows by ``kind/name``, cells by header."""
    lines = [line for line in output.splitlines() if line.strip()]
    header = lines[0].replace("LAST COMMIT", "LAST_COMMIT").split()
    rows: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        cells = line.split(None, len(header) - 1)
        row = dict(zip(header, cells, strict=False))
        rows[f"{row['KIND'].lower()}/{row['NAME']}"] = row
    return rows
