"""A loopback ``git://`` proxy that lets a test act exactly between a client's reads and its
push (this module holds no tests).

Owns: forwarding every connection to the ``git daemon`` untouched, and — once armed — running
the test's callback (a person's push, done straight in the served repository) when the next
``git-receive-pack`` request arrives, before the daemon sees it. The client has read the
branch by then (its fetch and ``ls-remote`` went through earlier connections) and its push
then meets the moved branch: the window a compare-and-swap push must close.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self


class GitProxy:
    """``git://127.0.0.1:<port>/`` in front of a daemon; ``arm(callback)`` for one push."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._armed: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.fired = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url_for(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def arm(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the next push connects, once."""
        with self._lock:
            self._armed = callback

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client:
            request = _read_pkt_line(client)
            if b"git-receive-pack" in request:
                with self._lock:
                    callback, self._armed = self._armed, None
                if callback is not None:
                    callback()
                    self.fired += 1
            with socket.create_connection(self._upstream) as upstream:
                upstream.sendall(request)
                back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
                back.start()
                _pump(client, upstream)
                back.join(timeout=30)


def _read_pkt_line(sock: socket.socket) -> bytes:
    """The client's first pkt-line (``git-upload-pack /repo\\0host=...\\0``), whole."""
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            return data
        data += chunk
    size = int(data, 16)
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
