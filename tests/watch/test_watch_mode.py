"""Watch mode: the source cache re-reads only changed files, and the running reconciler
turns one edited, added or deleted manifest into its commit (the real process, real files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler.adapters.filesource import SourceCache
from reconciler.core.models import ObjectKey
from tests import gitcli

ROOT = Path(__file__).resolve().parents[2]


def manifest(name: str, workers: int = 1) -> str:
    """A Customer manifest."""
    return (f"apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\nmetadata:\n"
            f"  name: {name}\nspec:\n  features:\n"
            f"    scheduler: {{enabled: true, workers: {workers}}}\n")


def test_the_cache_rereads_only_files_whose_identity_changed(tmp_path: Path) -> None:
    """After a first scan, a rescan reports only the edited, added and deleted files."""
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(manifest(name))
    cache = SourceCache([tmp_path])
    assert len(cache.rescan()) == 3
    assert cache.rescan() == set()
    (tmp_path / "a.yaml").write_text(manifest("a", workers=3))
    (tmp_path / "d.yaml").write_text(manifest("d"))
    (tmp_path / "c.yaml").unlink()
    changed = cache.rescan()
    assert changed == {str(tmp_path / n) for n in ("a.yaml", "d.yaml", "c.yaml")}
    assert cache.affected(changed) == {ObjectKey("Customer", n) for n in ("a", "c", "d")}
    assert sorted(o.metadata.name for o in cache.parsed().objects) == ["a", "b", "d"]


def test_notified_paths_outside_the_manifests_are_ignored(tmp_path: Path) -> None:
    """A notification for a hidden file or a non-manifest is not read as a source."""
    (tmp_path / "a.yaml").write_text(manifest("a"))
    cache = SourceCache([tmp_path])
    cache.rescan()
    (tmp_path / ".a.yaml.swp").write_text("junk")
    (tmp_path / "notes.txt").write_text("junk")
    assert cache.update({str(tmp_path / ".a.yaml.swp"), str(tmp_path / "notes.txt")}) == set()


def head(repo: Path) -> str:
    """The branch head ('' before the first commit)."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "-q", "--verify", "main"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def wait_for_commit(repo: Path, since: str, timeout: float = 30) -> str:
    """The new head once it moved past ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = head(repo)
        if now and now != since:
            time.sleep(0.3)  # a pass may make more than one commit
            return head(repo)
        time.sleep(0.05)
    raise AssertionError("no commit within the timeout")


def test_a_running_reconciler_commits_each_edit_and_removal(tmp_path: Path) -> None:
    """In watch mode an edited manifest becomes its update commit, a new one its create
    commit, a deleted one its removal, a file being written is read only once closed (never
    taken for empty), and an editor's write-then-rename save becomes its update."""
    source, repo = tmp_path / "src", tmp_path / "config"
    source.mkdir()
    for i in range(30):
        (source / f"t{i}.yaml").write_text(manifest(f"t{i}"))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from reconciler.cli import main; "
                             "sys.exit(main())", "run", "--source", str(source), "--repo", str(repo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "RECONCILER_IMPORT_BATCH": "5"})
    try:
        tip = wait_for_commit(repo, "")
        while not gitcli.git(repo, "log", "-1", "--format=%s", tip).startswith("import:"):
            tip = wait_for_commit(repo, tip)
        (source / "t7.yaml").write_text(manifest("t7", workers=4))
        tip = wait_for_commit(repo, tip)
        assert gitcli.git(repo, "log", "-1", "--format=%s", tip).strip() == \
            "customer/t7: scheduler 1 -> 4 workers"
        (source / "new.yaml").write_text(manifest("new"))
        tip = wait_for_commit(repo, tip)
        assert "customer/new: created" in gitcli.git(repo, "log", "-1", "--format=%s", tip)
        (source / "t3.yaml").unlink()
        tip = wait_for_commit(repo, tip)
        assert gitcli.git(repo, "log", "-1", "--format=%s", tip).strip() == "customer/t3: removed"
        with (source / "t5.yaml").open("w") as slow:  # a slow writer: truncated, then
            slow.flush()                                # written a second later
            time.sleep(1.5)
            slow.write(manifest("t5", workers=6))
        tip = wait_for_commit(repo, tip)
        assert gitcli.git(repo, "log", "-1", "--format=%s", tip).strip() == \
            "customer/t5: scheduler 1 -> 6 workers"
        assert "customer/t5: removed" not in gitcli.git(repo, "log", "--format=%s")
        (source / ".t9.yaml.swp").write_text(manifest("t9", workers=5))  # an editor's save:
        os.replace(source / ".t9.yaml.swp", source / "t9.yaml")           # write, then rename
        tip = wait_for_commit(repo, tip)
        assert gitcli.git(repo, "log", "-1", "--format=%s", tip).strip() == \
            "customer/t9: scheduler 1 -> 5 workers"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()


def test_the_watch_benchmark_reports_edit_to_commit_and_idle_cpu() -> None:
    """bench/watch_bench.py at a small fleet prints its figures as JSON (CI smoke test)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "watch_bench.py"),
                           "--customers", "40", "--edits", "2", "--idle", "1", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert figures["customers"] == 40
    assert 0 < figures["edit_to_commit_s"] < 5
    assert figures["idle_cpu_percent"] < 20
