"""Applied feedback: has Argo CD or Flux actually applied an object's last commit?

Pure: given the object's directory and last commit, the Argo CD Applications and Flux
Kustomizations (raw API dicts) and a ``contains(commit, revision)`` function (does the
applied revision include the commit), compute the ``Applied`` condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ARGO_APPLICATIONS = ("argoproj.io", "v1alpha1", "applications")
FLUX_KUSTOMIZATIONS = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
APPLIED = "Applied"


@dataclass(frozen=True)
class Deployer:
    """An Argo CD Application or Flux Kustomization deploying a directory."""

    kind: str
    name: str
    revision: str | None
    healthy: bool
    detail: str


def _norm(path: str) -> str:
    return path.strip().removeprefix("./").strip("/")


def _argo(raw: Mapping[str, Any], directory: str) -> Deployer | None:
    spec = raw.get("spec") or {}
    sources = [spec["source"]] if spec.get("source") else list(spec.get("sources") or [])
    if not any(_norm(str(s.get("path", ""))) == directory for s in sources):
        return None
    status = raw.get("status") or {}
    sync = status.get("sync") or {}
    revision = sync.get("revision") or next(iter(sync.get("revisions") or []), None)
    health = (status.get("health") or {}).get("status")
    synced = sync.get("status")
    meta = raw.get("metadata") or {}
    return Deployer("Application", f"{meta.get('namespace')}/{meta.get('name')}", revision,
                    health == "Healthy" and synced == "Synced",
                    f"sync {synced or 'Unknown'}, health {health or 'Unknown'}")


def _flux(raw: Mapping[str, Any], directory: str) -> Deployer | None:
    path = _norm(str((raw.get("spec") or {}).get("path", "")))
    if not (path in ("", directory) or directory.startswith(path + "/")):
        return None
    status = raw.get("status") or {}
    applied = str(status.get("lastAppliedRevision") or "")
    # "main@sha1:<sha>" (Flux 2) or "main/<sha>" (before 2.0)
    hexes = re.findall(r"[0-9a-f]{40}|[0-9a-f]{64}", applied)
    revision = hexes[-1] if hexes else None
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    meta = raw.get("metadata") or {}
    return Deployer("Kustomization", f"{meta.get('namespace')}/{meta.get('name')}", revision,
                    ready.get("status") == "True",
                    f"Ready {ready.get('status', 'Unknown')}: {ready.get('message', '')}".strip())


def deployers(directory: str, applications: Iterable[Mapping[str, Any]],
              kustomizations: Iterable[Mapping[str, Any]]) -> list[Deployer]:
    """Every Application and Kustomization whose path covers ``directory``."""
    found = [_argo(a, directory) for a in applications]
    found += [_flux(k, directory) for k in kustomizations]
    return [d for d in found if d is not None]


def applied_condition(directory: str, last_commit: str | None, found: list[Deployer],
                      contains: Callable[[str, str], bool]) -> tuple[str, str, str]:
    """(status, reason, message) of the Applied condition."""
    if not found:
        return ("Unknown", "NoDeployer",
                f"no Argo CD Application or Flux Kustomization deploys {directory}/")
    if last_commit is None:
        return "Unknown", "NotCommitted", "nothing committed for this object yet"
    applying = [d for d in found if d.revision and contains(last_commit, d.revision)]
    for deployer in sorted(applying, key=lambda d: not d.healthy):  # a healthy one wins
        if deployer.healthy:
            return ("True", "Applied", f"{deployer.kind} {deployer.name} applied "
                    f"{deployer.revision}"[:200] + f", which contains {last_commit[:12]}")
        return ("False", "Unhealthy", f"{deployer.kind} {deployer.name} applied "
                f"{str(deployer.revision)[:12]} but is not healthy ({deployer.detail})")
    first = found[0]
    at = first.revision[:12] if first.revision else "no revision"
    return ("False", "NotYetApplied", f"{first.kind} {first.name} is at {at}, which does not "
            f"contain {last_commit[:12]}")
