"""Leader election on a coordination.k8s.io/v1 Lease: exactly one replica reconciles.

A candidate tries to create, acquire (when expired) or renew the Lease every
``retry_period``; writes are guarded by resourceVersion, so of two candidates racing for
an expired Lease only one wins (the other gets 409). A leader that cannot renew within
``renew_deadline`` stops leading before any other candidate may take over
(renew_deadline < lease duration), so two leaders never write at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from reconciler.core import errors, leader
from reconciler.ports.cluster import Cluster

log = logging.getLogger(__name__)


class Elector:
    """One candidate for the Lease ``namespace/name``."""

    def __init__(self, *, cluster: Cluster, namespace: str, name: str, identity: str,
                 lease_seconds: int = 15, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        if renew_deadline >= lease_seconds:
            raise ValueError("renew_deadline must be shorter than the lease duration")
        self._cluster = cluster
        self._namespace, self._name = namespace, name
        self.identity = identity
        self._lease_seconds = lease_seconds
        self._renew_deadline = renew_deadline
        self._retry = retry_period
        self._clock = clock
        self._last_renewed: float | None = None
        self.is_leader = threading.Event()
        self.holder: str | None = None
        #: set when the API server refused the Lease (401/403): this candidate gave up
        self.denied: errors.AccessDeniedError | None = None

    def step(self) -> bool:
        """One attempt to acquire or renew; True while we are the leader."""
        now = self._clock()
        try:
            current = self._cluster.read_lease(self._namespace, self._name)
            decision = leader.decide(current, self.identity, now, self._lease_seconds)
            self.holder = decision.holder
            if decision.lease is not None:
                self._cluster.write_lease(self._namespace, self._name, decision.lease)
                if decision.action != leader.Action.RENEW:
                    log.info("acquired lease %s/%s as %s", self._namespace, self._name,
                             self.identity)
                self._last_renewed = now
                self.is_leader.set()
                return True
        except errors.ConflictError:
            log.info("lost the race for lease %s/%s", self._namespace, self._name)
        except errors.AccessDeniedError as exc:
            log.error("lease %s/%s: %s", self._namespace, self._name, exc)
            self.denied = exc
        except errors.ReconcilerError as exc:
            log.warning("lease %s/%s: %s", self._namespace, self._name, exc)
        if self.is_leader.is_set() and self._last_renewed is not None \
                and now - self._last_renewed < self._renew_deadline:
            return True  # a failed renew within the deadline: still leader
        if self.is_leader.is_set():
            log.error("could not renew lease %s/%s: stepping down", self._namespace, self._name)
        self.is_leader.clear()
        return False

    def run(self, stop: threading.Event, lost: threading.Event) -> None:
        """Keep trying until ``stop``; set ``lost`` if leadership is lost after being held."""
        while not stop.is_set():
            was_leader = self.is_leader.is_set()
            if not self.step() and (was_leader or self.denied is not None):
                lost.set()
                return
            stop.wait(self._retry)

    def release(self) -> None:
        """Give the Lease up on a clean shutdown, so a successor need not wait it out."""
        if not self.is_leader.is_set():
            return
        try:
            current = self._cluster.read_lease(self._namespace, self._name)
            if current is not None and current.holder == self.identity:
                self._cluster.write_lease(self._namespace, self._name,
                                          replace(current, holder=None, renew_time=self._clock()))
        except errors.ReconcilerError as exc:
            log.warning("could not release lease: %s", exc)
        self.is_leader.clear()
