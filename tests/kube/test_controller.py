"""The controller wired in-process against the API server, driven by the real kubectl.

Covers what a platform user sees after kubectl apply/patch/delete: commits in the config
repo (read with the git CLI), status, finalizers and Events on the object, and that no
update is missed when a watch breaks or expires. The server is the fake, or the real cluster
``RECONCILER_TEST_KUBECONFIG`` names (``tests.kube.clusters``): tests marked ``realcluster``
run there too; those needing the fake's test controls are skipped there.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler import app
from reconciler.adapters.kube import KubeCluster, api_client
from reconciler.core.models import ObjectKey
from reconciler.reconcile.controller import Controller
from reconciler.reconcile.engine import Reconciler
from tests.fake_apiserver import fixtures, server
from tests.gitcli import human_commit
from tests.kube import clusters
from tests.kube.test_controller_support import (  # noqa: F401 - pytest finds fixtures by name
    FINALIZER,
    apply,
    commits,
    commits_of,
    condition,
    customer,
    events_for,
    examples,
    files_under,
    get,
    git,
    invalid_customers,
    kube_fixture,
    wait_until,
)


class ObservedController(Controller):
    """The real Controller, also noting which resourceVersion each reconcile worked from."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._seen_lock = threading.Lock()
        self.seen: list[tuple[ObjectKey, int]] = []

    def reconcile(self, key: ObjectKey) -> tuple[bool, str]:
        raw = self.informers[key.kind].get(key.name)
        version = int((raw or {}).get("metadata", {}).get("resourceVersion") or 0)
        try:
            return super().reconcile(key)
        finally:
            with self._seen_lock:
                self.seen.append((key, version))

    def reconciled_at_least(self, key: ObjectKey, version: int) -> bool:
        with self._seen_lock:
            return any(k == key and v >= version for k, v in self.seen)


class CountingCluster(KubeCluster):
    """The real Kubernetes adapter, also counting the status writes it makes per object."""

    def __init__(self, api: Any) -> None:
        super().__init__(api)
        self._counts_lock = threading.Lock()
        self.status_writes: collections.Counter[str] = collections.Counter()

    def patch_status(self, plural: str, name: str, status: Any) -> Any:
        with self._counts_lock:
            self.status_writes[name] += 1
        return super().patch_status(plural, name, status)


@dataclass
class Running:
    """A controller running on a thread, the cluster it watches and the config repo it writes."""

    controller: ObservedController
    adapter: CountingCluster
    repo: Path
    kubectl: fixtures.Kubectl
    cluster: clusters.Cluster

    def wait_processed(self, kind: str, name: str) -> None:
        """Block until a reconcile of the object's current resourceVersion has finished."""
        raw = get(self.kubectl, kind.lower(), name)
        assert raw is not None
        version = int(raw["metadata"]["resourceVersion"])
        key = ObjectKey(kind, name)
        wait_until(lambda: self.controller.reconciled_at_least(key, version),
                   what=f"{key} reconciled at resourceVersion {version}")


@pytest.fixture
def running(cluster: clusters.Cluster, kube: fixtures.Kubectl,
            tmp_path: Path) -> Iterator[Running]:
    """A Controller watching the cluster and committing to a fresh config repo."""
    settings = app.settings_from(None, environ={})
    repo_path = tmp_path / "config.git"
    repo = app.open_repo(repo_path, settings, create=True)
    engine = Reconciler(repo=repo, settings=settings, version="test")
    api = api_client(str(cluster.reconciler_kubeconfig))
    adapter = CountingCluster(api)
    controller = ObservedController(cluster=adapter, engine=engine, repo=repo)
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True,
                              name="controller-under-test")
    thread.start()
    try:
        wait_until(lambda: all(i.synced.is_set() for i in controller.informers.values()),
                   what="the controller's first list")
        cluster.wait_for_watches(2)
        yield Running(controller, adapter, repo_path, kube, cluster)
    finally:
        stop.set()
        thread.join(timeout=5)
        api.close()
    assert not thread.is_alive(), "the controller did not stop"


def pool_record(repo: Path) -> str:
    return git(repo, "show", "HEAD:platform/pgbouncer/.reconciler.json")


