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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import reconciler
from reconciler.adapters import filesource
from reconciler.adapters.forges.factory import forge_for
from reconciler.adapters.gitremote import Credentials, MirrorConfigRepo, is_url
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.adapters.kube import KubeCluster, api_client
from reconciler.adapters.observability import HealthServer, PrometheusMetrics
from reconciler.adapters.scheduler import Scheduler
from reconciler.adapters.signing import Signer, signer_from_spec
from reconciler.core import crdgen, errors, messages, plan, yamlio
from reconciler.core import sources as sources_core
from reconciler.core.models import PLURALS, Customer, ObjectKey, Resource
from reconciler.core.outcomes import Outcome
from reconciler.core.render import common, pool
from reconciler.core.settings import Settings, SettingsError, load_settings
from reconciler.core.sources import Parsed, Refusal
from reconciler.ports.configrepo import ConfigRepo
from reconciler.reconcile import queries
from reconciler.reconcile import rollback as rollback_logic
from reconciler.reconcile.controller import Controller
from reconciler.reconcile.delivery import Delivery, DeliveryReport
from reconciler.reconcile.election import Elector
from reconciler.reconcile.engine import ObjectReconciler, PassReport, Reconciler, render
from reconciler.reconcile.pullrequests import PullRequestReconciler

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
    parsed = with_namespace_refusals(read_sources(paths), settings)
    written: list[Path] = []
    refusals = list(parsed.refusals)
    entries = []
    directories = []
    for obj in parsed.objects:
        problem = common.namespace_problem(obj, settings)
        if problem:
            refusals.append(Refusal(str(obj.key), problem, obj.key))
            continue
        directories.append(render(obj, settings))
        if isinstance(obj, Customer) and not obj.spec.suspend:
            entry = pool.pool_entry(obj, settings)
            if entry is not None:
                entries.append(entry)
    if any(obj.kind == "Customer" for obj in parsed.objects):
        directories.append(pool.render_pool(entries, settings))
    for rendered in directories:
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


@dataclass(frozen=True)
class Target:
    """Where commits go: a local repository path, or a remote URL mirrored in state_dir."""

    repo: str
    state_dir: Path = field(default_factory=lambda: default_state_dir(os.environ))
    credentials: Credentials = field(default_factory=Credentials)
    signer: Signer | None = None
    push_window: float | None = None
    mode: str = "direct"
    forge: ForgeOptions | None = None


@dataclass(frozen=True)
class ForgeOptions:
    """Which forge opens the pull requests (``--mode pr``)."""

    kind: str
    api_url: str
    repository: str
    token: str | None = field(default=None, repr=False)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """$RECONCILER_STATE_DIR, else ~/.local/state/gitops-reconciler."""
    return Path(environ.get("RECONCILER_STATE_DIR", "~/.local/state/gitops-reconciler")).expanduser()


def target_from(*, repo: str, state_dir: Path | None, ssh_key: Path | None,
                ssh_user: str | None, known_hosts: Path | None, username: str | None,
                token_file: Path | None, sign: str | None, push_window: float | None,
                mode: str = "direct", forge: str | None = None, forge_url: str | None = None,
                forge_repo: str | None = None, forge_token_file: Path | None = None,
                environ: dict[str, str] | None = None) -> Target:
    """A Target from command-line values; secrets from files or RECONCILER_GIT_* variables."""
    env = dict(os.environ if environ is None else environ)
    password = env.get("RECONCILER_GIT_TOKEN") or env.get("RECONCILER_GIT_PASSWORD")
    if token_file is not None:
        try:
            password = token_file.read_text().strip()
        except OSError as exc:
            raise errors.UserInputError(f"{token_file}: {exc.strerror}") from exc
    key = ssh_key or (Path(env["RECONCILER_GIT_SSH_KEY"]) if env.get("RECONCILER_GIT_SSH_KEY")
                      else None)
    if key is not None and not key.is_file():
        raise errors.UserInputError(f"--ssh-key {key}: no such file")
    credentials = Credentials(ssh_key=key, ssh_user=ssh_user,
                              username=username or env.get("RECONCILER_GIT_USERNAME"),
                              password=password, known_hosts=known_hosts)
    signer = signer_from_spec(sign) if sign else None
    forge_options = None
    if forge is not None:
        if not forge_url or not forge_repo:
            raise errors.UserInputError("--forge needs --forge-url and --forge-repo")
        forge_token = env.get("RECONCILER_FORGE_TOKEN")
        if forge_token_file is not None:
            try:
                forge_token = forge_token_file.read_text().strip()
            except OSError as exc:
                raise errors.UserInputError(f"{forge_token_file}: {exc.strerror}") from exc
        forge_options = ForgeOptions(forge, forge_url, forge_repo, forge_token)
    if mode == "pr" and not is_url(repo):
        raise errors.UserInputError("--mode pr needs --repo to be a remote URL")
    return Target(repo=repo, state_dir=(state_dir or default_state_dir(env)).expanduser(),
                  credentials=credentials, signer=signer, push_window=push_window, mode=mode,
                  forge=forge_options)


