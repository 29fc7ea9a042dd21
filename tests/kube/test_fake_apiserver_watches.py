"""The fake API server's watches, seen through the official client's ``kubernetes.watch``."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.fake_apiserver import server
from tests.kube import crds

GROUP, VERSION = crds.GROUP, crds.VERSION
Event = dict[str, Any]


@pytest.fixture
def custom(kube_api_client: client.ApiClient) -> client.CustomObjectsApi:
    """A CustomObjectsApi with the Customer and Preview CRDs installed."""
    crds.install_crds(kube_api_client)
    return client.CustomObjectsApi(kube_api_client)


def list_rv(custom: client.CustomObjectsApi) -> str:
    return str(custom.list_cluster_custom_object(GROUP, VERSION, "customers")["metadata"][
        "resourceVersion"])


def stream_customers(custom: client.CustomObjectsApi, **kwargs: Any) -> Iterator[Event]:
    """Watch customers with a short timeout so a broken test cannot hang."""
    kwargs.setdefault("timeout_seconds", 5)
    return watch.Watch().stream(custom.list_cluster_custom_object, GROUP, VERSION, "customers",
                                **kwargs)


def summary(event: Event) -> tuple[str, str]:
    return (event["type"], event["object"]["metadata"]["name"])


def test_watch_resumes_from_a_resource_version(custom: client.CustomObjectsApi) -> None:
    """Watching from a list's resourceVersion replays exactly the later changes, in order."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("old"))
    since = list_rv(custom)
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    custom.patch_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                       {"spec": {"plan": "large"}})
    custom.delete_cluster_custom_object(GROUP, VERSION, "customers", "old")
    events = []
    for event in stream_customers(custom, resource_version=since):
        events.append(event)
        if len(events) == 3:
            break
    assert [summary(e) for e in events] == [("ADDED", "acme"), ("MODIFIED", "acme"),
                                            ("DELETED", "old")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)


def test_watch_without_resource_version_starts_with_the_current_state(
        custom: client.CustomObjectsApi) -> None:
    """A watch with no resourceVersion first sends every existing object as ADDED."""
    for name in ("a", "b"):
        custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer(name))
    events = []
    for event in stream_customers(custom):
        events.append(summary(event))
        if len(events) == 2:
            break
    assert events == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_from_a_compacted_resource_version_is_410(
        fake_apiserver: server.FakeApiServer, custom: client.CustomObjectsApi) -> None:
    """After compact(), a watch from an older resourceVersion gets an ERROR event with 410."""
    since = list_rv(custom)
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    fake_apiserver.compact()
    with pytest.raises(ApiException) as caught:
        next(iter(stream_customers(custom, resource_version=since)))
    assert caught.value.status == 410
    assert "Expired" in str(caught.value.reason)
    fresh = []
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("new"))
    for event in stream_customers(custom, resource_version=str(fake_apiserver.resource_version
                                                               - 1)):
        fresh.append(summary(event))
        break
    assert fresh == [("ADDED", "new")]


