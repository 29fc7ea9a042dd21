"""``python -m tests.kubeapi``: build (once) and run a real kube-apiserver on 127.0.0.1.

    python -m tests.kubeapi                 # start; prints the kubeconfig, Ctrl-C stops it
    python -m tests.kubeapi --build-only    # build into the cache and print the binary's path

Run the controller scenarios against it from another shell with
``RECONCILER_TEST_KUBECONFIG=<printed path> .venv/bin/pytest -m realcluster tests/kube``
(without the variable, the tests start one of their own).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests import kubeapi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-only", action="store_true",
                        help="build the binary into the cache and print its path")
    parser.add_argument("--dir", type=Path, default=None,
                        help="state directory (certificates, etcd data, kubeconfig); "
                             "default: a new temporary directory")
    args = parser.parse_args(argv)
    go = kubeapi.find_go()
    if go is None:
        print("kubeapi: no Go toolchain (go on PATH or /usr/local/go/bin/go); install Go "
              "to build the API server", file=sys.stderr)
        return 2
    try:
        started = time.monotonic()
        binary = kubeapi.build(go)
        if args.build_only:
            print(binary)
            return 0
        directory = args.dir or Path(tempfile.mkdtemp(prefix="kubeapi-"))
        api = kubeapi.start(binary, directory)
    except kubeapi.KubeApiError as exc:
        print(f"kubeapi: {exc}", file=sys.stderr)
        return 1
    print(f"kube-apiserver {api.server} ready in {time.monotonic() - started:.1f}s\n"
          f"admin kubeconfig: {api.kubeconfig}\n"
          f"export RECONCILER_TEST_KUBECONFIG={api.kubeconfig}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        api.process.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        api.stop()
        if args.dir is None:  # ours: certificates, tokens and etcd data go with the server
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
