"""The in-cluster controller process: leader election, health server, scheduled work."""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from reconciler.adapters.gitremote import redact
from reconciler.adapters.kube import KubeCluster, api_client
from reconciler.adapters.observability import HealthServer, PrometheusMetrics
from reconciler.adapters.scheduler import Scheduler
from reconciler.app.wiring import Target, wire
from reconciler.core.models import ObjectKey
from reconciler.core.settings import Settings
from reconciler.reconcile.controller import Controller
from reconciler.reconcile.election import Elector

log = logging.getLogger(__name__)


def run_kubernetes(*, target: Target, settings: Settings, kubeconfig: str | None,
                   context: str | None, once: bool, leader_elect: bool, lease_namespace: str,
                   lease_name: str, identity: str | None, health_port: int,
                   allow_removals: int = 0) -> int:
    """``run --source kubernetes``: the in-cluster controller (or one pass with ``once``)."""
    cluster = KubeCluster(api_client(kubeconfig, context))
    controllers: list[Controller] = []

    def requeue(keys: list[ObjectKey]) -> None:
        for key in keys:
            controllers[0].queue.add(key)

    wiring = wire(target, settings, on_rebase=requeue, elected=leader_elect and not once)
    repo = wiring.repo
    metrics = PrometheusMetrics()
    controller = Controller(cluster=cluster, engine=wiring.engine, repo=wiring.logical, metrics=metrics,
                            delivery=wiring.delivery,
                            orphan_grace_seconds=settings.orphan_grace_seconds,
                            settings=settings, allow_removals=allow_removals)
    controllers.append(controller)
    if once:
        ok = controller.run_once()
        repo.flush()
        for key, message in sorted({**controller.failures, **controller.refused}.items()):
            log.error("%s", message, extra={"object": str(key)})
        for kind, held in sorted(controller.held_removals.items()):
            log.error("%d %s removals held by the removal budget", held, kind)
        return 0 if ok else 1
    stop, lost = threading.Event(), threading.Event()
    elector = Elector(cluster=cluster, namespace=lease_namespace, name=lease_name,
                      identity=identity or f"{socket.gethostname()}-{os.getpid()}")

    def ready() -> bool:
        synced = all(i.synced.is_set() for i in controller.informers.values())
        return synced or (leader_elect and not elector.is_leader.is_set())

    health = HealthServer(port=health_port, metrics=metrics, ready=ready)
    health.start()
    log.info("watching Customers and Previews in the cluster -> %s branch %s (mode %s); "
             "/healthz /readyz /metrics on port %d%s", redact(target.repo), settings.branch,
             target.mode, health.port, ", waiting for the leader lease" if leader_elect else "")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if leader_elect:
        threading.Thread(target=elector.run, args=(stop, lost), daemon=True,
                         name="leader-election").start()
        while not elector.is_leader.wait(0.5):
            if stop.is_set() or elector.denied is not None:
                health.stop()
                if elector.denied is not None:
                    log.error("cannot take part in leader election: exiting (%s)",
                              elector.denied)
                    return 1
                return 0
    scheduler = Scheduler(background=True)
    scheduler.every(settings.resync_seconds, controller.resync, name="resync")
    scheduler.every(settings.expiry_check_seconds, lambda: controller.schedule("expire-previews"),
                    name="expire-previews")
    scheduler.every(settings.applied_check_seconds, lambda: controller.schedule("applied"),
                    name="applied")
    scheduler.start()
    worker = threading.Thread(target=controller.run, args=(stop,), daemon=True,
                              name="controller")
    worker.start()
    while not stop.wait(0.5):
        if controller.fatal is not None or lost.is_set():
            log.error("%s", "leadership lost: exiting so that a restart rejoins the election"
                      if controller.fatal is None
                      else f"the controller cannot work: exiting ({controller.fatal})")
            stop.set()
            worker.join(timeout=10)
            return 1
    worker.join(timeout=10)
    scheduler.shutdown()
    repo.flush()
    if leader_elect:
        elector.release()
    health.stop()
    return 0