def files_of_commit(repo: Path, commit: str) -> list[str]:
    return git(repo, "show", "--name-only", "--format=", commit).split()


def wait_commit(running: Running, key: str, count: int = 1) -> list[Any]:
    return wait_until(lambda: len(found := commits_of(running.repo, key)) >= count and found,
                      what=f"{count} commit(s) of {key}")


def wait_ready(running: Running, kind: str, name: str, generation: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        raw = get(running.kubectl, kind, name)
        ready = condition(raw, "Ready")
        observed = ((raw or {}).get("status") or {}).get("observedGeneration")
        return raw if ready.get("status") == "True" and observed == generation else None
    return wait_until(probe, what=f"{kind}/{name} Ready at generation {generation}")


# -- create and update ---------------------------------------------------------------------


@pytest.mark.realcluster
def test_a_new_customer_is_committed_and_reported_ready(running: Running) -> None:
    """kubectl apply: one commit, a finalizer, Ready status pointing at it, a Normal Event."""
    acme = running.cluster.name("acme")
    apply(running.kubectl, examples({"customers/acme.yaml": acme}))
    [commit] = wait_commit(running, f"customer/{acme}")
    assert (commit.action, commit.generation) == ("create", "1")
    assert f"tenants/{acme}/kustomization.yaml" in files_under(running.repo, f"tenants/{acme}")
    raw = wait_ready(running, "customer", acme, 1)
    assert raw["status"]["lastCommit"] == commit.id
    assert raw["status"]["renderedPath"] == f"tenants/{acme}"
    assert FINALIZER in raw["metadata"]["finalizers"]
    assert condition(raw, "Stalled")["status"] == "False"
    events = events_for(running.kubectl, acme)
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "Created")]
    assert commit.id[:12] in events[0]["message"]


@pytest.mark.realcluster
def test_a_new_preview_is_committed_under_previews(running: Running) -> None:
    """A Preview gets its own directory under previews/ and a Ready status."""
    billing = running.cluster.name("billing-fix-invoices")
    apply(running.kubectl, examples({"previews/billing-fix-invoices.yaml": billing}))
    [commit] = wait_commit(running, f"preview/{billing}")
    raw = wait_ready(running, "preview", billing, 1)
    assert raw["status"]["renderedPath"] == f"previews/{billing}"
    assert raw["status"]["lastCommit"] == commit.id
    assert files_under(running.repo, f"previews/{billing}")


@pytest.mark.realcluster
def test_a_spec_update_makes_a_new_commit_and_observed_generation_follows(
        running: Running) -> None:
    """kubectl patch of the spec: a second commit at generation 2, status follows to 2."""
    acme = running.cluster.name("acme")
    apply(running.kubectl, customer(acme, {"displayName": "ACME"}))
    wait_commit(running, f"customer/{acme}")
    running.kubectl("patch", "customer", acme, "--type", "merge",
                    "-p", '{"spec": {"features": {"scheduler": {"enabled": true, "workers": 3}}}}')
    newest, first = wait_commit(running, f"customer/{acme}", 2)
    assert (first.generation, newest.generation, newest.action) == ("1", "2", "update")
    raw = wait_ready(running, "customer", acme, 2)
    assert raw["status"]["lastCommit"] == newest.id
    assert all(c["observedGeneration"] == 2 for c in raw["status"]["conditions"])
    assert f"tenants/{acme}/scheduler.yaml" in files_under(running.repo, f"tenants/{acme}")
    assert len(commits_of(running.repo, f"customer/{acme}")) == 2


