"""The kill -9 harness: a real ``reconciler run`` killed at random moments while Customers
change and humans commit beside it, in local, remote (git daemon) and pull-request mode.

After every kill: ``git fsck --strict`` on every repository involved. At the end, once the
reconciler has converged: every spec change landed exactly once (no change lost, none
duplicated), no human commit lost, and the target branch only ever moved forward (an update
hook on the served repository, or the local repository's reflog, records every update).
Spec changes and human commits use only the ``reconciler`` command and the git CLI, as
users would.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from reconciler.core import layout as layouts
from tests import gitservers
from tests.chaos.support import fsck
from tests.forges.fakes.base import GOOD_TOKEN
from tests.forges.fakes.github import FakeGitHub
from tests.gitcli import HUMAN, git_env

MODES = ("local", "remote", "pr")
CUSTOMERS = 6
MAX_WORKERS = 100  # the schema's limit on spec.features.scheduler.workers
BRANCH = "main"
UPDATE_HOOK = """#!/bin/sh
# records every ref update; a non-fast-forward of a branch is marked, never prevented
ref=$1 old=$2 new=$3
kind=ff
case $old in 0000000000000000000000000000000000000000) kind=create ;; esac
case $new in 0000000000000000000000000000000000000000) kind=delete ;; esac
if [ $kind = ff ] && ! git merge-base --is-ancestor "$old" "$new"; then kind=nonff; fi
echo "$ref $old $new $kind" >> "{log}"
exit 0
"""


@dataclasses.dataclass
class Summary:
    """What a campaign did and found; all problem counts are 0 when the reconciler is sound."""

    mode: str
    kills: int = 0
    changes: int = 0
    human_commits: int = 0
    lost: int = 0
    duplicates: int = 0
    lost_human_commits: int = 0
    force_pushes: int = 0
    fsck_failures: int = 0
    tracebacks: int = 0
    seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def sound(self) -> bool:
        """No change lost or duplicated, no human commit lost, no rewind, no corruption."""
        return not (self.lost or self.duplicates or self.lost_human_commits
                    or self.force_pushes or self.fsck_failures or self.tracebacks)


def _git(*args: str, cwd: Path | None = None, check: bool = True,
         stdin: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=git_env(), capture_output=True,
                          text=True, input=stdin, timeout=60, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Campaign:
    """One mode's campaign in ``workdir``."""

    def __init__(self, workdir: Path, mode: str, *, seed: int = 0, layout: str = "flat",
                 log: Callable[[str], None] = lambda _line: None) -> None:
        assert mode in MODES and layout in (layouts.FLAT, layouts.SHARDED)
        self.workdir, self.mode = workdir, mode
        self.layout: layouts.Layout = layouts.SHARDED if layout == "sharded" else layouts.FLAT
        self.rng = random.Random(seed)
        self.log = log
        self.summary = Summary(mode)
        self.sources = workdir / "sources"
        self.state = workdir / "state"
        self.values: dict[str, list[int]] = {}
        self.human_commits: list[str] = []
        #: pr mode: (commit, branch) a person pushed onto a pull request's branch
        self.branch_commits: list[tuple[str, str]] = []
        self.updates_log = workdir / "updates.log"
        self.server: gitservers.DaemonGitServer | None = None
        self.forge: FakeGitHub | None = None
        self.local_repo = workdir / "config.git"
        self.stderr_dir = workdir / "stderr"
        self.stderr_dir.mkdir(parents=True, exist_ok=True)

    # -- set-up and tear-down ---------------------------------------------------------------

    def __enter__(self) -> Campaign:
        for index in range(CUSTOMERS):
            self._set(f"c{index}", 1)
        if self.mode == "local":
            _git("init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(self.local_repo))
            _git("--git-dir", str(self.local_repo), "config", "core.logAllRefUpdates", "always")
            blob = _git("--git-dir", str(self.local_repo), "hash-object", "-w", "--stdin",
                        stdin="seed\n")
            tree = _git("--git-dir", str(self.local_repo), "mktree",
                        stdin=f"100644 blob {blob}\tREADME\n")
            commit = _git("--git-dir", str(self.local_repo), "commit-tree", "-m", "seed", tree)
            _git("--git-dir", str(self.local_repo), "update-ref", f"refs/heads/{BRANCH}", commit)
        else:
            self.server = gitservers.DaemonGitServer(workdir=self.workdir / "server")
            self.server.start()
            served = self.server.create_bare_repo("config")
            hook = served / "hooks" / "update"
            hook.write_text(UPDATE_HOOK.format(log=self.updates_log))
            hook.chmod(0o755)
            _git("clone", "--quiet", self.server.url_for("config"), str(self.workdir / "human"))
        if self.mode == "pr":
            self.forge = FakeGitHub().start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        if self.forge is not None:
            self.forge.stop()

    # -- what users do ----------------------------------------------------------------------

    def _set(self, name: str, workers: int) -> None:
        """Write Customer ``name`` with ``workers`` (each value once: changes stay unique)."""
        self.values.setdefault(name, []).append(workers)
        _write_atomically(self.sources / f"{name}.yaml", (
            "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"
            f"metadata: {{name: {name}}}\n"
            # a quota that fits the most workers the schema allows: the guards refuse a
            # change that does not fit, which would read as lost here
            f"spec: {{quota: {{cpu: '32', memory: 64Gi, pods: 200}}, "
            f"features: {{scheduler: {{enabled: true, workers: {workers}}}}}}}\n"))

    def change_spec(self) -> None:
        """Change one Customer whose previous change already landed."""
        landed = self._landed()
        ready = [n for n, vs in self.values.items() if landed.get(n) == vs[-1]
                 and vs[-1] < MAX_WORKERS]
        if not ready:
            return
        name = self.rng.choice(ready)
        self._set(name, self.values[name][-1] + 1)
        self.summary.changes += 1

    def human_commit(self) -> None:
        """A human commits a file the reconciler does not own (and pushes it); in pr mode
        every other one goes onto a pull request's branch (a reviewer's commit)."""
        number = len(self.human_commits) + len(self.branch_commits)
        if self.mode == "pr" and number % 2 and self._push_onto_pull_request(number):
            self.summary.human_commits += 1
            return
        commit = self._human_commit_local(number) if self.mode == "local" else self._human_push(number)
        if commit is not None:
            self.human_commits.append(commit)
            self.summary.human_commits += 1

    def _human_commit_local(self, number: int) -> str | None:
        repo = str(self.local_repo)
        with tempfile.TemporaryDirectory() as tmp:
            env = git_env({"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": tmp})
            old = _git("--git-dir", repo, "rev-parse", BRANCH)
            blob = _git("--git-dir", repo, "hash-object", "-w", "--stdin",
                        stdin=f"human {number}\n")
            steps = [["read-tree", old],
                     ["update-index", "--add", "--cacheinfo", f"100644,{blob},humans/{number}"]]
            for step in steps:
                subprocess.run(["git", "--git-dir", repo, *step], env=env, check=True,
                               capture_output=True)
            tree = subprocess.run(["git", "--git-dir", repo, "write-tree"], env=env, check=True,
                                  capture_output=True, text=True).stdout.strip()
        commit = _git("--git-dir", repo, "commit-tree", tree, "-p", old, "-m", f"human {number}")
        moved = subprocess.run(["git", "--git-dir", repo, "update-ref", f"refs/heads/{BRANCH}",
                                commit, old], env=git_env(HUMAN), capture_output=True,
                               check=False)
        return commit if moved.returncode == 0 else None  # the reconciler won the race

    def _human_push(self, number: int) -> str | None:
        clone = self.workdir / "human"
        env = git_env(HUMAN)
        (clone / "humans").mkdir(exist_ok=True)
        (clone / "humans" / str(number)).write_text(f"human {number}\n")
        subprocess.run(["git", "add", "-A"], cwd=clone, env=env, check=True)
        subprocess.run(["git", "commit", "--quiet", "-m", f"human {number}"], cwd=clone,
                       env=env, check=True)
        for _attempt in range(5):
            pulled = subprocess.run(["git", "pull", "--quiet", "--rebase", "origin", BRANCH],
                                    cwd=clone, env=env, capture_output=True, check=False)
            pushed = subprocess.run(["git", "push", "--quiet", "origin", f"HEAD:{BRANCH}"],
                                    cwd=clone, env=env, capture_output=True, check=False)
            if pulled.returncode == 0 and pushed.returncode == 0:
                return _git("rev-parse", "HEAD", cwd=clone)
        _git("reset", "--quiet", "--hard", f"origin/{BRANCH}", cwd=clone)
        return None

    def _push_onto_pull_request(self, number: int) -> bool:
        """A person's commit pushed (never forced) onto a random open PR's branch."""
        branches = sorted(b for b in _git("--git-dir", self._target(), "for-each-ref",
                                          "--format=%(refname:short)",
                                          "refs/heads/reconciler/customer/").split())
        if not branches:
            return False
        branch = self.rng.choice(branches)
        clone, env = self.workdir / "reviewer", git_env(HUMAN)
        if not clone.exists():
            _git("clone", "--quiet", self.server_url(), str(clone))
        for _attempt in range(5):
            fetched = subprocess.run(["git", "fetch", "--quiet", "origin", branch], cwd=clone,
                                     env=env, capture_output=True, check=False)
            if fetched.returncode != 0:
                return False
            subprocess.run(["git", "checkout", "--quiet", "-B", "review", "FETCH_HEAD"],
                           cwd=clone, env=env, check=True, capture_output=True)
            (clone / "humans").mkdir(exist_ok=True)
            (clone / "humans" / f"review-{number}").write_text(f"review {number}\n")
            subprocess.run(["git", "add", "-A"], cwd=clone, env=env, check=True)
            subprocess.run(["git", "commit", "--quiet", "-m", f"review {number}"], cwd=clone,
                           env=env, check=True)
            pushed = subprocess.run(["git", "push", "--quiet", "origin", f"HEAD:{branch}"],
                                    cwd=clone, env=env, capture_output=True, check=False)
            if pushed.returncode == 0:
                self.branch_commits.append((_git("rev-parse", "HEAD", cwd=clone), branch))
                return True
        return False

    def server_url(self) -> str:
        assert self.server is not None
        return self.server.url_for("config")

    # -- the reconciler -----------------------------------------------------------------------

    def _command(self, *extra: str) -> list[str]:
        args = [sys.executable, "-m", "reconciler.cli", "run", "--source", str(self.sources)]
        if self.mode == "local":
            args += ["--repo", str(self.local_repo)]
        else:
            assert self.server is not None
            args += ["--repo", self.server.url_for("config"), "--state-dir", str(self.state),
                     # commits wait for their push long enough that kills catch them
                     "--push-window", "2"]
        if self.mode == "pr":
            assert self.forge is not None
            token = self.workdir / "forge-token"
            token.write_text(GOOD_TOKEN + "\n")
            args += ["--mode", "pr", "--forge", "github", "--forge-url", self.forge.url,
                     "--forge-repo", "acme/config", "--forge-token-file", str(token)]
        return args + list(extra)

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in git_env().items() if not k.startswith("RECONCILER_")}
        return base | {"HOME": str(self.workdir / "home"), "RECONCILER_LAYOUT": self.layout}

    def _scheduler(self, name: str) -> str:
        """Where Customer ``name``'s scheduler.yaml lives in the campaign's layout."""
        return layouts.physical_path(f"tenants/{name}/scheduler.yaml", self.layout)

    def kill_once(self, index: int) -> None:
        """Start the reconciler, change things for a random while, then ``kill -9`` it."""
        stderr = self.stderr_dir / f"run-{index}.txt"
        # while the reconciler is down: a spec change, a human push (the remote moves under
        # commits the killed run left pending)
        if self.rng.random() < 0.3:
            self.change_spec()
        if self.rng.random() < 0.3:
            self.human_commit()
        with stderr.open("w") as err:
            process = subprocess.Popen(self._command(), env=self._env(),
                                       stdout=subprocess.DEVNULL, stderr=err)
            roll = self.rng.random()
            if roll < 0.2:  # a kill while it starts (imports, fetch, locks)
                time.sleep(self.rng.uniform(0.0, 2.0))
            elif roll < 0.45 and self.mode == "remote":
                # a kill while commits wait for their push, then a human pushes: the next
                # run must notice the moved remote (it used to be stuck for good)
                self._wait_until_locked(process.pid)
                self.change_spec()
                self._wait_until_pending()
                process.send_signal(signal.SIGKILL)
                self.human_commit()
            else:  # a kill while it works: the clock starts once it holds its lock
                self._wait_until_locked(process.pid)
                deadline = time.monotonic() + self.rng.uniform(0.1, 6.0)
                while time.monotonic() < deadline:
                    roll = self.rng.random()
                    if roll < 0.5:
                        self.change_spec()
                    elif roll < 0.58:  # humans push too, but not every second
                        self.human_commit()
                    time.sleep(self.rng.uniform(0.05, 0.5))
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.summary.kills += 1
        text = stderr.read_text(errors="replace")
        if "Traceback" in text:
            self.summary.tracebacks += 1
            self.summary.problems.append(f"traceback in run {index}: {text[-1500:]}")
        self._check_fsck(f"after kill {index}")

    def _wait_until_locked(self, pid: int, seconds: float = 20.0) -> None:
        """Until the reconciler ``pid`` holds its repository's lock (it is up and working)."""
        pattern = "reconciler.lock" if self.mode == "local" else "mirrors/*.lock"
        root = self.local_repo if self.mode == "local" else self.state
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for lock in root.glob(pattern):
                try:
                    if lock.read_text().strip() == str(pid):
                        return
                except OSError:
                    pass
            time.sleep(0.05)

    def _wait_until_pending(self, seconds: float = 15.0) -> None:
        """Until the mirror holds commits not yet pushed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for mirror in (self.state / "mirrors").glob("*.git"):
                count = _git("--git-dir", str(mirror), "rev-list", "--count",
                             f"refs/remotes/origin/{BRANCH}..refs/heads/{BRANCH}", check=False)
                if count.isdigit() and int(count) > 0:
                    return
            time.sleep(0.05)

    def converge(self, rounds: int = 6) -> None:
        """A last human push while the reconciler is down, then ``--once`` until every last
        change has landed."""
        self.human_commit()
        for number in range(rounds):
            done = subprocess.run(self._command("--once"), env=self._env(),
                                  capture_output=True, text=True, timeout=300, check=False)
            if "Traceback" in done.stderr:
                self.summary.tracebacks += 1
                self.summary.problems.append(f"traceback converging: {done.stderr[-2000:]}")
            landed = self._landed()
            if all(landed.get(n) == vs[-1] for n, vs in self.values.items()):
                return
            self.log(f"converge round {number}: {done.returncode} {done.stderr.strip()[-300:]}")
            time.sleep(0.5)

    # -- reading the outcome ----------------------------------------------------------------

    def _target(self) -> str:
        if self.mode == "local":
            return str(self.local_repo)
        assert self.server is not None
        return str(self.server.repo_path("config"))

    def _contains(self, commit: str, branch: str = BRANCH) -> bool:
        done = subprocess.run(["git", "--git-dir", self._target(), "merge-base",
                               "--is-ancestor", commit, f"refs/heads/{branch}"], env=git_env(),
                              capture_output=True, check=False)
        return done.returncode == 0

    def _landed(self) -> dict[str, int]:
        """Per Customer, the workers its latest landed change set (main, or its PR branch)."""
        out: dict[str, int] = {}
        for name in self.values:
            ref = f"reconciler/customer/{name}" if self.mode == "pr" else BRANCH
            text = _git("--git-dir", self._target(), "show",
                        f"{ref}:{self._scheduler(name)}", check=False)
            match = re.search(r"replicas: (\d+)", text)
            if match:
                out[name] = int(match.group(1))
            elif self.mode == "pr":  # no branch (yet, or the change is a no-op on main)
                main = _git("--git-dir", self._target(), "show",
                            f"{BRANCH}:{self._scheduler(name)}", check=False)
                found = re.search(r"replicas: (\d+)", main)
                if found:
                    out[name] = int(found.group(1))
        return out

    def _history(self, ref: str) -> Counter[tuple[str, int]]:
        """(Customer, workers) of every reconciler commit on ``ref`` that changed it."""
        repo = self._target()
        log = _git("--git-dir", repo, "log", "--format=%H %(trailers:key=Reconciler-Object,"
                   "valueonly,separator=%x2C)", ref)
        queries = []
        for line in log.splitlines():
            commit, _, objects = line.partition(" ")
            for obj in objects.split(","):
                if obj.startswith("customer/"):
                    queries.append(f"{commit}:{self._scheduler(obj.removeprefix('customer/'))}")
        if not queries:
            return Counter()
        out = subprocess.run(["git", "--git-dir", repo, "cat-file", "--batch"], env=git_env(),
                             input="\n".join(queries) + "\n", capture_output=True, text=True,
                             check=True).stdout
        found: Counter[tuple[str, int]] = Counter()
        for query, replicas in zip(queries, re.findall(
                r"(?:missing|replicas: (\d+))", out), strict=False):
            if replicas:
                found[(query.split("/")[-2], int(replicas))] += 1
        return found

    def _check_fsck(self, when: str) -> None:
        repos = [Path(self._target())]
        repos += sorted((self.state / "mirrors").glob("*.git")) if self.state.exists() else []
        for repo in repos:
            problem = fsck(repo)
            for _retry in range(5):
                # the served repository may still be taking in the push of the process just
                # killed: receive-pack moves quarantined objects in one at a time, and fsck
                # meanwhile sees a commit before its tree. Corruption stays; that passes.
                if not problem:
                    break
                time.sleep(1.0)
                problem = fsck(repo)
            if problem:
                self.summary.fsck_failures += 1
                self.summary.problems.append(f"fsck {repo} {when}: {problem[:500]}")

    def verify(self) -> Summary:
        """Count what was lost, duplicated, rewound or corrupted."""
        summary = self.summary
        self._check_fsck("at the end")
        if self.mode == "pr":
            self._verify_pull_requests()
        else:
            seen = self._history(BRANCH)
            for name, values in self.values.items():
                for value in values:
                    count = seen.get((name, value), 0)
                    if count == 0:
                        summary.lost += 1
                        summary.problems.append(f"{name} workers={value} never landed")
                    elif count > 1:
                        summary.duplicates += count - 1
                        summary.problems.append(f"{name} workers={value} landed {count} times")
        for commit in self.human_commits:
            if not self._contains(commit):
                summary.lost_human_commits += 1
                summary.problems.append(f"human commit {commit[:12]} lost")
        for commit, branch in self.branch_commits:
            if not self._contains(commit, branch):
                summary.lost_human_commits += 1
                summary.problems.append(f"human commit {commit[:12]} on {branch} lost")
        summary.force_pushes = self._rewinds()
        return summary

    def _verify_pull_requests(self) -> None:
        assert self.forge is not None
        opened: Counter[str] = Counter(p.head for p in self.forge.pulls() if p.state == "open")
        landed = self._landed()
        for name, values in self.values.items():
            head = f"reconciler/customer/{name}"
            if opened[head] > 1:
                self.summary.duplicates += opened[head] - 1
                self.summary.problems.append(f"{opened[head]} open pull requests from {head}")
            if landed.get(name) != values[-1]:
                self.summary.lost += 1
                self.summary.problems.append(f"{name}: workers={values[-1]} not proposed "
                                             f"(found {landed.get(name)})")
            elif len(values) > 1 and opened[head] == 0:
                self.summary.lost += 1
                self.summary.problems.append(f"{name}: no open pull request for its change")

    def _rewinds(self) -> int:
        """Updates of the target branch that were not fast-forwards."""
        branch = f"refs/heads/{BRANCH}"
        if self.mode == "local":
            heads = _git("--git-dir", str(self.local_repo), "reflog", "show", "--format=%H",
                         branch).split()[::-1]
            pairs = list(itertools.pairwise(heads))
        else:
            lines = self.updates_log.read_text().splitlines() if self.updates_log.exists() else []
            rewinds = [line for line in lines if line.startswith(branch + " ")
                       and line.endswith(" nonff")]
            self.summary.problems += [f"non-fast-forward: {line}" for line in rewinds]
            return len(rewinds)
        count = 0
        for old, new in pairs:
            done = subprocess.run(["git", "--git-dir", str(self.local_repo), "merge-base",
                                   "--is-ancestor", old, new], env=git_env(),
                                  capture_output=True, check=False)
            if done.returncode != 0:
                count += 1
                self.summary.problems.append(f"{branch} moved from {old[:12]} to {new[:12]}")
        return count


def run_campaign(workdir: Path, mode: str, kills: int, *, seed: int = 0, layout: str = "flat",
                 log: Callable[[str], None] = lambda _line: None) -> Summary:
    """Run ``kills`` kill -9 rounds in ``mode`` (tenants in ``layout``), converge, verify;
    the summary."""
    started = time.monotonic()
    with Campaign(workdir, mode, seed=seed, layout=layout, log=log) as campaign:
        for index in range(kills):
            campaign.kill_once(index)
            if index % 10 == 9:
                log(f"{mode}: {index + 1}/{kills} kills, {campaign.summary.changes} changes")
        campaign.converge()
        summary = campaign.verify()
    summary.seconds = round(time.monotonic() - started, 1)
    return summary


def as_json(summaries: list[Summary]) -> str:
    """The JSON summary: totals first, then one entry per mode."""
    totals = {key: sum(getattr(s, key) for s in summaries) for key in (
        "kills", "changes", "human_commits", "lost", "duplicates", "lost_human_commits",
        "force_pushes", "fsck_failures", "tracebacks")}
    return json.dumps({**totals, "sound": all(s.sound for s in summaries),
                       "modes": [dataclasses.asdict(s) for s in summaries]}, indent=2)
