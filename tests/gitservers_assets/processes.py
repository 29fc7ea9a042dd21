"""Process plumbing for the loopback Git servers: ports, programs, start-up wait, crash-stop.

Owns how a server process is found, spawned, waited for and killed with everything it forked.
It knows nothing about Git or about any one server; tests/gitservers.py builds on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import time
from pathlib import Path

TEMPLATES = Path(__file__).parent
STOP_TIMEOUT_S = 5.0


class ServerBinaryMissingError(RuntimeError):
    """A server program is not installed; the message names the Debian package to install."""


class ServerStartError(RuntimeError):
    """A server process exited or never listened; the message holds the end of its log."""


def clean_git_env() -> dict[str, str]:
    """Return os.environ without GIT_* variables, so an outer Git (a hook, a CI) cannot leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def find_program(name: str, *, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """Return the path of a program, or raise ServerBinaryMissingError naming its package."""
    for directory in extra_dirs:
        candidate = Path(directory, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServerBinaryMissingError(
            f"{name} is not installed: install the Debian package {package!r} "
            f"(scripts/setup.sh does this when run as root)"
        )
    return found


def render_template(name: str, **values: object) -> str:
    """Return the template file ``name`` with its $placeholders filled in."""
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    return string.Template(text).substitute({k: str(v) for k, v in values.items()})


def pick_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_listening(port: int) -> bool:
    """Tell whether a socket listens on 127.0.0.1:port.

    Reads /proc/net/tcp rather than connecting: a probe connection would make sshd fork a
    session process and git daemon log a hang-up.
    """
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    listen_state = "0A"
    for line in table.splitlines()[1:]:
        fields = line.split()
        if fields[1] in wanted and fields[3] == listen_state:
            return True
    return False


def spawn(argv: list[str], *, log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` as its own session leader, appending its output to ``log_path``."""
    with log_path.open("ab") as log:
        log.write(f"--- {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_git_env(),
            cwd=cwd,
            start_new_session=True,
        )


def wait_until_listening(
    process: subprocess.Popen[bytes], *, port: int, log_path: Path, timeout_s: float
) -> None:
    """Return once ``port`` listens; raise ServerStartError if the process dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"{process.args!r} exited:\n{log_tail(log_path)}")
        if port_listening(port):
            return
        time.sleep(0.02)
    raise ServerStartError(f"nothing listens on port {port}:\n{log_tail(log_path)}")


def log_tail(log_path: Path, lines: int = 30) -> str:
    """Return the last lines of a log file, for failure messages."""
    if not log_path.exists():
        return "(no log)"
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def crash(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and everything it forked, as a crash would, and reap it.

    Connection handlers go first, so an in-flight push dies with the server instead of
    finishing behind a "stopped" one, and so the server can still reap them. sshd moves each
    connection into a new session, out of reach of killpg, hence the walk over /proc.
    """
    handlers = descendants_of(process.pid)
    for pid in handlers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_until_reaped(handlers, parent=process.pid, timeout_s=1.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def descendants_of(root: int) -> list[int]:
    """Return the ids of every live process below ``root`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses; the fields after it do not.
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                children.setdefault(int(ppid), []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _wait_until_reaped(pids: list[int], *, parent: int, timeout_s: float) -> None:
    # Only the server reaps its own children; deeper ones lost their parent with it and are
    # now init's to reap, so their zombies are not waited for.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = [pid for pid in pids if _awaits_reaping_by(pid, parent)]
        if not pending:
            return
        time.sleep(0.01)


def _awaits_reaping_by(pid: int, parent: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state != "Z" or int(ppid) == parent


def account_is_locked(user: str) -> bool:
    """Tell whether the account's password is locked ('!'), which sshd without PAM refuses."""
    try:
        shadow = Path("/etc/shadow").read_text()
    except OSError:
        return False
    for line in shadow.splitlines():
        fields = line.split(":")
        if fields[0] == user and len(fields) > 1:
            return fields[1].startswith("!")
    return False