@pytest.mark.realcluster
def test_label_and_status_only_updates_make_no_commit(running: Running) -> None:
    """A label, an annotation or a status-only change is reconciled but commits nothing."""
    acme = running.cluster.name("acme")
    apply(running.kubectl, customer(acme))
    wait_commit(running, f"customer/{acme}")
    wait_ready(running, "customer", acme, 1)
    running.wait_processed("Customer", acme)
    before = commits(running.repo)
    status_path = f"/apis/reconciler.ahoi.dev/v1alpha1/customers/{acme}/status"
    fake = running.cluster.fake

    def status_writes() -> tuple[int, int]:
        """(the reconciler's status writes, status PATCHes the fake served; 0 on a real one)."""
        served = fake.request_counts()[("PATCH", status_path)] if fake is not None else 0
        return running.adapter.status_writes[acme], served

    written_before, served_before = status_writes()
    running.kubectl("label", "customer", acme, "tier=gold")
    running.wait_processed("Customer", acme)
    running.kubectl("annotate", "customer", acme, "owner=team-a")
    running.wait_processed("Customer", acme)
    running.kubectl("patch", "customer", acme, "--subresource=status", "--type=merge",
                    "-p", '{"status": {"note": "written by someone else"}}')
    running.wait_processed("Customer", acme)
    time.sleep(1.0)  # any late commit would show up within this
    assert commits(running.repo) == before
    raw = get(running.kubectl, "customer", acme)
    assert raw is not None and raw["metadata"]["generation"] == 1
    assert raw["status"]["observedGeneration"] == 1
    assert raw["status"]["note"] == "written by someone else"
    written, served = status_writes()
    assert written == written_before, "the reconciler wrote no status"
    if fake is not None:  # the fake also counts at the server: kubectl's patch, nothing else
        assert served == served_before + 1, "only kubectl's own status patch"


# -- invalid specs -------------------------------------------------------------------------


@pytest.mark.realcluster
def test_an_invalid_spec_is_stalled_and_others_are_still_committed(running: Running) -> None:
    """Objects the reconciler refuses are Stalled naming the field, with no commit; others commit."""
    invalid = invalid_customers(running.cluster)
    fine = running.cluster.name("fine")
    for case in invalid:
        apply(running.kubectl, customer(case.name, case.spec))
    apply(running.kubectl, customer(fine, {"displayName": "Fine"}))
    wait_commit(running, f"customer/{fine}")
    for case in invalid:
        raw = wait_until(lambda n=case.name: condition(get(running.kubectl, "customer", n),  # type: ignore[misc]
                                                       "Stalled").get("status") == "True"
                         and get(running.kubectl, "customer", n), what=f"{case.name} Stalled")
        stalled = condition(raw, "Stalled")
        assert stalled["reason"] == "InvalidSpec"
        assert case.field in stalled["message"]
        assert condition(raw, "Ready")["status"] == "False"
        assert raw["status"]["observedGeneration"] == 1
        assert "lastCommit" not in raw["status"]
        assert commits_of(running.repo, f"customer/{case.name}") == []
        assert files_under(running.repo, f"tenants/{case.name}") == []
        warnings = [e for e in events_for(running.kubectl, case.name) if e["type"] == "Warning"]
        assert [e["reason"] for e in warnings] == ["InvalidSpec"]
        assert case.field in warnings[0]["message"]
    wait_ready(running, "customer", fine, 1)


@pytest.mark.realcluster
def test_guard_refusals_are_stalled_with_their_reason_and_one_warning(running: Running) -> None:
    """A storage shrink and a Preview taking the tenant's webhook host are each Stalled with
    their guard's reason and message and one Warning Event; nothing is committed for them."""
    acme = running.cluster.name("acme")
    spec = {"features": {"database": {"enabled": True, "storage": "20Gi"},
                         "webhooks": {"enabled": True}}}
    apply(running.kubectl, customer(acme, spec))
    wait_commit(running, f"customer/{acme}")
    spec["features"]["database"]["storage"] = "10Gi"
    apply(running.kubectl, customer(acme, spec))
    raw = wait_until(lambda: condition(get(running.kubectl, "customer", acme), "Stalled")
                     .get("reason") == "StorageShrink" and get(running.kubectl, "customer", acme),
                     what="Stalled StorageShrink")
    assert "20Gi -> 10Gi" in condition(raw, "Stalled")["message"]
    assert condition(raw, "Ready")["status"] == "False"
    thief = running.cluster.name("thief")
    apply(running.kubectl, json.dumps({
        "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Preview",
        "metadata": {"name": thief},
        "spec": {"app": "shop", "branch": "feat/x", "commit": "ab" * 20,
                 "image": "registry.example.com/shop:1", "host": f"{acme}.hooks.example.com"}}))
    raw = wait_until(lambda: condition(get(running.kubectl, "preview", thief), "Stalled")
                     .get("reason") == "HostConflict" and get(running.kubectl, "preview", thief),
                     what="Stalled HostConflict")
    assert f"customer/{acme}" in condition(raw, "Stalled")["message"]
    running.wait_processed("Customer", acme)
    assert len(commits_of(running.repo, f"customer/{acme}")) == 1
    assert commits_of(running.repo, f"preview/{thief}") == []
    for name, reason in ((acme, "StorageShrink"), (thief, "HostConflict")):
        warnings = wait_until(lambda n=name: [e for e in events_for(running.kubectl, n)  # type: ignore[misc]
                                              if e["type"] == "Warning"], what=f"{name} event")
        assert [e["reason"] for e in warnings] == [reason]


