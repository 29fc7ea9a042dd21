"""Operating the controller: Prometheus metrics, /healthz and /readyz (log formats: logformat).

The only module importing prometheus_client. The HTTP server runs on its own thread and
serves GET only; it never logs request details that could carry credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class PrometheusMetrics:
    """The Metrics port on a private Prometheus registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._reconciles = Counter("reconciler_reconciles_total", "Reconciles by kind and result",
                                   ["kind", "result"], registry=self.registry)
        self._duration = Histogram("reconciler_reconcile_duration_seconds",
                                   "Time to reconcile one object", ["kind"],
                                   registry=self.registry)
        self._depth = Gauge("reconciler_queue_depth", "Keys waiting in the work queue",
                            registry=self.registry)
        self._commits = Counter("reconciler_commits_total", "Commits made to the config repo",
                                registry=self.registry)
        self._git_errors = Counter("reconciler_git_errors_total",
                                   "Failed reads or writes of the config repo",
                                   registry=self.registry)
        self._orphans = Gauge("reconciler_orphan_directories",
                              "Directories in the config repo with no resource",
                              registry=self.registry)
        self._synced = Gauge("reconciler_last_successful_sync_timestamp_seconds",
                             "When the last full sync finished", registry=self.registry)
        self._pushes = Counter("reconciler_pushes_total",
                               "Pushes to the remote config repo by result (ok, failed)",
                               ["result"], registry=self.registry)
        self._held = Gauge("reconciler_held_changes",
                           "Objects whose change is held (a human's change stands, a removal "
                           "is held)", registry=self.registry)
        self._held_since = Gauge("reconciler_oldest_held_change_timestamp_seconds",
                                 "Since when the longest-held change is held (0: none)",
                                 registry=self.registry)
        for result in ("ok", "failed"):  # both series exist from the start, so rate() works
            self._pushes.labels(result=result)

    def reconciled(self, kind: str, result: str, seconds: float) -> None:
        """One reconcile finished."""
        self._reconciles.labels(kind=kind, result=result).inc()
        self._duration.labels(kind=kind).observe(seconds)

    def queue_depth(self, depth: int) -> None:
        """Keys waiting."""
        self._depth.set(depth)

    def committed(self) -> None:
        """A commit was made."""
        self._commits.inc()

    def git_error(self) -> None:
        """A Git failure."""
        self._git_errors.inc()

    def synced(self, now: float) -> None:
        """A full sync finished."""
        self._synced.set(now)

    def orphans(self, count: int) -> None:
        """Directories with no resource."""
        self._orphans.set(count)

    def pushed(self, *, ok: bool) -> None:
        """A push finished."""
        self._pushes.labels(result="ok" if ok else "failed").inc()

    def held(self, count: int, oldest_since: float | None) -> None:
        """Held changes and since when the oldest is held."""
        self._held.set(count)
        self._held_since.set(oldest_since or 0)


class HealthServer:
    """``/healthz`` (alive), ``/readyz`` (ready to work) and ``/metrics`` on one port."""

    def __init__(self, *, port: int, metrics: PrometheusMetrics, ready: Callable[[], bool],
                 host: str = "0.0.0.0") -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                elif self.path == "/readyz":
                    ok = ready()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n",
                               "text/plain")
                elif self.path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="health-server")

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
