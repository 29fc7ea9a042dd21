"""Composition root, part one: settings, the config repo (local or mirrored) and the
reconcile logic wired together. The only place that knows every concrete adapter."""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import reconciler
from reconciler.adapters import gitrepo, treecache
from reconciler.adapters.gitremote import (
    Credentials,
    MirrorConfigRepo,
    is_url,
    mirror_path,
    pin_on_first_use,
    private_dir,
    redact,
    ssh_host,
    use_known_hosts,
)
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.adapters.layoutview import LayoutView
from reconciler.adapters.processlock import LOCK_FILE, ProcessLock
from reconciler.adapters.signing import Signer, signer_from_spec
from reconciler.core import errors, messages, plan
from reconciler.core.models import ObjectKey
from reconciler.core.settings import Settings
from reconciler.ports.configrepo import ConfigRepo
from reconciler.ports.forge import Forge
from reconciler.reconcile.delivery import Delivery
from reconciler.reconcile.engine import ObjectReconciler, Reconciler
from reconciler.reconcile.pullrequests import PullRequestReconciler

log = logging.getLogger(__name__)


VERSION = reconciler.__version__


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


def seed(repo: GitConfigRepo | MirrorConfigRepo) -> str | None:
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
    repo.point_head_at_branch()
    return commit


