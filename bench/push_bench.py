"""Benchmark: a burst of object changes delivered to a remote, against clone-commit-push.

Starts ``git daemon`` on 127.0.0.1 (stopped at the end), seeds a config repo with N
Customers, then changes --changes Customers one after another through the reconciler
(one commit each, pushes coalesced by --window) and measures:

  changes                     object changes in the burst
  burst_to_all_pushed_s       first change -> every commit on the remote
  pushes                      pushes the burst needed
  ours_ms_per_change          burst_to_all_pushed_s / changes
  git_cli_ms_per_change       median of a fresh `git clone` + write + `git add -A` +
                              `git commit` + `git push` per change (what tools that re-clone
                              per change do), over --cli-samples changes in the same run
  speedup                     git_cli_ms_per_change / ours_ms_per_change
  commits_on_remote           reconciler commits that reached the remote (must be changes)

Usage: python bench/push_bench.py --customers 1000 --changes 1000 --json
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from commit_bench import make_customer, print_result

from reconciler.app import Target, wire
from reconciler.core.render.customers import render_customer
from reconciler.core.settings import Settings
from reconciler.core.sources import Parsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
         f"--base-path={root}", f"--port={port}", "--listen=127.0.0.1", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # its own group: stop() ends the connections it forked too
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError("git daemon did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill the daemon and every connection it forked (a killed daemon leaves a forked
    child serving a slow client running on its own), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def clone_commit_push(url: str, work: Path, index: int, settings: Settings) -> float:
    """One change the way per-change tools do it: fresh clone, write, add, commit, push."""
    t0 = time.perf_counter()
    target = work / f"clone-{index}"
    git("clone", "-q", "--branch", "main", url, str(target))
    rendered = render_customer(make_customer(index, workers=50 + index % 40), settings)
    for rel, data in rendered.files.items():
        path = target / rendered.directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    git("-c", "user.name=cli", "-c", "user.email=cli@localhost", "add", "-A", cwd=target)
    git("-c", "user.name=cli", "-c", "user.email=cli@localhost", "commit", "-q", "-m",
        f"customer/{rendered.directory}: change", cwd=target)
    git("push", "-q", "origin", "main", cwd=target)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--window", type=float, default=2.0, help="push window, seconds")
    parser.add_argument("--cli-samples", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    settings = Settings(push_window_seconds=args.window)
    out: dict[str, object] = {"customers": args.customers, "changes": args.changes,
                              "window_s": args.window}
    with tempfile.TemporaryDirectory(prefix="push-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        git("init", "-q", "--bare", "-b", "main", str(root / "config.git"))
        daemon, port = start_daemon(root)
        try:
            url = f"git://127.0.0.1:{port}/config.git"
            wiring = wire(Target(url, state_dir=root / "state"), settings)
            assert wiring.delivery is not None
            customers = [make_customer(i) for i in range(args.customers)]
            wiring.engine.sync(Parsed(customers, ()))
            wiring.delivery.deliver()
            pushes_before = wiring.delivery.pushes

            t0 = time.perf_counter()
            for k in range(args.changes):
                # 2..21 workers, one more on each visit: inside the default quota (more is
                # refused, not committed), never the value before
                outcome = wiring.engine.apply(make_customer(
                    k % args.customers, workers=2 + k // args.customers % 20))
                assert outcome.commit, outcome
                wiring.delivery.committed()
                if wiring.delivery.due():
                    wiring.delivery.deliver()
            report = wiring.delivery.deliver()
            burst = time.perf_counter() - t0
            assert report.error is None, report.error
            out["burst_to_all_pushed_s"] = round(burst, 3)
            out["pushes"] = wiring.delivery.pushes - pushes_before
            out["ours_ms_per_change"] = round(burst * 1000 / args.changes, 3)
            log = git("--git-dir", str(root / "config.git"), "log",
                      "--format=%(trailers:key=Reconciler-Action,valueonly)")
            out["commits_on_remote"] = sum(1 for line in log.splitlines() if line.strip() == "update")

            samples = [clone_commit_push(url, root, i, settings) for i in range(args.cli_samples)]
            out["git_cli_ms_per_change"] = round(statistics.median(samples), 1)
            out["speedup"] = round(statistics.median(samples) / (burst * 1000 / args.changes), 1)
        finally:
            stop(daemon)
    print_result(out, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
