"""Helpers of the delivery tests: the reconciler CLI as a subprocess, the served repository
read with the git CLI, a human's clone pushing beside the reconciler, Customer objects.

Knows nothing the user could not see: it runs the ``reconciler`` command, reads what the
server serves with git, and pushes as a human would.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.core import sources
from reconciler.core.models import API_VERSION, Resource
from tests import gitservers

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: every object in examples/ (3 Customers, 2 Previews)
EXAMPLE_OBJECTS = frozenset({
    "customer/acme", "customer/big-client-0815", "customer/small-shop",
    "preview/billing-fix-invoices", "preview/campaigns-feat-xyz",
})
HUMAN = {
    "GIT_AUTHOR_NAME": "Human", "GIT_AUTHOR_EMAIL": "human@example.invalid",
    "GIT_COMMITTER_NAME": "Human", "GIT_COMMITTER_EMAIL": "human@example.invalid",
}
# Delivery binds time.sleep as its default when imported: replacing it first skips the
# back-off waits of a run that must give up, while the attempts themselves stay real.
_WITHOUT_BACKOFF = (
    "import sys, time\n"
    "time.sleep = lambda _seconds: None\n"
    "from reconciler.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = gitservers.clean_git_env() | {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    return env | dict(extra or {})


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        check: bool = True) -> str:
    """Run the git CLI (no user or system config) and return its stripped stdout."""
    done = subprocess.run(["git", *args], cwd=cwd, env=_git_env(env), capture_output=True,
                          text=True, check=False)
    if check:
        assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout.strip()


def served(server: gitservers.GitServer, name: str, *args: str, check: bool = True) -> str:
    """Run the git CLI inside the bare repository ``name`` the server serves."""
    return git("--git-dir", str(server.repo_path(name)), *args, check=check)


def is_ancestor(server: gitservers.GitServer, name: str, commit: str, of: str = "main") -> bool:
    """Whether ``commit`` is in the history of ``of`` on the server."""
    done = subprocess.run(["git", "--git-dir", str(server.repo_path(name)), "merge-base",
                           "--is-ancestor", commit, of], env=_git_env(), capture_output=True,
                          check=False)
    return done.returncode == 0


def record_ref_updates(server: gitservers.GitServer, name: str) -> None:
    """Make the served repository keep a reflog: every push becomes one entry."""
    served(server, name, "config", "core.logAllRefUpdates", "always")


def ref_updates(server: gitservers.GitServer, name: str, branch: str = "main") -> list[str]:
    """Heads the branch pointed at on the server, oldest first (from its reflog)."""
    text = served(server, name, "reflog", "show", "--format=%H", f"refs/heads/{branch}")
    return list(reversed(text.split()))


def object_changes(log_text: str) -> Counter[tuple[str, str]]:
    """(Reconciler-Object, Reconciler-Generation) pairs in ``git log`` output of PAIRS_FORMAT."""
    pairs: Counter[tuple[str, str]] = Counter()
    for line in log_text.splitlines():
        obj, _, generation = line.partition("\t")
        if obj and generation:
            pairs[(obj, generation)] += 1
    return pairs


PAIRS_FORMAT = ("--format=%(trailers:key=Reconciler-Object,valueonly,separator=%x2C)%x09"
                "%(trailers:key=Reconciler-Generation,valueonly,separator=%x2C)")


def served_object_changes(server: gitservers.GitServer, name: str) -> Counter[tuple[str, str]]:
    """Object changes on the server's main branch, with how often each occurs."""
    return object_changes(served(server, name, "log", PAIRS_FORMAT, "main"))


def served_objects(server: gitservers.GitServer, name: str) -> Counter[str]:
    """Per object, how many of its changes (trailers with a generation) main holds on the server."""
    return Counter(obj for obj, _ in served_object_changes(server, name).elements())


def credential_args(server: gitservers.GitServer, secrets_dir: Path) -> list[str]:
    """The ``reconciler run`` flags that let it in to ``server``."""
    if isinstance(server, gitservers.SshGitServer):
        return ["--ssh-key", str(server.client_key)]
    if isinstance(server, gitservers.HttpGitServer) and server.basic_auth:
        secrets_dir.mkdir(parents=True, exist_ok=True)
        token = secrets_dir / "git-token"
        token.write_text(server.password + "\n")
        token.chmod(0o600)
        return ["--git-username", server.username, "--git-token-file", str(token)]
    return []


