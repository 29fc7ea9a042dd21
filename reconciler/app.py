"""Composition root: builds the adapters and hands them to the reconcile logic.

The only module that knows every concrete adapter. Entry points (the CLI) call these
functions; they hold no global state.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import reconciler
from reconciler.adapters import filesource
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.adapters.kube import KubeCluster, api_client
from reconciler.adapters.observability import HealthServer, PrometheusMetrics
from reconciler.adapters.scheduler import Scheduler
from reconciler.core import crdgen, errors, messages, plan, yamlio
from reconciler.core.render import common
from reconciler.core.settings import Settings, SettingsError, load_settings
from reconciler.core.sources import Parsed, Refusal
from reconciler.reconcile.controller import Controller
from reconciler.reconcile.election import Elector
from reconciler.reconcile.engine import PassReport, Reconciler, render

log = logging.getLogger(__name__)

VERSION = reconciler.__version__
POLL_SECONDS = 2.0


def settings_from(config: Path | None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from the ``--config`` file and ``RECONCILER_*`` variables."""
    text = None
    if config is not None:
        try:
            text = config.read_text()
        except OSError as exc:
            raise errors.UserInputError(f"{config}: {exc.strerror}") from exc
    try:
        return load_settings(text, os.environ if environ is None else environ)
    except SettingsError as exc:
        raise errors.UserInputError(f"{config or 'environment'}: {exc}") from exc


def layout_root() -> Path:
    """The ``repo-layout/`` skeleton shipped with the project."""
    candidates = [Path(reconciler.__file__).resolve().parents[1] / "repo-layout",
                  Path(os.environ.get("RECONCILER_LAYOUT_DIR", "/nonexistent"))]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise errors.PermanentError("repo-layout/ not found (set RECONCILER_LAYOUT_DIR)")


def layout_files() -> dict[str, bytes]:
    """Every file of the skeleton, by its path in the config repo."""
    root = layout_root()
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def open_repo(path: Path, settings: Settings, *, create: bool) -> GitConfigRepo:
    """Open (or create and seed) the config repo at ``path``."""
    repo = GitConfigRepo.open(path, branch=settings.branch, author_name=settings.author_name,
                              author_email=settings.author_email, create=create)
    if create and repo.head() is None:
        seed(repo)
    return repo


def seed(repo: GitConfigRepo) -> str | None:
    """Commit the repo-layout skeleton (only files not already there); None when nothing to add."""
    files = {p: data for p, data in layout_files().items() if repo.read_file(p) is None}
    if not files:
        return None
    msg = messages.build_message(
        "init: config repo layout",
        ["Skeleton from gitops-reconciler's repo-layout/: README, Argo CD ApplicationSets,",
         "Flux Kustomizations. Rendered directories are added by later commits."],
        [(messages.TRAILER_ACTION, "init"), (messages.TRAILER_VERSION, VERSION)])
    commit = repo.commit(plan.ChangeSet(files), msg)
    repo.flush()
    return commit


def init_repo(path: Path, settings: Settings) -> str | None:
    """``reconciler init``: create the repo if needed and seed the skeleton."""
    repo = GitConfigRepo.open(path, branch=settings.branch, author_name=settings.author_name,
                              author_email=settings.author_email, create=True)
    return seed(repo)


def read_sources(paths: Sequence[Path]) -> Parsed:
    """Parse every manifest under ``paths``."""
    return filesource.read_sources(list(paths))


def render_to(paths: Sequence[Path], out: Path, settings: Settings) -> tuple[Parsed, list[Path]]:
    """``reconciler render``: write each valid object's directory under ``out``."""
    parsed = read_sources(paths)
    written: list[Path] = []
    refusals = list(parsed.refusals)
    for obj in parsed.objects:
        problem = common.namespace_problem(obj, settings)
        if problem:
            refusals.append(Refusal(str(obj.key), problem, obj.key))
            continue
        rendered = render(obj, settings)
        for rel, data in rendered.files.items():
            target = out / rendered.directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written.append(target)
    return Parsed(parsed.objects, refusals, parsed.incomplete), written


def write_crds(out: Path) -> list[Path]:
    """``reconciler crds``: write the generated CRDs."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, crd in crdgen.all_crds().items():
        path = out / name
        header = "# Generated by `reconciler crds` from reconciler/core/models.py. Do not edit.\n"
        path.write_bytes(header.encode() + yamlio.dump_documents([crd]))
        paths.append(path)
    return paths


def local_reconciler(repo_path: Path, settings: Settings) -> tuple[GitConfigRepo, Reconciler]:
    """The reconciler wired to a local repository."""
    repo = open_repo(repo_path, settings, create=True)
    return repo, Reconciler(repo=repo, settings=settings, version=VERSION)


def run_once(sources: Sequence[Path], repo_path: Path, settings: Settings) -> PassReport:
    """One local-mode pass."""
    _, engine = local_reconciler(repo_path, settings)
    return engine.sync(read_sources(sources))


def run_forever(sources: Sequence[Path], repo_path: Path, settings: Settings,
                on_report: object) -> None:
    """Local mode: reconcile now, on every change of the sources, and every resync period."""
    _, engine = local_reconciler(repo_path, settings)
    last: list[object] = [None]

    def sync(force: bool) -> None:
        snap = filesource.snapshot(list(sources))
        if not force and snap == last[0]:
            return
        last[0] = snap
        report = engine.sync(read_sources(sources))
        if callable(on_report):
            on_report(report)

    scheduler = Scheduler()
    scheduler.every(POLL_SECONDS, lambda: sync(False), name="watch-sources", run_now=True)
    scheduler.every(settings.resync_seconds, lambda: sync(True), name="resync")
    scheduler.run_forever()




def run_kubernetes(*, repo_path: Path, settings: Settings, kubeconfig: str | None,
                   context: str | None, once: bool, leader_elect: bool, lease_namespace: str,
                   lease_name: str, identity: str | None, health_port: int) -> int:
    """``run --source kubernetes``: the in-cluster controller (or one pass with ``once``)."""
    cluster = KubeCluster(api_client(kubeconfig, context))
    repo, engine = local_reconciler(repo_path, settings)
    metrics = PrometheusMetrics()
    controller = Controller(cluster=cluster, engine=engine, repo=repo, metrics=metrics)
    if once:
        ok = controller.run_once()
        repo.flush()
        for key, message in sorted(controller.failures.items()):
            log.error("%s", message, extra={"object": str(key)})
        return 0 if ok else 1
    stop, lost = threading.Event(), threading.Event()
    elector = Elector(cluster=cluster, namespace=lease_namespace, name=lease_name,
                      identity=identity or f"{socket.gethostname()}-{os.getpid()}")

    def ready() -> bool:
        synced = all(i.synced.is_set() for i in controller.informers.values())
        return synced or (leader_elect and not elector.is_leader.is_set())

    health = HealthServer(port=health_port, metrics=metrics, ready=ready)
    health.start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if leader_elect:
        threading.Thread(target=elector.run, args=(stop, lost), daemon=True,
                         name="leader-election").start()
        while not elector.is_leader.wait(0.5):
            if stop.is_set():
                health.stop()
                return 0
    scheduler = Scheduler(background=True)
    scheduler.every(settings.resync_seconds, controller.resync, name="resync")
    scheduler.start()
    worker = threading.Thread(target=controller.run, args=(stop,), daemon=True,
                              name="controller")
    worker.start()
    while not stop.wait(0.5):
        if lost.is_set():
            log.error("leadership lost: exiting so that a restart rejoins the election")
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