@dataclass
class Wiring:
    """The adapters and logic of one run, built once."""

    repo: GitConfigRepo
    engine: ObjectReconciler
    delivery: Delivery | None


def wire(target: Target | Path, settings: Settings,
         on_rebase: Callable[[list[ObjectKey]], None] | None = None, *,
         create: bool = True) -> Wiring:
    """Build the config repo (local or mirrored), the Reconciler and, for a remote, Delivery."""
    if isinstance(target, Path):
        target = Target(str(target))
    if not is_url(target.repo):
        repo = GitConfigRepo.open(Path(target.repo), branch=settings.branch,
                                  author_name=settings.author_name,
                                  author_email=settings.author_email, create=create,
                                  signer=target.signer)
        if repo.head() is None and create:
            seed(repo)
        return Wiring(repo, Reconciler(repo=repo, settings=settings, version=VERSION), None)
    mirror = MirrorConfigRepo.open_mirror(
        target.repo, target.state_dir, credentials=target.credentials, branch=settings.branch,
        author_name=settings.author_name, author_email=settings.author_email,
        signer=target.signer)
    if target.mode == "pr":
        return Wiring(mirror, pull_request_reconciler(mirror, target, settings), None)
    if mirror.head() is None:
        seed(mirror)  # an empty remote: the first push creates the branch
    engine = Reconciler(repo=mirror, settings=settings, version=VERSION)

    def rebase(keys: list[ObjectKey]) -> None:
        engine.invalidate()
        if mirror.head() is None:
            seed(mirror)  # the remote branch is still empty: the skeleton goes first again
        if on_rebase is not None:
            on_rebase(keys)

    delivery = Delivery(
        repo=mirror, on_rebase=rebase,
        window=settings.push_window_seconds if target.push_window is None else target.push_window,
        require_signed=mirror.is_signed if target.signer is not None else None)
    if mirror.pending():
        delivery.committed()  # left over from a previous run: push them
    return Wiring(mirror, engine, delivery)


def pull_request_reconciler(mirror: MirrorConfigRepo, target: Target,
                            settings: Settings) -> PullRequestReconciler:
    """PR mode: every object change as its own branch and pull request."""
    if target.forge is None:
        raise errors.UserInputError("--mode pr needs --forge, --forge-url and --forge-repo")
    if mirror.remote_head() is None:
        raise errors.UserInputError(
            f"--mode pr: branch {settings.branch} does not exist on the remote yet; "
            "create it first (reconciler init, then push), so pull requests have a base")
    if not target.forge.token:
        raise errors.UserInputError("--mode pr needs a forge token: --forge-token-file or "
                                    "$RECONCILER_FORGE_TOKEN")
    forge = forge_for(target.forge.kind, target.forge.api_url, target.forge.repository,
                      target.forge.token)

    def make_engine(view: ConfigRepo) -> Reconciler:
        return Reconciler(repo=view, settings=settings, version=VERSION)

    return PullRequestReconciler(store=mirror, forge=forge, settings=settings, version=VERSION,
                                 base_branch=settings.branch, make_engine=make_engine)


def local_reconciler(repo_path: Path, settings: Settings) -> tuple[GitConfigRepo, Reconciler]:
    """The reconciler wired to a local repository."""
    wiring = wire(repo_path, settings)
    assert isinstance(wiring.engine, Reconciler)  # a local path is always direct mode
    return wiring.repo, wiring.engine


def with_namespace_refusals(parsed: Parsed, settings: Settings) -> Parsed:
    """Refuse, naming the file, objects whose namespace these settings make too long."""
    kept, refusals = [], list(parsed.refusals)
    for obj in parsed.objects:
        problem = common.namespace_problem(obj, settings)
        if problem:
            refusals.append(Refusal(parsed.origins.get(obj.key, str(obj.key)),
                                    f"{obj.kind} {obj.metadata.name!r}: {problem}", obj.key))
        else:
            kept.append(obj)
    return Parsed(kept, refusals, parsed.incomplete, origins=parsed.origins)


def local_pass(wiring: Wiring, sources: Sequence[Path], settings: Settings) -> PassReport:
    """One pass over the manifest files; Previews past their ttl are removed."""
    parsed = with_namespace_refusals(read_sources(sources), settings)
    deadlines = queries.preview_deadlines(wiring.repo, settings, parsed)
    parsed, notes = queries.without_expired(parsed, deadlines, time.time())
    return wiring.engine.sync(parsed, notes=notes)


def run_once(sources: Sequence[Path], target: Target | Path,
             settings: Settings) -> tuple[PassReport, DeliveryReport | None]:
    """One local-mode pass, then (for a remote) one delivery of every commit made."""
    holder: list[ObjectReconciler] = []

    def again(_keys: list[ObjectKey]) -> None:
        holder[0].sync(read_sources(sources))

    wiring = wire(target, settings, on_rebase=again)
    holder.append(wiring.engine)
    report = local_pass(wiring, sources, settings)
    delivered = wiring.delivery.deliver() if wiring.delivery is not None else None
    return report, delivered


