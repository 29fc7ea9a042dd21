"""Fixtures for deploy/ tests: the built base and remote overlay, and the container's args."""

from __future__ import annotations

import argparse

import pytest

from tests.deploy import manifests


@pytest.fixture(scope="module")
def built() -> list[manifests.Obj]:
    """The objects of ``kubectl kustomize deploy/``."""
    return manifests.kustomize(manifests.DEPLOY)


@pytest.fixture(scope="module")
def remote_built() -> list[manifests.Obj]:
    """The objects of ``kubectl kustomize deploy/overlays/ssh``."""
    return manifests.kustomize(manifests.REMOTE_OVERLAY)


@pytest.fixture(scope="module")
def container(built: list[manifests.Obj]) -> manifests.Obj:
    """The reconciler container of the base Deployment."""
    return manifests.container(built)


@pytest.fixture
def parsed_args(container: manifests.Obj, monkeypatch: pytest.MonkeyPatch,
                built: list[manifests.Obj]) -> argparse.Namespace:
    """The base Deployment's args as the real CLI parses them inside the pod."""
    return manifests.parse_container_args(container, monkeypatch, built)
