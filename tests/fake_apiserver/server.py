"""``FakeApiServer``: the object tests start, point clients at, and steer.

Owns: the server's life cycle on 127.0.0.1 (start in a background thread, stop closing every
connection), the kubeconfig that kubectl and the official client accept, and the test controls
(compact the history, drop open watches, read the request log). It must not implement API
semantics; those live in the store and the handler.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from types import TracebackType

import yaml

from tests.fake_apiserver import handler, store, watches

HOST = "127.0.0.1"


class FakeApiServer:
    """An HTTP fake of kube-apiserver on 127.0.0.1, good enough for kubectl and the client."""

    def __init__(self, port: int = 0, *, bookmark_interval: float = 1.0,
                 history_limit: int = 1000, log_requests: bool = False) -> None:
        self._port = port
        self._bookmark_interval = bookmark_interval
        self._log_requests = log_requests
        self.store = store.ObjectStore(history_limit=history_limit)
        self._http: handler.ApiHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        if self._http is not None:
            return self
        self._http = handler.ApiHTTPServer(
            (HOST, self._port), object_store=self.store,
            bookmark_interval=self._bookmark_interval, log_requests=self._log_requests)
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"fake-apiserver:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: end every watch, close every connection, release the port."""
        if self._http is None:
            return
        self.store.watch_gate.set()  # no request stays held
        self._http.shutdown()
        self.store.end_watches(watches.StreamEnd.ABRUPT)
        self._http.cut_connections()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None
        self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the fake API server is not started")
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def write_kubeconfig(self, path: Path | str, *, namespace: str = "default") -> Path:
        """Write a kubeconfig (plain HTTP, no credentials) for this server; return its path."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {
                "cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
            "preferences": {},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- test controls -------------------------------------------------------------------------

    def compact(self) -> None:
        """Drop the watch history: a watch from any resourceVersion before now gets 410 Gone."""
        self.store.compact()

    def hold_watches(self) -> None:
        """Make new watch requests wait (as behind a network partition) until
        ``release_watches``; lists and writes are served as usual."""
        self.store.watch_gate.clear()

    def release_watches(self) -> None:
        """Serve the watch requests held by ``hold_watches``, and new ones again."""
        self.store.watch_gate.set()

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch stream now; return how many were open.

        By default the response ends cleanly, as when the real server's watch times out;
        ``abrupt=True`` cuts the TCP connection mid-stream instead.
        """
        how = watches.StreamEnd.ABRUPT if abrupt else watches.StreamEnd.GRACEFUL
        return self.store.end_watches(how)

    @property
    def open_watches(self) -> int:
        """How many watch streams are open right now."""
        return self.store.open_watches

    def wait_for_watches(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Block until at least ``count`` watches are open (a client is listening)."""
        deadline = time.monotonic() + timeout
        while self.open_watches < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.open_watches} watches open, expected {count}")
            time.sleep(0.01)

    @property
    def requests(self) -> list[handler.RequestRecord]:
        """Every request served so far, oldest first."""
        if self._http is None:
            return []
        with self._http.requests_lock:
            return list(self._http.requests)

    def request_counts(self) -> collections.Counter[tuple[str, str]]:
        """How many requests were served per (method, path)."""
        return collections.Counter((entry.method, entry.path) for entry in self.requests)

    @property
    def resource_version(self) -> int:
        """The current (latest committed) resourceVersion."""
        return self.store.resource_version
