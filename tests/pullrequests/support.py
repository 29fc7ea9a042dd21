"""Helpers of the pull-request mode tests (this module holds no tests).

Owns: the config repo served by ``git daemon`` as a user reads it with the git CLI (branches,
commits, the paths a commit touches) and changes it as a forge would (merging a pull request's
branch); a workspace of Customer/Preview manifests with the ``reconciler`` command run on it as
a subprocess; and a forge fake with the command-line flags that point the reconciler at it.
Everything is read back as a user would see it: command output, ``git``, the forge's pull
requests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import gitservers
from tests.forges.fakes.base import GOOD_TOKEN, FakeForge, Pull

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BRANCH = "main"
FORGE_REPO = "acme/config"
HUMAN = {"GIT_AUTHOR_NAME": "Hanna Human", "GIT_AUTHOR_EMAIL": "hanna@example.invalid",
         "GIT_COMMITTER_NAME": "Hanna Human", "GIT_COMMITTER_EMAIL": "hanna@example.invalid"}
FORGE_BOT = {"GIT_AUTHOR_NAME": "Forge", "GIT_AUTHOR_EMAIL": "noreply@forge.invalid",
             "GIT_COMMITTER_NAME": "Forge", "GIT_COMMITTER_EMAIL": "noreply@forge.invalid"}


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without GIT_*, RECONCILER_* or KUBECONFIG, and without user Git config."""
    env = {k: v for k, v in gitservers.clean_git_env().items()
           if not k.startswith("RECONCILER_") and k not in ("KUBECONFIG", "POD_NAMESPACE")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    return env | dict(extra or {})


def git(*args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        check: bool = True) -> str:
    """Run the git CLI and return its stripped stdout; fails the test on an error."""
    done = subprocess.run(["git", *map(str, args)], cwd=cwd, env=clean_env(env),
                          capture_output=True, text=True, timeout=30, check=False)
    if check:
        assert done.returncode == 0, f"git {' '.join(map(str, args))}: {done.stderr}"
    return done.stdout.strip()


def reconciler(*args: str | Path, home: Path,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``reconciler ARGS`` to completion with its own HOME."""
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "reconciler.cli", *map(str, args)],
                          env=clean_env({"HOME": str(home)}), capture_output=True, text=True,
                          timeout=timeout, check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that must have succeeded without a traceback."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


# -- the served config repo ------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """One bare repository served by ``git daemon``, read and changed with the git CLI."""

    server: gitservers.GitServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url_for(self.name)

    @property
    def git_dir(self) -> Path:
        return self.server.repo_path(self.name)

    def git(self, *args: str, check: bool = True) -> str:
        """The git CLI inside the served repository."""
        return git("--git-dir", self.git_dir, *args, check=check)

    def head(self, branch: str = BRANCH) -> str | None:
        """The commit ``branch`` points at, None when there is no such branch."""
        return self.server.head_of(self.name, branch)

    def branches(self) -> set[str]:
        """Every branch on the remote."""
        return set(self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/").split())

    def commits_on_top(self, branch: str, base: str = BRANCH) -> list[str]:
        """Commits of ``branch`` that ``base`` does not have, newest first."""
        return self.git("rev-list", f"{base}..{branch}").split()

    def parents(self, commit: str) -> list[str]:
        return self.git("rev-list", "--parents", "-n1", commit).split()[1:]

    def subject(self, commit: str) -> str:
        return self.git("log", "-1", "--format=%s", commit)

    def trailers(self, commit: str) -> list[str]:
        """``Key: value`` trailer lines of a commit message."""
        return self.git("log", "-1", "--format=%(trailers:only,unfold)", commit).splitlines()

    def changed(self, commit: str) -> dict[str, str]:
        """Path -> status letter (A, M, D) of what ``commit`` changed against its parent."""
        out = self.git("diff-tree", "--no-commit-id", "-r", "--name-status", f"{commit}^", commit)
        return {path: status for status, path in (line.split("\t", 1) for line in out.splitlines())}

    def show(self, path: str, rev: str = BRANCH) -> str:
        return self.git("show", f"{rev}:{path}")

    def clone(self, where: Path) -> Path:
        """A working clone of the remote's main branch."""
        git("clone", "--quiet", "--branch", BRANCH, self.url, where)
        return where

    def merge(self, branch: str, where: Path, message: str) -> str:
        """Merge ``branch`` into main with a merge commit and push it, as a forge's merge button
        does; the merge commit."""
        clone = self.clone(where)
        git("fetch", "--quiet", "origin", branch, cwd=clone)
        git("merge", "--quiet", "--no-ff", "-m", message, "FETCH_HEAD", cwd=clone, env=FORGE_BOT)
        git("push", "--quiet", "origin", f"HEAD:{BRANCH}", cwd=clone)
        return git("rev-parse", "HEAD", cwd=clone)

    def human_commit(self, where: Path, path: str, text: str, message: str) -> str:
        """A person's commit of one file pushed to main; its id."""
        clone = self.clone(where)
        (clone / path).write_text(text)
        git("add", path, cwd=clone)
        git("commit", "--quiet", "-m", message, cwd=clone, env=HUMAN)
        git("push", "--quiet", "origin", f"HEAD:{BRANCH}", cwd=clone)
        return git("rev-parse", "HEAD", cwd=clone)


# -- the forge -------------------------------------------------------------------------------


@dataclass
class ForgeUnderTest:
    """A running forge fake and the flags that point ``reconciler run --mode pr`` at it."""

    kind: str
    fake: FakeForge
    token_file: Path

    def args(self) -> list[str]:
        return ["--mode", "pr", "--forge", self.kind, "--forge-url", self.fake.url,
                "--forge-repo", FORGE_REPO, "--forge-token-file", str(self.token_file)]

    def pulls(self, head: str | None = None) -> list[Pull]:
        """Pull requests (any state), optionally only those from ``head``, oldest first."""
        found = sorted(self.fake.pulls(), key=lambda p: p.number)
        return [p for p in found if head is None or p.head == head]

    def open_pulls(self) -> list[Pull]:
        return [p for p in self.pulls() if p.state == "open"]

    def writes(self) -> list[str]:
        """Every request that changes something on the forge, as ``METHOD path``."""
        return [f"{r.method} {r.path}" for r in self.fake.calls() if r.method != "GET"]

    def use_token(self, token: str) -> None:
        self.token_file.write_text(token + "\n")


def token_file(where: Path, token: str = GOOD_TOKEN) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(token + "\n")
    where.chmod(0o600)
    return where


# -- manifests and the reconciler command ----------------------------------------------------


@dataclass
class Workspace:
    """Resource manifests (a copy of ``examples/``) and the reconciler's HOME and state dir."""

    root: Path
    remote: Remote
    source: Path = field(init=False)
    home: Path = field(init=False)
    state_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.source = self.root / "resources"
        self.home = self.root / "home"
        self.state_dir = self.root / "state"
        shutil.copytree(EXAMPLES, self.source)

    def manifest_path(self, kind: str, name: str) -> Path:
        return self.source / f"{kind.lower()}s" / f"{name}.yaml"

    def manifest(self, kind: str, name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.manifest_path(kind, name).read_text())
        return loaded

    def write(self, doc: Mapping[str, Any]) -> None:
        path = self.manifest_path(str(doc["kind"]), str(doc["metadata"]["name"]))
        path.write_text(yaml.safe_dump(dict(doc), sort_keys=False))

    def set_feature(self, name: str, feature: str, **values: Any) -> None:
        """Change one feature of Customer ``name`` (e.g. ``scheduler``, ``workers=3``)."""
        doc = self.manifest("Customer", name)
        features = doc["spec"].setdefault("features", {})
        features[feature] = {**features.get(feature, {}), **values}
        self.write(doc)

    def delete(self, kind: str, name: str) -> None:
        self.manifest_path(kind, name).unlink()

    def run(self, forge: ForgeUnderTest, *extra: str | Path) -> subprocess.CompletedProcess[str]:
        """``reconciler run --mode pr --once [EXTRA]`` from the manifests against the remote."""
        return reconciler("run", "--source", self.source, "--repo", self.remote.url,
                          "--state-dir", self.state_dir, "--once", *forge.args(), *extra,
                          home=self.home)

    def status(self) -> dict[str, dict[str, Any]]:
        """``reconciler status -o json`` against the remote, by object name."""
        out = ok(reconciler("status", "--source", self.source, "--repo", self.remote.url,
                            "--state-dir", self.state_dir, "-o", "json", home=self.home))
        return {row["name"]: row for row in json.loads(out)}


def seed(remote: Remote, source: Path, home: Path, state_dir: Path) -> None:
    """Create main on an empty remote: a direct-mode ``run --once`` of ``source``."""
    ok(reconciler("run", "--source", source, "--repo", remote.url, "--state-dir", state_dir,
                  "--once", home=home))