@dataclass(frozen=True)
class ReconcilerCli:
    """The ``reconciler`` command in a clean environment with its own HOME and state dir."""

    home: Path
    state_dir: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a run: no GIT_* or RECONCILER_* from outside, a fresh HOME."""
        self.home.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in gitservers.clean_git_env().items()
                if not k.startswith("RECONCILER_")}
        return base | {"HOME": str(self.home)} | dict(extra or {})

    def __call__(self, *args: str, env: Mapping[str, str] | None = None,
                 without_backoff: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``reconciler ARGS`` and return the finished process."""
        entry = ["-c", _WITHOUT_BACKOFF] if without_backoff else ["-m", "reconciler.cli"]
        return subprocess.run([sys.executable, *entry, *args], env=self.env(env),
                              capture_output=True, text=True, timeout=120, check=False)

    def run_once(self, server: gitservers.GitServer, name: str, *extra: str,
                 source: Path = EXAMPLES, env: Mapping[str, str] | None = None,
                 without_backoff: bool = False) -> subprocess.CompletedProcess[str]:
        """``reconciler run --once`` from ``source`` to repository ``name`` on ``server``."""
        return self("run", "--source", str(source), "--repo", server.url_for(name),
                    "--state-dir", str(self.state_dir), "--once",
                    *credential_args(server, self.home / "secrets"), *extra,
                    env=env, without_backoff=without_backoff)

    def mirrors(self) -> list[Path]:
        """The mirror directories in the state dir."""
        return sorted((self.state_dir / "mirrors").glob("*.git"))

    def mirror(self) -> Path:
        """The one mirror in the state dir."""
        found = self.mirrors()
        assert len(found) == 1, f"expected one mirror, found {found}"
        return found[0]

    def pending(self) -> list[str]:
        """Commits of the mirror's main not yet on the remote, as the git CLI sees them."""
        text = git("--git-dir", str(self.mirror()), "rev-list", "origin/main..main")
        return text.split()


class HumanClone:
    """A person's working clone of a served repository, pushing with the git CLI."""

    def __init__(self, server: gitservers.GitServer, name: str, path: Path) -> None:
        self._env = server.git_env() | HUMAN
        self.path = path
        git("clone", "--quiet", server.url_for(name), str(path), env=self._env)

    def commit(self, path: str, text: str, message: str) -> str:
        """Bring the clone up to date, change one file and commit it locally; the commit id."""
        git("pull", "--quiet", "--rebase", "origin", "main", cwd=self.path, env=self._env)
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git("add", path, cwd=self.path, env=self._env)
        git("commit", "--quiet", "-m", message, cwd=self.path, env=self._env)
        return git("rev-parse", "HEAD", cwd=self.path)

    def push(self, refspec: str = "HEAD:main") -> None:
        """Push with the git CLI (never forced)."""
        git("push", "--quiet", "origin", refspec, cwd=self.path, env=self._env)

    def commit_and_push(self, path: str, text: str, message: str) -> str:
        """Change one file on top of the remote's main and push it there; the commit id."""
        commit = self.commit(path, text, message)
        self.push()
        return commit


def customer(name: str, generation: int, display_name: str) -> Resource:
    """A Customer with only a namespace, as the API server would hand it over."""
    text = (f"apiVersion: {API_VERSION}\nkind: Customer\n"
            f"metadata: {{name: {name}, generation: {generation}}}\n"
            f"spec: {{displayName: '{display_name}'}}\n")
    parsed = sources.parse_text(f"{name}.yaml", text)
    assert not parsed.refusals, parsed.refusals
    return parsed.objects[0]


def explain(done: subprocess.CompletedProcess[str], server: gitservers.GitServer) -> str:
    """A failure message: what the run printed and what the server logged."""
    return (f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n"
            f"--- {server.kind} log\n{server.log_tail()}")


def one_line(text: str) -> bool:
    """Whether ``text`` is exactly one non-empty line (no traceback, no log noise)."""
    lines = text.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in text
