"""Real PostgreSQL and pgbouncer servers on loopback, for the connection-pool tests.

Owns finding the programs (Debian packages ``postgresql`` and ``pgbouncer``, installed by
scripts/setup.sh), the unprivileged user they run as (both refuse to run as root), their
start-up and their shutdown. It knows nothing about rendering; tests/pool/ builds on it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gitservers_assets import processes

START_TIMEOUT_S = 30.0
#: Where Debian keeps the server programs (not on PATH).
POSTGRES_DIRS = tuple(sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
                             reverse=True))
PGBOUNCER_DIRS = ("/usr/sbin",)
#: Both servers refuse to run as root; this Debian user exists once postgresql is installed.
SERVER_USER = "postgres"


def program(name: str, *, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """The path of ``name``; a missing program skips the test, but fails it when CI=true."""
    try:
        return processes.find_program(name, package=package, extra_dirs=extra_dirs)
    except processes.ServerBinaryMissingError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: the pool test must not be skipped)")
        pytest.skip(str(exc))


@dataclass(frozen=True)
class Programs:
    """The programs the pool test runs."""

    initdb: str
    postgres: str
    pgbouncer: str
    psql: str


def find_programs() -> Programs:
    """Find every program, or skip (fail when CI=true) naming the package to install."""
    return Programs(
        initdb=program("initdb", package="postgresql", extra_dirs=POSTGRES_DIRS),
        postgres=program("postgres", package="postgresql", extra_dirs=POSTGRES_DIRS),
        pgbouncer=program("pgbouncer", package="pgbouncer", extra_dirs=PGBOUNCER_DIRS),
        psql=program("psql", package="postgresql-client"),
    )


def as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as the unprivileged server user when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return argv
    return [program("runuser", package="util-linux"), "-u", SERVER_USER, "--", *argv]


@contextlib.contextmanager
def server_workdir() -> Iterator[Path]:
    """A fresh directory the server user owns (pytest's tmp dirs, and maybe $TMPDIR, are
    private to root, so as root it is made under /tmp, which every user can traverse)."""
    path = Path(tempfile.mkdtemp(prefix="pool-test-", dir="/tmp" if os.geteuid() == 0 else None))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(path, user.pw_uid, user.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_owned(path: Path, text: str) -> None:
    """Write a file readable only by the server user."""
    path.write_text(text)
    path.chmod(0o600)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


class Server:
    """One server process in its own session, stopped (fast shutdown) by ``stop``."""

    def __init__(self, argv: list[str], *, port: int, log_path: Path, cwd: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._process = processes.spawn(as_server_user(argv), log_path=log_path, cwd=cwd)
        try:
            processes.wait_until_listening(self._process, port=port, log_path=log_path,
                                           timeout_s=START_TIMEOUT_S)
        except processes.ServerStartError:
            self.stop()
            raise

    def pid_of(self, name: str) -> int | None:
        """The id of the process called ``name`` in this server's tree (None when gone)."""
        for pid in [self._process.pid, *processes.descendants_of(self._process.pid)]:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    return pid
        return None

    def wait(self, timeout_s: float) -> int | None:
        """The exit status once the first process ended, or None after ``timeout_s``."""
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self) -> str:
        """The end of the server's log, for failure messages."""
        return processes.log_tail(self.log_path)

    def stop(self) -> None:
        """SIGINT to the whole session (PostgreSQL's fast shutdown, pgbouncer's safe one),
        then kill whatever is left of it, even when the first process already ended."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGINT)
        try:
            self._process.wait(timeout=processes.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            processes.crash(self._process)
        deadline = time.monotonic() + processes.STOP_TIMEOUT_S
        while self._session_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)

    def _session_alive(self) -> bool:
        try:
            os.killpg(self._process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def init_postgres(programs: Programs, *, data: Path, superuser: str, password: str,
                  log_path: Path) -> None:
    """initdb a cluster whose bootstrap role and password are the given ones, like the
    postgres image does with POSTGRES_USER/POSTGRES_PASSWORD (TCP clients need SCRAM)."""
    pwfile = data.parent / f"{data.name}.pw"
    write_owned(pwfile, password + "\n")
    argv = as_server_user([programs.initdb, "-D", str(data), "-U", superuser,
                           f"--pwfile={pwfile}", "--auth-local=trust",
                           "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
    with log_path.open("ab") as log:
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
    pwfile.unlink()
    if proc.returncode != 0:
        raise processes.ServerStartError(f"initdb failed:\n{processes.log_tail(log_path)}")


def start_postgres(programs: Programs, *, data: Path, port: int, log_path: Path) -> Server:
    """Start PostgreSQL on 127.0.0.1:port (its socket in the work dir)."""
    return Server([programs.postgres, "-D", str(data), "-p", str(port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}",
                   "-c", "fsync=off"],
                  port=port, log_path=log_path, cwd=data.parent)


def psql(programs: Programs, conninfo: str, *, password: str | None, sql: str,
         ) -> subprocess.CompletedProcess[str]:
    """Run one statement with the real psql; never prompts for a password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGCONNECT_TIMEOUT="10")
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run([programs.psql, "-X", "-w", "-tA", "-v", "ON_ERROR_STOP=1",
                           "-d", conninfo, "-c", sql],
                          capture_output=True, text=True, env=env, check=False, timeout=60)


def with_program_dir(argv: list[str], program_path: str) -> list[str]:
    """``argv`` with the directory of ``program_path`` first on PATH (Debian keeps
    pgbouncer in /usr/sbin, which an unprivileged user's PATH may lack)."""
    path = f"{Path(program_path).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return ["env", f"PATH={path}", *argv]


def publish_secret(directory: Path, data: dict[str, str], *, generation: int) -> None:
    """Write a Secret volume the way the kubelet does: files in a new ``..<generation>``
    directory, an atomic swap of the ``..data`` link, and ``<key> -> ..data/<key>`` links."""
    directory.mkdir(exist_ok=True)
    stamp = directory / f"..{generation}"
    stamp.mkdir()
    for path in (directory, stamp):
        path.chmod(0o755)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(path, user.pw_uid, user.pw_gid)
    for key, value in data.items():
        write_owned(stamp / key, value)
    swap = directory / "..data_tmp"
    swap.symlink_to(stamp.name)
    os.replace(swap, directory / "..data")
    for key in data:
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(f"..data/{key}")
