"""The fake API server's object semantics, seen through the official Python client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fake_apiserver import server
from tests.kube import crds

GROUP, VERSION = crds.GROUP, crds.VERSION
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def custom(kube_api_client: client.ApiClient) -> client.CustomObjectsApi:
    """A CustomObjectsApi with the Customer and Preview CRDs installed."""
    crds.install_crds(kube_api_client)
    return client.CustomObjectsApi(kube_api_client)


def status_of(exc: ApiException) -> dict[str, Any]:
    raw_status: dict[str, Any] = json.loads(exc.body)
    return raw_status


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_kubeconfig_is_accepted_by_the_official_client(
        kube_api_client: client.ApiClient) -> None:
    """The written kubeconfig loads with load_kube_config and reaches the server's /version."""
    version = client.VersionApi(kube_api_client).get_code()
    assert version.major == "1"
    assert version.git_version.startswith("v1.")


def test_create_fills_in_system_metadata(custom: client.CustomObjectsApi) -> None:
    """A created object gets a uid, a creationTimestamp, generation 1 and a fresh RV."""
    first = custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                                crds.customer("acme"))
    second = custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                                 crds.customer("globex"))
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert first["metadata"]["creationTimestamp"].endswith("Z")
    assert first["metadata"]["generation"] == 1
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_create_drops_status_when_there_is_a_status_subresource(
        custom: client.CustomObjectsApi) -> None:
    """Status sent with a create is ignored, as the real server does with a status subresource."""
    body = {**crds.customer("acme"), "status": {"phase": "Ready"}}
    created = custom.create_cluster_custom_object(GROUP, VERSION, "customers", body)
    assert "status" not in created


def test_generate_name_gives_a_unique_name(custom: client.CustomObjectsApi) -> None:
    """metadata.generateName creates objects named prefix plus a random suffix."""
    body = crds.customer("")
    body["metadata"] = {"generateName": "tmp-"}
    names = {custom.create_cluster_custom_object(GROUP, VERSION, "customers", body)[
        "metadata"]["name"] for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("tmp-") and len(name) == 9 for name in names)


def test_duplicate_create_is_409_already_exists(custom: client.CustomObjectsApi) -> None:
    """Creating a taken name fails with the AlreadyExists Status."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    with pytest.raises(ApiException) as caught:
        custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'customers.reconciler.ahoi.dev "acme" already exists',
        "reason": "AlreadyExists", "code": 409,
        "details": {"name": "acme", "group": GROUP, "kind": "customers"},
    }


def test_missing_object_is_404_not_found(custom: client.CustomObjectsApi) -> None:
    """Getting an object that does not exist fails with the NotFound Status."""
    with pytest.raises(ApiException) as caught:
        custom.get_cluster_custom_object(GROUP, VERSION, "customers", "nobody")
    assert caught.value.status == 404
    assert status_of(caught.value)["reason"] == "NotFound"
    assert status_of(caught.value)["message"] == 'customers.reconciler.ahoi.dev "nobody" not found'


def test_status_subresource_is_separate_from_the_main_resource(
        custom: client.CustomObjectsApi) -> None:
    """Main writes ignore status, /status writes ignore all but status; spec bumps generation."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    after_status = custom.patch_cluster_custom_object_status(
        GROUP, VERSION, "customers", "acme",
        {"status": {"phase": "Ready"}, "spec": {"plan": "huge"},
         "metadata": {"labels": {"sneaky": "yes"}}})
    assert after_status["status"] == {"phase": "Ready"}
    assert after_status["spec"] == {"plan": "small"}
    assert "sneaky" not in after_status["metadata"]["labels"]
    assert after_status["metadata"]["generation"] == 1

    after_main = custom.patch_cluster_custom_object(
        GROUP, VERSION, "customers", "acme",
        {"status": {"phase": "Broken"}, "spec": {"plan": "large"}})
    assert after_main["status"] == {"phase": "Ready"}
    assert after_main["spec"] == {"plan": "large"}
    assert after_main["metadata"]["generation"] == 2

    after_labels = custom.patch_cluster_custom_object(
        GROUP, VERSION, "customers", "acme", {"metadata": {"labels": {"tier": "gold"}}})
    assert after_labels["metadata"]["generation"] == 2
    assert int(after_labels["metadata"]["resourceVersion"]) > int(
        after_main["metadata"]["resourceVersion"])