def test_a_directory_made_by_a_human_is_not_owned_until_the_adopt_annotation(
        running: Running) -> None:
    """A Customer whose tenants/ directory a human committed is Stalled with reason NotOwned
    and one Warning Event, its files untouched; the annotation reconciler.ahoi.dev/adopt
    hands it over in one commit with action adopt."""
    legacy = running.cluster.name("legacy")
    human_commit(running.repo, {f"tenants/{legacy}/deployment.yaml": b"kind: Deployment\n"},
                 "legacy, by hand")
    apply(running.kubectl, customer(legacy, {"displayName": "Legacy"}))
    raw = wait_until(lambda: condition(get(running.kubectl, "customer", legacy),
                                       "Stalled").get("status") == "True"
                     and get(running.kubectl, "customer", legacy), what="NotOwned")
    assert condition(raw, "Stalled")["reason"] == "NotOwned"
    assert [e["reason"] for e in events_for(running.kubectl, legacy)
            if e["type"] == "Warning"] == ["NotOwned"]
    assert files_under(running.repo, f"tenants/{legacy}") == [f"tenants/{legacy}/deployment.yaml"]
    assert commits_of(running.repo, f"customer/{legacy}") == []

    running.kubectl("annotate", "customer", legacy, "reconciler.ahoi.dev/adopt=true")

    [adopted] = wait_commit(running, f"customer/{legacy}")
    assert adopted.action == "adopt"
    assert f"tenants/{legacy}/deployment.yaml" not in files_under(running.repo,
                                                                  f"tenants/{legacy}")


@clusters.needs_fake("no schema validation, so workers: 0 reaches the reconciler (a real API "
                     "server rejects it, and a name too long for its namespace cannot be fixed)")
def test_fixing_an_invalid_spec_commits_and_clears_stalled(running: Running) -> None:
    """Correcting the field makes the next generation commit and turns Stalled off."""
    acme = running.cluster.name("acme")
    apply(running.kubectl, customer(acme, {"features": {"scheduler": {"workers": 0}}}))
    wait_until(lambda: condition(get(running.kubectl, "customer", acme),
                                 "Stalled").get("status") == "True", what="Stalled")
    apply(running.kubectl, customer(acme, {"features": {"scheduler": {"workers": 2}}}))
    [commit] = wait_commit(running, f"customer/{acme}")
    assert commit.generation == "2"
    raw = wait_ready(running, "customer", acme, 2)
    assert condition(raw, "Stalled")["status"] == "False"


# -- delete --------------------------------------------------------------------------------


@pytest.mark.realcluster
def test_delete_removes_the_directory_in_one_commit_then_releases_the_object(
        running: Running) -> None:
    """kubectl delete: tenants/acme and its pool entry go in one commit; the object is gone."""
    acme, shop = running.cluster.name("acme"), running.cluster.name("shop")
    apply(running.kubectl, examples({"customers/acme.yaml": acme}))
    apply(running.kubectl, customer(shop))
    wait_commit(running, f"customer/{acme}")
    wait_commit(running, f"customer/{shop}")
    wait_ready(running, "customer", acme, 1)
    assert acme in json.loads(pool_record(running.repo))["databases"]
    running.kubectl("delete", "customer", acme, "--timeout=15s")
    assert get(running.kubectl, "customer", acme) is None
    removal, _ = commits_of(running.repo, f"customer/{acme}")
    assert removal.action == "delete"
    assert files_under(running.repo, f"tenants/{acme}") == []
    assert acme not in json.loads(pool_record(running.repo))["databases"]
    touched = set(files_of_commit(running.repo, removal.id))
    assert any(p.startswith(f"tenants/{acme}/") for p in touched)
    assert any(p.startswith("platform/pgbouncer/") for p in touched)
    time.sleep(0.5)
    assert [c.action for c in commits_of(running.repo, f"customer/{acme}")] == ["delete", "create"]
    assert files_under(running.repo, f"tenants/{shop}")
    assert any(e["reason"] == "Removed" for e in events_for(running.kubectl, acme))


