"""What only a real kube-apiserver shows: schema, defaults, compaction, RBAC, Event limits.

Runs against the session's own kube-apiserver (``tests.kubeapi``) or the cluster
``RECONCILER_TEST_KUBECONFIG`` names; tests needing our own server's controls (etcd
compaction, minting tokens for other ServiceAccounts) skip elsewhere. The reconciler acts
as deploy/'s ServiceAccount under RBAC; kubectl acts as an admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.adapters.kube import EVENT_MESSAGE_BYTES, KubeCluster, api_client
from reconciler.core import applied, errors, sources
from reconciler.core.leader import Lease
from reconciler.reconcile.informer import Informer
from tests import kubeapi
from tests.fake_apiserver import fixtures
from tests.kube import clusters
from tests.kube.test_controller_cli import child_env, reconciler_binary
from tests.kube.test_controller_support import (  # noqa: F401 - pytest finds fixtures by name
    customer,
    get,
    kube_fixture,
    wait_until,
)

pytestmark = pytest.mark.realcluster
GROUP_VERSION = "reconciler.ahoi.dev/v1alpha1"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# (kind, name, spec): sent as they are; the server and the pydantic models must agree
CUSTOMERS: list[tuple[str, dict[str, Any]]] = [
    ("empty-spec", {}),
    ("display", {"displayName": "ACME Corp"}),
    ("all-features", {"features": {"database": {"enabled": True, "storage": "20Gi",
                                                "version": "17"},
                                   "scheduler": {"enabled": True, "workers": 100},
                                   "webhooks": {"enabled": True, "replicas": 20}},
                      "quota": {"cpu": "500m", "memory": "1Gi", "pods": 10000},
                      "suspend": True}),
    ("zero-workers", {"features": {"scheduler": {"workers": 0}}}),
    ("many-workers", {"features": {"scheduler": {"workers": 1000}}}),
    ("text-workers", {"features": {"scheduler": {"workers": "three"}}}),
    ("old-postgres", {"features": {"database": {"version": "13"}}}),
    ("bad-storage", {"features": {"database": {"storage": "10 GB"}}}),
    ("bad-cpu", {"quota": {"cpu": "lots"}}),
    ("no-pods", {"quota": {"pods": 0}}),
    ("long-display", {"displayName": "x" * 129}),
    ("suspend-yes", {"suspend": "yes"}),
    ("null-spec", None),  # type: ignore[list-item]
    ("dotted.name", {}),  # a valid object name, but the CRD's CEL rule wants a DNS label
]
PREVIEWS: list[tuple[str, dict[str, Any]]] = [
    ("ok", {"app": "billing", "branch": "fix/invoices", "commit": COMMIT,
            "image": "registry.example/billing:1.2"}),
    ("with-ttl", {"app": "billing", "branch": "feat", "commit": COMMIT,
                  "image": "registry.example/billing:1.2", "ttl": "3d12h", "port": 9000}),
    ("dots-branch", {"app": "billing", "branch": "bad..branch", "commit": COMMIT,
                     "image": "registry.example/billing:1.2"}),
    ("lock-branch", {"app": "billing", "branch": "main.lock", "commit": COMMIT,
                     "image": "registry.example/billing:1.2"}),
    ("upper-app", {"app": "Billing", "branch": "feat", "commit": COMMIT,
                   "image": "registry.example/billing:1.2"}),
    ("short-commit", {"app": "billing", "branch": "feat", "commit": "abc123",
                      "image": "registry.example/billing:1.2"}),
    ("bad-ttl", {"app": "billing", "branch": "feat", "commit": COMMIT,
                 "image": "registry.example/billing:1.2", "ttl": "1w"}),
    ("no-image", {"app": "billing", "branch": "feat", "commit": COMMIT}),
    ("big-port", {"app": "billing", "branch": "feat", "commit": COMMIT,
                  "image": "registry.example/billing:1.2", "port": 70000}),
]


def dry_run_create(kube: Any, body: dict[str, Any],
                   validate: str = "strict") -> tuple[bool, dict[str, Any] | str]:
    """(accepted, the object as the server would store it | the server's refusal).

    kubectl's default ``--validate=strict`` has the server refuse unknown fields;
    ``ignore`` or ``warn`` has it prune them.
    """
    done = kube("create", "--dry-run=server", f"--validate={validate}", "-o", "json", "-f", "-",
                input=json.dumps(body), check=False)
    if done.returncode == 0:
        stored: dict[str, Any] = json.loads(done.stdout)
        return True, stored
    return False, done.stderr.strip()


@pytest.mark.parametrize(("kind", "name", "spec"),
                         [("Customer", n, s) for n, s in CUSTOMERS]
                         + [("Preview", n, s) for n, s in PREVIEWS],
                         ids=[f"customer-{n}" for n, _ in CUSTOMERS]
                         + [f"preview-{n}" for n, _ in PREVIEWS])
def test_the_server_and_the_models_agree_on_what_is_valid(
        cluster: clusters.Cluster, kube: Any, kind: str, name: str,
        spec: dict[str, Any] | None) -> None:
    """A spec the CRD refuses the models refuse; what it stores (defaulted) they accept."""
    body: dict[str, Any] = {"apiVersion": GROUP_VERSION, "kind": kind,
                            "metadata": {"name": cluster.name(name)}}
    if spec is not None or name == "null-spec":
        body["spec"] = spec
    accepted, answer = dry_run_create(kube, body)
    if accepted:
        assert isinstance(answer, dict)
        parsed = sources.parse_document("server", answer)
        assert not isinstance(parsed, sources.Refusal), (
            f"the server stores {answer.get('spec')} but the reconciler refuses it: {parsed}")
    else:
        parsed = sources.parse_document("sent", body)
        assert isinstance(parsed, sources.Refusal), (
            f"the server refuses {spec} ({answer}) but the models accept it")


def test_the_server_prunes_unknown_fields_and_fills_defaults(
        cluster: clusters.Cluster, kube: Any) -> None:
    """An unknown field is refused by kubectl's default (strict) validation and dropped
    without it; the CRD's defaults are filled: the reconciler sees neither the typo nor a
    missing field, which the fake stored as sent."""
    body = json.loads(customer(cluster.name("typo"), {"dispalyName": "Typo Inc"}))
    refused, said = dry_run_create(kube, body)
    assert not refused and 'unknown field "spec.dispalyName"' in str(said)
    accepted, stored = dry_run_create(kube, body, validate="warn")
    assert accepted and isinstance(stored, dict)
    assert "dispalyName" not in stored["spec"]
    assert stored["spec"]["features"]["scheduler"] == {"enabled": False, "workers": 1}
    assert stored["spec"]["quota"] == {"cpu": "4", "memory": "8Gi", "pods": 50}
    assert not isinstance(sources.parse_document("server", stored), sources.Refusal)


# -- status writes ------------------------------------------------------------------------


def test_status_is_applied_by_our_field_manager_and_keeps_other_writers_fields(
        cluster: clusters.Cluster, kube: Any) -> None:
    """Server-side apply of status: the fields are ours in managedFields; a field another
    writer set stays; a status the schema refuses is a permanent error naming the field."""
    name = cluster.name("applied")
    kube("apply", "-f", "-", input=customer(name))
    kube("patch", "customer", name, "--subresource=status", "--type=merge",
         "-p", '{"status": {"note": "someone else"}}')
    api = api_client(str(cluster.reconciler_kubeconfig))
    try:
        adapter = KubeCluster(api)
        status = {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Committed", "message": "ok",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}
        adapter.patch_status("customers", name, status)
        with pytest.raises(errors.PermanentError, match=r"status\.conditions"):
            adapter.patch_status("customers", name, {"conditions": [
                {"type": "Ready", "status": "Maybe", "reason": "Not a reason!",
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "message": ""}]})
    finally:
        api.close()
    raw = json.loads(kube("get", "customer", name, "-o", "json", "--show-managed-fields").stdout)
    assert raw["status"]["note"] == "someone else"
    assert raw["status"]["conditions"][0]["status"] == "True"
    managers = {m["manager"]: m for m in raw["metadata"]["managedFields"]
                if m.get("subresource") == "status"}
    assert managers["gitops-reconciler"]["operation"] == "Apply"
    assert "f:observedGeneration" in json.dumps(managers["gitops-reconciler"]["fieldsV1"])


# -- events -------------------------------------------------------------------------------


def test_an_event_with_a_long_multibyte_message_is_recorded_within_the_limit(
        cluster: clusters.Cluster, kube: Any) -> None:
    """The server refuses messages over 1 KiB in bytes: a long message in UTF-8 is cut to fit
    (on a character boundary) and still recorded, at a whole-second time too (whose
    eventTime the typed client used to send without the fraction the server requires)."""
    name = cluster.name("events")
    kube("apply", "-f", "-", input=customer(name))
    raw = get(kube, "customer", name)
    assert raw is not None
    api = api_client(str(cluster.reconciler_kubeconfig))
    try:
        KubeCluster(api).create_event(raw, event_type="Warning", reason="InvalidSpec",
                                      message="Größe überschritten: " + "ä" * 2000,
                                      component="gitops-reconciler", now=1_800_000_000.0)  # a whole second
    finally:
        api.close()
    listed = json.loads(kube("get", "events", "-n", "default", "-o", "json").stdout)["items"]
    [event] = [e for e in listed if e["involvedObject"].get("name") == name]
    message = event["message"]
    assert message.startswith("Größe überschritten: ää")
    assert message.endswith("…")
    assert len(message.encode()) <= EVENT_MESSAGE_BYTES


# -- watches and etcd compaction ----------------------------------------------------------


@pytest.fixture
def own_server(cluster: clusters.Cluster) -> Any:
    """The session's own kube-apiserver (skips on an external cluster)."""
    if cluster.server is None:
        pytest.skip("needs the session's own kube-apiserver (tests/kubeapi), not "
                    f"{clusters.ENV}'s cluster")
    return cluster.server


@pytest.fixture(scope="module")
def uncached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second kube-apiserver of our own without the watch cache, the CRDs applied.

    With the watch cache (the default, and the session server's setting) a watch resumes
    from the cache's window of recent events whatever etcd has compacted; without it the
    watch goes to etcd, as it does once an old resourceVersion has left that window.
    """
    go = kubeapi.find_go()
    if go is None or clusters.real_kubeconfig(os.environ) is not None:
        pytest.skip("needs a kube-apiserver of our own (tests/kubeapi)")
    directory = tmp_path_factory.mktemp("uncached")
    with kubeapi.running(directory / "server", go=go, extra_args=("--watch-cache=false",)) as api:
        clusters.apply_crds(fixtures.kubectl_for(api.kubeconfig, home=directory / "home"))
        yield api


def test_a_watch_resumed_from_before_an_etcd_compaction_gets_410_and_lists_again(
        uncached_server: Any, tmp_path: Path) -> None:
    """Changes made while the informer was away and then compacted out of etcd's history are
    found: the resume answers 410 Gone and the informer lists again."""
    kube = fixtures.kubectl_for(uncached_server.kubeconfig, home=tmp_path / "home")
    kept, gone = "kept", "gone"
    kube("apply", "-f", "-", input=customer(kept))
    kube("apply", "-f", "-", input=customer(gone))
    api = api_client(str(uncached_server.kubeconfig))
    changed: list[str] = []
    stop = threading.Event()
    try:
        informer = Informer(cluster=KubeCluster(api), plural="customers",
                            on_change=changed.append, watch_timeout=30, retry_delay=0.2)
        informer.relist()
        away_since = informer.resource_version
        kube("patch", "customer", kept, "--type=merge", "-p", '{"spec": {"suspend": true}}')
        kube("delete", "customer", gone)
        uncached_server.compact()
        informer.resource_version = away_since  # as if the watch had broken right then
        changed.clear()
        thread = threading.Thread(target=informer.run, args=(stop,), daemon=True)
        thread.start()
        wait_until(lambda: informer.relists >= 2, what="a relist after 410 Gone", timeout=20)
        wait_until(lambda: gone in changed and kept in changed, what="both changes reported")
        cached = informer.get(kept)
        assert cached is not None and cached["spec"]["suspend"] is True
        assert informer.get(gone) is None
    finally:
        stop.set()
        api.close()
        kube("delete", "customer", kept, check=False)


# -- least privilege ----------------------------------------------------------------------


def test_every_call_the_controller_makes_is_allowed_to_the_deploy_service_account(
        cluster: clusters.Cluster, kube: Any, own_server: Any) -> None:
    """As deploy/'s ServiceAccount each adapter call succeeds, including those the scenarios
    reach rarely: reading Argo CD / Flux objects (not installed: an empty list, not 403),
    deleting an expired Preview, and the Lease."""
    name, preview_name = cluster.name("grants"), cluster.name("grants-preview")
    kube("apply", "-f", "-", input=customer(name))
    kube("apply", "-f", "-", input=json.dumps({
        "apiVersion": GROUP_VERSION, "kind": "Preview", "metadata": {"name": preview_name},
        "spec": dict(PREVIEWS[0][1])}))
    api = api_client(str(cluster.reconciler_kubeconfig))
    try:
        adapter = KubeCluster(api)
        for plural, obj in (("customers", name), ("previews", preview_name)):
            items, _ = adapter.list_objects(plural)
            assert obj in [i["metadata"]["name"] for i in items]
            raw = adapter.get_object(plural, obj)
            assert raw is not None
            adapter.set_finalizers(plural, obj, [], raw["metadata"]["resourceVersion"])
            adapter.patch_status(plural, obj, {"observedGeneration": 1})
            adapter.remove_annotation(plural, obj, "reconciler.ahoi.dev/resync")
        raw = adapter.get_object("customers", name)
        assert raw is not None
        stale = raw["metadata"]["resourceVersion"]
        adapter.replace_spec("customers", name, {"displayName": "Rolled back"}, stale)  # rollback
        with pytest.raises(errors.ReconcilerError, match="HTTP 4"):
            adapter.replace_spec("customers", name, {"displayName": "Again"}, stale)
        assert adapter.list_any(*applied.ARGO_APPLICATIONS) == []
        assert adapter.list_any(*applied.FLUX_KUSTOMIZATIONS) == []
        namespace = cluster.lease_namespace()
        # whole seconds: a MicroTime with a zero fraction is still sent with six digits
        lease = adapter.write_lease(namespace, "grants",
                                    Lease("me", 1_800_000_000.0, 1_800_000_000.0, 15, 0, None))
        assert adapter.read_lease(namespace, "grants") == lease
        adapter.write_lease(namespace, "grants", lease)
        adapter.delete_object("previews", preview_name)
        with pytest.raises(errors.AccessDeniedError, match="cannot delete resource"):
            adapter.delete_object("customers", name)  # never: deleting a Customer is a human's
    finally:
        api.close()
    assert get(kube, "preview", preview_name) is None


def trimmed_account(cluster: clusters.Cluster, server: Any, tmp_path: Path, *,
                    without: tuple[str, str]) -> Path:
    """A kubeconfig of a new ServiceAccount bound to deploy/'s ClusterRole less one
    (resource, verb); the Roles in namespaces are bound unchanged."""
    built = list(yaml.safe_load_all(cluster.kubectl("kustomize", str(clusters.DEPLOY_BASE)).stdout))
    account = f"trimmed-{cluster.run_id}"
    items: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                                    "metadata": {"name": account,
                                                 "namespace": clusters.DEPLOY_NAMESPACE}}]
    subject = {"kind": "ServiceAccount", "name": account, "namespace": clusters.DEPLOY_NAMESPACE}
    for doc in built:
        if doc["kind"] == "ClusterRole":
            rules = []
            for rule in doc["rules"]:
                for resource in rule["resources"]:
                    verbs = [v for v in rule["verbs"] if (resource, v) != without]
                    if verbs:
                        rules.append({**rule, "resources": [resource], "verbs": verbs})
            items.append({"apiVersion": doc["apiVersion"], "kind": "ClusterRole",
                          "metadata": {"name": account}, "rules": rules})
            items.append({"apiVersion": doc["apiVersion"], "kind": "ClusterRoleBinding",
                          "metadata": {"name": account}, "subjects": [subject],
                          "roleRef": {**doc_ref(doc), "name": account}})
        elif doc["kind"] == "Role":
            items.append({"apiVersion": doc["apiVersion"], "kind": "RoleBinding",
                          "metadata": {"name": account,
                                       "namespace": doc["metadata"]["namespace"]},
                          "subjects": [subject], "roleRef": doc_ref(doc)})
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": items}))
    cluster.leftovers.append(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    token = server.service_account_token(clusters.DEPLOY_NAMESPACE, account)
    user = f"system:serviceaccount:{clusters.DEPLOY_NAMESPACE}:{account}"
    resource, _, subresource = without[0].partition("/")

    def can_i(verb: str, plural: str, sub: str = "") -> bool:
        args = ["auth", "can-i", verb, f"{plural}.reconciler.ahoi.dev", "--as", user]
        done = cluster.kubectl(*args, *(["--subresource", sub] if sub else []), check=False)
        return done.stdout.strip() == "yes"

    wait_until(lambda: not can_i(without[1], resource, subresource) and can_i("list", "customers"),
               what="the trimmed RBAC in force")
    return server.kubeconfig_for_token(token, tmp_path / f"{account}.kubeconfig", user)


def doc_ref(doc: dict[str, Any]) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": doc["kind"],
            "name": doc["metadata"]["name"]}


def run_once(kubeconfig: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(reconciler_binary()), "run", "--source", "kubernetes", "--kubeconfig",
               str(kubeconfig), "--repo", str(tmp_path / "config.git"), "--once"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env=child_env(tmp_path))


def test_without_the_status_patch_verb_the_reconciler_fails_with_the_403_it_got(
        cluster: clusters.Cluster, kube: Any, own_server: Any, tmp_path: Path) -> None:
    """deploy/'s Role less ``patch customers/status``: the pass exits non-zero with one line
    per object naming the refused verb and resource, and does not retry it."""
    name = cluster.name("denied")
    kube("apply", "-f", "-", input=customer(name))
    kubeconfig = trimmed_account(cluster, own_server, tmp_path, without=("customers/status",
                                                                         "patch"))
    done = run_once(kubeconfig, tmp_path)
    assert done.returncode == 1, done.stderr
    denied = [line for line in done.stderr.splitlines() if "HTTP 403" in line]
    assert denied, done.stderr
    assert all('cannot patch resource "customers/status"' in line for line in denied), denied
    assert "Traceback" not in done.stderr
    retries = [line for line in done.stderr.splitlines() if "reconcile failed" in line]
    assert len(retries) <= 1, f"a 403 is not retried: {retries}"


def test_without_the_watch_verb_the_controller_exits_with_one_clear_line(
        cluster: clusters.Cluster, kube: Any, own_server: Any, tmp_path: Path) -> None:
    """deploy/'s Role less ``watch customers``: ``run`` exits 1 within seconds saying what it
    may not do, instead of retrying the watch for ever."""
    kubeconfig = trimmed_account(cluster, own_server, tmp_path, without=("customers", "watch"))
    command = [str(reconciler_binary()), "run", "--source", "kubernetes", "--kubeconfig",
               str(kubeconfig), "--repo", str(tmp_path / "config.git"), "--no-leader-elect",
               "--health-port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env=child_env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert 'cannot watch resource "customers"' in done.stderr
    assert "HTTP 403" in done.stderr
    assert "Traceback" not in done.stderr
