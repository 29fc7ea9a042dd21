"""Shared helpers of the layout tests: real repositories written by the reconciler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from reconciler import app
from reconciler.core.settings import Settings
from tests.gitcli import git

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TENANTS = {"acme", "big-client-0815", "small-shop"}

FLAT = Settings()
SHARDED = Settings(layout="sharded")


def reconciled(tmp: Path, settings: Settings, name: str = "repo.git") -> Path:
    """A bare config repo holding the examples, written by one ``run --once``."""
    source = tmp / f"{name}-src"
    shutil.copytree(EXAMPLES, source)
    repo = tmp / name
    report, _ = app.run_once([source], repo, settings)
    assert report.ok, report.outcomes
    return repo


def tree_paths(repo: Path, rev: str = "main", under: str = "tenants") -> list[str]:
    """Every file path under ``under`` at ``rev``."""
    return git(repo, "ls-tree", "-r", "--name-only", rev, under).splitlines()


def tenant_dirs(repo: Path, rev: str = "main") -> set[str]:
    """The directories holding a tenant's kustomization.yaml at ``rev``."""
    return {p.rpartition("/")[0] for p in tree_paths(repo, rev)
            if p.endswith("/kustomization.yaml")}


def checkout(repo: Path, where: Path, rev: str = "main") -> Path:
    """The files of ``rev`` in a plain directory (what Argo CD or Flux fetch)."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where
