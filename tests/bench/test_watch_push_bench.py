"""The watch-mode and push benchmarks run end to end at a small size and report sane figures
(issue 12, item 9: CI smoke-tests every benchmark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``bench/SCRIPT --json ARGS`` and return its figures."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--json", *args],
                          capture_output=True, text=True, check=False, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_watch_bench_times_edits_to_commits_at_a_small_fleet(tmp_path: Path) -> None:
    """At 30 tenants, two edits each reach a commit of the running `run` (watch mode) well
    inside the benchmark's timeout, and every figure is there."""
    out = bench("watch_bench.py", "--customers", "30", "--edits", "2", "--idle", "1",
                "--timeout", "120", "--workdir", str(tmp_path))
    assert out["customers"] == 30
    assert set(out) >= {"first_commit_s", "first_pass_s", "idle_cpu_percent",
                        "edit_to_commit_s", "edit_to_commit_max_s", "peak_rss_mb"}
    assert 0 < out["edit_to_commit_s"] <= out["edit_to_commit_max_s"] < 60
    assert out["first_commit_s"] <= out["first_pass_s"]
    assert out["idle_cpu_percent"] >= 0 and out["peak_rss_mb"] > 0


def test_push_bench_coalesces_commits_into_few_pushes(tmp_path: Path) -> None:
    """At 20 tenants and 30 changes with a 0.5 s window, every change reaches the git daemon
    as its own commit, in fewer pushes than changes."""
    out = bench("push_bench.py", "--customers", "20", "--changes", "30", "--window", "0.5",
                "--cli-samples", "2", "--workdir", str(tmp_path))
    assert (out["customers"], out["changes"]) == (20, 30)
    assert out["commits_on_remote"] == 30
    assert 1 <= out["pushes"] < 30
    assert out["ours_ms_per_change"] > 0 and out["git_cli_ms_per_change"] > 0
    assert out["speedup"] > 0
