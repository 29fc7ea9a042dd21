"""What the chaos tests share: the ``reconciler`` command as a subprocess, source trees of
Customers, and plumbing that commits what a careless or hostile human could commit.

Knows only what a user could see: the command's exit code and output, and the repository
as the git CLI reads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.gitcli import git, git_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def reconciler(*args: str, env: Mapping[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``reconciler ARGS`` in a clean environment; the finished process."""
    base = {k: v for k, v in git_env().items() if not k.startswith("RECONCILER_")}
    return subprocess.run([sys.executable, "-m", "reconciler.cli", *args],
                          env=base | dict(env or {}), capture_output=True, text=True,
                          errors="replace", timeout=timeout, check=False)


def copy_examples(to: Path) -> Path:
    """A private copy of ``examples/`` the test may edit."""
    shutil.copytree(EXAMPLES, to)
    return to


def write_customer(sources: Path, name: str, workers: int, *, uid: str | None = None) -> Path:
    """A Customer manifest with a scheduler of ``workers`` workers."""
    path = sources / "customers" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = f"{{name: {name}" + (f", uid: {uid!r}" if uid is not None else "") + "}"
    path.write_text("apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"
                    f"metadata: {meta}\n"
                    f"spec: {{features: {{scheduler: {{enabled: true, workers: {workers}}}}}}}\n")
    return path


def commit_entries(git_dir: Path, entries: Mapping[bytes, tuple[str, bytes]],
                   message: str, branch: str = "main") -> str:
    """Commit raw tree entries (path bytes -> (mode, content)) on ``branch`` with plumbing,
    as a human could: symlinks (mode 120000), names that are not UTF-8, anything."""
    env = git_env()
    with tempfile.TemporaryDirectory() as tmp:
        env |= {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": tmp,
                "GIT_DIR": str(git_dir)}
        old = git(git_dir, "rev-parse", branch)
        git(git_dir, "read-tree", branch, env=env)
        lines = []
        for path, (mode, data) in entries.items():
            blob = git(git_dir, "hash-object", "-w", "--stdin", stdin=data)
            lines.append(f"{mode} {blob}\t".encode() + path)
        subprocess.run(["git", "update-index", "--index-info"], input=b"\n".join(lines) + b"\n",
                       env=env, check=True)
        tree = git(git_dir, "write-tree", env=env)
    commit = git(git_dir, "commit-tree", tree, "-p", old, "-m", message)
    git(git_dir, "update-ref", f"refs/heads/{branch}", commit, old)
    return commit


def fsck(git_dir: Path) -> str:
    """``git fsck --strict`` output; empty when the repository is sound."""
    done = subprocess.run(["git", "--git-dir", str(git_dir), "fsck", "--strict",
                           "--no-dangling"], env=git_env(), capture_output=True, text=True,
                          check=False)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def no_traceback(done: subprocess.CompletedProcess[str]) -> bool:
    """Whether the command ended without a Python traceback."""
    return "Traceback" not in done.stderr and "Traceback" not in done.stdout


def tree_paths(git_dir: Path, rev: str = "main") -> set[str]:
    """Every path in ``rev``."""
    return set(git(git_dir, "ls-tree", "-r", "--name-only", rev).splitlines())


def env_without_home(home: Path) -> dict[str, str]:
    """A fresh HOME (and no inherited state dir)."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "")}


def seeded(tmp_path: Path) -> tuple[Path, Path]:
    """A bare config repo holding the examples, and the sources it came from."""
    sources = copy_examples(tmp_path / "src")
    repo = tmp_path / "config.git"
    first = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")
    assert first.returncode == 0, first.stderr
    return sources, repo
