"""The fleet benchmark runs end to end at a small size and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reconciler.adapters import gitrepo

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {"customers", "commit_ms_median", "git_cli_ms_median", "speedup", "floor_ms_median",
           "resync_s", "resync_objects_written", "cold_start_s", "bootstrap_s", "peak_rss_mb",
           "loose_objects", "status_s", "history_s", "watch_rss_mb", "watch_peak_rss_mb",
           "layout", "commit_tree_bytes"}


def test_commit_bench_reports_every_figure_and_a_restart_writes_nothing(tmp_path):
    """At 40 tenants with 30 own commits of history, the benchmark prints all its figures;
    neither a resync nor the cold restart (own history, new process) writes a commit."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "commit_bench.py"), "--customers", "40",
         "--changes", "3", "--history", "30", "--json", "--workdir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert set(out) >= FIGURES
    assert out["customers"] == 40
    assert out["history_commits"] == 30
    assert out["resync_objects_written"] == 0
    assert out["cold_start_objects_written"] == 0
    assert out["history_rows"] >= 2  # the import and at least one own change of tenant 7
    assert out["peak_rss_mb"] > 0
    for figure in ("commit_ms_median", "git_cli_ms_median", "floor_ms_median", "speedup",
                   "resync_s", "cold_start_s", "bootstrap_s", "status_s", "history_s"):
        assert out[figure] > 0, figure
    assert out["floor_ms_median"] <= out["commit_ms_median"] * 20  # raw pygit2 is no slower
    assert 0 <= out["loose_objects"] <= gitrepo.LOOSE_LIMIT  # packed past the limit
    assert 0 < out["watch_rss_mb"] <= out["watch_peak_rss_mb"]  # the watch-mode process
