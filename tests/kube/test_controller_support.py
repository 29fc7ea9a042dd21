"""Helpers shared by the controller tests (this module holds no tests).

Owns: kubectl for the selected cluster (``tests.kube.clusters``), manifests of Customers and
of the examples under the test's unique names, objects that only the reconciler refuses,
reading objects, conditions and Events back through kubectl, reading the config repo through
the git CLI (as a user of the repo would), and polling with a deadline.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.fake_apiserver import fixtures
from tests.kube import clusters

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FINALIZER = "reconciler.ahoi.dev/finalizer"
NAMESPACE_PREFIX = "customer-"  # the default namespace pattern is customer-{name}
T = TypeVar("T")


@pytest.fixture(name="kube")
def kube_fixture(cluster: clusters.Cluster) -> fixtures.Kubectl:
    """kubectl for the selected cluster, the generated Customer and Preview CRDs applied."""
    return cluster.kubectl


def wait_until(probe: Callable[[], T], *, timeout: float = 30.0, what: str = "condition",
               interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout`` (generous:
    a loaded CI machine is slow, and a passing probe returns at once)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(interval)


def customer(name: str, spec: dict[str, Any] | None = None,
             labels: dict[str, str] | None = None) -> str:
    """A Customer manifest as kubectl reads it."""
    body: dict[str, Any] = {"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
                            "metadata": {"name": name}, "spec": spec or {}}
    if labels:
        body["metadata"]["labels"] = labels
    return json.dumps(body)


def examples(names: dict[str, str]) -> str:
    """The manifests ``examples/<path>`` renamed to ``names[path]``, as one kubectl List."""
    items = []
    for path, name in names.items():
        raw = yaml.safe_load((EXAMPLES / path).read_text())
        raw["metadata"]["name"] = name
        items.append(raw)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@dataclass(frozen=True)
class InvalidCustomer:
    """A Customer the API server accepts but the reconciler refuses, and the field it names."""

    name: str
    spec: dict[str, Any]
    field: str


def invalid_customers(cluster: clusters.Cluster) -> list[InvalidCustomer]:
    """Customers that reach the reconciler and are refused: schema cases first, if any.

    A real API server enforces the CRD schema at kubectl apply, so ``workers: 0`` and an
    unknown field never reach the reconciler there. The one rule only the reconciler enforces
    is that the name fits its namespace (``customer-{name}``, at most 63 characters) while
    the CRD allows any name up to 63; the fake validates no schema, so it gets every case.
    """
    # longer than the 54 characters customer-{name} leaves, within the 63 the CRD allows
    too_long = InvalidCustomer(cluster.name("name-too-long-for-its-namespace".ljust(52, "x")),
                               {}, "metadata.name")
    assert len(NAMESPACE_PREFIX + too_long.name) > 63 >= len(too_long.name)
    if cluster.real:
        return [too_long]
    return [InvalidCustomer(cluster.name("zero-workers"),
                            {"features": {"scheduler": {"enabled": True, "workers": 0}}},
                            "spec.features.scheduler.workers"),
            InvalidCustomer(cluster.name("typo"), {"dispalyName": "Typo Inc"}, "spec.dispalyName"),
            too_long]


def apply(kubectl: fixtures.Kubectl, manifest: str) -> None:
    """``kubectl apply`` a manifest from stdin, without kubectl's own schema check.

    The fake serves no OpenAPI for kubectl to check against; a real API server still enforces
    the CRD schema (and drops unknown fields instead of refusing them).
    """
    kubectl("apply", "--validate=false", "-f", "-", input=manifest)


def get(kubectl: fixtures.Kubectl, kind: str, name: str) -> dict[str, Any] | None:
    """The object as ``kubectl get -o json`` shows it, None when NotFound."""
    done = kubectl("get", kind, name, "-o", "json", check=False)
    if done.returncode != 0:
        assert "NotFound" in done.stderr, done.stderr
        return None
    raw: dict[str, Any] = json.loads(done.stdout)
    return raw


def condition(raw: dict[str, Any] | None, ctype: str) -> dict[str, Any]:
    """The condition ``ctype`` of an object's status ({} when absent)."""
    for cond in ((raw or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


def events_for(kubectl: fixtures.Kubectl, name: str) -> list[dict[str, Any]]:
    """Events whose involvedObject is ``name`` (the reconciler records them in default)."""
    listed = json.loads(kubectl("get", "events", "-n", "default", "-o", "json").stdout)
    return [e for e in listed["items"] if e["involvedObject"].get("name") == name]


@dataclass(frozen=True)
class Commit:
    """One commit of the config repo, with the trailers the reconciler writes."""

    id: str
    subject: str
    object: str
    action: str
    generation: str


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True,
                          text=True, check=False, timeout=10)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout


def commits(repo: Path) -> list[Commit]:
    """Commits on the branch, newest first (empty when the repo does not exist yet)."""
    if not (repo / "HEAD").exists():
        return []
    fields = ["%H", "%s", "%(trailers:key=Reconciler-Object,valueonly,separator=%x2C)",
              "%(trailers:key=Reconciler-Action,valueonly,separator=%x2C)",
              "%(trailers:key=Reconciler-Generation,valueonly,separator=%x2C)"]
    try:
        out = git(repo, "log", "--format=" + "%x1f".join(fields) + "%x1e")
    except AssertionError:
        return []  # an unborn branch
    found = []
    for record in out.split("\x1e"):
        if record.strip():
            parts = [p.strip() for p in record.strip("\n").split("\x1f")]
            found.append(Commit(*parts))
    return found


def commits_of(repo: Path, key: str) -> list[Commit]:
    """Commits whose Reconciler-Object trailer is ``key`` (e.g. ``customer/acme``)."""
    return [c for c in commits(repo) if c.object == key]


def files_under(repo: Path, directory: str) -> list[str]:
    """Paths under ``directory`` at the head of the branch."""
    return git(repo, "ls-tree", "-r", "--name-only", "HEAD", "--", directory).split()


def assert_no_commit_twice(repo: Path) -> None:
    """Every (object, generation, action) appears in at most one commit."""
    seen = [(c.object, c.generation, c.action) for c in commits(repo) if c.object]
    duplicates = sorted({s for s in seen if seen.count(s) > 1})
    assert not duplicates, f"committed more than once: {duplicates}"
