"""Helpers of the audit tests (this module holds no tests).

Owns: Customer manifests on disk, the ``reconciler`` command as a subprocess, and a human
working in a clone of the config repo with the git CLI under their own name. Everything is
read back the way a user would: command output, ``git log``, ``git show``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "reconciler"
BRANCH = "main"
BOT = "gitops-reconciler <gitops-reconciler@localhost>"
HUMAN_NAME, HUMAN_EMAIL = "Hanna Human", "hanna@example.invalid"
HUMAN = f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
POLICY_ANNOTATION = "reconciler.ahoi.dev/on-human-change"
RESYNC_ANNOTATION = "reconciler.ahoi.dev/resync"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without GIT_*, RECONCILER_* or KUBECONFIG, and without user Git config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "RECONCILER_")) and k not in ("KUBECONFIG",
                                                                     "POD_NAMESPACE")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    env.update(extra or {})
    return env


def git(*args: str | Path, cwd: Path | None = None) -> str:
    """Run the git CLI and return its stripped stdout; fails the test on an error."""
    done = subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=clean_env(), timeout=30, check=False)
    assert done.returncode == 0, f"git {' '.join(map(str, args))}: {done.stderr}"
    return done.stdout.strip()


def reconciler(*args: str | Path,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``reconciler args`` to completion (the console script next to this Python)."""
    command = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [
        sys.executable, "-m", "reconciler.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          env=clean_env(env), timeout=60, check=False)


def customer(name: str, *, workers: int, database: bool = False,
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Customer document with a scheduler (and optionally a database)."""
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    features: dict[str, Any] = {"scheduler": {"enabled": True, "workers": workers}}
    if database:
        features["database"] = {"enabled": True, "storage": "10Gi"}
    return {"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
            "metadata": metadata, "spec": {"displayName": name.title(), "features": features}}


# -- the config repo, read with git --------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """One commit as ``git log`` shows it."""

    id: str
    author: str
    subject: str
    body: str
    trailers: dict[str, str]


def log(repo: Path | str, rev: str = BRANCH) -> list[Commit]:
    """Commits of ``rev`` in a bare repository, newest first."""
    out = git("--git-dir", repo, "log", "--format=%H%x1f%an <%ae>%x1f%s%x1f%B%x1e", rev)
    commits = []
    for record in out.split("\x1e"):
        if not record.strip():
            continue
        sha, author, subject, body = record.strip("\n").split("\x1f")
        parsed = git("--git-dir", repo, "log", "-1", "--format=%(trailers:only,unfold)", sha)
        trailers = dict(line.split(": ", 1) for line in parsed.splitlines() if ": " in line)
        commits.append(Commit(sha, author, subject, body, trailers))
    return commits


def head(repo: Path | str) -> str:
    """The tip of the branch."""
    return git("--git-dir", repo, "rev-parse", BRANCH)


def new_commits(repo: Path, since: str) -> list[Commit]:
    """Commits on the branch after ``since``, newest first."""
    return log(repo, f"{since}..{BRANCH}")


def paths_changed(repo: Path, commit: str) -> list[str]:
    """Paths one commit changed."""
    return git("--git-dir", repo, "show", "--format=", "--name-only", commit).split()


def show(repo: Path, path: str, rev: str = BRANCH) -> str:
    """A file's content at ``rev``."""
    return git("--git-dir", repo, "show", f"{rev}:{path}")


def replicas(repo: Path, name: str, rev: str = BRANCH) -> int:
    """``spec.replicas`` of the tenant's scheduler Deployment."""
    return int(yaml.safe_load(show(repo, f"tenants/{name}/scheduler.yaml", rev))["spec"]["replicas"])


def generation_commit(repo: Path, key: str, generation: int) -> str:
    """The reconciler's commit that rendered ``generation`` of ``key`` (there must be one)."""
    [found] = [c.id for c in log(repo) if c.trailers.get("Reconciler-Object") == key
               and c.trailers.get("Reconciler-Generation") == str(generation)
               and c.author == BOT and c.trailers.get("Reconciler-Action") != "rollback"]
    return found


# -- a human's clone -----------------------------------------------------------------------


class Human:
    """A person with a clone of the config repo, working with the git CLI under their name."""

    def __init__(self, remote: str | Path, where: Path) -> None:
        git("clone", "--quiet", "--branch", BRANCH, remote, where)
        git("config", "user.name", HUMAN_NAME, cwd=where)
        git("config", "user.email", HUMAN_EMAIL, cwd=where)
        self.where = where

    def pull(self) -> None:
        """Bring the clone up to date (fast-forward)."""
        git("pull", "--quiet", "--ff-only", "origin", BRANCH, cwd=self.where)

    def revert(self, commit: str) -> str:
        """``git revert`` one commit; the revert's id."""
        git("revert", "--no-edit", commit, cwd=self.where)
        return git("rev-parse", "HEAD", cwd=self.where)

    def replace(self, path: str, old: str, new: str, message: str) -> str:
        """Edit one file by hand and commit it; the commit's id."""
        target = self.where / path
        text = target.read_text()
        assert old in text, f"{old!r} not in {path}"
        target.write_text(text.replace(old, new, 1))
        git("commit", "--quiet", "-am", message, cwd=self.where)
        return git("rev-parse", "HEAD", cwd=self.where)

    def push(self) -> None:
        """Push the branch back."""
        git("push", "--quiet", "origin", f"HEAD:{BRANCH}", cwd=self.where)


# -- a source directory and a local config repo ----------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """Customer manifests and the (bare, local) config repo they are reconciled into."""

    source: Path
    repo: Path

    def copy_to(self, where: Path) -> Workspace:
        """A private copy a test may change."""
        copy = Workspace(where / "resources", where / "config.git")
        shutil.copytree(self.source, copy.source)
        shutil.copytree(self.repo, copy.repo)
        return copy

    def write(self, doc: Mapping[str, Any]) -> Path:
        """Write one Customer manifest (``<name>.yaml``)."""
        self.source.mkdir(parents=True, exist_ok=True)
        path = self.source / f"{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(dict(doc), sort_keys=False))
        return path

    def manifest(self, name: str) -> dict[str, Any]:
        """The manifest ``<name>.yaml`` as it is on disk now."""
        loaded: dict[str, Any] = yaml.safe_load((self.source / f"{name}.yaml").read_text())
        return loaded

    def run(self, *extra: str | Path) -> subprocess.CompletedProcess[str]:
        """``reconciler run --once`` from the manifests into the repo."""
        return reconciler("run", "--source", self.source, "--repo", self.repo, "--once", *extra)

    def cli(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """Any ``reconciler`` command against the repo (``--repo`` appended)."""
        return reconciler(*args, "--repo", self.repo)

    def status(self) -> dict[str, dict[str, Any]]:
        """``reconciler status -o json``, by object name."""
        done = self.cli("status", "--source", self.source, "-o", "json")
        assert done.returncode == 0, done.stderr
        return {row["name"]: row for row in json.loads(done.stdout)}

    def history(self, key: str) -> list[dict[str, str]]:
        """``reconciler history KEY -o json``."""
        done = self.cli("history", key, "-o", "json")
        assert done.returncode == 0, done.stderr
        entries: list[dict[str, str]] = json.loads(done.stdout)
        return entries

    def human(self, where: Path) -> Human:
        """A human cloning this repo into ``where``."""
        return Human(self.repo, where)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded without a traceback."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def lines_starting(text: str, prefix: str) -> list[str]:
    """The lines of ``text`` that start with ``prefix``."""
    return [line for line in text.splitlines() if line.startswith(prefix)]
