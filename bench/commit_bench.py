"""Benchmark: commit cost at fleet size, against the git CLI in the same run.

Prints one JSON object (with --json) or a readable summary:
  customers                 N
  bootstrap_s               first render and commit of all N (import commit) into an empty repo
  resync_s                  a full pass over N unchanged Customers in the running reconciler
  resync_cold_s             the same pass in a freshly started reconciler (caches empty)
  resync_objects_written    commits made by the resync passes (should be 0)
  commit_ms_median          one Customer change -> one commit, at that repo size
  git_cli_ms_median         the same change with the git CLI in a work tree (write, add -A, commit)
  speedup                   git_cli_ms_median / commit_ms_median
  peak_rss_mb               peak resident memory of this process (the git CLI runs are children)

Usage: python bench/commit_bench.py --customers 10000 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.adapters.gitrepo import GitConfigRepo, tune_libgit2
from reconciler.core.models import Customer
from reconciler.core.render.customers import render_customer
from reconciler.core.settings import Settings
from reconciler.core.sources import Parsed
from reconciler.reconcile.engine import Reconciler


def make_customer(i: int, workers: int = 1) -> Customer:
    """A Customer of a realistic mix: every third has a database, every second workers."""
    return Customer.model_validate({
        "metadata": {"name": f"tenant-{i:05d}"},
        "spec": {"displayName": f"Tenant {i}", "features": {
            "database": {"enabled": i % 3 == 0, "storage": f"{10 + i % 50}Gi"},
            "scheduler": {"enabled": i % 2 == 0 or workers > 1, "workers": workers},
            "webhooks": {"enabled": i % 5 == 0},
        }},
    })


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def time_git_cli(root: Path, settings: Settings, n: int, changes: int) -> list[float]:
    """The same kind of change with the git CLI in a work tree of the same content."""
    work = root / "work"
    subprocess.run(["git", "clone", "-q", str(root / "config.git"), str(work)], check=True)
    git("config", "user.name", "bench", cwd=work)
    git("config", "user.email", "bench@localhost", cwd=work)
    theirs: list[float] = []
    for k in range(changes):
        changed = make_customer(k * 11 % n + 1, workers=30 + k)
        t0 = time.perf_counter()
        rendered = render_customer(changed, settings)
        for rel, data in rendered.files.items():
            target = work / rendered.directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"customer/{changed.metadata.name}: workers", cwd=work)
        theirs.append((time.perf_counter() - t0) * 1000)
    return theirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=25, help="timed single changes per side")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", default=None, help="where to create the repos (default: TMPDIR)")
    args = parser.parse_args()
    n = args.customers
    settings = Settings()
    customers = [make_customer(i) for i in range(n)]
    out: dict[str, object] = {"customers": n}

    with tempfile.TemporaryDirectory(prefix="commit-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        tune_libgit2()
        repo = GitConfigRepo.open(root / "config.git", branch="main", author_name="bench",
                                  author_email="bench@localhost", create=True)
        engine = Reconciler(repo=repo, settings=settings, version="bench")

        t0 = time.perf_counter()
        report = engine.sync(Parsed(customers, ()))
        out["bootstrap_s"] = round(time.perf_counter() - t0, 3)
        out["bootstrap_commits"] = len(set(report.commits))

        t0 = time.perf_counter()
        report = engine.sync(Parsed(customers, ()))
        out["resync_s"] = round(time.perf_counter() - t0, 3)
        written = len(report.commits)

        cold = Reconciler(repo=repo, settings=settings, version="bench")
        t0 = time.perf_counter()
        report = cold.sync(Parsed(customers, ()))
        out["resync_cold_s"] = round(time.perf_counter() - t0, 3)
        out["resync_objects_written"] = written + len(report.commits)

        # One Customer change -> one commit, through the same code path a watch event takes.
        ours: list[float] = []
        for k in range(args.changes):
            changed = make_customer(k * 7 % n, workers=2 + k)
            t0 = time.perf_counter()
            outcome = engine.apply(changed)
            ours.append((time.perf_counter() - t0) * 1000)
            assert outcome.commit, outcome

        theirs = time_git_cli(root, settings, n, args.changes)
    out["commit_ms_median"] = round(statistics.median(ours), 3)
    out["git_cli_ms_median"] = round(statistics.median(theirs), 3)
    out["speedup"] = round(statistics.median(theirs) / statistics.median(ours), 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print_result(out, as_json=args.json)
    return 0


def print_result(out: dict[str, object], *, as_json: bool) -> None:
    """One JSON object, or one aligned ``name value`` line per figure."""
    if as_json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    sys.exit(main())
