"""Test helpers: the test-only Customer (cluster-scoped) and Preview (namespaced) CRDs.

Owns: loading the CRD manifests in ``manifests/`` and installing them through the official
client, plus small constructors for Customer and Preview bodies used across the kube tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

MANIFESTS = Path(__file__).parent / "manifests"
GROUP = "reconciler.ahoi.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def load_manifest(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((MANIFESTS / name).read_text())
    return raw


def install_crds(api_client: client.ApiClient) -> None:
    """Create the Customer and Preview CRDs."""
    extensions = client.ApiextensionsV1Api(api_client)
    for name in ("customers-crd.yaml", "previews-crd.yaml"):
        extensions.create_custom_resource_definition(body=load_manifest(name))


def customer(name: str, *, labels: dict[str, str] | None = None,
             spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Customer body."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Customer",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec or {"plan": "small"},
    }


def preview(name: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Preview body."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Preview",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"branch": name},
    }
