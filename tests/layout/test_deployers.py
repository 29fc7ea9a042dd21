"""repo-layout/'s Argo CD ApplicationSet and Flux Kustomization against real repositories
in both layouts: the directory generator's globs, the Application names and paths across a
migration, and what kustomize builds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from reconciler import app
from reconciler.core import layout
from tests.gitcli import git
from tests.layout.support import FLAT, SHARDED, TENANTS, checkout, reconciled
from tests.render.test_repo_layout import KUBECTL, LAYOUT, flux_generated_kustomization


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match`` for the patterns used here: ``*`` never crosses a ``/``."""
    regex = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                    for c in pattern)
    return re.fullmatch(regex, name) is not None


def argo_directories(repo: Path, appset: dict[str, Any], rev: str = "main") -> list[str]:
    """The directories Argo CD's git directory generator yields at ``rev``: every directory
    of the tree matching an include pattern and no exclude pattern (exclude wins), as
    filterApps does in argo-cd applicationset/generators/git.go."""
    patterns = appset["spec"]["generators"][0]["git"]["directories"]
    every = git(repo, "ls-tree", "-r", "-d", "--name-only", rev).splitlines()
    return sorted(d for d in every
                  if any(go_path_match(p["path"], d) for p in patterns if not p.get("exclude"))
                  and not any(go_path_match(p["path"], d) for p in patterns if p.get("exclude")))


def tenant_applications(repo: Path, rev: str = "main") -> dict[str, tuple[str, str]]:
    """Application name -> (source path, destination namespace) of the tenants
    ApplicationSet, its Go template filled in per generated directory."""
    appset = yaml.safe_load((LAYOUT / "argocd" / "applicationset-tenants.yaml").read_text())
    template = appset["spec"]["template"]
    out = {}
    for directory in argo_directories(repo, appset, rev):
        values = {".path.path": directory, ".path.basename": directory.rpartition("/")[2]}

        def fill(text: str, values: dict[str, str] = values) -> str:
            return re.sub(r"\{\{(\.[\w.]+)\}\}", lambda m: values[m[1]], text)
        out[fill(template["metadata"]["name"])] = (
            fill(template["spec"]["source"]["path"]),
            fill(template["spec"]["destination"]["namespace"]))
    return out


def test_the_tenants_applicationset_finds_each_tenant_in_a_sharded_repo(tmp_path):
    """Over a reconciler-written sharded repo the generator yields one Application per
    tenant, tenant-<name> at tenants/_<shard>/<name> into customer-<name>, and none for a
    shard directory."""
    repo = reconciled(tmp_path, SHARDED)
    assert tenant_applications(repo) == {
        f"tenant-{n}": (f"tenants/{layout.shard_of(n)}/{n}", f"customer-{n}") for n in TENANTS}


def test_a_migration_only_changes_each_applications_path(tmp_path):
    """The same ApplicationSet over the flat repo and over it migrated yields the same
    Application names and namespaces (so Argo CD deletes nothing), only the paths move."""
    repo = reconciled(tmp_path, FLAT)
    flat = tenant_applications(repo)
    assert flat == {f"tenant-{n}": (f"tenants/{n}", f"customer-{n}") for n in TENANTS}
    app.migrate_layout(repo, SHARDED, "sharded")
    sharded = tenant_applications(repo)
    assert sharded.keys() == flat.keys()
    assert {k: v[1] for k, v in sharded.items()} == {k: v[1] for k, v in flat.items()}
    assert all(sharded[k][0] != flat[k][0] for k in flat)


def test_every_sharded_tenant_directory_builds_with_kubectl_kustomize(tmp_path):
    """Each Application's path in the sharded repo builds with the real kubectl kustomize
    into its own tenant namespace."""
    repo = reconciled(tmp_path, SHARDED)
    files = checkout(repo, tmp_path / "checkout")
    for name, (path, namespace) in tenant_applications(repo).items():
        proc = subprocess.run([str(KUBECTL), "kustomize", str(files / path)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (name, proc.stderr)
        kinds = {(o["kind"], o["metadata"]["name"])
                 for o in yaml.safe_load_all(proc.stdout) if o}
        assert ("Namespace", namespace) in kinds


def test_the_flux_tenants_kustomization_deploys_a_sharded_repo(tmp_path):
    """Built the way kustomize-controller builds ./tenants (descending through shard
    directories, which have no kustomization.yaml), every tenant namespace is deployed."""
    flux = yaml.safe_load((LAYOUT / "flux" / "tenants.yaml").read_text())
    repo = reconciled(tmp_path, SHARDED)
    files = checkout(repo, tmp_path / "checkout")
    tenants = files / flux["spec"]["path"]
    generated = flux_generated_kustomization(tenants)
    assert sorted(generated["resources"]) == sorted(
        f"{layout.shard_of(n)}/{n}" for n in TENANTS)
    (tenants / "kustomization.yaml").write_text(yaml.safe_dump(generated))
    proc = subprocess.run([str(KUBECTL), "kustomize", str(tenants)], capture_output=True,
                          text=True, check=True)
    namespaces = {o["metadata"]["name"] for o in yaml.safe_load_all(proc.stdout)
                  if o and o["kind"] == "Namespace"}
    assert namespaces == {f"customer-{n}" for n in TENANTS}
