"""A config repo that is a local bare mirror of a remote branch (pygit2 transports).

One mirror per remote in the state directory, fetched incrementally — never a fresh
clone per change. Pushes are plain fast-forward updates of the target branch: never
forced. A server-side rejection is detected through libgit2's ``push_update_reference``
callback (``Remote.push`` raises nothing for it). Only the reconciler's own branches
(``reconciler/...``) may be force-pushed, and only through ``push_branch``, which is a
compare-and-swap: the caller names the commit it last saw there (git's
``--force-with-lease=ref:expect``). libgit2 has no lease, so ``push_negotiation`` aborts
the push when the remote's advertised ref differs from it, and the server's own old-id
check (receive-pack sends the advertised id) covers the moment after; a push lost either
way comes back as ``moved``, never as an overwrite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from reconciler.adapters.gitrepo import GitConfigRepo, commit_info
from reconciler.adapters.signing import Signer
from reconciler.core import errors, messages
from reconciler.core.history import CommitInfo
from reconciler.core.plan import ChangeSet
from reconciler.ports.configrepo import ForeignChange, PushResult

log = logging.getLogger(__name__)
REMOTE = "origin"
OWN_BRANCH_PREFIX = "reconciler/"
#: what a push of the target branch sends (a snapshot of the local head)
OUTGOING_REF = "refs/reconciler/outgoing"
URL_SCHEMES = ("ssh://", "https://", "http://", "git://", "file://")
ZERO_OID = bytes(20)


def is_url(text: str) -> bool:
    """Whether ``--repo`` names a remote (scp-like ``user@host:path`` included)."""
    return text.startswith(URL_SCHEMES) or bool(re.match(r"^[\w.-]+@[\w.-]+:", text))


def redact(url: str) -> str:
    """The URL without any user:password part, for logs and messages.

    A token may itself hold ``/`` or ``@``: everything up to the last ``@`` goes (a path
    with an ``@`` in it is shortened too, which is the safe side).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://{rest[rest.rfind('@') + 1:]}"


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``scheme://user:secret@host/path`` -> (``scheme://host/path``, user, secret).

    The secret is handed to libgit2 through the credentials callback and never stored in
    the mirror's config. URLs without a ``user:secret`` part come back unchanged.
    """
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0 or ":" not in rest[:at]:
        return url, None, None
    user, _, secret = rest[:at].partition(":")
    return (f"{scheme}://{rest[at + 1:]}", urllib.parse.unquote(user) or None,
            urllib.parse.unquote(secret))


def ssh_host(url: str) -> tuple[str, int] | None:
    """Host and port of an SSH remote (``ssh://`` or scp-like), None for other schemes."""
    if url.startswith("ssh://"):
        parsed = urllib.parse.urlsplit(url)
        return (parsed.hostname, parsed.port or 22) if parsed.hostname else None
    match = re.match(r"^[\w.-]+@([\w.-]+):", url)
    return (match.group(1), 22) if match else None


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to the remote. ``repr`` never shows secrets."""

    ssh_key: Path | None = None
    ssh_user: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    known_hosts: Path | None = None


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials, host-key policy and push results for one operation."""

    def __init__(self, credentials: Credentials, *, tls: bool = False) -> None:
        super().__init__()
        self._creds = credentials
        self._tls = tls
        self._attempts = 0
        self.rejected: dict[str, str] = {}
        #: remote ref -> the commit it must still point at (None: must not exist)
        self.lease: dict[str, str | None] = {}

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        self._attempts += 1
        if self._attempts > 2:  # libgit2 would replay the same credentials many times
            raise pygit2.GitError(f"authentication to {redact(url)} failed")
        creds = self._creds
        if allowed_types & pygit2.enums.CredentialType.SSH_KEY and creds.ssh_key is not None:
            public = creds.ssh_key.with_name(creds.ssh_key.name + ".pub")
            return pygit2.Keypair(creds.ssh_user or username_from_url or "git",
                                  str(public) if public.exists() else None,
                                  str(creds.ssh_key), "")
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and creds.password:
            return pygit2.UserPass(creds.username or username_from_url or "x-access-token",
                                   creds.password)
        raise pygit2.GitError(f"no usable credentials for {redact(url)}")

    def certificate_check(self, certificate: Any, valid: bool, host: bytes | str) -> bool:
        # pygit2 always passes certificate=None: only the URL tells TLS from SSH
        if self._tls or self._creds.known_hosts is not None:
            return valid  # libgit2 verified the TLS chain, or the host key against known_hosts
        return True  # SSH without --known-hosts: the host key is not pinned

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message is not None:
            self.rejected[refname] = message

    def push_negotiation(self, updates: list[Any]) -> None:
        for update in updates:
            if update.dst_refname not in self.lease:
                continue
            found = None if update.src.raw == ZERO_OID else str(update.src)
            expected = self.lease[update.dst_refname]
            if found != expected:
                raise LeaseBrokenError(update.dst_refname, expected, found)


class LeaseBrokenError(Exception):
    """A leased push found the remote ref elsewhere than expected (raised in a callback)."""

    def __init__(self, ref: str, expected: str | None, found: str | None) -> None:
        super().__init__(f"{ref} moved on the remote: expected "
                         f"{(expected or 'no branch')[:12]}, found {(found or 'no branch')[:12]}")


def use_known_hosts(known_hosts: Path, state_dir: Path) -> None:
    """libgit2 checks SSH host keys against <homedir>/.ssh/known_hosts: give it ours.

    The home directory is a process-wide libgit2 setting, so the composition root calls
    this once; the reconciler talks to one remote per process, so it points at a private
    copy under the state directory.
    """
    try:
        text = known_hosts.read_text()
    except OSError as exc:
        raise errors.UserInputError(f"--known-hosts {known_hosts}: {exc.strerror}") from exc
    home = state_dir / "ssh-home"
    try:
        (home / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / ".ssh" / "known_hosts").write_text(text)
    except OSError as exc:
        raise errors.UserInputError(
            f"--state-dir {state_dir}: cannot keep the pinned host keys there: "
            f"{exc.strerror}") from exc
    pygit2.settings.homedir = str(home)


def pin_on_first_use(url: str, state_dir: Path) -> Path | None:
    """The known_hosts of an SSH remote given without ``--known-hosts``.

    Trust on first use, as ``ssh`` with ``StrictHostKeyChecking=accept-new``: the first
    run records the server's key (``ssh-keyscan``) in ``STATE_DIR/known_hosts`` and says so;
    every later connection must present that key, so a changed key fails the run instead
    of being accepted silently. None for remotes that are not SSH.
    """
    host = ssh_host(url)
    if host is None:
        return None
    name, port = host
    entry = name if port == 22 else f"[{name}]:{port}"
    pinned = state_dir / "known_hosts"
    try:
        known = pinned.read_text() if pinned.exists() else ""
    except OSError as exc:
        raise errors.UserInputError(f"{pinned}: {exc.strerror}") from exc
    if any(line.split(" ", 1)[0] == entry for line in known.splitlines()):
        return pinned
    if shutil.which("ssh-keyscan") is None:
        raise errors.UserInputError(
            f"{redact(url)}: no --known-hosts given and ssh-keyscan is not installed to pin "
            "the host key on first use; pass --known-hosts")
    try:
        done = subprocess.run(["ssh-keyscan", "-T", "10", "-p", str(port), name],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise errors.RepoError(f"{redact(url)}: ssh-keyscan failed: {exc}") from exc
    keys = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    if not keys:
        raise errors.RepoError(f"{redact(url)}: could not read the SSH host key of {entry}")
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with pinned.open("a") as handle:
            handle.write("\n".join(keys) + "\n")
    except OSError as exc:
        raise errors.UserInputError(f"{pinned}: {exc.strerror}") from exc
    log.warning("pinned the SSH host key of %s on first use in %s; pass --known-hosts to "
                "pin it yourself", entry, pinned)
    return pinned


def mirror_path(url: str, state_dir: Path) -> Path:
    """Where the mirror of ``url`` lives under ``state_dir`` (credentials never count)."""
    clean = split_credentials(url)[0]
    digest = hashlib.sha256(clean.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", redact(clean).rstrip("/").rsplit("/", 1)[-1])
    return state_dir / "mirrors" / f"{name.removesuffix('.git')}-{digest}.git"


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) readable by the owner only: 0700."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = path.stat().st_mode
    except OSError as exc:
        raise errors.UserInputError(f"--state-dir {path}: {exc.strerror}") from exc
    if mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError as exc:  # a mounted volume we do not own: say so, carry on
            log.warning("cannot make %s private (mode %o): %s", path, mode & 0o777,
                        exc.strerror)


class MirrorConfigRepo:
    """The target branch of a remote repository, through a local bare mirror.

    Composed of a GitConfigRepo on the mirror's local branch (all reading and committing)
    plus the remote operations; it reaches into none of the writer's internals.
    """

    def __init__(self, repo: pygit2.Repository, *, url: str, credentials: Credentials,
                 branch: str, author_name: str, author_email: str,
                 signer: Signer | None = None) -> None:
        self.local = GitConfigRepo(repo, branch=branch, author_name=author_name,
                                   author_email=author_email, signer=signer)
        self._repo = repo
        self.url = url
        self.branch = branch
        self._ref = self.local.ref_name
        self._credentials = credentials
        self._tracking = f"refs/remotes/{REMOTE}/{branch}"
        self._author_email = author_email

    # -- the ConfigRepo port, by delegation -------------------------------------------------

    @property
    def path(self) -> str:
        """The mirror's git directory."""
        return self.local.path

    @property
    def signer(self) -> Signer | None:
        """What signs the commits (None: unsigned)."""
        return self.local.signer

    @property
    def sole_writer(self) -> bool:
        """Whether no other process writes the mirror (we hold its lock)."""
        return self.local.sole_writer

    @sole_writer.setter
    def sole_writer(self, value: bool) -> None:
        self.local.sole_writer = value

    def head(self) -> str | None:
        """The local branch's head."""
        return self.local.head()

    def pinned(self) -> contextlib.AbstractContextManager[None]:
        """Reads see the local head as it was on entry."""
        return self.local.pinned()

    def list_files(self, directory: str) -> dict[str, str]:
        """Files directly in ``directory`` at the head."""
        return self.local.list_files(directory)

    def list_directories(self, parent: str) -> list[str]:
        """Subdirectories of ``parent`` at the head."""
        return self.local.list_directories(parent)

    def tree_id(self, directory: str) -> str | None:
        """The tree id of ``directory`` at the head."""
        return self.local.tree_id(directory)

    def read_blob(self, blob_id: str) -> bytes | None:
        """The bytes of a blob by its id."""
        return self.local.read_blob(blob_id)

    def read_file(self, path: str) -> bytes | None:
        """The bytes of ``path`` at the head."""
        return self.local.read_file(path)

    def commit(self, changes: ChangeSet, message: str) -> str:
        """Commit ``changes`` on the local branch (pushed later)."""
        return self.local.commit(changes, message)

    def commit_moves(self, moves: Mapping[str, str], changes: ChangeSet, message: str) -> str:
        """Commit directories moved whole, with ``changes`` (pushed later)."""
        return self.local.commit_moves(moves, changes, message)

    def uncommitted(self) -> list[str]:
        """A mirror has no work tree: nothing uncommitted."""
        return []

    def log(self, limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from the local head, newest first."""
        return self.local.log(limit)

    def flush(self) -> None:
        """Nothing to update: a mirror has no work tree (pushing is Delivery's job)."""
        self.local.flush()

    def resolve(self, revision: str) -> str | None:
        """The commit a revision names, or None."""
        return self.local.resolve(revision)

    def tree_id_at(self, commit_id: str, path: str) -> str | None:
        """The tree id of directory ``path`` in a commit."""
        return self.local.tree_id_at(commit_id, path)

    def contains(self, commit_id: str, revision: str) -> bool:
        """Whether ``revision`` includes ``commit_id``."""
        return self.local.contains(commit_id, revision)

    def files_at(self, commit_id: str, directory: str) -> dict[str, bytes]:
        """Files directly in ``directory`` at a commit."""
        return self.local.files_at(commit_id, directory)

    def commits_touching(self, path: str, since: str | None = None,
                         limit: int | None = None) -> list[CommitInfo]:
        """Commits after ``since``, newest first, that change ``path``."""
        return self.local.commits_touching(path, since, limit)

    def last_change(self, directory: str) -> str | None:
        """The newest first-parent commit changing something at or under ``directory``."""
        return self.local.last_change(directory)

    def touches(self, commit_id: str, path: str) -> bool:
        """Whether a commit's change (against its first parent) is at or under ``path``."""
        return self.local.touches(commit_id, path)

    def changed_after(self, directory: str, commit_id: str) -> bool | None:
        """Whether a first-parent commit after ``commit_id`` changed ``directory``."""
        return self.local.changed_after(directory, commit_id)

    def read_commit(self, commit_id: str) -> CommitInfo | None:
        """One commit, None when there is no such commit."""
        return self.local.read_commit(commit_id)

    def is_signed(self, commit_id: str) -> bool:
        """Whether the commit carries a signature header."""
        return self.local.is_signed(commit_id)

    def clear_stale_locks(self) -> list[str]:
        """Remove what a killed run left (see GitConfigRepo.clear_stale_locks)."""
        return self.local.clear_stale_locks()

    def point_head_at_branch(self) -> bool:
        """Make the mirror's HEAD name the target branch (see GitConfigRepo)."""
        return self.local.point_head_at_branch()

    @classmethod
    def open_mirror(cls, url: str, state_dir: Path, *, credentials: Credentials, branch: str,
                    author_name: str, author_email: str, signer: Signer | None = None,
                    writer: bool = True, exclusive: bool = True) -> MirrorConfigRepo:
        """Open (or create) the mirror of ``url`` under ``state_dir``.

        ``writer``: bring the mirror up to date; a reader takes it as it is. ``exclusive``:
        this process holds the mirror's lock, so it also clears what a killed run left. A
        ``user:secret@`` in the URL becomes the credentials, never stored.
        """
        url, user, secret = split_credentials(url)
        if secret is not None:
            credentials = dataclasses.replace(
                credentials, username=credentials.username or user,
                password=credentials.password or secret)
        path = mirror_path(url, state_dir)
        private_dir(state_dir)
        private_dir(path.parent)
        try:
            if (path / "HEAD").exists():
                repo = pygit2.Repository(str(path))
            else:
                repo = pygit2.init_repository(str(path), bare=True, initial_head=branch)
            if REMOTE not in repo.remotes.names():
                repo.remotes.create(REMOTE, url, f"+refs/heads/*:refs/remotes/{REMOTE}/*")
            elif repo.remotes[REMOTE].url != url:
                repo.remotes.set_url(REMOTE, url)  # also drops a token an old run stored
        except (pygit2.GitError, OSError) as exc:
            raise errors.RepoError(f"{path}: cannot open mirror: {exc}") from exc
        mirror = cls(repo, url=url, credentials=credentials, branch=branch,
                     author_name=author_name, author_email=author_email, signer=signer)
        if writer and exclusive:
            mirror.sole_writer = True  # under the mirror's process lock: nobody else writes
            mirror.clear_stale_locks()
        if writer:
            mirror.fetch()
            mirror.catch_up()
        return mirror

    # -- remote operations ----------------------------------------------------------------

    def fetch(self) -> str | None:
        """Fetch the target branch; return the remote head (None when it does not exist)."""
        callbacks = _Callbacks(self._credentials, tls=self.url.startswith("https://"))
        try:
            self._repo.remotes[REMOTE].fetch(
                [f"+refs/heads/{self.branch}:{self._tracking}"], callbacks=callbacks)
        except pygit2.GitError as exc:
            text = str(exc)
            if "couldn't find remote ref" in text:
                return None  # the branch does not exist yet: our first push creates it
            raise errors.RepoError(f"fetch from {redact(self.url)} failed: {text}") from exc
        return self.remote_head()

    def remote_head(self) -> str | None:
        """The remote branch's head as last fetched."""
        ref = self._repo.references.get(self._tracking)
        return str(ref.target) if ref is not None else None

    def diverged(self) -> bool:
        """Whether the fetched remote head is missing from the local branch's history.

        True when the remote moved (a human pushed) under commits still pending here: a
        push would be refused as non-fast-forward until they are made again on top of it.
        """
        remote, local = self.remote_head(), self.head()
        if remote is None or local is None or remote == local:
            return False
        return not self._repo.descendant_of(local, remote)

    def fork_point(self) -> str | None:
        """The last commit the local branch and the fetched remote head share."""
        remote, local = self.remote_head(), self.head()
        if remote is None or local is None:
            return None
        base = self._repo.merge_base(local, remote)
        return str(base) if base is not None else None

    def catch_up(self) -> None:
        """Fast-forward the local branch to the remote when we have nothing pending."""
        remote = self.remote_head()
        local = self.head()
        if remote is None or remote == local:
            return
        if local is None or self._repo.descendant_of(remote, local):
            self._repo.references.create(self._ref, pygit2.Oid(hex=remote), force=True)

    def pending(self) -> list[CommitInfo]:
        """Local commits not on the remote branch, oldest first."""
        head = self.head()
        if head is None:
            return []
        walker = self._repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL
                                 | pygit2.enums.SortMode.REVERSE)
        remote = self.remote_head()
        if remote is not None:
            walker.hide(remote)
        return [commit_info(c) for c in walker]

    def push(self) -> PushResult:
        """Fast-forward the remote branch to ours. Never forced."""
        head = self.head()
        if head is None:
            return PushResult(True)
        # push a snapshot of the head: a commit made meanwhile waits for the next push
        self._repo.references.create(OUTGOING_REF, pygit2.Oid(hex=head), force=True)
        result = self._push([f"{OUTGOING_REF}:refs/heads/{self.branch}"])
        if result.ok:
            self._repo.references.create(self._tracking, pygit2.Oid(hex=head), force=True)
            return PushResult(True, pushed=head)
        return result

    def remote_branch_commit(self, branch: str) -> str | None:
        """The commit ``branch`` points at on the remote (fetched if we lack it), or None."""
        callbacks = _Callbacks(self._credentials, tls=self.url.startswith("https://"))
        try:
            heads = self._repo.remotes[REMOTE].list_heads(callbacks=callbacks)
        except pygit2.GitError as exc:
            raise errors.RepoError(f"listing {redact(self.url)} failed: {exc}") from exc
        wanted = f"refs/heads/{branch}"
        found = next((str(h.oid) for h in heads if h.name == wanted), None)
        if found is not None and self._repo.get(found) is None:
            try:
                self._repo.remotes[REMOTE].fetch(
                    [f"+{wanted}:refs/remotes/{REMOTE}/{branch}"],
                    callbacks=_Callbacks(self._credentials, tls=self.url.startswith("https://")))
            except pygit2.GitError as exc:
                raise errors.RepoError(f"fetch of {branch} failed: {exc}") from exc
        return found

    def remote_branches(self, prefix: str) -> list[str]:
        """Names of the remote's branches that start with ``prefix`` (one of ours)."""
        if not prefix.startswith(OWN_BRANCH_PREFIX):
            raise errors.UnsafeWriteError(f"{prefix} is not a prefix of the reconciler's branches")
        callbacks = _Callbacks(self._credentials, tls=self.url.startswith("https://"))
        try:
            heads = self._repo.remotes[REMOTE].list_heads(callbacks=callbacks)
        except pygit2.GitError as exc:
            raise errors.RepoError(f"listing {redact(self.url)} failed: {exc}") from exc
        names = [str(h.name) for h in heads if h.name]
        return sorted(n[len("refs/heads/"):] for n in names
                      if n.startswith(f"refs/heads/{prefix}"))

    def same_changes(self, first: str, second: str, *, limit: int = 1000) -> bool:
        """Whether two chains of commits make the same trees in the same order on the same
        base (times aside): walks first parents back until both reach one commit."""
        a, b = self._repo.get(first), self._repo.get(second)
        for _ in range(limit):
            if not isinstance(a, pygit2.Commit) or not isinstance(b, pygit2.Commit):
                return False
            if a.id == b.id:
                return True
            if a.tree_id != b.tree_id or not a.parent_ids or not b.parent_ids:
                return False
            a, b = self._repo.get(a.parent_ids[0]), self._repo.get(b.parent_ids[0])
        return False

    def same_change(self, first: str, second: str) -> bool:
        """Whether two commits hold the same tree on the same parents (time aside)."""
        a, b = self._repo.get(first), self._repo.get(second)
        if not isinstance(a, pygit2.Commit) or not isinstance(b, pygit2.Commit):
            return False
        return a.tree_id == b.tree_id and list(a.parent_ids) == list(b.parent_ids)

    def branch_view(self, branch: str, base: str | None) -> GitConfigRepo:
        """A config repo on local ``branch`` of this mirror, reset to ``base``."""
        ref = f"refs/heads/{branch}"
        if base is None:
            if ref in self._repo.references:
                self._repo.references.delete(ref)
        else:
            self._repo.references.create(ref, pygit2.Oid(hex=base), force=True)
        name, email = self.local.author
        return GitConfigRepo(self._repo, branch=branch, author_name=name, author_email=email,
                             signer=self.signer)

    def push_branch(self, branch: str, commit: str | None, *, expect: str | None,
                    force: bool = True) -> PushResult:
        """Force-push (or delete, with None) one of the reconciler's own branches, only if
        the remote branch still points at ``expect`` (None: it must not exist);
        ``force=False``: only a fast-forward too. A remote that moved meanwhile (a person,
        another replica) comes back as ``moved``: nothing of theirs is overwritten."""
        if not branch.startswith(OWN_BRANCH_PREFIX):
            raise errors.UnsafeWriteError(f"refusing to force-push {branch}: not ours")
        if not hasattr(pygit2.RemoteCallbacks, "push_negotiation"):  # pygit2 < 1.19
            raise errors.RepoError("this pygit2 cannot check a branch before force-pushing "
                                   "it (no push_negotiation): install pygit2 >= 1.19")
        ref = f"refs/heads/{branch}"
        if commit is None:
            if expect is None:
                return PushResult(True)  # nothing there to delete
            result = self._push([f":{ref}"], lease={ref: expect})
        else:
            self._repo.references.create(ref, pygit2.Oid(hex=commit), force=True)
            result = self._push([f"{'+' if force else ''}{ref}:{ref}"], lease={ref: expect})
        if result.ok or result.moved:
            return result
        # refused after negotiation: the server's old-id check fails the same way when a
        # push landed between its advertisement and our update
        now = self.remote_branch_commit(branch)
        return dataclasses.replace(result, moved=True) if now != expect else result

    def _push(self, refspecs: list[str], *,
              lease: Mapping[str, str | None] | None = None) -> PushResult:
        callbacks = _Callbacks(self._credentials, tls=self.url.startswith("https://"))
        callbacks.lease.update(lease or {})
        try:
            self._repo.remotes[REMOTE].push(refspecs, callbacks=callbacks)
        except LeaseBrokenError as exc:
            log.info("push of %s not made: %s", ", ".join(refspecs), exc)
            return PushResult(False, rejected=str(exc), moved=True)
        except pygit2.GitError as exc:
            text = str(exc)
            if "non-fastforward" in text or "not present locally" in text or "fast-forward" in text:
                return PushResult(False, rejected=text)
            raise errors.RepoError(f"push to {redact(self.url)} failed: {text}") from exc
        if callbacks.rejected:
            return PushResult(False, rejected="; ".join(
                f"{ref}: {why}" for ref, why in callbacks.rejected.items()))
        return PushResult(True)

    def reset_to_remote(self) -> None:
        """Point the local branch at the fetched remote head (pending commits dropped)."""
        remote = self.remote_head()
        try:
            try:
                self._set_branch(remote)
            except OSError:  # a ref lock left by a killed run of ours
                if not self.clear_stale_locks():
                    raise
                self._set_branch(remote)
        except (OSError, pygit2.GitError) as exc:
            raise errors.RepoError(f"cannot reset {self.branch} to the remote: {exc}") from exc
        self.local.forget_trees()

    def _set_branch(self, commit: str | None) -> None:
        if commit is None:
            if self._ref in self._repo.references:
                self._repo.references.delete(self._ref)
        else:
            self._repo.references.create(self._ref, pygit2.Oid(hex=commit), force=True)

    def foreign_changes(self, old: str | None, new: str | None) -> list[ForeignChange]:
        """Commits in old..new not made by the reconciler, with the paths they touched."""
        if new is None or new == old:
            return []
        walker = self._repo.walk(new, pygit2.enums.SortMode.TOPOLOGICAL)
        if old is not None:
            walker.hide(old)
        out: list[ForeignChange] = []
        for commit in walker:
            info = commit_info(commit)
            ours = (info.author_email == self._author_email
                    and messages.trailer_values(info.message, messages.TRAILER_OBJECT))
            if ours:
                continue
            parent = commit.parents[0].tree if commit.parents else None
            diff = commit.tree.diff_to_tree(parent, swap=True) if parent is not None \
                else commit.tree.diff_to_tree(swap=True)
            deltas = list(diff.deltas)
            paths = tuple(sorted({d.new_file.path for d in deltas}
                                 | {d.old_file.path for d in deltas}))
            out.append(ForeignChange(info, paths))
        return out

    def commits_since(self, old: str | None) -> list[CommitInfo]:
        """Commits on the local branch after ``old``, newest first."""
        head = self.head()
        if head is None:
            return []
        walker = self._repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)
        if old is not None:
            walker.hide(old)
        return [commit_info(c) for c in walker]