def test_noop_write_keeps_the_resource_version(custom: client.CustomObjectsApi) -> None:
    """A patch that changes nothing is not a write: the resourceVersion stays."""
    created = custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                                  crds.customer("acme"))
    patched = custom.patch_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                                 {"spec": {"plan": "small"}})
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_stale_resource_version_is_409_conflict(custom: client.CustomObjectsApi) -> None:
    """PUT or PATCH carrying an old resourceVersion fails with Conflict; the current one wins."""
    stale = custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                                crds.customer("acme"))
    custom.patch_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                       {"spec": {"plan": "large"}})
    stale["spec"] = {"plan": "huge"}
    with pytest.raises(ApiException) as by_put:
        custom.replace_cluster_custom_object(GROUP, VERSION, "customers", "acme", stale)
    with pytest.raises(ApiException) as by_patch:
        custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "customers", "acme",
            {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]},
             "status": {"phase": "Ready"}})
    for caught in (by_put, by_patch):
        assert caught.value.status == 409
        assert status_of(caught.value)["reason"] == "Conflict"
        assert "the object has been modified" in status_of(caught.value)["message"]
    fresh = custom.get_cluster_custom_object(GROUP, VERSION, "customers", "acme")
    fresh["spec"] = {"plan": "huge"}
    replaced = custom.replace_cluster_custom_object(GROUP, VERSION, "customers", "acme", fresh)
    assert replaced["spec"] == {"plan": "huge"}


def test_replace_of_a_custom_resource_needs_a_resource_version(
        custom: client.CustomObjectsApi) -> None:
    """PUT without metadata.resourceVersion is Invalid for custom resources, as on a cluster."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    with pytest.raises(ApiException) as caught:
        custom.replace_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                             crds.customer("acme"))
    assert caught.value.status == 422
    assert status_of(caught.value)["reason"] == "Invalid"


def test_patch_formats(custom: client.CustomObjectsApi) -> None:
    """JSON patch works (a failed test op is 422); strategic merge patch on a CR is 415."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    patched = custom.patch_cluster_custom_object(
        GROUP, VERSION, "customers", "acme",
        [{"op": "test", "path": "/spec/plan", "value": "small"},
         {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/y"]}],
        _content_type="application/json-patch+json")
    assert patched["metadata"]["finalizers"] == ["x.dev/y"]
    with pytest.raises(ApiException) as failed_test:
        custom.patch_cluster_custom_object(
            GROUP, VERSION, "customers", "acme",
            [{"op": "test", "path": "/spec/plan", "value": "large"}],
            _content_type="application/json-patch+json")
    assert failed_test.value.status == 422
    with pytest.raises(ApiException) as strategic:
        custom.patch_cluster_custom_object(
            GROUP, VERSION, "customers", "acme", {"spec": {"plan": "large"}},
            _content_type="application/strategic-merge-patch+json")
    assert strategic.value.status == 415


def test_label_and_field_selectors_filter_lists(custom: client.CustomObjectsApi) -> None:
    """labelSelector (=, !=, in, notin, exists, !exists) and fieldSelector narrow a list."""
    for name, labels in (("a", {"tier": "gold", "beta": "1"}), ("b", {"tier": "silver"}),
                         ("c", {})):
        custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                            crds.customer(name, labels=labels))

    def names(**selectors: str) -> list[str]:
        listed = custom.list_cluster_custom_object(GROUP, VERSION, "customers", **selectors)
        return [item["metadata"]["name"] for item in listed["items"]]

    assert names(label_selector="tier=gold") == ["a"]
    assert names(label_selector="tier!=gold") == ["b", "c"]
    assert names(label_selector="tier in (gold, silver)") == ["a", "b"]
    assert names(label_selector="tier notin (gold)") == ["b", "c"]
    assert names(label_selector="tier,!beta") == ["b"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c", label_selector="tier") == ["a", "b"]


def test_namespaced_resources_are_scoped_by_namespace(
        custom: client.CustomObjectsApi, kube_api_client: client.ApiClient) -> None:
    """Previews live in namespaces: lists filter by namespace, missing namespaces are 404."""
    client.CoreV1Api(kube_api_client).create_namespace({"metadata": {"name": "team-a"}})
    custom.create_namespaced_custom_object(GROUP, VERSION, "team-a", "previews",
                                           crds.preview("one"))
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "previews",
                                           crds.preview("two"))
    in_team = custom.list_namespaced_custom_object(GROUP, VERSION, "team-a", "previews")
    everywhere = custom.list_cluster_custom_object(
        GROUP, VERSION, "previews", field_selector="metadata.namespace=default")
    assert [item["metadata"]["name"] for item in in_team["items"]] == ["one"]
    assert [item["metadata"]["name"] for item in everywhere["items"]] == ["two"]
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(GROUP, VERSION, "nowhere", "previews",
                                               crds.preview("three"))
    assert status_of(caught.value)["message"] == 'namespaces "nowhere" not found'


