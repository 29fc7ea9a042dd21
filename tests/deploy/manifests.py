"""Test helpers for deploy/: build a kustomization, pick objects, read RBAC grants, and
parse container args with the real CLI parser."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = DEPLOY / "overlays"
REMOTE_OVERLAY = OVERLAYS / "ssh"
OVERLAY_NAMES = ("ssh", "https-token", "pr", "local-volume")
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
NAMESPACE = "gitops-reconciler"
NAME = "gitops-reconciler"
GROUP = "reconciler.ahoi.dev"
IMAGE = "ghcr.io/ahoi/gitops-reconciler:0.1.0"
CREDENTIALS_SECRET = "gitops-reconciler-git"

Obj = dict[str, Any]


def kustomize(directory: Path) -> list[Obj]:
    """Objects ``kubectl kustomize directory`` prints (fails the test on a build error)."""
    proc = subprocess.run([str(KUBECTL), "kustomize", str(directory)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of ``kind`` (and ``name``)."""
    found = [o for o in objects
             if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def grants(role: Obj) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a Role or ClusterRole allows."""
    return {(group, resource, verb)
            for rule in role["rules"]
            for group in rule.get("apiGroups", [])
            for resource in rule.get("resources", [])
            for verb in rule["verbs"]}


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Container args with ``$(VAR)`` references replaced, as the kubelet does."""
    out = []
    for arg in args:
        expanded = arg
        for key, value in env.items():
            expanded = expanded.replace(f"$({key})", value)
        out.append(expanded)
    return out


def deployment(objects: list[Obj]) -> Obj:
    """The reconciler Deployment."""
    return one(objects, "Deployment", NAME)


def pod_spec(objects: list[Obj]) -> Obj:
    """The pod template spec of the reconciler Deployment."""
    spec: Obj = deployment(objects)["spec"]["template"]["spec"]
    return spec


def container(objects: list[Obj]) -> Obj:
    """The reconciler container (the pod's only one)."""
    (only,) = pod_spec(objects)["containers"]
    return only


def parse_container_args(container: Obj, monkeypatch: pytest.MonkeyPatch,
                         objects: list[Obj]) -> argparse.Namespace:
    """The container's args as the real CLI parses them inside the pod."""
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    env = {"POD_NAME": "gitops-reconciler-7d4b9-x2x9z", **env_values(container, objects)}
    args = expand(container["args"], env)
    return cli._parser().parse_args(args)


def env_values(container: Obj, objects: list[Obj]) -> dict[str, str]:
    """The container's env variables whose values kustomize fixed: literals and ConfigMap
    keys (the remote's URL), as the kubelet resolves them."""
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects
                   if o["kind"] == "ConfigMap"}
    values = {}
    for entry in container.get("env", []):
        if "value" in entry:
            values[entry["name"]] = entry["value"]
        ref = (entry.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            values[entry["name"]] = config_maps[ref["name"]][ref["key"]]
    return values
