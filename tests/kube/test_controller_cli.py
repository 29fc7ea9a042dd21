"""``reconciler run --source kubernetes`` as a user starts it: a subprocess against the API.

End to end (with the event-to-commit latency measured), restarts, two replicas with a
hand-over when the leader is killed, ``--once``, and the health, metrics and log surface.
Every reconciler process is killed at teardown, whatever the test's outcome. The server is
the fake, or the real cluster ``RECONCILER_TEST_KUBECONFIG`` names (``tests.kube.clusters``);
every test here is marked ``realcluster`` and runs there too, its Lease in a test namespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import fixtures
from tests.kube import clusters
from tests.kube.test_controller_support import (  # noqa: F401 - pytest finds fixtures by name
    FINALIZER,
    apply,
    assert_no_commit_twice,
    commits,
    commits_of,
    condition,
    customer,
    events_for,
    examples,
    files_under,
    get,
    invalid_customers,
    kube_fixture,
    wait_until,
)

LEASE = "gitops-reconciler"
pytestmark = pytest.mark.realcluster


@dataclass
class Replica:
    """One ``reconciler run`` process and where its log goes."""

    identity: str
    process: subprocess.Popen[bytes]
    log: Path
    health_port: int

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log records written so far."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def committed_objects(self) -> list[str]:
        """Objects this process logged a commit for, in order."""
        return [r["object"] for r in self.log_lines()
                if r["msg"].startswith("committed ") and "object" in r]

    def stop(self) -> int:
        """SIGTERM, as Kubernetes stops a pod; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL: the process dies without releasing anything."""
        self.process.kill()
        self.process.wait(timeout=5)


Launch = Callable[..., Replica]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reconciler_binary() -> Path:
    binary = Path(sys.executable).parent / "reconciler"
    if not binary.exists():
        pytest.skip("the reconciler console script is not installed next to this Python")
    return binary


def child_env(tmp_path: Path) -> dict[str, str]:
    """The environment without RECONCILER_* settings or a pod namespace leaking in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RECONCILER_") and k not in ("POD_NAMESPACE", "KUBECONFIG")}
    env["HOME"] = str(tmp_path)
    return env


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Where the config repo is created (bare) by the first reconciler that runs."""
    return tmp_path / "config.git"


@pytest.fixture
def launch(cluster: clusters.Cluster, repo: Path, tmp_path: Path,
           kube: fixtures.Kubectl) -> Iterator[Launch]:
    """Start ``reconciler run --source kubernetes`` processes; all are killed at teardown."""
    binary = reconciler_binary()
    started: list[Replica] = []
    namespace = cluster.lease_namespace()

    def start(identity: str = "replica-a", *, health_port: int = 0) -> Replica:
        log = tmp_path / f"{identity}-{len(started)}.log"
        command = [str(binary), "--log-format", "json", "run", "--source", "kubernetes",
                   "--kubeconfig", str(cluster.reconciler_kubeconfig), "--repo", str(repo),
                   "--lease-namespace", namespace, "--identity", identity,
                   "--health-port", str(health_port)]
        with log.open("wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                       env=child_env(tmp_path))
        replica = Replica(identity, process, log, health_port)
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(timeout=5)
            print(f"--- log of {replica.identity} (exit {replica.process.returncode}) ---")
            print(replica.log.read_text())


def run_once(kubeconfig: Path, repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``reconciler run --source kubernetes --once``; fails the test if it does not end in 60 s."""
    command = [str(reconciler_binary()), "run", "--source", "kubernetes",
               "--kubeconfig", str(kubeconfig), "--repo", str(repo), "--once"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env=child_env(tmp_path))


