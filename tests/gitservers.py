"""Real Git servers on loopback for tests: sshd, git http-backend behind lighttpd, git daemon.

Owns the three server kinds, the bare repositories they serve, push rejection by hook, the
credentials a client needs (for the git CLI as environment variables, for pygit2 as credential
objects) and the pytest fixtures. Process plumbing lives in tests/gitservers_assets/processes.py.
It must not know anything about the reconciler, and never touches ~/.ssh or global Git config.

Load the fixtures with ``pytest_plugins = ["tests.gitservers"]`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import pytest

from tests.gitservers_assets import processes

START_TIMEOUT_S = 10.0
DEFAULT_BRANCH = "main"
REJECT_MESSAGE = "push rejected by the test server's pre-receive hook"
SERVER_KINDS = ("ssh", "http", "daemon")

ServerBinaryMissingError = processes.ServerBinaryMissingError
ServerStartError = processes.ServerStartError
clean_git_env = processes.clean_git_env

# A fixed identity and clock make the seeded commits byte-identical from run to run.
_SEED_ENV = {
    "GIT_AUTHOR_NAME": "Seed",
    "GIT_AUTHOR_EMAIL": "seed@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "Seed",
    "GIT_COMMITTER_EMAIL": "seed@example.invalid",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


def _git(*args: str, stdin: str | None = None, git_dir: Path | None = None) -> str:
    env = clean_git_env() | _SEED_ENV
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    result = subprocess.run(
        ["git", *args], input=stdin, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


class GitServer:
    """One server process serving the bare repositories under ``repos_dir``.

    The port is chosen once, so ``stop()`` then ``start()`` brings the same URLs back.
    """

    kind: ClassVar[str] = "abstract"

    def __init__(self, *, workdir: Path) -> None:
        self.workdir = workdir
        self.repos_dir = workdir / "repos"
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        self.port = processes.pick_free_port()
        self.log_path = workdir / f"{self.kind}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # -- what a server kind provides ---------------------------------------------------------

    def url_for(self, name: str) -> str:
        """Return the URL clients use for the bare repository ``name``."""
        raise NotImplementedError

    def git_env(self) -> dict[str, str]:
        """Return the environment variables the git CLI needs to reach this server."""
        return {"GIT_TERMINAL_PROMPT": "0"}

    def pygit2_credentials(self) -> Any:
        """Return the pygit2 credential object for this server, or None if none is needed."""
        return None

    def _prepare(self) -> None:
        """Write configuration files; called before every start, as the port may change."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    # -- life cycle --------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Tell whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once its port listens."""
        if self.is_running:
            return
        # Only a fresh server may move to another port (someone took ours between pick and
        # bind); a restart must keep its URLs, so it gets one attempt.
        attempts = 1 if self._started_once else 3
        for attempt in range(attempts):
            self._prepare()
            self._process = processes.spawn(
                self._command(), log_path=self.log_path, cwd=self.workdir
            )
            try:
                processes.wait_until_listening(
                    self._process, port=self.port, log_path=self.log_path, timeout_s=START_TIMEOUT_S
                )
            except ServerStartError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                self.port = processes.pick_free_port()
            else:
                self._started_once = True
                return

    def stop(self) -> None:
        """Kill the server and every process it forked, as a crash would, and reap it."""
        process, self._process = self._process, None
        if process is not None:
            processes.crash(process)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server's log, for failure messages."""
        return processes.log_tail(self.log_path, lines)

    # -- repositories ------------------------------------------------------------------------

    def repo_path(self, name: str) -> Path:
        """Return the directory of the bare repository ``name`` (``.git`` is appended)."""
        return self.repos_dir / (name if name.endswith(".git") else f"{name}.git")

    def create_bare_repo(self, name: str, *, initial_commit: bool = True) -> Path:
        """Create a bare repository on branch ``main``, optionally holding one seed commit."""
        path = self.repo_path(name)
        _git("init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(path))
        if initial_commit:
            blob = _git("hash-object", "-w", "--stdin", stdin="seed\n", git_dir=path)
            tree = _git("mktree", stdin=f"100644 blob {blob}\tREADME\n", git_dir=path)
            commit = _git("commit-tree", "-m", "seed", tree, git_dir=path)
            _git("update-ref", f"refs/heads/{DEFAULT_BRANCH}", commit, git_dir=path)
        return path

    def head_of(self, name: str, branch: str = DEFAULT_BRANCH) -> str | None:
        """Return the commit id of ``branch`` in the served repository, or None if unborn."""
        ref = f"refs/heads/{branch}"
        with contextlib.suppress(subprocess.CalledProcessError):
            return _git("rev-parse", "--verify", "--quiet", ref, git_dir=self.repo_path(name))
        return None

    def reject_pushes(self, name: str, message: str = REJECT_MESSAGE) -> None:
        """Make the repository refuse every push with ``message`` (a failing pre-receive hook)."""
        hook = self.repo_path(name) / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\necho {shlex.quote(message)} >&2\nexit 1\n")
        hook.chmod(0o755)

    def accept_pushes(self, name: str) -> None:
        """Undo ``reject_pushes``."""
        (self.repo_path(name) / "hooks" / "pre-receive").unlink(missing_ok=True)

    @contextlib.contextmanager
    def rejecting_pushes(self, name: str, message: str = REJECT_MESSAGE) -> Iterator[None]:
        """Reject pushes to ``name`` inside the block."""
        self.reject_pushes(name, message)
        try:
            yield
        finally:
            self.accept_pushes(name)


class SshGitServer(GitServer):
    """Debian's sshd with its own host key, letting one generated client key in as this user."""

    kind = "ssh"

    def __init__(self, *, workdir: Path, key_type: str = "ed25519") -> None:
        super().__init__(workdir=workdir)
        self.sshd = processes.find_program(
            "sshd", package="openssh-server", extra_dirs=("/usr/sbin",)
        )
        processes.find_program("ssh", package="openssh-client")
        keygen = processes.find_program("ssh-keygen", package="openssh-client")
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host_key = workdir / "ssh_host_key"
        self.client_key = workdir / "client_key"
        self.client_public_key = workdir / "client_key.pub"
        self.authorized_keys = workdir / "authorized_keys"
        self.known_hosts = workdir / "known_hosts"
        self.config_path = workdir / "sshd_config"
        for path, comment in ((self.host_key, "test-host"), (self.client_key, "test-client")):
            subprocess.run(
                [keygen, "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)],
                check=True,
                capture_output=True,
            )
        self.authorized_keys.write_text(self.client_public_key.read_text())

    def url_for(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.repo_path(name)}"

    def git_env(self) -> dict[str, str]:
        # -F /dev/null keeps ~/.ssh/config out; the host key is new every run, so no pinning.
        options = (
            "-F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes"
            " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
        )
        command = f"ssh -i {shlex.quote(str(self.client_key))} {options}"
        return super().git_env() | {"GIT_SSH_COMMAND": command, "GIT_SSH_VARIANT": "ssh"}

    def pygit2_credentials(self) -> Any:
        import pygit2

        return pygit2.Keypair(self.user, str(self.client_public_key), str(self.client_key), "")

    def _prepare(self) -> None:
        if os.getuid() == 0:
            # sshd's privilege-separation directory; Debian's service unit normally makes it.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        key_type, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {key_type} {key}\n")
        self.config_path.write_text(
            processes.render_template(
                "sshd_config.template",
                host_key=self.host_key,
                pid_file=self.workdir / "sshd.pid",
                authorized_keys=self.authorized_keys,
                user=self.user,
                # sshd without PAM refuses a locked account even by key; PAM lets it in.
                use_pam="yes" if processes.account_is_locked(self.user) else "no",
            )
        )

    def _command(self) -> list[str]:
        return [self.sshd, "-D", "-e", "-f", str(self.config_path), "-p", str(self.port)]


class HttpGitServer(GitServer):
    """git http-backend as CGI behind Debian's lighttpd, by default behind basic auth."""

    kind = "http"

    def __init__(self, *, workdir: Path, basic_auth: bool = True) -> None:
        super().__init__(workdir=workdir)
        self.lighttpd = processes.find_program(
            "lighttpd", package="lighttpd", extra_dirs=("/usr/sbin",)
        )
        self.http_backend = Path(_git("--exec-path"), "git-http-backend")
        if not self.http_backend.is_file():
            raise ServerBinaryMissingError(f"{self.http_backend} is missing: install 'git'")
        self.basic_auth = basic_auth
        self.username = "reconciler"
        self.password = secrets.token_urlsafe(16)
        self.config_path = workdir / "lighttpd.conf"

    def url_for(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/git/{self.repo_path(name).name}"

    def git_env(self) -> dict[str, str]:
        env = super().git_env()
        if not self.basic_auth:
            return env
        # A one-line credential helper keeps the secret out of URLs, as the product must.
        helper = (
            f"!f() {{ test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' "
            f"{shlex.quote(self.username)} {shlex.quote(self.password)}; }}; f"
        )
        return env | {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": helper,
        }

    def pygit2_credentials(self) -> Any:
        if not self.basic_auth:
            return None
        import pygit2

        return pygit2.UserPass(self.username, self.password)

    def _prepare(self) -> None:
        document_root = self.workdir / "htdocs"
        upload_dir = self.workdir / "uploads"
        document_root.mkdir(exist_ok=True)
        upload_dir.mkdir(exist_ok=True)
        auth_block = ""
        if self.basic_auth:
            user_file = self.workdir / "htpasswd.plain"
            user_file.write_text(f"{self.username}:{self.password}\n")
            user_file.chmod(0o600)
            auth_block = processes.render_template(
                "lighttpd_auth.conf.template", user_file=user_file
            )
        self.config_path.write_text(
            processes.render_template(
                "lighttpd.conf.template",
                port=self.port,
                document_root=document_root,
                error_log=self.log_path,
                upload_dir=upload_dir,
                http_backend=self.http_backend,
                project_root=self.repos_dir,
                auth_block=auth_block,
            )
        )

    def _command(self) -> list[str]:
        return [self.lighttpd, "-D", "-f", str(self.config_path)]


class DaemonGitServer(GitServer):
    """``git daemon`` with receive-pack enabled; anonymous, as git:// always is."""

    kind = "daemon"

    def __init__(self, *, workdir: Path) -> None:
        super().__init__(workdir=workdir)
        self.git = processes.find_program("git", package="git")

    def url_for(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{self.repo_path(name).name}"

    def _command(self) -> list[str]:
        flags = "--reuseaddr --export-all --enable=receive-pack --informative-errors"
        return [
            self.git,
            "daemon",
            *flags.split(),
            "--listen=127.0.0.1",
            f"--port={self.port}",
            f"--base-path={self.repos_dir}",
            "--max-connections=0",  # unlimited: race tests open many at once
            "--log-destination=stderr",
            str(self.repos_dir),
        ]


# -- pytest fixtures -------------------------------------------------------------------------

ServerT = TypeVar("ServerT", bound=GitServer)


@contextlib.contextmanager
def running_server(factory: Callable[[], ServerT]) -> Iterator[ServerT]:
    """Start the server ``factory`` builds, fail the test in one line if it cannot, stop it."""
    failure: str | None = None
    try:
        server = factory()
        server.start()
    except (ServerBinaryMissingError, ServerStartError) as exc:
        failure = str(exc)
    if failure is not None:
        # Outside the except block, so the report is that one line rather than a chain.
        pytest.fail(failure, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ssh_git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    """A running sshd serving bare repositories to the generated client key."""
    workdir = tmp_path_factory.mktemp("sshd")
    with running_server(lambda: SshGitServer(workdir=workdir)) as server:
        yield server


@pytest.fixture
def http_git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpGitServer]:
    """A running lighttpd + git http-backend that requires basic auth."""
    workdir = tmp_path_factory.mktemp("lighttpd")
    with running_server(lambda: HttpGitServer(workdir=workdir)) as server:
        yield server


@pytest.fixture
def http_anonymous_git_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HttpGitServer]:
    """A running lighttpd + git http-backend open to anyone, pushes included."""
    workdir = tmp_path_factory.mktemp("lighttpd-anonymous")
    with running_server(lambda: HttpGitServer(workdir=workdir, basic_auth=False)) as server:
        yield server


@pytest.fixture
def daemon_git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonGitServer]:
    """A running ``git daemon`` that accepts pushes."""
    workdir = tmp_path_factory.mktemp("git-daemon")
    with running_server(lambda: DaemonGitServer(workdir=workdir)) as server:
        yield server


@pytest.fixture(params=SERVER_KINDS)
def any_git_server(request: pytest.FixtureRequest) -> GitServer:
    """Each of the three servers in turn: ssh, http (basic auth), daemon."""
    server: GitServer = request.getfixturevalue(f"{request.param}_git_server")
    return server
