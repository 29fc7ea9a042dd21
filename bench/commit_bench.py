"""Benchmark: the reconciler at fleet size, as a user runs it, against the git CLI.

History is written under the reconciler's OWN identity (its default author), so a restart
pays for reading it exactly as in production. Prints one JSON object (with --json) or a
readable summary:
  customers                 N
  bootstrap_s               `reconciler run --once` into an empty repo (one import commit)
  bootstrap_rss_mb          peak resident memory of that process
  resync_s                  a full pass over N unchanged Customers in a running reconciler
  resync_cold_s             the same pass in a freshly built reconciler (this process)
  resync_objects_written    commits made by all passes over the unchanged fleet (should be 0)
  commit_ms_median          one Customer change -> one commit (engine.apply), at that repo size
  floor_ms_median           raw pygit2 for the same change: blobs, three trees, one commit
  git_cli_ms_median         the same change with the git CLI in a work tree (write, add -A, commit)
  speedup                   git_cli_ms_median / commit_ms_median
  history_commits           own single-object commits written after the import (--history)
  cold_start_s              `reconciler run --once` (new process) over the unchanged fleet
  peak_rss_mb               peak resident memory of that process
  watch_rss_mb              resident memory of `reconciler run --source` (watch mode, the
                            running controller of local mode) after its first full pass
  watch_peak_rss_mb         its peak resident memory up to then
  cold_start_objects_written  commits it made (should be 0)
  status_s                  `reconciler status` (new process)
  history_s                 `reconciler history customer/NAME` (new process)
  loose_objects             loose objects in the repository at the end
  git_version               the git CLI used for the comparison
  layout                    flat or sharded (--layout; the reconciler's `layout` setting)
  commit_tree_bytes         median bytes of the tree objects one single-tenant commit writes
                            (root, tenants/, the shard when sharded, the tenant's directory)

Usage: python bench/commit_bench.py --customers 10000 --json [--layout sharded]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pygit2

from reconciler.adapters import treecache
from reconciler.adapters.gitrepo import GitConfigRepo, tune_libgit2
from reconciler.adapters.layoutview import LayoutView
from reconciler.core import layout, yamlio
from reconciler.core.models import Customer
from reconciler.core.render.customers import render_customer
from reconciler.core.settings import Settings
from reconciler.core.sources import Parsed
from reconciler.reconcile.engine import Reconciler


def make_customer(i: int, workers: int = 1, label: str = "") -> Customer:
    """A Customer of a realistic mix: every third has a database, every second workers."""
    return Customer.model_validate(customer_doc(i, workers, label))


def customer_doc(i: int, workers: int = 1, label: str = "") -> dict[str, object]:
    """The manifest of customer ``i`` (``label`` changes its display name)."""
    return {
        "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": f"tenant-{i:05d}"},
        "spec": {"displayName": f"Tenant {i}{label}", "features": {
            "database": {"enabled": i % 3 == 0, "storage": f"{10 + i % 50}Gi"},
            "scheduler": {"enabled": i % 2 == 0 or workers > 1, "workers": workers},
            "webhooks": {"enabled": i % 5 == 0},
        }},
    }


def write_manifests(source: Path, n: int, workers: dict[int, int]) -> None:
    """One manifest file per 1,000 Customers (the CLI reads them as a user's would be)."""
    source.mkdir(parents=True, exist_ok=True)
    for old in source.glob("*.yaml"):
        old.unlink()
    for start in range(0, n, 1000):
        docs = [customer_doc(i, workers.get(i, 1)) for i in range(start, min(n, start + 1000))]
        (source / f"customers-{start // 1000:03d}.yaml").write_bytes(yamlio.dump_documents(docs))


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KB. Not ``ru_maxrss``: Linux carries that
    over ``fork``/``exec``, so a child would report this benchmark's own size."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    return out


def cli(*args: str) -> tuple[float, float, str]:
    """Run the reconciler CLI in a new process: (seconds, its peak RSS in MB, stdout)."""
    code = ("import sys\n"
            "from reconciler.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\n"
            "finally:\n"
            "    with open('/proc/self/status') as status:\n"
            "        rss = [l.split()[1] for l in status if l.startswith('VmHWM:')]\n"
            "    print(f'__rss_kb {rss[0]}', file=sys.stderr)\n"
            "sys.exit(rc)\n")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"reconciler {' '.join(args)} failed: {done.stderr[-2000:]}")
    rss = [line for line in done.stderr.splitlines() if line.startswith("__rss_kb ")]
    return seconds, int(rss[-1].split()[1]) / 1024 if rss else 0.0, done.stdout


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def commit_count(repo: Path) -> int:
    return int(git("rev-list", "--count", "HEAD", cwd=repo).strip())