def lease_holder(cluster: clusters.Cluster) -> str | None:
    done = cluster.kubectl("get", "lease", LEASE, "-n", cluster.lease_namespace(), "-o",
                           "jsonpath={.spec.holderIdentity}", check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def ready_at(kubectl: fixtures.Kubectl, name: str, generation: int,
             timeout: float = 30.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        raw = get(kubectl, "customer", name)
        status = (raw or {}).get("status") or {}
        ok = condition(raw, "Ready").get("status") == "True"
        return raw if ok and status.get("observedGeneration") == generation else None
    return wait_until(probe, timeout=timeout, what=f"customer/{name} Ready at {generation}")


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening (yet)


# -- end to end ----------------------------------------------------------------------------


def test_kubectl_apply_reaches_the_config_repo_within_seconds(
        launch: Launch, kube: fixtures.Kubectl, repo: Path, cluster: clusters.Cluster) -> None:
    """Each kubectl apply shows up as a commit (measured: apply to commit visible) and Ready."""
    launch()
    cluster.wait_for_watches(2, timeout=30)
    names = [cluster.name(f"tenant-{index}") for index in range(5)]
    latencies = []
    for index, name in enumerate(names):
        started = time.monotonic()
        apply(kube, customer(name, {"displayName": f"Tenant {index}"}))
        wait_until(lambda n=name: commits_of(repo, f"customer/{n}"),  # type: ignore[misc]
                   interval=0.01, what=f"commit of {name}")
        latencies.append(time.monotonic() - started)
    print(f"\nevent-to-commit latency (kubectl apply -> commit visible), 5 objects: "
          f"min {min(latencies):.3f}s, median {statistics.median(latencies):.3f}s, "
          f"max {max(latencies):.3f}s")
    assert max(latencies) < 10.0
    for name in names:
        [commit] = commits_of(repo, f"customer/{name}")
        raw = ready_at(kube, name, 1)
        assert raw["status"]["lastCommit"] == commit.id
        assert raw["status"]["renderedPath"] == f"tenants/{name}"
        assert FINALIZER in raw["metadata"]["finalizers"]
        assert [e["reason"] for e in events_for(kube, name)] == ["Created"]
    assert_no_commit_twice(repo)


# -- restarts ------------------------------------------------------------------------------


def test_a_restart_commits_what_changed_meanwhile_once_and_nothing_else(
        launch: Launch, kube: fixtures.Kubectl, repo: Path, cluster: clusters.Cluster) -> None:
    """Stopped, then restarted: a change made meanwhile is committed once, a deletion cleaned up."""
    acme, steady, gone = (cluster.name(n) for n in ("acme", "steady", "gone"))
    first = launch("replica-a")
    apply(kube, examples({"customers/acme.yaml": acme}))
    apply(kube, customer(steady))
    apply(kube, customer(gone))
    for name in (acme, steady, gone):
        wait_until(lambda n=name: commits_of(repo, f"customer/{n}"),  # type: ignore[misc]
                   timeout=30, what=f"commit of {name}")
        ready_at(kube, name, 1)
    assert first.stop() == 0
    assert lease_holder(cluster) is None, "a clean stop releases the Lease"
    before = commits(repo)

    kube("patch", "customer", acme, "--type", "merge",
         "-p", '{"spec": {"displayName": "ACME while down"}}')
    kube("delete", "customer", gone, "--wait=false")
    kube("patch", "customer", gone, "--type", "merge", "-p", '{"metadata": {"finalizers": null}}')
    assert get(kube, "customer", gone) is None

    launch("replica-b")
    wait_until(lambda: len(commits_of(repo, f"customer/{acme}")) == 2, what="acme committed again")
    wait_until(lambda: len(commits_of(repo, f"customer/{gone}")) == 2, what="gone removed")
    ready_at(kube, acme, 2)
    time.sleep(1.5)  # a duplicate or stray commit would appear by now
    after = commits(repo)
    new = after[:len(after) - len(before)]
    assert after[len(new):] == before
    assert sorted((c.object, c.action, c.generation) for c in new) == [
        (f"customer/{acme}", "update", "2"), (f"customer/{gone}", "delete", "1")]
    assert files_under(repo, f"tenants/{gone}") == []
    assert len(commits_of(repo, f"customer/{steady}")) == 1
    assert_no_commit_twice(repo)


# -- two replicas --------------------------------------------------------------------------


def test_two_replicas_have_one_writer_and_hand_over_when_the_leader_dies(
        launch: Launch, kube: fixtures.Kubectl, repo: Path, cluster: clusters.Cluster) -> None:
    """One replica holds the Lease and commits; kill -9 it and the other takes over in time."""
    first, second = cluster.name("first"), cluster.name("second")
    leader = launch("replica-a")
    wait_until(lambda: lease_holder(cluster) == "replica-a", timeout=30, what="replica-a leading")
    cluster.wait_for_watches(2, timeout=30)
    follower_port = free_port()
    follower = launch("replica-b", health_port=follower_port)
    wait_until(lambda: http_get(follower_port, "/healthz")[0] == 200, timeout=30,
               what="replica-b serving")
    apply(kube, customer(first))
    wait_until(lambda: commits_of(repo, f"customer/{first}"), what="commit of first")
    ready_at(kube, first, 1)
    time.sleep(2.5)  # more than the retry period: the follower has looked at the Lease
    assert lease_holder(cluster) == "replica-a"
    if cluster.fake is not None:  # only the fake can count the watches open on it
        assert cluster.fake.open_watches == 2, "only the leader watches"
    assert follower.committed_objects() == []

    leader.kill()
    killed = time.monotonic()
    kube("patch", "customer", first, "--type", "merge", "-p", '{"spec": {"displayName": "v2"}}')
    apply(kube, customer(second))
    wait_until(lambda: lease_holder(cluster) == "replica-b", timeout=25, interval=0.1,
               what="replica-b leading")
    takeover = time.monotonic() - killed
    wait_until(lambda: len(commits_of(repo, f"customer/{first}")) == 2
               and commits_of(repo, f"customer/{second}"), timeout=30, what="changes committed")
    to_commit = time.monotonic() - killed
    print(f"\nhand-over after kill -9 of the leader: Lease taken after {takeover:.1f}s, "
          f"changes committed after {to_commit:.1f}s (lease duration 15s)")
    assert takeover < 25
    ready_at(kube, first, 2)
    ready_at(kube, second, 1)
    assert leader.committed_objects() == [f"customer/{first}"]
    assert sorted(follower.committed_objects()) == [f"customer/{first}", f"customer/{second}"]
    assert_no_commit_twice(repo)
    assert follower.process.poll() is None


# -- --once --------------------------------------------------------------------------------


def test_once_reconciles_everything_and_exits_zero(
        kube: fixtures.Kubectl, cluster: clusters.Cluster, repo: Path, tmp_path: Path) -> None:
    """--once commits every object, reports them Ready, exits 0; a second run commits nothing."""
    paths = ["customers/acme.yaml", "customers/big-client-0815.yaml", "customers/small-shop.yaml",
             "previews/billing-fix-invoices.yaml", "previews/campaigns-feat-xyz.yaml"]
    names = {path: cluster.name(Path(path).stem) for path in paths}
    apply(kube, examples(names))
    first = run_once(cluster.reconciler_kubeconfig, repo, tmp_path)
    assert first.returncode == 0, first.stderr
    keys = {c.object for c in commits(repo) if c.object.startswith(("customer/", "preview/"))}
    assert keys == {f"{path.split('/')[0].removesuffix('s')}/{name}" for path, name in names.items()}
    for key in sorted(keys):
        kind, name = key.split("/")
        raw = get(kube, kind, name)
        assert condition(raw, "Ready")["status"] == "True", key
        assert raw is not None and FINALIZER in raw["metadata"]["finalizers"]
    before = commits(repo)
    second = run_once(cluster.reconciler_kubeconfig, repo, tmp_path)
    assert second.returncode == 0, second.stderr
    assert commits(repo) == before


def test_once_exits_non_zero_with_one_line_when_a_commit_fails(
        kube: fixtures.Kubectl, cluster: clusters.Cluster, repo: Path, tmp_path: Path) -> None:
    """A branch that cannot be updated: exit 1 after bounded retries, the object named, Ready=False."""
    acme = cluster.name("acme")
    init = subprocess.run([str(reconciler_binary()), "init", "--repo", str(repo)],
                          capture_output=True, text=True, check=False, env=child_env(tmp_path))
    assert init.returncode == 0, init.stderr
    (repo / "refs" / "heads" / "main.lock").write_text("held by another writer\n")
    apply(kube, customer(acme))
    done = run_once(cluster.reconciler_kubeconfig, repo, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"customer/{acme}" in errors[0] and "commit failed" in errors[0]
    ready = condition(get(kube, "customer", acme), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "GitError")


def test_once_reports_an_invalid_spec_in_status_and_commits_the_rest(
        kube: fixtures.Kubectl, cluster: clusters.Cluster, repo: Path, tmp_path: Path) -> None:
    """--once with an object the reconciler refuses: it is Stalled in status, the valid one committed."""
    bad, good = invalid_customers(cluster)[0], cluster.name("good")
    apply(kube, customer(bad.name, bad.spec))
    apply(kube, customer(good))
    run_once(cluster.reconciler_kubeconfig, repo, tmp_path)
    assert commits_of(repo, f"customer/{good}")
    assert commits_of(repo, f"customer/{bad.name}") == []
    stalled = condition(get(kube, "customer", bad.name), "Stalled")
    assert stalled["status"] == "True"
    assert bad.field in stalled["message"]


def test_once_exits_non_zero_when_an_object_is_invalid(
        kube: fixtures.Kubectl, cluster: clusters.Cluster, repo: Path, tmp_path: Path) -> None:
    """An invalid spec is something the user must fix, so --once exits 1 as local mode does."""
    bad = invalid_customers(cluster)[0]
    apply(kube, customer(bad.name, bad.spec))
    done = run_once(cluster.reconciler_kubeconfig, repo, tmp_path)
    assert done.returncode == 1
    assert f"customer/{bad.name}" in done.stderr or f"'{bad.name}'" in done.stderr


# -- operating it --------------------------------------------------------------------------


def test_health_metrics_and_json_logs(
        launch: Launch, kube: fixtures.Kubectl, repo: Path, cluster: clusters.Cluster) -> None:
    """/healthz, /readyz and /metrics answer over HTTP; every log line is JSON naming objects."""
    acme = cluster.name("acme")
    port = free_port()
    started = time.time()
    replica = launch(health_port=port)
    wait_until(lambda: http_get(port, "/healthz")[0] == 200, timeout=30, what="/healthz")
    assert http_get(port, "/healthz") == (200, "ok\n")
    wait_until(lambda: http_get(port, "/readyz") == (200, "ok\n"), what="/readyz")
    cluster.wait_for_watches(2)
    apply(kube, customer(acme))
    wait_until(lambda: commits_of(repo, f"customer/{acme}"), what="commit of acme")
    ready_at(kube, acme, 1)
    code, metrics = http_get(port, "/metrics")
    assert code == 200
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in metrics.splitlines() if line and not line.startswith("#")}
    assert samples["reconciler_commits_total"] == 1.0
    assert samples['reconciler_reconciles_total{kind="Customer",result="committed"}'] == 1.0
    assert "reconciler_queue_depth" in samples
    assert "reconciler_git_errors_total" in samples
    assert any(k.startswith("reconciler_reconcile_duration_seconds") for k in samples)
    assert samples["reconciler_last_successful_sync_timestamp_seconds"] >= int(started)
    assert http_get(port, "/nothing-here")[0] == 404
    assert replica.stop() == 0
    records = replica.log_lines()  # raises on any line that is not JSON
    assert all({"time", "level", "logger", "msg"} <= set(r) for r in records)
    commit_lines = [r for r in records if r["msg"].startswith("committed ")]
    assert [r["object"] for r in commit_lines] == [f"customer/{acme}"]
