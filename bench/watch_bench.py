"""Benchmark: watch mode at fleet size — one edited manifest to its commit, and idle CPU.

Runs the real `reconciler run` (watch mode, no --once) over N Customer manifests (one
file each) into a local repository, waits for the first pass, then measures:
  customers            N
  first_commit_s       start of the process to the first pass's last commit (the import)
  first_pass_s         start of the process to the end of its first pass (CPU at rest)
  idle_cpu_percent     CPU of the reconciler process while nothing changes (over --idle s)
  edit_to_commit_s     median over --edits single-file edits: file written -> commit at head
  edit_to_commit_max_s the slowest of those edits
  peak_rss_mb          peak resident memory of the reconciler process

Usage: python bench/watch_bench.py --customers 10000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pygit2

TICKS = os.sysconf("SC_CLK_TCK")


def manifest(i: int, workers: int = 1) -> str:
    """One Customer manifest (every third with a database, like commit_bench)."""
    return (f"apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"
            f"metadata:\n  name: tenant-{i:05d}\n"
            f"spec:\n  displayName: Tenant {i}\n  features:\n"
            f"    database: {{enabled: {str(i % 3 == 0).lower()}, storage: 10Gi}}\n"
            f"    scheduler: {{enabled: true, workers: {workers}}}\n")


def head(repo: Path) -> str | None:
    """The branch head, None before the first commit (read fresh every time; the loose ref
    file when there is one, which is cheap enough to poll every few milliseconds)."""
    try:
        return (repo / "refs" / "heads" / "main").read_text().strip()
    except OSError:
        pass
    try:
        return str(pygit2.Repository(str(repo)).revparse_single("refs/heads/main").id)
    except (KeyError, pygit2.GitError):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    """VmHWM of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def wait_for(condition: object, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            raise SystemExit(f"watch_bench: the reconciler exited ({proc.returncode}) "
                             f"while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"watch_bench: timed out waiting for {what}")
        time.sleep(0.002)


def quiet(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the process used under 10 ms of CPU in half a second."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(proc.pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(proc.pid)
        if now - last < 0.01:
            return
        last = now


def time_edits(proc: subprocess.Popen[bytes], source: Path, repo: Path, n: int,
               args: argparse.Namespace) -> list[float]:
    """Seconds from each single-file edit to a new commit at the head."""
    timings: list[float] = []
    for k in range(args.edits):
        tip = head(repo)
        index = (k * 7919) % n
        (source / f"tenant-{index:05d}.yaml").write_text(manifest(index, workers=2 + k))
        t0 = time.monotonic()
        wait_for(lambda tip=tip: head(repo) != tip, args.timeout, "the edit's commit", proc)
        timings.append(time.monotonic() - t0)
        time.sleep(0.2)
    return timings


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--edits", type=int, default=5, help="timed single-file edits")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle measured")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", default=None, help="where to create files (default: TMPDIR)")
    args = parser.parse_args()
    n = args.customers
    out: dict[str, object] = {"customers": n}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        source, repo = root / "customers", root / "config"
        source.mkdir()
        for i in range(n):
            (source / f"tenant-{i:05d}.yaml").write_text(manifest(i))
        env = {**os.environ, "RECONCILER_RESYNC_SECONDS": "3600"}
        started = time.monotonic()
        log = (root / "reconciler.log").open("wb")  # a pipe would fill and block the process
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from reconciler.cli import main; sys.exit(main())",
             "run", "--source", str(source), "--repo", str(repo)],
            env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            last = [head(repo), time.monotonic()]

            def settled() -> bool:  # the first pass is done once head rests for a second
                now = head(repo)
                if now != last[0]:
                    last[:] = [now, time.monotonic()]
                return now is not None and time.monotonic() - float(last[1]) > 1.0  # type: ignore[arg-type]
            wait_for(settled, args.timeout, "the first pass", proc)
            out["first_commit_s"] = round(float(last[1]) - started, 3)  # type: ignore[arg-type]
            quiet(proc, args.timeout)  # the first pass's tail (flush, report) is done
            out["first_pass_s"] = round(time.monotonic() - started, 3)
            before = cpu_seconds(proc.pid)
            time.sleep(args.idle)
            out["idle_cpu_percent"] = round((cpu_seconds(proc.pid) - before) / args.idle * 100, 2)
            timings = time_edits(proc, source, repo, n, args)
            out["edit_to_commit_s"] = round(statistics.median(timings), 3)
            out["edit_to_commit_max_s"] = round(max(timings), 3)
            out["peak_rss_mb"] = peak_rss_mb(proc.pid)
        finally:
            stop(proc)
            log.close()
            err = (root / "reconciler.log").read_text(errors="replace")
            if "Traceback" in err:
                print(err[-5000:], file=sys.stderr)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