def loose_objects(repo: Path) -> int:
    counts = git("count-objects", "-v", cwd=repo)
    return int(next(line.split()[1] for line in counts.splitlines()
                    if line.startswith("count:")))


def time_git_cli(root: Path, settings: Settings, n: int, changes: int) -> list[float]:
    """The same kind of change with the git CLI in a work tree of the same content."""
    work = root / "work"
    subprocess.run(["git", "clone", "-q", str(root / "config.git"), str(work)], check=True)
    git("config", "user.name", "bench", cwd=work)
    git("config", "user.email", "bench@localhost", cwd=work)
    theirs: list[float] = []
    for k in range(changes):
        changed = make_customer(k * 11 % n + 1, label=f" cli {k}")
        t0 = time.perf_counter()
        rendered = render_customer(changed, settings)
        for rel, data in rendered.files.items():
            target = work / layout.physical_path(rendered.directory, settings.layout) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"customer/{changed.metadata.name}: workers", cwd=work)
        theirs.append((time.perf_counter() - t0) * 1000)
    return theirs


def time_floor(path: Path, settings: Settings, n: int, changes: int) -> list[float]:
    """Raw pygit2 for the same change (on a scratch branch): the cost of Git itself."""
    repo = pygit2.Repository(str(path))
    sig = pygit2.Signature("floor", "floor@localhost")
    head = repo.references["refs/heads/main"].target
    floor: list[float] = []
    for k in range(changes):
        changed = make_customer(k * 13 % n + 2, label=f" floor {k}")
        t0 = time.perf_counter()
        rendered = render_customer(changed, settings)
        # the trees on the directory's path, root first (tenants/, its shard, the tenant)
        trees: list[Any] = [repo[head].peel(pygit2.Commit).tree]
        parts = layout.physical_path(rendered.directory, settings.layout).split("/")
        for part in parts:
            parent = trees[-1]
            trees.append(repo[parent[part].id] if parent is not None and part in parent
                         else None)
        inner = repo.TreeBuilder(trees[-1]) if trees[-1] is not None else repo.TreeBuilder()
        for rel, data in rendered.files.items():
            inner.insert(rel, repo.create_blob(data), pygit2.enums.FileMode.BLOB)
        written = inner.write()
        for depth in range(len(parts) - 1, -1, -1):
            base = trees[depth]
            builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
            builder.insert(parts[depth], written, pygit2.enums.FileMode.TREE)
            written = builder.write()
        head = repo.create_commit("refs/heads/floor", sig, sig, "floor", written, [head])
        floor.append((time.perf_counter() - t0) * 1000)
    return floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=25, help="timed single changes per side")
    parser.add_argument("--history", type=int, default=None,
                        help="own single-object commits before the cold start (default: "
                             "--changes)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", default=None, help="where to create the repos (default: TMPDIR)")
    parser.add_argument("--no-watch", action="store_true",
                        help="skip the watch-mode (running controller) memory figure")
    parser.add_argument("--layout", choices=["flat", "sharded"], default="flat",
                        help="tenant layout of the repository (the `layout` setting)")
    args = parser.parse_args()
    os.environ["RECONCILER_LAYOUT"] = args.layout  # the CLI runs below read it
    history = args.changes if args.history is None else max(args.history, args.changes)
    with tempfile.TemporaryDirectory(prefix="commit-bench-", dir=args.workdir) as tmp:
        out = measure(Path(tmp), args.customers, args.changes, history,
                      watch=not args.no_watch, tenant_layout=args.layout)
        # printed before the scratch directory goes: deleting a 100,000-tenant work tree
        # takes minutes
        print_result(out, as_json=args.json)
        sys.stdout.flush()
    return 0


