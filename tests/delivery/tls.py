"""TLS in front of a loopback HTTP Git server, so ``https://`` remotes can be tested.

Owns a throwaway self-signed certificate for 127.0.0.1 and a small TLS-terminating TCP
proxy (one thread per connection). It knows nothing about Git or the reconciler.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Self


class TlsProxy:
    """Accepts TLS on a loopback port and passes the plain bytes on to ``upstream_port``."""

    def __init__(self, *, workdir: Path, upstream_port: int) -> None:
        self.certificate = workdir / "tls-cert.pem"
        key = workdir / "tls-key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.certificate)],
            check=True, capture_output=True)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.certificate, key)
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def url_for(self, path: str) -> str:
        """The https:// URL of ``path`` on the upstream server."""
        return f"https://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> Self:
        thread = threading.Thread(target=self._accept, name="tls-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        try:
            with self._context.wrap_socket(client, server_side=True) as tls, \
                    socket.create_connection(("127.0.0.1", self._upstream)) as upstream:
                self._track(tls, upstream)
                self._pump(tls, upstream)
        except (OSError, ssl.SSLError):
            pass  # the client refused our certificate or hung up
        finally:
            client.close()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    @staticmethod
    def _pump(tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        while True:
            readable = [tls] if tls.pending() else select.select([tls, upstream], [], [], 10)[0]
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is tls else tls).sendall(data)
