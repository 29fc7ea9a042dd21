"""The git CLI as tests use it: no user or system config, a human's identity, and a way to
commit as another writer would (plumbing on a bare repository, no work tree)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

BRANCH = "main"
HUMAN = {
    "GIT_AUTHOR_NAME": "Human",
    "GIT_AUTHOR_EMAIL": "human@example.invalid",
    "GIT_COMMITTER_NAME": "Human",
    "GIT_COMMITTER_EMAIL": "human@example.invalid",
}


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git CLI call: no outer GIT_* variables, no user or system config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HUMAN, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    env.update(extra or {})
    return env


def git(where: Path, *args: str, stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None) -> str:
    """Run ``git -C where args`` and return its stripped stdout (fails the test on an error)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(["git", "-C", str(where), *args], input=data, capture_output=True,
                          env=git_env(env), check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr.decode()}"
    return proc.stdout.decode().strip()


def human_commit(bare: Path, files: Mapping[str, bytes | None], message: str = "human edit") -> str:
    """Commit ``files`` (None deletes) onto main with git plumbing, as another writer would."""
    with tempfile.TemporaryDirectory() as tmp:
        # a scratch index (and an empty work tree, which update-index insists on)
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": tmp}
        old = git(bare, "rev-parse", BRANCH)
        git(bare, "read-tree", BRANCH, env=env)
        for path, data in files.items():
            if data is None:
                git(bare, "update-index", "--force-remove", path, env=env)
            else:
                blob = git(bare, "hash-object", "-w", "--stdin", stdin=data)
                git(bare, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(bare, "write-tree", env=env)
    commit = git(bare, "commit-tree", tree, "-p", old, "-m", message)
    git(bare, "update-ref", f"refs/heads/{BRANCH}", commit, old)
    return commit
