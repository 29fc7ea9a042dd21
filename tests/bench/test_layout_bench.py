"""The layout benchmark runs at small N and shows the sharded layout's smaller commits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layout_bench_smoke_reports_smaller_commit_trees_when_sharded(tmp_path):
    """At 400 tenants the sharded single-tenant commit writes fewer tree bytes than the flat
    one, its largest shard is small, and the migration moved every tenant."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "layout_bench.py"),
                           "--customers", "400", "--changes", "5", "--workdir", str(tmp_path),
                           "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["sharded"]["commit_tree_bytes"] < result["flat"]["commit_tree_bytes"]
    assert result["flat"]["tenants_tree_bytes"] > 400 * 30
    assert result["sharded"]["largest_shard_entries"] < 20
    assert result["migrate_moved"] == 400
