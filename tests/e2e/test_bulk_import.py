"""The first import of a large fleet, as a user runs it: one commit, rendered while it is
written (nothing kept per file), with progress lines, and safe to kill half-way.

The git CLI is the judge: the tree it builds from ``reconciler render``'s files is the
tree the import commits, and ``git fsck --strict`` accepts the repository.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from reconciler.adapters import looseobjects
from reconciler.core import yamlio
from tests.e2e.test_cli import clean_env, git, reconciler, reconciler_command
from tests.gitrepo.test_writer import fsck


def write_fleet(source: Path, count: int, *, per_file: int = 500) -> None:
    """``count`` Customers of a realistic mix (every third with a database, every second
    with workers, every fifth with webhooks), ``per_file`` to a manifest file."""
    source.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, per_file):
        docs = [{
            "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
            "metadata": {"name": f"tenant-{i:05d}"},
            "spec": {"displayName": f"Tenant {i}", "features": {
                "database": {"enabled": i % 3 == 0, "storage": f"{10 + i % 50}Gi"},
                "scheduler": {"enabled": i % 2 == 0, "workers": 1 + i % 4},
                "webhooks": {"enabled": i % 5 == 0},
            }},
        } for i in range(start, min(count, start + per_file))]
        (source / f"customers-{start // per_file:03d}.yaml").write_bytes(
            yamlio.dump_documents(docs))


def tree_git_builds(files: Path) -> str:
    """The root tree id the git CLI writes for the files under ``files``."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**clean_env(), "GIT_DIR": scratch + "/.git", "GIT_WORK_TREE": str(files)}
        for args in (["init", "-q"], ["add", "-A"]):
            subprocess.run(["git", *args], cwd=files, env=env, check=True, capture_output=True)
        done = subprocess.run(["git", "write-tree"], cwd=files, env=env, check=True,
                              capture_output=True, text=True)
    return done.stdout.strip()


def imports(repo: Path) -> int:
    """Commits on main after the new repository's layout commit."""
    return int(git(repo, "rev-list", "--count", "main")) - 1


def test_an_import_is_one_commit_holding_exactly_the_rendered_tree(tmp_path):
    """150 new Customers (over the import batch) land as one commit on the new repo's
    layout commit, whose tree is the one git builds from that layout and
    `reconciler render`'s files, in a repository fsck accepts."""
    source, repo, rendered = tmp_path / "fleet", tmp_path / "config.git", tmp_path / "out"
    write_fleet(source, 150)
    render = reconciler("render", source, "--out", rendered)
    assert render.returncode == 0, render.stderr
    run = reconciler("run", "--once", "--source", source, "--repo", repo)
    assert run.returncode == 0, run.stderr
    assert imports(repo) == 1
    layout = subprocess.run(["git", "-C", str(repo), "archive", "main~1"], env=clean_env(),
                            check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(rendered)], input=layout, check=True)
    assert git(repo, "rev-parse", "main^{tree}") == tree_git_builds(rendered)
    assert git(repo, "log", "-1", "--format=%s", "main") == "import: add 150 customers"
    assert not list((repo / "objects" / "pack").glob("tmp_*"))
    fsck(repo)
    again = reconciler("run", "--once", "--source", source, "--repo", repo)
    assert again.returncode == 0, again.stderr
    assert imports(repo) == 1
    assert "150 objects unchanged" in again.stdout


def test_a_killed_import_is_finished_by_the_next_run_and_nothing_is_doubled(tmp_path):
    """Killing `run --once` (SIGKILL) in the middle of a 2,500-tenant import leaves the
    branch unborn; the next run imports everything in one commit, prints its progress as
    it goes, and removes the half-written pack."""
    source, repo = tmp_path / "fleet", tmp_path / "config.git"
    write_fleet(source, 2500)
    process = subprocess.Popen(
        [*reconciler_command(), "run", "--once", "--source", str(source), "--repo", str(repo)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env())
    seen: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if "written 1000/2500 directories" in line:
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert any("written 1000/2500 directories" in line for line in seen), "".join(seen)
    before = imports(repo)  # the layout commit at most: the import made none
    partial = list((repo / "objects" / "pack").glob(looseobjects.TMP_PACK_PREFIX + "*"))
    assert partial, "the killed import had started its pack"
    old = time.time() - looseobjects.STALE_PACK_SECONDS - 5  # restarted a while later
    for path in partial:
        os.utime(path, (old, old))

    run = reconciler("run", "--once", "--source", source, "--repo", repo)
    assert run.returncode == 0, run.stderr
    assert "written 2500/2500 directories" in run.stderr
    assert "imported 2500 objects" in run.stdout
    assert before <= 0
    assert imports(repo) == 1
    tenants = git(repo, "ls-tree", "-d", "--name-only", "main:tenants").splitlines()
    assert len(tenants) == 2500
    assert not list((repo / "objects" / "pack").glob("tmp_*"))
    assert len(list((repo / "objects" / "pack").glob("pack-*.idx"))) == 1
    fsck(repo)


def test_on_a_terminal_the_import_count_moves_in_the_status_line(tmp_path):
    """On a terminal, a 2,000-tenant import shows its count of directories written in the
    status line (drawn in place), not as scrolling log lines."""
    source, repo = tmp_path / "fleet", tmp_path / "config.git"
    write_fleet(source, 2000)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*reconciler_command(), "run", "--once", "--source", str(source), "--repo", str(repo)],
        stdout=subprocess.DEVNULL, stderr=follower, env=clean_env())
    os.close(follower)  # read while it draws: a full terminal buffer would stop it
    shown = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed when the process ended
                break
            if not chunk:
                break
            shown += chunk
        process.wait(timeout=300)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, shown.decode(errors="replace")
    screen = shown.decode(errors="replace")
    assert "written 1000/2000 directories" in screen
    assert "INFO reconciler.progress: written" not in screen  # drawn, not logged
    assert imports(repo) == 1
