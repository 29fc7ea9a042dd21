"""Standalone entry point: ``python -m tests.fake_apiserver --port PORT``.

Owns: parsing the command line, serving on 127.0.0.1 until SIGINT or SIGTERM, and optionally
writing a kubeconfig for the server. Everything else is ``FakeApiServer``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from tests.fake_apiserver import server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_apiserver",
                                     description="Serve a fake Kubernetes API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 picks a free one)")
    parser.add_argument("--kubeconfig", help="also write a kubeconfig for the server here")
    parser.add_argument("--bookmark-interval", type=float, default=60.0,
                        help="seconds between BOOKMARK events on watches that allow them")
    parser.add_argument("--log-requests", action="store_true", help="log each request")
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with server.FakeApiServer(args.port, bookmark_interval=args.bookmark_interval,
                              log_requests=args.log_requests) as api:
        if args.kubeconfig:
            api.write_kubeconfig(args.kubeconfig)
        print(f"fake apiserver serving on {api.url}", flush=True)
        while not stopping.wait(0.2):
            pass
    print("fake apiserver stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