# -- watches that break --------------------------------------------------------------------


@clusters.needs_fake("drop_watches() cuts the controller's watches mid-stream")
def test_changes_made_while_a_watch_is_cut_are_not_missed(
        running: Running, fake_apiserver: server.FakeApiServer) -> None:
    """Watches cut mid-stream: a spec change, a create and a delete made meanwhile all land."""
    acme, gone, newcomer = (running.cluster.name(n) for n in ("acme", "gone", "newcomer"))
    apply(running.kubectl, customer(acme))
    apply(running.kubectl, customer(gone))
    wait_commit(running, f"customer/{acme}")
    wait_commit(running, f"customer/{gone}")
    wait_ready(running, "customer", gone, 1)
    assert fake_apiserver.drop_watches(abrupt=True) == 2
    running.kubectl("patch", "customer", acme, "--type", "merge",
                    "-p", '{"spec": {"displayName": "changed while cut"}}')
    apply(running.kubectl, customer(newcomer))
    running.kubectl("delete", "customer", gone, "--wait=false")
    assert fake_apiserver.open_watches < 2, "precondition: the changes happened while cut"
    newest, _ = wait_commit(running, f"customer/{acme}", 2)
    assert newest.generation == "2"
    wait_commit(running, f"customer/{newcomer}")
    wait_until(lambda: get(running.kubectl, "customer", gone) is None, what="gone deleted")
    assert files_under(running.repo, f"tenants/{gone}") == []
    informer = running.controller.informers["Customer"]
    assert informer.relists == 1, "resumed from the last resourceVersion, no relist"


@clusters.needs_fake("drop_watches() and compact() make the controller's resume answer 410 Gone")
def test_changes_made_before_a_410_are_found_by_listing_again(
        running: Running, fake_apiserver: server.FakeApiServer) -> None:
    """Watch history compacted (410 Gone on resume): the relist still finds every change."""
    acme, gone, newcomer = (running.cluster.name(n) for n in ("acme", "gone", "newcomer"))
    apply(running.kubectl, customer(acme))
    apply(running.kubectl, customer(gone))
    wait_commit(running, f"customer/{acme}")
    wait_commit(running, f"customer/{gone}")
    wait_ready(running, "customer", gone, 1)
    fake_apiserver.hold_watches()  # the controller's reconnect waits: the changes land while cut
    fake_apiserver.drop_watches(abrupt=True)
    running.kubectl("patch", "customer", acme, "--type", "merge",
                    "-p", '{"spec": {"displayName": "changed before the 410"}}')
    apply(running.kubectl, customer(newcomer))
    running.kubectl("delete", "customer", gone, "--wait=false")
    running.kubectl("patch", "customer", gone, "--type", "merge",
                    "-p", '{"metadata": {"finalizers": null}}')
    assert fake_apiserver.open_watches < 2, "precondition: the changes happened while cut"
    fake_apiserver.compact()  # resuming from before these changes now answers 410 Gone
    fake_apiserver.release_watches()
    newest, _ = wait_commit(running, f"customer/{acme}", 2)
    assert newest.generation == "2"
    wait_commit(running, f"customer/{newcomer}")
    [removal, _] = wait_commit(running, f"customer/{gone}", 2)
    assert removal.action == "delete"
    assert files_under(running.repo, f"tenants/{gone}") == []
    assert running.controller.informers["Customer"].relists >= 2, "listed again after the 410"
    wait_ready(running, "customer", acme, 2)