def watch_memory(target: tuple[str, ...], timeout: float = 3600.0) -> dict[str, object]:
    """Start ``reconciler run`` in watch mode (the long-running local controller), wait
    for its first full pass to end, and read its memory; then stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom reconciler.cli import main\n"
         "sys.exit(main(sys.argv[1:]))", "--log-format", "json", "run", *target],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    t0 = time.perf_counter()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # a pass ends with its summary line
            if "objects unchanged" in line:
                break
            if time.perf_counter() - t0 > timeout:
                break
        seconds = time.perf_counter() - t0
        time.sleep(1.0)  # settled: what it holds while waiting for the next change
        mem = memory_kb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"watch_first_pass_s": round(seconds, 3),
            "watch_rss_mb": round(mem.get("VmRSS", 0) / 1024, 1),
            "watch_peak_rss_mb": round(mem.get("VmHWM", 0) / 1024, 1)}


def measure(root: Path, n: int, changes: int, history: int, *,
            watch: bool = True, tenant_layout: str = "flat") -> dict[str, object]:
    """Every figure, in a scratch directory ``root``."""
    settings = Settings(layout="sharded" if tenant_layout == "sharded" else "flat")
    out: dict[str, object] = {"customers": n, "layout": settings.layout}
    source, config = root / "source", root / "config.git"
    workers: dict[int, int] = {}
    write_manifests(source, n, workers)
    target = ("--source", str(source), "--repo", str(config))

    seconds, rss, _ = cli("run", "--once", *target)
    out["bootstrap_s"] = round(seconds, 3)
    out["bootstrap_rss_mb"] = round(rss, 1)
    ours = write_history(config, settings, n, changes=changes, history=history,
                         workers=workers, out=out)
    write_manifests(source, n, workers)

    before = commit_count(config)
    seconds, rss, _ = cli("run", "--once", *target)
    out["cold_start_s"] = round(seconds, 3)
    out["peak_rss_mb"] = round(rss, 1)
    out["cold_start_objects_written"] = commit_count(config) - before
    seconds, rss, _ = cli("status", "--source", str(source), "--repo", str(config))
    out["status_s"] = round(seconds, 3)
    out["status_rss_mb"] = round(rss, 1)
    seconds, _, printed = cli("history", "customer/tenant-00007", "--repo", str(config))
    out["history_s"] = round(seconds, 3)
    out["history_rows"] = max(0, len(printed.splitlines()) - 1)
    out["loose_objects"] = loose_objects(config)
    if watch:
        out.update(watch_memory(target))

    floor = time_floor(config, settings, n, changes)
    theirs = time_git_cli(root, settings, n, changes)
    out["commit_ms_median"] = round(statistics.median(ours), 3)
    out["floor_ms_median"] = round(statistics.median(floor), 3)
    out["git_cli_ms_median"] = round(statistics.median(theirs), 3)
    out["speedup"] = round(statistics.median(theirs) / statistics.median(ours), 1)
    out["bench_rss_mb"] = round(memory_kb().get("VmHWM", 0) / 1024, 1)
    out["git_version"] = subprocess.run(["git", "--version"], capture_output=True, text=True,
                                        check=False).stdout.strip()
    out["cpus"] = os.cpu_count()
    return out


def write_history(config: Path, settings: Settings, n: int, *, changes: int, history: int,
                  workers: dict[int, int], out: dict[str, object]) -> list[float]:
    """Resync passes in this process, then ``history`` single-object commits under the
    reconciler's identity (the first ``changes`` timed); returns those timings in ms."""
    tune_libgit2()  # as the composition root does
    repo = GitConfigRepo.open(config, branch=settings.branch, author_name=settings.author_name,
                              author_email=settings.author_email)
    customers = [make_customer(i) for i in range(n)]
    # built as the composition root builds it (app.wiring.wire), tree cache included: the
    # running reconciler whose restart cold_start_s times
    engine = Reconciler(repo=LayoutView(repo, settings.layout), settings=settings,
                        version="bench",
                        trees=treecache.TreeCacheFile(Path(repo.path) / treecache.FILE_NAME))
    t0 = time.perf_counter()
    written = len(engine.sync(Parsed(customers, ())).commits)
    out["resync_cold_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    written += len(engine.sync(Parsed(customers, ())).commits)
    out["resync_s"] = round(time.perf_counter() - t0, 3)
    out["resync_objects_written"] = written
    ours: list[float] = []
    tree_bytes: list[int] = []
    for k in range(history):  # the code path a watch event takes
        i = k * 7 % n
        # 2..21 (inside the default quota), never the value before
        workers[i] = workers.get(i, 1) % 20 + 2
        changed = make_customer(i, workers=workers[i])
        t0 = time.perf_counter()
        outcome = engine.apply(changed)
        assert outcome.commit, outcome
        if k < changes:
            ours.append((time.perf_counter() - t0) * 1000)
            tree_bytes.append(commit_tree_bytes(repo.repository, outcome.commit,
                              layout.physical_path(changed.key.directory, settings.layout)))
    out["history_commits"] = history
    out["commit_tree_bytes"] = statistics.median(tree_bytes) if tree_bytes else 0
    return ours


def commit_tree_bytes(repo: pygit2.Repository, commit_id: str, directory: str) -> int:
    """Bytes of the tree objects on ``directory``'s path in a commit (what it rewrote)."""
    commit = repo[commit_id].peel(pygit2.Commit)
    tree: Any = commit.tree
    total = len(tree.read_raw())
    for part in directory.split("/"):
        tree = repo[tree[part].id]
        total += len(tree.read_raw())
    return total


def print_result(out: dict[str, object], *, as_json: bool) -> None:
    """One JSON object, or one aligned ``name value`` line per figure."""
    if as_json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    sys.exit(main())
