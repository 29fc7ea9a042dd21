"""Benchmark: what one single-tenant commit costs in the flat and the sharded layout.

Builds a config repo of N tenant directories (one import commit through the Git adapter,
as the reconciler writes it), then commits ``--changes`` single-tenant changes through the
layout view and reports, per layout:
  customers               N
  commit_tree_bytes       median bytes of the tree objects one commit writes (root,
                          tenants/, the shard when sharded, the tenant's directory)
  tenants_tree_bytes      the size of the tenants/ tree object (flat: grows with the fleet)
  largest_shard_entries   entries of the largest directory under tenants/ (sharded)
  commit_ms_median        wall-clock median of one commit (LayoutView.commit)
  commit_cpu_ms_median    CPU (user+sys) median of one commit
  migrate_s               `migrate-layout` of the flat repo to sharded (one commit), seconds

Usage: python bench/layout_bench.py --customers 10000 --changes 50 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pygit2

from reconciler import app
from reconciler.adapters.gitrepo import GitConfigRepo, tune_libgit2
from reconciler.adapters.layoutview import LayoutView
from reconciler.core import layout
from reconciler.core.plan import ChangeSet
from reconciler.core.settings import Settings

FILES = ("kustomization.yaml", "namespace.yaml", "networkpolicy.yaml", "resourcequota.yaml",
         ".reconciler.json")


def tenant_files(name: str, generation: int = 1) -> dict[str, bytes]:
    """A tenant directory's files (small, distinct per tenant, like rendered ones)."""
    return {f"tenants/{name}/{f}": f"# {name} {f} generation {generation}\n".encode()
            for f in FILES}


def build(path: Path, customers: int, wanted: layout.Layout) -> LayoutView:
    """A repo of ``customers`` tenants written in one import commit, in ``wanted``."""
    repo = GitConfigRepo.open(path, branch="main", author_name="gitops-reconciler",
                              author_email="gitops-reconciler@localhost", create=True)
    view = LayoutView(repo, wanted)
    writes: dict[str, bytes] = {"tenants/.gitkeep": b""}
    for i in range(customers):
        writes.update(tenant_files(f"customer-{i:06d}"))
    view.commit(ChangeSet(writes), "import\n\nReconciler-Action: import\n")
    return view


def tree_bytes(git: pygit2.Repository, commit_id: str, name: str, wanted: layout.Layout) -> int:
    """Bytes of the tree objects on the path of one tenant's directory in a commit."""
    commit = git[commit_id]
    assert isinstance(commit, pygit2.Commit)
    physical = layout.physical_path(f"tenants/{name}", wanted).split("/")
    tree = commit.tree
    total = len(tree.read_raw())
    for part in physical:
        tree = git[tree[part].id]
        total += len(tree.read_raw())
    return total


def measure(workdir: Path, customers: int, changes: int, wanted: layout.Layout) -> dict[str, float]:
    """The figures of one layout."""
    view = build(workdir / f"{wanted}.git", customers, wanted)
    inner = view.inner
    assert isinstance(inner, GitConfigRepo)
    git = inner.repository
    wall, cpu, sizes = [], [], []
    for n in range(changes):
        name = f"customer-{(n * 7919) % customers:06d}"
        change = ChangeSet({f"tenants/{name}/namespace.yaml":
                            f"# {name} namespace.yaml generation {n + 2}\n".encode()})
        started, started_cpu = time.perf_counter(), time.process_time()
        commit = view.commit(change, f"customer/{name}: update\n\nReconciler-Action: update\n")
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        sizes.append(tree_bytes(git, commit, name, wanted))
    head = git[str(inner.head())]
    assert isinstance(head, pygit2.Commit)
    tenants = git[head.tree["tenants"].id]
    assert isinstance(tenants, pygit2.Tree)
    largest = max((len(git[e.id]) for e in tenants if e.type_str == "tree"), default=0) \
        if wanted == layout.SHARDED else len(tenants)
    return {"commit_tree_bytes": statistics.median(sizes),
            "tenants_tree_bytes": len(tenants.read_raw()),
            "largest_shard_entries": largest,
            "commit_ms_median": round(statistics.median(wall), 2),
            "commit_cpu_ms_median": round(statistics.median(cpu), 2)}


def main() -> None:
    """Run both layouts and the migration; print JSON or a summary."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tune_libgit2()
    workdir = Path(tempfile.mkdtemp(prefix="layout-bench-", dir=args.workdir))
    try:
        result: dict[str, object] = {"customers": args.customers, "changes": args.changes}
        for wanted in (layout.FLAT, layout.SHARDED):
            result[wanted] = measure(workdir, args.customers, args.changes, wanted)
        flat = workdir / "migrate.git"
        build(flat, args.customers, layout.FLAT)
        started = time.perf_counter()
        done = app.migrate_layout(flat, Settings(layout="sharded"), "sharded")
        result["migrate_s"] = round(time.perf_counter() - started, 2)
        result["migrate_moved"] = done.moved
        result["load_average"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
