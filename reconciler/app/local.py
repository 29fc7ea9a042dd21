"""Local mode and the one-shot commands: manifest files in, passes, render, resync,
rollback and the rest the CLI calls."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.adapters import filesource, memory, progress
from reconciler.adapters.gitremote import is_url, redact
from reconciler.adapters.layoutview import LayoutView
from reconciler.app.offline import parse_cache, read_sources
from reconciler.app.wiring import VERSION, Target, Wiring, tree_cache, wire
from reconciler.core import decide as decision
from reconciler.core import errors, yamlio
from reconciler.core import sources as sources_core
from reconciler.core.models import PLURALS, ObjectKey, Resource
from reconciler.core.outcomes import Outcome
from reconciler.core.settings import Settings
from reconciler.core.snapshot import Request, Snapshot
from reconciler.reconcile import rollback as rollback_logic
from reconciler.reconcile.delivery import DeliveryReport
from reconciler.reconcile.engine import PassReport, Reconciler
from reconciler.reconcile.pullrequests import PullRequestReconciler

if TYPE_CHECKING:
    from reconciler.adapters.watcher import SourceWatcher

log = logging.getLogger(__name__)


POLL_SECONDS = 2.0
#: how often the push job looks whether a push is due (the window sets the pace)
PUSH_CHECK_SECONDS = 1.0


def local_pass(wiring: Wiring, sources: Sequence[Path], settings: Settings,
               allow_removals: int = 0, *, show_progress: bool = False) -> PassReport:
    """One pass over the manifest files; Previews past their ttl are removed. With
    ``show_progress`` a terminal shows what the pass is doing while it runs."""
    if not show_progress:
        return wiring.engine.sync(read_sources(sources, settings, git_dir=wiring.repo.path),
                                  now=time.time(), allow_removals=allow_removals)
    with progress.terminal_status(f"reading {', '.join(map(str, sources))}"):
        parsed = read_sources(sources, settings, git_dir=wiring.repo.path)
    with progress.terminal_status(f"reconciling {len(parsed.objects)} objects",
                                  total=len(parsed.objects)):
        return wiring.engine.sync(parsed, now=time.time(), allow_removals=allow_removals)


def plan_once(sources: Sequence[Path], target: Target | Path, settings: Settings,
              allow_removals: int = 0) -> decision.Plan:
    """``reconciler plan``: what ``run --once`` would commit now; writes nothing.

    A local repository is opened as it is (never created or seeded); a remote is only
    fetched into its mirror.
    """
    for root in sources:  # a typo in a source is named before anything is opened
        filesource.check_root(root)
    if isinstance(target, Path):
        target = Target(str(target))
    if not is_url(target.repo) and not Path(target.repo).exists():
        # no repository yet: the plan of the first run, into an empty one
        parsed = read_sources(sources, settings)
        return decision.decide(Snapshot(parsed.objects, parsed.refusals, parsed.incomplete),
                               settings, time.time(),
                               Request(VERSION, allow_removals=allow_removals))
    wiring = wire(dataclasses.replace(target, mode="direct"), settings, create=False)
    parsed = read_sources(sources, settings, git_dir=wiring.repo.path)
    engine = Reconciler(repo=wiring.logical, settings=settings, version=VERSION,
                        trees=tree_cache(wiring.repo))
    return engine.plan(parsed, now=time.time(), allow_removals=allow_removals)


REPASSES = 6  # a remote moving under every push this often is a fight, not a race


def deliver_pass(wiring: Wiring, run_pass: Callable[[], PassReport],
                 report: PassReport) -> tuple[PassReport, DeliveryReport | None]:
    """Deliver; while the remote moved, run the same pass again on its new head."""
    if wiring.delivery is None:
        return report, None
    delivered = wiring.delivery.deliver()
    for _ in range(REPASSES):
        if not delivered.remote_moved:
            break
        wiring.after_reset()
        report = run_pass()
        again = wiring.delivery.deliver()
        again.rebases += delivered.rebases
        again.foreign = delivered.foreign + again.foreign
        delivered = again
    return report, delivered


def run_once(sources: Sequence[Path], target: Target | Path, settings: Settings,
             allow_removals: int = 0, *,
             show_progress: bool = False) -> tuple[PassReport, DeliveryReport | None]:
    """One local-mode pass, then (for a remote) one delivery of every commit made; when
    the remote moved, the same pass runs again on the new head."""
    for root in sources:  # before anything is created: a typo must write nothing
        filesource.check_root(root)
    wiring = wire(target, settings)

    def run_pass() -> PassReport:
        return local_pass(wiring, sources, settings, allow_removals,
                          show_progress=show_progress)
    return deliver_pass(wiring, run_pass, run_pass())


def run_forever(sources: Sequence[Path], target: Target | Path, settings: Settings,
                on_report: Callable[[PassReport], None], allow_removals: int = 0, *,
                show_progress: bool = False,
                on_start: Callable[[str], None] | None = None) -> None:
    """Local mode: reconcile now, on every change of the sources, and every resync period;
    push (for a remote) once the oldest unpushed commit is ``push_window`` old.

    A change costs what changed: file notifications (or, without them, a stat of every file
    every ``POLL_SECONDS``) name the files, only those are re-read, and objects that were
    added or edited are reconciled on their own; a file that lost or broke an object runs
    a full pass (removals keep their budget and guards).
    """
    del show_progress  # passes in watch mode are small; progress is for one-shot runs
    for root in sources:
        filesource.check_root(root)
    wiring = wire(target, settings)
    loop = WatchLoop(wiring, filesource.SourceCache(list(sources), _limits(settings),
                                                    parse_cache(wiring.repo.path)),
                     on_report, allow_removals)

    def push() -> None:
        # its own job on its own thread: a slow or failing push never holds up committing
        if wiring.delivery is not None and wiring.delivery.due():
            delivered = wiring.delivery.step()
            if delivered.remote_moved:  # the same pass again, on the new head
                loop.full()
            if delivered.error:
                log.error("delivery: %s", delivered.error)

    if on_start is not None:
        on_start(f"watching {', '.join(map(str, sources))} (file notifications, full resync "
                 f"every {settings.resync_seconds} s) -> "
                 f"{redact(str(getattr(target, 'repo', target)))} branch {settings.branch}; "
                 "Ctrl-C stops")
    from reconciler.adapters.scheduler import Scheduler  # APScheduler: only for watch mode
    from reconciler.adapters.watcher import SourceWatcher

    scheduler = Scheduler()
    watcher = SourceWatcher(list(sources),
                            lambda: scheduler.run_soon(lambda: loop.changed(watcher), name="changed"))
    # watch before the first pass reads the files: an edit made while that pass runs is
    # then pending, not lost until the next resync
    notified = watcher.start()
    loop.full()
    if notified:
        # a notification arriving while its job still runs is picked up here (no I/O when
        # nothing is pending)
        scheduler.every(1.0, lambda: loop.changed(watcher), name="changed-sweep")
    else:
        scheduler.every(POLL_SECONDS, loop.poll, name="poll-sources")
    scheduler.every(settings.resync_seconds, loop.full, name="resync")
    if wiring.delivery is not None:
        scheduler.every(PUSH_CHECK_SECONDS, push, name="push", lane="delivery")
    try:
        scheduler.run_forever()
    finally:
        watcher.stop()


def _limits(settings: Settings) -> sources_core.Limits:
    return sources_core.Limits(settings.max_source_file_bytes, settings.max_source_documents)


class WatchLoop:
    """Watch mode's passes over a source cache (all run on the scheduler's one thread)."""

    def __init__(self, wiring: Wiring, cache: filesource.SourceCache,
                 on_report: Callable[[PassReport], None], allow_removals: int) -> None:
        self.wiring = wiring
        self.cache = cache
        self._on_report = on_report
        self._allow = allow_removals

    def _sync(self) -> PassReport:
        with self.wiring.guard:
            return self.wiring.engine.sync(self.cache.parsed(), now=time.time(),
                                           allow_removals=self._allow)

    def _report(self, report: PassReport) -> None:
        self._on_report(report)
        if report.commits and self.wiring.delivery is not None:
            self.wiring.delivery.committed()

    def full(self) -> None:
        """Rescan every file and run a full pass (start, resync, removals)."""
        try:
            self.cache.rescan()
            report = self._sync()
        except errors.UserInputError as exc:  # the source vanished: remove nothing
            log.error("%s", exc)
            return
        self._report(report)
        del report  # the pass's verdicts, before the heap is trimmed
        memory.release_free_memory()  # a full pass's peak is not the steady state

    def changed(self, watcher: SourceWatcher) -> None:
        """Notifications arrived: look at the files they name."""
        paths, rescan = watcher.take()
        self._sync_changed(lambda: self.cache.rescan() if rescan else self.cache.update(paths))

    def poll(self) -> None:
        """No notifications: stat every file (re-reading only changed ones)."""
        self._sync_changed(self.cache.rescan)

    def _sync_changed(self, read: Callable[[], set[str]]) -> None:
        try:
            touched = read()
        except errors.UserInputError as exc:
            log.error("%s", exc)
            return
        keys = self.cache.affected(touched)
        if not touched:
            return
        parsed = self.cache.parsed()
        by_key = {o.key: o for o in parsed.objects}
        if not keys or parsed.incomplete or any(k not in by_key for k in keys):
            self.full()  # something was removed or refused: judge removals over everything
            return
        with self.wiring.guard:
            report = PassReport([self.wiring.engine.apply(by_key[k]) for k in sorted(keys)])
        self._report(report)


def find_object(sources: Sequence[Path], key: ObjectKey,
                settings: Settings | None = None) -> Resource:
    """The valid resource ``key`` among the manifests under ``sources``."""
    parsed = read_sources(sources, settings)
    for obj in parsed.objects:
        if obj.key == key:
            return obj
    for refusal in parsed.refusals:
        if refusal.key == key:
            raise errors.UserInputError(str(refusal))
    raise errors.NotFoundError(f"{key}: no such resource under {', '.join(map(str, sources))}")


def resync(sources: Sequence[Path], target: Target, settings: Settings,
           key: ObjectKey, *, adopt: bool = False) -> tuple[Outcome, DeliveryReport | None]:
    """``reconciler resync``: write ``key``'s rendering even over a human's change
    (``adopt``: ``reconciler adopt``, take over a directory someone else made)."""
    obj = find_object(sources, key, settings)
    wiring = wire(target, settings)

    def run_pass() -> PassReport:
        return PassReport([wiring.engine.apply(obj, force=not adopt, adopt=adopt)])
    report, delivered = deliver_pass(wiring, run_pass, run_pass())
    return report.outcomes[0], delivered


def rollback(target: Target, settings: Settings, key: ObjectKey, point: str, *,
             spec_source: str | None, kubeconfig: str | None,
             context: str | None) -> tuple[Outcome, DeliveryReport | None, str | None]:
    """``reconciler rollback``: restore ``key``'s files (and with a source, its spec)."""
    if spec_source is not None and spec_source != "kubernetes" and not Path(spec_source).exists():
        raise errors.UserInputError(f"--spec {spec_source}: no such file or directory")
    wiring = wire(target, settings)

    def run_pass() -> PassReport:
        if isinstance(wiring.engine, PullRequestReconciler):
            return PassReport([wiring.engine.propose(
                key, lambda view: rollback_logic.rollback(
                    LayoutView(view, settings.layout), key, point, version=VERSION,
                    settings=settings))])
        return PassReport([rollback_logic.rollback(wiring.logical, key, point, version=VERSION,
                                                   settings=settings)])
    first = run_pass()
    if not first.ok:
        return first.outcomes[0], None, None
    report, delivered = deliver_pass(wiring, run_pass, first)
    outcome = report.outcomes[0]
    note = None
    if spec_source is not None:
        point_commit = rollback_logic.resolve_point(wiring.logical, key, point)
        spec = rollback_logic.spec_at(wiring.logical, key, point_commit)
        if spec is None:
            raise errors.UserInputError(f"{key}: {point} recorded no spec to restore")
        note = restore_spec(spec_source, key, spec, kubeconfig=kubeconfig, context=context)
    return outcome, delivered, note