def run_forever(sources: Sequence[Path], target: Target | Path, settings: Settings,
                on_report: Callable[[PassReport], None]) -> None:
    """Local mode: reconcile now, on every change of the sources, and every resync period;
    push (for a remote) once the oldest unpushed commit is ``push_window`` old."""
    last: list[object] = [None]
    holder: list[ObjectReconciler] = []

    def again(_keys: list[ObjectKey]) -> None:
        holder[0].sync(read_sources(sources))

    wiring = wire(target, settings, on_rebase=again)
    holder.append(wiring.engine)

    def sync(force: bool) -> None:
        snap = filesource.snapshot(list(sources))
        if force or snap != last[0]:
            last[0] = snap
            report = local_pass(wiring, sources, settings)
            on_report(report)
            if report.commits and wiring.delivery is not None:
                wiring.delivery.committed()
        if wiring.delivery is not None and wiring.delivery.due():
            delivered = wiring.delivery.deliver()
            if delivered.error:
                log.error("delivery: %s", delivered.error)

    scheduler = Scheduler()
    scheduler.every(POLL_SECONDS, lambda: sync(False), name="watch-sources", run_now=True)
    scheduler.every(settings.resync_seconds, lambda: sync(True), name="resync")
    scheduler.run_forever()


def run_kubernetes(*, target: Target, settings: Settings, kubeconfig: str | None,
                   context: str | None, once: bool, leader_elect: bool, lease_namespace: str,
                   lease_name: str, identity: str | None, health_port: int) -> int:
    """``run --source kubernetes``: the in-cluster controller (or one pass with ``once``)."""
    cluster = KubeCluster(api_client(kubeconfig, context))
    controllers: list[Controller] = []

    def requeue(keys: list[ObjectKey]) -> None:
        for key in keys:
            controllers[0].queue.add(key)

    wiring = wire(target, settings, on_rebase=requeue)
    repo = wiring.repo
    metrics = PrometheusMetrics()
    controller = Controller(cluster=cluster, engine=wiring.engine, repo=repo, metrics=metrics,
                            delivery=wiring.delivery,
                            orphan_grace_seconds=settings.orphan_grace_seconds)
    controllers.append(controller)
    if once:
        ok = controller.run_once()
        repo.flush()
        for key, message in sorted({**controller.failures, **controller.refused}.items()):
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
    scheduler.every(settings.expiry_check_seconds, lambda: controller.schedule("expire-previews"),
                    name="expire-previews")
    scheduler.every(settings.applied_check_seconds, lambda: controller.schedule("applied"),
                    name="applied")
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


def find_object(sources: Sequence[Path], key: ObjectKey) -> Resource:
    """The valid resource ``key`` among the manifests under ``sources``."""
    parsed = read_sources(sources)
    for obj in parsed.objects:
        if obj.key == key:
            return obj
    for refusal in parsed.refusals:
        if refusal.key == key:
            raise errors.UserInputError(str(refusal))
    raise errors.UserInputError(f"{key}: no such resource under {', '.join(map(str, sources))}")


def resync(sources: Sequence[Path], target: Target, settings: Settings,
           key: ObjectKey) -> tuple[Outcome, DeliveryReport | None]:
    """``reconciler resync``: write ``key``'s rendering even over a human's change."""
    wiring = wire(target, settings)
    outcome = wiring.engine.apply(find_object(sources, key), force=True)
    delivered = wiring.delivery.deliver() if wiring.delivery is not None else None
    return outcome, delivered


def rollback(target: Target, settings: Settings, key: ObjectKey, point: str, *,
             spec_source: str | None, kubeconfig: str | None,
             context: str | None) -> tuple[Outcome, DeliveryReport | None, str | None]:
    """``reconciler rollback``: restore ``key``'s files (and with a source, its spec)."""
    wiring = wire(target, settings)
    if isinstance(wiring.engine, PullRequestReconciler):
        outcome = wiring.engine.propose(
            key, lambda view: rollback_logic.rollback(view, key, point, version=VERSION))
    else:
        outcome = rollback_logic.rollback(wiring.repo, key, point, version=VERSION)
    if not outcome.ok:
        return outcome, None, None
    delivered = wiring.delivery.deliver() if wiring.delivery is not None else None
    note = None
    if spec_source is not None:
        point_commit = rollback_logic.resolve_point(wiring.repo, key, point)
        spec = rollback_logic.spec_at(wiring.repo, key, point_commit)
        if spec is None:
            raise errors.UserInputError(f"{key}: {point} recorded no spec to restore")
        note = restore_spec(spec_source, key, spec, kubeconfig=kubeconfig, context=context)
    return outcome, delivered, note


def restore_spec(source: str, key: ObjectKey, spec: dict[str, object], *,
                 kubeconfig: str | None, context: str | None) -> str:
    """Set the resource's spec back (in the cluster, or in its manifest file)."""
    if source == "kubernetes":
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
        for path in filesource.manifest_files(root):
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