def test_delete_with_finalizers_waits_for_them(custom: client.CustomObjectsApi) -> None:
    """Delete marks an object with finalizers; removing the last finalizer deletes it."""
    body = crds.customer("acme")
    body["metadata"]["finalizers"] = ["reconciler.ahoi.dev/cleanup"]
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", body)
    deleting = custom.delete_cluster_custom_object(GROUP, VERSION, "customers", "acme")
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as adding:
        custom.patch_cluster_custom_object(
            GROUP, VERSION, "customers", "acme",
            {"metadata": {"finalizers": ["reconciler.ahoi.dev/cleanup", "other/one"]}})
    assert adding.value.status == 422
    still_there = custom.get_cluster_custom_object(GROUP, VERSION, "customers", "acme")
    assert still_there["metadata"]["finalizers"] == ["reconciler.ahoi.dev/cleanup"]
    custom.patch_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                       {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        custom.get_cluster_custom_object(GROUP, VERSION, "customers", "acme")
    assert gone.value.status == 404


def test_delete_without_finalizers_is_immediate(custom: client.CustomObjectsApi) -> None:
    """An object without finalizers is gone as soon as it is deleted."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    custom.delete_cluster_custom_object(GROUP, VERSION, "customers", "acme")
    listed = custom.list_cluster_custom_object(GROUP, VERSION, "customers")
    assert listed["items"] == []


def test_leases_support_leader_election_writes(kube_api_client: client.ApiClient) -> None:
    """Two candidates replacing one Lease: the one with the stale resourceVersion gets 409."""
    leases = client.CoordinationV1Api(kube_api_client)
    created = leases.create_namespaced_lease("default", {
        "metadata": {"name": "reconciler"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15}})
    seen_by_b = leases.read_namespaced_lease("reconciler", "default")
    created.spec.renew_time = "2026-01-01T00:00:00.000000Z"
    renewed = leases.replace_namespaced_lease("reconciler", "default", created)
    assert renewed.spec.holder_identity == "pod-a"
    seen_by_b.spec.holder_identity = "pod-b"
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("reconciler", "default", seen_by_b)
    assert caught.value.status == 409
    assert leases.read_namespaced_lease("reconciler", "default").spec.holder_identity == "pod-a"


def test_core_and_events_v1_events(kube_api_client: client.ApiClient) -> None:
    """Events can be created in both APIs and found by involvedObject field selectors."""
    core = client.CoreV1Api(kube_api_client)
    for name, target in (("acme.1", "acme"), ("globex.1", "globex")):
        core.create_namespaced_event("default", {
            "metadata": {"name": name},
            "involvedObject": {"kind": "Customer", "name": target, "apiVersion": crds.API_VERSION},
            "reason": "Committed", "message": f"committed {target}", "type": "Normal"})
    found = core.list_namespaced_event("default", field_selector="involvedObject.name=acme")
    assert [event.message for event in found.items] == ["committed acme"]
    events_v1 = client.EventsV1Api(kube_api_client)
    events_v1.create_namespaced_event("default", {
        "metadata": {"name": "acme.2"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "reconciler", "reportingInstance": "pod-a",
        "action": "Commit", "reason": "Committed", "type": "Normal",
        "regarding": {"kind": "Customer", "name": "acme"}})
    assert [e.reason for e in events_v1.list_namespaced_event("default").items] == ["Committed"]


def test_crd_discovery_follows_the_crds(fake_apiserver: server.FakeApiServer,
                                        kube_api_client: client.ApiClient) -> None:
    """A CRD's group/version is discoverable once created and not served once deleted."""
    url = f"{fake_apiserver.url}/apis/{GROUP}/{VERSION}"
    assert get_json(url)[0] == 404
    crds.install_crds(kube_api_client)
    code, document = get_json(url)
    assert code == 200
    by_name = {entry["name"]: entry for entry in document["resources"]}
    assert by_name["customers"]["shortNames"] == ["cust"]
    assert by_name["customers"]["namespaced"] is False
    assert by_name["previews"]["namespaced"] is True
    assert "customers/status" in by_name
    assert GROUP in [g["name"] for g in get_json(f"{fake_apiserver.url}/apis")[1]["groups"]]
    extensions = client.ApiextensionsV1Api(kube_api_client)
    extensions.delete_custom_resource_definition(f"customers.{GROUP}")
    extensions.delete_custom_resource_definition(f"previews.{GROUP}")
    assert get_json(url)[0] == 404


def test_request_log_counts_requests(fake_apiserver: server.FakeApiServer,
                                     custom: client.CustomObjectsApi) -> None:
    """The server records each request, so tests can assert how a client used the API."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    custom.patch_cluster_custom_object_status(GROUP, VERSION, "customers", "acme",
                                              {"status": {"phase": "Ready"}})
    counts = fake_apiserver.request_counts()
    assert counts[("PATCH", f"/apis/{GROUP}/{VERSION}/customers/acme/status")] == 1
    assert counts[("POST", f"/apis/{GROUP}/{VERSION}/customers")] == 1


def test_standalone_server_serves_until_sigterm(tmp_path: Path) -> None:
    """python -m tests.fake_apiserver serves on 127.0.0.1 and exits cleanly on SIGTERM."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_apiserver", "--port", "0",
         "--kubeconfig", str(kubeconfig)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        assert get_json(f"{url}/version")[1]["major"] == "1"
        assert url in kubeconfig.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_deleting_a_namespace_deletes_its_objects(
        custom: client.CustomObjectsApi, kube_api_client: client.ApiClient) -> None:
    """A deleted namespace deletes its objects and stays Terminating while any is finalized."""
    core = client.CoreV1Api(kube_api_client)
    core.create_namespace({"metadata": {"name": "team-a"}})
    custom.create_namespaced_custom_object(GROUP, VERSION, "team-a", "previews",
                                           crds.preview("plain"))
    kept = crds.preview("kept")
    kept["metadata"]["finalizers"] = ["reconciler.ahoi.dev/cleanup"]
    custom.create_namespaced_custom_object(GROUP, VERSION, "team-a", "previews", kept)
    core.delete_namespace("team-a")
    left = custom.list_cluster_custom_object(GROUP, VERSION, "previews")["items"]
    assert [item["metadata"]["name"] for item in left] == ["kept"]
    assert left[0]["metadata"]["deletionTimestamp"]
    assert core.read_namespace("team-a").status.phase == "Terminating"
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, "team-a", "previews",
                                               crds.preview("late"))
    assert refused.value.status == 403
    custom.patch_namespaced_custom_object(GROUP, VERSION, "team-a", "previews", "kept",
                                          {"metadata": {"finalizers": None}})
    assert "team-a" not in [ns.metadata.name for ns in core.list_namespace().items]