def restore_spec(source: str, key: ObjectKey, spec: dict[str, object], *,
                 kubeconfig: str | None, context: str | None) -> str:
    """Set the resource's spec back (in the cluster, or in its manifest file)."""
    if source == "kubernetes":
        from reconciler.adapters.kube import KubeCluster, api_client  # only this path needs it

        cluster = KubeCluster(api_client(kubeconfig, context))
        plural = PLURALS[key.kind]
        raw = cluster.get_object(plural, key.name)
        if raw is None:
            raise errors.UserInputError(f"{key}: not found in the cluster")
        cluster.replace_spec(plural, key.name, spec, str(raw["metadata"]["resourceVersion"]))
        return f"{key}: spec restored in the cluster"
    for path in filesource.manifest_files(Path(source)):
        parsed = sources_core.parse_text(str(path), path.read_bytes())
        if any(o.key == key for o in parsed.objects):
            docs = [d for d in yamlio.load_documents(path.read_bytes()) if d is not None]
            if len(docs) != 1:
                raise errors.UserInputError(
                    f"{path}: holds {len(docs)} documents; restore the spec of {key} by hand")
            docs[0]["spec"] = spec
            path.write_text(yamlio.dump_document(docs[0]))
            return f"{key}: spec restored in {path}"
    raise errors.UserInputError(f"{key}: no manifest under {source}")


def read_deployers(paths: Sequence[Path]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Argo CD Applications and Flux Kustomizations from YAML files (``kind: List`` too)."""
    apps: list[dict[str, object]] = []
    kustomizations: list[dict[str, object]] = []
    for root in paths:
        # Flux Kustomizations often live in kustomization.yaml: no resource ignore rules here
        for path in filesource.manifest_files(root, ignoring=False):
            try:
                docs = list(yamlio.load_documents(path.read_bytes()))
            except (OSError, yamlio.YAMLError) as exc:
                raise errors.UserInputError(f"{path}: cannot read: {exc}".splitlines()[0]) from exc
            for doc in docs:
                items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == \
                    "List" else [doc]
                for item in items:
                    if not isinstance(item, dict):
                        continue
                    if item.get("kind") == "Application":
                        apps.append(item)
                    elif item.get("kind") == "Kustomization" and \
                            str(item.get("apiVersion", "")).startswith("kustomize.toolkit"):
                        kustomizations.append(item)
    return apps, kustomizations
