"""A real kube-apiserver and etcd on 127.0.0.1 for the tests, built from Go modules.

Owns: finding the Go toolchain, building ``main.go`` (k8s.io/kubernetes' kube-apiserver
and etcd's embed package, versions pinned in ``go.mod``) once per source version into a
cache outside the repository, starting and stopping the server, compacting its etcd, and
kubeconfigs for a ServiceAccount (a token from the TokenRequest API). It must not hold test
scenarios; ``tests.kube.clusters`` hands the server to them.

The binary is cached under ``$RECONCILER_KUBEAPI_CACHE`` (default
``~/.cache/gitops-reconciler/kubeapi``) in a directory named after a hash of ``go.mod``,
``go.sum``, ``main.go`` and ``go version``: an edit or a new toolchain builds again, a
rerun starts in seconds.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent
SOURCES = ("go.mod", "go.sum", "main.go")
GO_FALLBACK = Path("/usr/local/go/bin/go")
START_TIMEOUT = 120.0


class KubeApiError(Exception):
    """The API server could not be built or started; the message says why in one line."""


def find_go(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The ``go`` command: on PATH, or where the official tarball installs it; None if absent."""
    found = shutil.which("go", path=environ.get("PATH"))
    if found:
        return Path(found)
    return GO_FALLBACK if GO_FALLBACK.is_file() else None


def cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """Where built binaries are kept, outside the repository."""
    configured = environ.get("RECONCILER_KUBEAPI_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "gitops-reconciler" / "kubeapi"


def source_key(go: Path) -> str:
    """A hash of the Go sources and the toolchain version: the binary's cache key."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    version = subprocess.run([str(go), "version"], capture_output=True, text=True,
                             check=False, timeout=30).stdout
    digest.update(version.encode())
    return digest.hexdigest()[:16]


def build(go: Path, *, environ: Mapping[str, str] = os.environ,
          log: Any = sys.stderr) -> Path:
    """The cached binary for the current sources, built first (minutes, once) if missing.

    Built with ``nice`` and two parallel jobs: the machines are small and shared. A lock
    file makes a second caller wait for the first build instead of doing it again.
    """
    target_dir = cache_root(environ) / source_key(go)
    binary = target_dir / "kubeapi"
    if binary.is_file():
        return binary
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        print(f"kubeapi: building kube-apiserver from Go modules into {binary} "
              "(once; takes minutes)", file=log, flush=True)
        started = time.monotonic()
        partial = target_dir / "kubeapi.partial"
        command = [str(go), "build", "-p", "2", "-trimpath", "-ldflags=-s -w",
                   "-o", str(partial), "."]
        if shutil.which("nice"):
            command = ["nice", "-n", "10", *command]
        done = subprocess.run(command, cwd=SOURCE, capture_output=True, text=True,
                              check=False, env={**environ, "GOFLAGS": "-mod=readonly -buildvcs=false"})
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise KubeApiError(f"go build of tests/kubeapi failed ({done.returncode}):\n{tail}")
        partial.rename(binary)
        print(f"kubeapi: built in {time.monotonic() - started:.0f}s", file=log, flush=True)
    return binary


@dataclass
class KubeApi:
    """A running kube-apiserver: its address, admin kubeconfig and etcd endpoint."""

    directory: Path
    process: subprocess.Popen[bytes]
    server: str
    etcd: str
    kubeconfig: Path

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.directory / "ca.crt"))

    def request(self, method: str, path: str, body: Any = None, *,
                token: str | None = None) -> Any:
        """One JSON request as admin (or ``token``); the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        bearer = token or (self.directory / "admin.token").read_text().strip()
        request = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        with urllib.request.urlopen(request, context=self._context(), timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    def compact(self) -> int:
        """Compact etcd's history up to its current revision (what the API server does every
        five minutes); a watch resuming from before it then answers 410 Gone. The revision."""
        def post(path: str, body: dict[str, Any]) -> Any:
            request = urllib.request.Request(self.etcd + path, data=json.dumps(body).encode(),
                                             method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read())
        key = base64.b64encode(b"/registry").decode()
        revision = int(post("/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def service_account_token(self, namespace: str, name: str,
                              seconds: int = 24 * 3600) -> str:
        """A token for the ServiceAccount from the TokenRequest API (as a kubelet gets one)."""
        answer = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": seconds}})
        token: str = answer["status"]["token"]
        return token

    def kubeconfig_for_token(self, token: str, path: Path, user: str) -> Path:
        """A kubeconfig for this server that authenticates with ``token``."""
        ca = base64.b64encode((self.directory / "ca.crt").read_bytes()).decode()
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kubeapi", "cluster": {"server": self.server,
                                                         "certificate-authority-data": ca}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "kubeapi", "user": user}}],
            "current-context": user,
        }, indent=2))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """SIGTERM (the API server drains, then etcd stops); SIGKILL after 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(binary: Path, directory: Path, *, extra_args: tuple[str, ...] = (),
          timeout: float = START_TIMEOUT) -> KubeApi:
    """Start the server with its state in ``directory``; return once /readyz answers."""
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    log = directory / "kubeapi.log"
    with log.open("wb") as sink:
        command = [str(binary), "-dir", str(directory)]
        if extra_args:
            command += ["--", *extra_args]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + timeout
    while not ready.is_file():
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise KubeApiError(f"kubeapi exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise KubeApiError(f"kubeapi not ready within {timeout:.0f}s (log: {log})")
        time.sleep(0.1)
    info = json.loads(ready.read_text())
    return KubeApi(directory, process, info["server"], info["etcd"], Path(info["kubeconfig"]))


@contextlib.contextmanager
def running(directory: Path, *, go: Path | None = None,
            extra_args: tuple[str, ...] = ()) -> Iterator[KubeApi]:
    """Build if needed, start, yield the server, stop it."""
    go = go or find_go()
    if go is None:
        raise KubeApiError("no Go toolchain (go on PATH or /usr/local/go/bin/go)")
    api = start(build(go), directory, extra_args=extra_args)
    try:
        yield api
    finally:
        api.stop()