def init_repo(path: Path, settings: Settings) -> str | None:
    """``reconciler init``: create the repo if needed and seed the skeleton."""
    repo = GitConfigRepo.open(path, branch=settings.branch, author_name=settings.author_name,
                              author_email=settings.author_email, create=True)
    return seed(repo)


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

    repo: GitConfigRepo | MirrorConfigRepo
    engine: ObjectReconciler
    delivery: Delivery | None
    #: held by whoever commits or moves the branch; delivery runs beside the passes
    guard: contextlib.AbstractContextManager[object] = field(default_factory=threading.RLock)
    #: this process's exclusive hold on the repository (None for readers)
    lock: ProcessLock | None = None
    #: the repo as the reconcile logic sees it: tenant paths in the ``layout`` setting's
    #: places, refusing a repo laid out otherwise (``wire`` always sets it)
    view: ConfigRepo | None = None

    @property
    def logical(self) -> ConfigRepo:
        """The layout view of the repo (the repo itself when built without one)."""
        return self.view if self.view is not None else self.repo

    def close(self) -> None:
        """Let another process write the repository (the lock goes with the process too)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def after_reset(self) -> None:
        """The branch was reset to a moved remote: forget caches, re-seed an empty branch."""
        self.engine.invalidate()
        if self.repo.head() is None:
            seed(self.repo)


#: the cyclic garbage collector's thresholds for the process. A pass allocates a few
#: long-lived objects per tenant (models, directory states, verdicts); with the default
#: first threshold (700) a 10,000-tenant restart ran ~560 collections re-scanning them,
#: 0.3 s of its CPU. What a pass frees is freed by reference counting (no cycles), so
#: collecting less often keeps the same peak memory (measured: 133 MB either way).
GC_THRESHOLDS = (10_000, 10, 10)


def wire(target: Target | Path, settings: Settings,
         on_rebase: Callable[[list[ObjectKey]], None] | None = None, *,
         create: bool = True, elected: bool = False) -> Wiring:
    """Build the config repo (local or mirrored), the Reconciler and, for a remote, Delivery.

    ``create`` marks a writer: it takes the repository's process lock (a second writer
    stops with one line) and clears what a killed run left. Readers (status, history,
    diff, plan) take no lock, seed nothing and deliver nothing; on a mirror another
    process writes, they read it as it is. ``elected``: a Lease elects the one writer
    among replicas that may share a volume, so no process lock is taken (the standby would
    stop at it) and no lock file is cleared (the leader's could be live).

    Without ``on_rebase``, a delivery that finds the remote moved returns that as a value
    (``DeliveryReport.remote_moved``): the caller calls ``after_reset`` and runs its pass
    again."""
    gitrepo.tune_libgit2()
    gc.set_threshold(*GC_THRESHOLDS)
    if isinstance(target, Path):
        target = Target(str(target))
    if not is_url(target.repo):
        repo = GitConfigRepo.open(Path(target.repo), branch=settings.branch,
                                  author_name=settings.author_name,
                                  author_email=settings.author_email, create=create,
                                  signer=target.signer)
        lock = None
        if create and not elected:
            lock = ProcessLock.acquire(Path(repo.path) / LOCK_FILE, what=target.repo)
            repo.clear_stale_locks()
        if repo.head() is None and create:
            seed(repo)
        view = LayoutView(repo, settings.layout)
        return Wiring(repo, Reconciler(repo=view, settings=settings, version=VERSION,
                                       trees=tree_cache(repo)), None,
                      lock=lock, view=view)
    name = redact(target.repo)
    path = mirror_path(target.repo, target.state_dir)
    private_dir(path.parent)
    lock = None if elected else (ProcessLock.acquire if create else ProcessLock.try_acquire)(
        path.parent / f"{path.name}.lock", what=f"the mirror of {name} in {target.state_dir}")
    writer = lock is not None or (create and elected)
    credentials = target.credentials
    if ssh_host(target.repo) is not None:
        known_hosts = credentials.known_hosts or pin_on_first_use(target.repo,
                                                                  target.state_dir)
        if known_hosts is not None:
            use_known_hosts(known_hosts, target.state_dir)
            credentials = dataclasses.replace(credentials, known_hosts=known_hosts)
    mirror = MirrorConfigRepo.open_mirror(
        target.repo, target.state_dir, credentials=credentials, branch=settings.branch,
        author_name=settings.author_name, author_email=settings.author_email,
        signer=target.signer, writer=writer, exclusive=lock is not None)
    view = LayoutView(mirror, settings.layout)
    if target.mode == "pr":
        return Wiring(mirror, pull_request_reconciler(mirror, target, settings), None,
                      lock=lock, view=view)
    engine = Reconciler(repo=view, settings=settings, version=VERSION, trees=tree_cache(mirror))
    if not (writer and create):  # a reader: the mirror is as the writer left it
        return Wiring(mirror, engine, None, lock=lock, view=view)
    if mirror.head() is None:
        seed(mirror)  # an empty remote: the first push creates the branch

    def rebase(keys: list[ObjectKey]) -> None:
        engine.invalidate()
        if mirror.head() is None:
            seed(mirror)  # the remote branch is still empty: the skeleton goes first again
        if on_rebase is not None:
            on_rebase(keys)

    guard = threading.RLock()
    delivery = Delivery(
        repo=mirror, on_rebase=rebase if on_rebase is not None else None, guard=guard,
        window=settings.push_window_seconds if target.push_window is None else target.push_window,
        require_signed=mirror.is_signed if target.signer is not None else None)
    if delivery.realign().rebases:
        # a human pushed while our commits waited (and the process was restarted): they
        # were dropped; the first pass, which every mode starts with, renders them again
        engine.invalidate()
        if mirror.head() is None:
            seed(mirror)
    if mirror.pending():
        delivery.committed()  # left over from a previous run: push them
    return Wiring(mirror, engine, delivery, guard, lock, view)


def tree_cache(repo: GitConfigRepo | MirrorConfigRepo) -> treecache.TreeCacheFile:
    """The tree cache kept beside ``repo`` (what each directory's tree holds)."""
    return treecache.TreeCacheFile(Path(repo.path) / treecache.FILE_NAME)


def pull_request_reconciler(mirror: MirrorConfigRepo, target: Target,
                            settings: Settings) -> PullRequestReconciler:
    """PR mode: every object change as its own branch and pull request."""
    if target.forge is None:
        raise errors.UserInputError("--mode pr needs --forge, --forge-url and --forge-repo")
    if mirror.remote_head() is None:
        raise errors.UserInputError(
            f"--mode pr: branch {settings.branch} does not exist on the remote yet; "
            "create it first (reconciler init, then push), so pull requests have a base")
    forge = forge_from(target)

    def make_engine(view: ConfigRepo) -> Reconciler:
        return Reconciler(repo=LayoutView(view, settings.layout), settings=settings,
                          version=VERSION)

    return PullRequestReconciler(store=mirror, forge=forge, settings=settings, version=VERSION,
                                 base_branch=settings.branch, make_engine=make_engine)


def forge_from(target: Target) -> Forge:
    """The forge driver of ``--mode pr`` (one line naming what is missing otherwise)."""
    if target.forge is None:
        raise errors.UserInputError("--mode pr needs --forge, --forge-url and --forge-repo")
    if not target.forge.token:
        raise errors.UserInputError("--mode pr needs a forge token: --forge-token-file or "
                                    "$RECONCILER_FORGE_TOKEN")
    from reconciler.adapters.forges.factory import forge_for  # requests: only for PR mode
    return forge_for(target.forge.kind, target.forge.api_url, target.forge.repository,
                     target.forge.token)


def local_reconciler(repo_path: Path, settings: Settings) -> tuple[GitConfigRepo, Reconciler]:
    """The reconciler wired to a local repository."""
    wiring = wire(repo_path, settings)
    # a local path is always direct mode on a local repository
    assert isinstance(wiring.engine, Reconciler) and isinstance(wiring.repo, GitConfigRepo)
    return wiring.repo, wiring.engine
