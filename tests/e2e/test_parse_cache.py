"""End to end: the parse cache beside the config repo makes restarts cheaper and changes
nothing a user sees, whatever state the cache file is in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.test_cli import EXAMPLES, _more_workers, edit_yaml, reconciler

CACHE = "reconciler-parsed-v1"


def status_rows(source: Path, repo: Path) -> list[dict[str, object]]:
    """``status -o json`` as rows (fails on a traceback)."""
    proc = reconciler("status", "--source", source, "--repo", repo, "-o", "json")
    assert "Traceback" not in proc.stderr, proc.stderr
    rows: list[dict[str, object]] = json.loads(proc.stdout)
    return rows


def test_runs_and_status_see_edits_whatever_the_cache_holds(tmp_path):
    """After a run fills the cache, an edited manifest is seen as edited, and a garbled,
    torn or missing cache file gives the same status and the same next commit."""
    source, repo = tmp_path / "examples", tmp_path / "config.git"
    shutil.copytree(EXAMPLES, source)
    first = reconciler("run", "--once", "--source", source, "--repo", repo)
    assert first.returncode == 0, first.stderr
    cache = repo / CACHE
    assert cache.stat().st_size > 0

    edit_yaml(source / "customers" / "acme.yaml", _more_workers)
    (source / "customers" / "dup.yaml").write_text(
        "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\nkind: Customer\n"
        "metadata: {name: dup}\n")
    with_cache = status_rows(source, repo)
    states = {r["name"]: r["state"] for r in with_cache}
    assert states["acme"] == "OutOfSync"
    assert states["small-shop"] == "InSync"
    assert any("duplicate key 'kind'" in str(r["message"]) for r in with_cache)

    for damage in (b"\x00garbage\xff" * 50, cache.read_bytes()[:100], None):
        if damage is None:
            cache.unlink()
        else:
            cache.write_bytes(damage)
        assert status_rows(source, repo) == with_cache

    again = reconciler("run", "--once", "--source", source, "--repo", repo)
    committed = [line for line in again.stdout.splitlines() if line.startswith("committed")]
    assert len(committed) == 1 and "customer/acme" in committed[0], again.stdout
    assert "duplicate key 'kind'" in again.stderr + again.stdout
