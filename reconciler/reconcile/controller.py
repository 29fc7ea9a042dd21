"""The in-cluster controller: Customers and Previews from the API, commits, status, events.

Level-triggered and restart-safe: whatever arrives (watch event, relist, resync) only
queues the object's key; a reconcile reads the cached object and converges. The commit
state lives in the config repo, so a restarted or new leader makes no duplicate commits.
The rendering and writing path is the same Reconciler as local mode.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.core import applied, conditions, decide, errors, expiry, guards, layout, sources
from reconciler.core.models import DIRECTORIES, PLURALS, ObjectKey, Preview, Resource
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.render import customers
from reconciler.core.settings import Settings
from reconciler.ports.cluster import Cluster, RawObject
from reconciler.ports.configrepo import ConfigRepo
from reconciler.ports.metrics import Metrics, NoMetrics
from reconciler.reconcile import queries
from reconciler.reconcile.delivery import Delivery
from reconciler.reconcile.engine import RESYNC_ANNOTATION, ObjectReconciler
from reconciler.reconcile.informer import Informer
from reconciler.reconcile.workqueue import WorkQueue

log = logging.getLogger(__name__)

FINALIZER = "reconciler.ahoi.dev/finalizer"
TASK = "Task"  # queue keys of periodic tasks: ObjectKey(TASK, "applied")
COMPONENT = "gitops-reconciler"


class Controller:
    """Watches both kinds and reconciles each changed object through the Reconciler."""

    def __init__(self, *, cluster: Cluster, engine: ObjectReconciler, repo: ConfigRepo,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None,
                 watch_timeout: int = 300, delivery: Delivery | None = None,
                 orphan_grace_seconds: float = 0.0, settings: Settings | None = None,
                 allow_removals: int = 0) -> None:
        self._cluster = cluster
        self._settings = settings or Settings()
        #: confirms pruning up to this many orphan directories of a kind at once
        self.allow_removals = allow_removals
        #: kind -> orphan directories held back by the removal budget
        self.held_removals: dict[str, int] = {}
        self._orphan_grace = orphan_grace_seconds
        self._orphan_since: dict[ObjectKey, float] = {}
        self._once = False
        self._warned: dict[ObjectKey, tuple[str, str, int | None]] = {}
        self._expired: dict[str, str] = {}  # preview name -> ttl, for the removal commit
        self._engine = engine
        self._repo = repo
        self._clock = clock
        self._metrics = metrics or NoMetrics()
        self.delivery = delivery
        self.queue: WorkQueue[ObjectKey] = WorkQueue()
        self.informers = {
            kind: Informer(cluster=cluster, plural=plural, watch_timeout=watch_timeout,
                           on_change=self._enqueuer(kind), keep=self._owns)
            for kind, plural in PLURALS.items()
        }
        self._last_commit: dict[ObjectKey, str] | None = None
        self.failures: dict[ObjectKey, str] = {}
        #: objects whose change is held (metrics), and since when
        self._held_since: dict[ObjectKey, float] = {}
        #: objects whose spec can never render (Stalled) until someone changes them
        self.refused: dict[ObjectKey, str] = {}
        #: why the controller stopped on its own (an informer was denied: 401/403), or None
        self.fatal: str | None = None
        self._denied_keys: set[ObjectKey] = set()  # refused by RBAC: no retry until a change

    def _owns(self, raw: RawObject) -> bool:
        """Whether this instance's selector and shard select ``raw`` (a split fleet)."""
        metadata = raw.get("metadata") or {}
        return self._settings.owns(str(metadata.get("name", "")), metadata.get("labels") or {})

    def _enqueuer(self, kind: str) -> Callable[[str], None]:
        def enqueue(name: str) -> None:
            self.queue.add(ObjectKey(kind, name))
        return enqueue

    # -- running ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch and reconcile until ``stop`` is set."""
        threads = [threading.Thread(target=inf.run, args=(stop,), daemon=True,
                                    name=f"informer-{inf.plural}")
                   for inf in self.informers.values()]
        for thread in threads:
            thread.start()
        for informer in self.informers.values():
            while not informer.synced.wait(0.5):
                if stop.is_set() or self._denied():
                    return
        self.rerender_changed()
        self.enqueue_orphans()
        self._metrics.synced(self._clock())
        while not stop.is_set() and not self._denied():
            key = self.queue.get(timeout=0.5)
            self._metrics.queue_depth(len(self.queue))
            if key is not None:
                self.process(key)
            if not len(self.queue):
                self._repo.flush()
            if self.delivery is not None and self.delivery.due():
                self.deliver(paced=True)
        self.queue.close()

    def _denied(self) -> bool:
        """True once an informer was refused (401/403): it will never see changes again."""
        for informer in self.informers.values():
            if informer.denied is not None:
                self.fatal = str(informer.denied)
                return True
        return False

    def run_once(self, attempts: int = 3) -> bool:
        """List everything, reconcile until the queue is empty; True when all succeeded."""
        self._once = True
        for informer in self.informers.values():
            informer.relist()
        self.rerender_changed()
        self.enqueue_orphans()
        tries: dict[ObjectKey, int] = {}
        while len(self.queue):
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            if not self.process(key, requeue=False):  # retried here, a bounded number of times
                tries[key] = tries.get(key, 0) + 1
                if tries[key] < attempts and key not in self._denied_keys:
                    # no watch runs here: re-read the object our own writes (finalizer,
                    # status) moved on, or the retry carries a stale resourceVersion (409)
                    self.informers[key.kind].refresh(key.name)
                    self.queue.retry(key)
        self._metrics.synced(self._clock())
        if self.delivery is not None:
            self.deliver()
            while len(self.queue):  # a moved remote re-queued objects: converge again
                key = self.queue.get(timeout=1.0)
                if key is not None and not self.process(key):
                    break
            self.deliver()
        return not self.failures and not self.refused and not self.held_removals

    def deliver(self, *, paced: bool = False) -> None:
        """Push what is pending (re-queueing objects if the remote moved)."""
        assert self.delivery is not None
        # paced: one attempt, a failure backs off instead of sleeping in the work loop
        report = self.delivery.step() if paced else self.delivery.deliver()
        if report.error or report.pushes:
            self._metrics.pushed(ok=not report.error)
        if report.error:
            self._metrics.git_error()
            log.error("delivery: %s", report.error)
            self.failures[ObjectKey("Remote", "push")] = report.error
        else:
            self.failures.pop(ObjectKey("Remote", "push"), None)

    def rerender_changed(self) -> None:
        """Before the per-object queue: objects whose rendering changed while their spec did
        not (a settings or version change) are re-rendered in one commit per batch."""
        objects = []
        for kind, informer in self.informers.items():
            for name in informer.names():
                raw = informer.get(name)
                if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                parsed = sources.parse_document(str(ObjectKey(kind, name)), raw)
                if not isinstance(parsed, sources.Refusal):
                    objects.append(parsed)
        try:
            outcomes = self._engine.rerender(objects)
        except errors.ReconcilerError as exc:  # the queue re-renders them one by one
            log.warning("grouped re-render failed: %s", exc)
            return
        for outcome in outcomes:
            if outcome.result == Result.COMMITTED and outcome.key is not None:
                self._count(outcome)
                log.info("%s", outcome.message, extra={"object": str(outcome.key)})
            elif outcome.result == Result.PROPOSED and outcome.key is not None:
                log.info("%s: %s", outcome.message, outcome.pull_request_url,
                         extra={"object": str(outcome.key)})

    def resync(self) -> None:
        """Queue every known object again (periodic full resync); a grouped re-render that
        failed before (a forge or push error) is tried again first."""
        self.rerender_changed()
        for kind, informer in self.informers.items():
            for name in informer.names():
                self.queue.add(ObjectKey(kind, name))
        self.enqueue_orphans()
        self._metrics.synced(self._clock())

    def enqueue_orphans(self) -> None:
        """Queue directories whose object no longer exists (deleted while we were down).

        The removal budget holds the pruning when it would remove more than
        max(removal_budget_min, removal_budget_percent) of a kind's directories at once, or
        every one of them (a deleted CRD or a wrong cluster looks exactly like that);
        ``allow_removals`` (``run --allow-removals N``) confirms up to N.
        """
        total = 0
        for kind, top in DIRECTORIES.items():
            known = set(self.informers[kind].names())
            try:
                present = self._repo.list_directories(top)
            except errors.ReconcilerError as exc:  # a repo laid out otherwise: hold, say so
                log.error("not looking for orphaned %s directories: %s", top, exc)
                continue
            orphans = [name for name in present if name not in known]
            total += len(orphans)
            budget = max(decide.removal_budget(len(present), self._settings),
                         self.allow_removals)
            if orphans and (len(orphans) > budget or (
                    not known and len(orphans) > self.allow_removals)):
                log.error("%d of %d %s directories have no resource: not pruning them "
                          "(removal budget %d per pass; is the CRD installed, is this the "
                          "right cluster? confirm with --allow-removals %d)",
                          len(orphans), len(present), top, budget, len(orphans))
                self.held_removals[kind] = len(orphans)
                continue
            self.held_removals.pop(kind, None)
            for name in orphans:
                self.queue.add(ObjectKey(kind, name))
        self._metrics.orphans(total)

    # -- periodic tasks (run on the worker thread, like every write) ----------------------

    def schedule(self, task: str) -> None:
        """Queue a periodic task: ``expire-previews`` or ``applied``."""
        self.queue.add(ObjectKey(TASK, task))

    def _run_task(self, task: str) -> bool:
        if task == "expire-previews":
            self.expire_previews()
        elif task == "applied":
            self.check_applied()
        return True

    def expire_previews(self) -> list[str]:
        """Delete Previews whose ttl has passed (their finalizer then removes the directory)."""
        now, expired = self._clock(), []
        for name in self.informers["Preview"].names():
            raw = self.informers["Preview"].get(name)
            if raw is None:
                continue
            meta, ttl = raw.get("metadata") or {}, (raw.get("spec") or {}).get("ttl")
            created = _timestamp(meta.get("creationTimestamp"))
            if not ttl or created is None or meta.get("deletionTimestamp"):
                continue
            try:
                deadline = expiry.expires_at(created, ttl)
            except ValueError:
                continue
            if now >= deadline:
                self._event(raw, "Normal", "Expired",
                            f"ttl {ttl} passed ({expiry.describe_left(deadline, now)}): deleting")
                self._cluster.delete_object("previews", name)
                self._expired[name] = ttl
                expired.append(name)
        return expired

    def check_applied(self) -> None:
        """Set the Applied condition from Argo CD Applications and Flux Kustomizations."""
        apps = self._cluster.list_any(*applied.ARGO_APPLICATIONS)
        kustomizations = self._cluster.list_any(*applied.FLUX_KUSTOMIZATIONS)
        for kind, informer in self.informers.items():
            for name in informer.names():
                raw = informer.get(name)
                if raw is None or (raw.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                status = raw.get("status") or {}
                # Applications name the directory where it is (tenants/_3f/acme when sharded)
                where = layout.directory_of(ObjectKey(kind, name), self._settings.layout)
                wanted = applied.applied_condition(
                    where, status.get("lastCommit"),
                    applied.deployers(where, apps, kustomizations), self._repo.contains)
                merged = conditions.merge_conditions(
                    status.get("conditions") or [], [(applied.APPLIED, *wanted)],
                    (raw.get("metadata") or {}).get("generation"), self._clock())
                if merged != (status.get("conditions") or []):
                    self._cluster.patch_status(PLURALS[kind], name,
                                               {**status, "conditions": merged})

    def process(self, key: ObjectKey, *, requeue: bool = True) -> bool:
        """Reconcile one key, with metrics and backoff bookkeeping; True on success."""
        started = time.monotonic()
        try:
            if key.kind == TASK:
                ok, result = self._run_task(key.name), "task"
            else:
                ok, result = self.reconcile(key)
        except errors.AccessDeniedError as exc:  # retrying cannot help: wait for a change
            log.error("reconcile failed, not retried: %s", exc, extra={"object": str(key)})
            ok, result, requeue = False, "error", False
            self.failures[key] = str(exc)
            self._denied_keys.add(key)
        except errors.ReconcilerError as exc:
            log.warning("reconcile failed: %s", exc, extra={"object": str(key)})
            ok, result = False, "error"
            self.failures[key] = str(exc)
        except Exception as exc:  # a bug must not kill the worker: log it, back off, go on
            log.exception("unexpected error reconciling %s", key, extra={"object": str(key)})
            ok, result = False, "error"
            self.failures[key] = f"{type(exc).__name__}: {exc}"
        finally:
            self.queue.done(key)
        self._metrics.reconciled(key.kind, result, time.monotonic() - started)
        if ok:
            self.queue.forget(key)
            self.failures.pop(key, None)
            self._denied_keys.discard(key)
        elif requeue:
            self.queue.retry(key)
        return ok

    # -- one object ---------------------------------------------------------------------

    def reconcile(self, key: ObjectKey) -> tuple[bool, str]:
        """Converge one object; (succeeded, result word)."""
        raw = self.informers[key.kind].get(key.name)
        if raw is None:
            now = self._clock()
            waited = now - self._orphan_since.setdefault(key, now)
            if self._orphan_grace > 0 and waited < self._orphan_grace \
                    and self._repo.tree_id(key.directory) is not None:
                if not self._once:  # a one-shot pass reports it; it cannot wait out the grace
                    self.queue.add_after(key, self._orphan_grace - waited)
                return True, "orphan"  # reported (metric, status); pruned after the grace
            self._orphan_since.pop(key, None)
            outcome = self._engine.remove(key)
            self._count(outcome)
            if not outcome.ok:
                self.failures[key] = outcome.message
            return outcome.ok, outcome.result.value
        meta = raw.get("metadata") or {}
        self.refused.pop(key, None)
        if meta.get("deletionTimestamp"):
            return self._finalize(key, raw)
        parsed = sources.parse_document(str(key), raw)
        if isinstance(parsed, sources.Refusal):
            outcome = Outcome(key, Result.REFUSED, Reason.INVALID_SPEC, parsed.message)
            self.refused[key] = parsed.message
            self._write_status(raw, outcome, meta.get("generation"), None, warn=True)
            return True, outcome.result.value  # permanent until the object changes
        raw = self._with_finalizer(key, raw)
        force = RESYNC_ANNOTATION in (meta.get("annotations") or {})
        outcome = self._fleet_refusal(parsed) or self._engine.apply(parsed, force=force)
        if outcome.result == Result.REFUSED and outcome.reason != Reason.GIT_ERROR:
            # a guard said no: permanent until the object (or the repo) changes
            self.refused[key] = outcome.message
            self._write_status(raw, outcome, parsed.metadata.generation, None, warn=True)
            return True, outcome.result.value
        if force and outcome.ok:  # the request is served: take it off the object
            self._cluster.remove_annotation(PLURALS[key.kind], key.name, RESYNC_ANNOTATION)
        self._count(outcome)
        if outcome.result == Result.COMMITTED and outcome.commit:
            self._remember_commit(key, outcome.commit)
            self._event(raw, "Normal", outcome.reason.value,
                        f"committed {outcome.commit[:12]}: {outcome.message}")
        elif outcome.result == Result.UNCHANGED and outcome.commit is None:
            outcome = Outcome(key, outcome.result, outcome.reason, outcome.message,
                              self._known_commit(key), outcome.pull_request_url,
                              outcome.pull_request_number)
        elif outcome.result == Result.PROPOSED and outcome.pull_request_url != \
                ((raw.get("status") or {}).get("pullRequest") or {}).get("url"):
            self._event(raw, "Normal", outcome.reason.value,
                        f"{outcome.message}: {outcome.pull_request_url}")
        self._write_status(raw, outcome, parsed.metadata.generation, key.directory,
                           warn=not outcome.ok or outcome.result == Result.HELD)
        if not outcome.ok:
            self.failures[key] = outcome.message
        return outcome.ok, outcome.result.value

    def _fleet_refusal(self, obj: Resource) -> Outcome | None:
        """The fleet guards (a host claimed twice) for one object, against the others in
        the informers' caches: every Preview, and the tenants whose webhook host it is."""
        if not isinstance(obj, Preview):
            return None  # a tenant's webhook host always wins; only Previews are refused
        hosts = set(guards.host_claims(obj, self._settings))
        others: list[Resource] = []
        for kind, informer in self.informers.items():
            for name in informer.names():
                if name == obj.metadata.name and kind == obj.kind:
                    continue
                if kind == "Customer" and customers.webhooks_host(name, self._settings) \
                        not in hosts:
                    continue  # the cheap test first: only a tenant of that host can clash
                raw = informer.get(name)
                other = sources.parse_document(name, raw) if raw is not None else None
                if other is not None and not isinstance(other, sources.Refusal):
                    others.append(other)
        refusal = guards.refuse_fleet([obj, *others], self._settings).get(obj.key)
        if refusal is None:
            return None
        return Outcome(obj.key, Result.REFUSED, refusal.reason, refusal.message)

    def _with_finalizer(self, key: ObjectKey, raw: RawObject) -> RawObject:
        meta = raw.get("metadata") or {}
        if FINALIZER in (meta.get("finalizers") or []):
            return raw
        return self._cluster.set_finalizers(PLURALS[key.kind], key.name,
                                            [*(meta.get("finalizers") or []), FINALIZER],
                                            str(meta.get("resourceVersion")))

    def _finalize(self, key: ObjectKey, raw: RawObject) -> tuple[bool, str]:
        meta = raw["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return True, "skipped"
        ttl = self._expired.get(key.name) if key.kind == "Preview" else None
        outcome = self._engine.remove(key, note=f"expired (ttl {ttl})" if ttl else None)
        self._count(outcome)
        if not outcome.ok:
            self._event(raw, "Warning", outcome.reason.value, outcome.message)
            return False, outcome.result.value
        if outcome.result == Result.COMMITTED:
            self._event(raw, "Normal", "Removed",
                        f"committed {str(outcome.commit)[:12]}: {outcome.message}")
        finalizers.remove(FINALIZER)
        with contextlib.suppress(errors.NotFoundError):  # already gone: nothing to release
            self._cluster.set_finalizers(PLURALS[key.kind], key.name, finalizers,
                                         str(meta.get("resourceVersion")))
        return True, outcome.result.value

    # -- status, events, bookkeeping ----------------------------------------------------

    def _write_status(self, raw: RawObject, outcome: Outcome, generation: int | None,
                      path: str | None, *, warn: bool) -> None:
        previous = raw.get("status") or {}
        status = conditions.status_for(previous, outcome, generation, path, self._clock())
        if _same_status(previous, status):
            return
        name = raw["metadata"]["name"]
        self._cluster.patch_status(PLURALS[raw["kind"]], name, status)
        key = ObjectKey(raw["kind"], name)
        said = (outcome.reason.value, outcome.message, generation)
        if not warn:
            self._warned.pop(key, None)
        elif self._warned.get(key) != said:
            # the cache may still show the status before our last patch: warn once per cause
            self._warned[key] = said
            self._event(raw, "Warning", outcome.reason.value, outcome.message)

    def _event(self, raw: RawObject, event_type: str, reason: str, message: str) -> None:
        self._cluster.create_event(raw, event_type=event_type, reason=reason, message=message,
                                   component=COMPONENT, now=self._clock())

    def _count(self, outcome: Outcome) -> None:
        if outcome.key is not None:
            if outcome.result == Result.HELD or outcome.reason == Reason.REMOVAL_HELD:
                self._held_since.setdefault(outcome.key, self._clock())
            else:
                self._held_since.pop(outcome.key, None)
            self._metrics.held(len(self._held_since), min(self._held_since.values(), default=None))
        if outcome.result == Result.COMMITTED:
            self._metrics.committed()
            if self.delivery is not None:
                self.delivery.committed()
        elif outcome.reason == Reason.GIT_ERROR:
            self._metrics.git_error()

    def _known_commit(self, key: ObjectKey) -> str | None:
        if self._last_commit is None:
            self._last_commit = queries.last_commits(self._repo)
        return self._last_commit.get(key)

    def _remember_commit(self, key: ObjectKey, commit: str) -> None:
        if self._last_commit is not None:
            self._last_commit[key] = commit


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal apart from condition timestamps (which only move when a status flips)."""
    return bool(old) and old == new