def test_bookmarks_carry_the_current_resource_version(
        fake_apiserver: server.FakeApiServer, custom: client.CustomObjectsApi) -> None:
    """With allowWatchBookmarks, an idle watch gets BOOKMARK events at the latest RV."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    since = list_rv(custom)
    client.CoordinationV1Api(custom.api_client).create_namespaced_lease(
        "default", {"metadata": {"name": "unrelated"}})
    for event in stream_customers(custom, resource_version=since, allow_watch_bookmarks=True):
        assert event["type"] == "BOOKMARK"
        assert event["raw_object"]["metadata"]["resourceVersion"] == str(
            fake_apiserver.resource_version)
        break


def test_watch_timeout_seconds_ends_the_stream(custom: client.CustomObjectsApi) -> None:
    """timeoutSeconds ends an idle watch cleanly after that many seconds."""
    started = time.monotonic()
    assert list(stream_customers(custom, resource_version=list_rv(custom),
                                 timeout_seconds=1)) == []
    assert 0.9 <= time.monotonic() - started < 3


def test_label_selector_applies_to_watches(custom: client.CustomObjectsApi) -> None:
    """A selective watch sees an object leave (DELETED) and enter (ADDED) the selection."""
    since = list_rv(custom)
    custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                        crds.customer("acme", labels={"tier": "gold"}))
    custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                        crds.customer("other", labels={"tier": "bronze"}))
    for tier in ("silver", "gold"):
        custom.patch_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                           {"metadata": {"labels": {"tier": tier}}})
    events = []
    for event in stream_customers(custom, resource_version=since, label_selector="tier=gold"):
        events.append(summary(event))
        if len(events) == 3:
            break
    assert events == [("ADDED", "acme"), ("DELETED", "acme"), ("ADDED", "acme")]


def test_finalizer_release_is_seen_as_modified_then_deleted(
        custom: client.CustomObjectsApi) -> None:
    """A watch sees the deletionTimestamp arrive (MODIFIED) and the removal (DELETED)."""
    body = crds.customer("acme")
    body["metadata"]["finalizers"] = ["reconciler.ahoi.dev/cleanup"]
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", body)
    since = list_rv(custom)
    custom.delete_cluster_custom_object(GROUP, VERSION, "customers", "acme")
    custom.patch_cluster_custom_object(GROUP, VERSION, "customers", "acme",
                                       {"metadata": {"finalizers": []}})
    events = []
    for event in stream_customers(custom, resource_version=since):
        events.append(event)
        if len(events) == 2:
            break
    assert [summary(e) for e in events] == [("MODIFIED", "acme"), ("DELETED", "acme")]
    assert events[0]["object"]["metadata"]["deletionTimestamp"]


def _watch_in_background(custom: client.CustomObjectsApi, since: str,
                         sink: queue.Queue[Event | BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            for event in watch.Watch().stream(custom.list_cluster_custom_object, GROUP, VERSION,
                                              "customers", resource_version=since):
                sink.put(event)
        except BaseException as exc:  # handed to the test thread to assert on
            sink.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _take(sink: queue.Queue[Event | BaseException], count: int) -> list[Event]:
    taken = []
    for _ in range(count):
        item = sink.get(timeout=5)
        assert not isinstance(item, BaseException), item
        taken.append(item)
    return taken


def test_abruptly_dropped_watch_resumes_from_last_seen_rv_without_gaps(
        fake_apiserver: server.FakeApiServer, custom: client.CustomObjectsApi) -> None:
    """A watch cut mid-stream errors out; resuming from the last seen RV misses nothing."""
    since = list_rv(custom)
    sink: queue.Queue[Event | BaseException] = queue.Queue()
    thread = _watch_in_background(custom, since, sink)
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("c0"))
    seen = _take(sink, 1)
    assert fake_apiserver.drop_watches(abrupt=True) == 1
    failure = sink.get(timeout=5)
    thread.join(timeout=5)
    assert isinstance(failure, urllib3.exceptions.HTTPError)
    for index in range(1, 4):
        custom.create_cluster_custom_object(GROUP, VERSION, "customers",
                                            crds.customer(f"c{index}"))
    last_rv = seen[-1]["object"]["metadata"]["resourceVersion"]
    thread = _watch_in_background(custom, last_rv, sink)
    seen += _take(sink, 3)
    fake_apiserver.drop_watches(abrupt=True)
    thread.join(timeout=5)
    assert [summary(e) for e in seen] == [("ADDED", f"c{i}") for i in range(4)]


def test_gracefully_ended_watch_is_resumed_by_the_client(
        fake_apiserver: server.FakeApiServer, custom: client.CustomObjectsApi) -> None:
    """When the server ends a watch cleanly, kubernetes.watch re-watches from its last RV."""
    sink: queue.Queue[Event | BaseException] = queue.Queue()
    thread = _watch_in_background(custom, list_rv(custom), sink)
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("before"))
    seen = _take(sink, 1)
    assert fake_apiserver.drop_watches() == 1
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("after"))
    seen += _take(sink, 1)
    assert [summary(e) for e in seen] == [("ADDED", "before"), ("ADDED", "after")]
    fake_apiserver.wait_for_watches(1)
    fake_apiserver.drop_watches(abrupt=True)
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_stopping_the_server_ends_open_watches(fake_apiserver: server.FakeApiServer,
                                               custom: client.CustomObjectsApi) -> None:
    """stop() does not hang on an open watch; the client sees its connection end."""
    sink: queue.Queue[Event | BaseException] = queue.Queue()
    thread = _watch_in_background(custom, list_rv(custom), sink)
    fake_apiserver.wait_for_watches(1)
    fake_apiserver.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_watch_wire_format_and_expired_error_event(
        fake_apiserver: server.FakeApiServer, custom: client.CustomObjectsApi) -> None:
    """watch=1 streams chunked JSON lines; a too-old RV gets 200 and one ERROR Status 410."""
    custom.create_cluster_custom_object(GROUP, VERSION, "customers", crds.customer("acme"))
    connection = http.client.HTTPConnection("127.0.0.1", fake_apiserver.port, timeout=5)
    path = f"/apis/{GROUP}/{VERSION}/customers?watch=1&resourceVersion=0&timeoutSeconds=1"
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    lines = response.read().decode().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["ADDED"]

    fake_apiserver.compact()
    connection.request("GET", f"/apis/{GROUP}/{VERSION}/customers?watch=true&resourceVersion=1")
    expired = connection.getresponse()
    assert expired.status == 200
    event = json.loads(expired.read())
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"].startswith("too old resource version: 1 (")
    connection.close()
