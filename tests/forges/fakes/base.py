"""What the three forge fakes share: the loopback HTTP server, the request log, faults, the store.

Owns: serving HTTP/1.1 on 127.0.0.1 from a background thread (stopped by closing every
connection), recording each request, answering injected faults (a status with headers and body,
N times, or a dropped connection), and the pull-request store the tests steer (merge, close,
seed). Must not: know any host's URLs or JSON; ``github``, ``gitlab`` and ``gitea`` do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

HOST = "127.0.0.1"
GOOD_TOKEN = "tok-3f9c2a7e51d84b06"
NOW = 1_700_000_000.0  # the clock the tests inject into the drivers
Json = Any


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str  # raw, still percent-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: Json


@dataclass
class Fault:
    """Answer matching requests with this instead of the real thing, ``times`` times."""

    status: int = 500
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    drop_connection: bool = False
    after_handling: bool = False  # with drop_connection: do the work, then lose the answer

    def matches(self, method: str, path: str) -> bool:
        return (self.times > 0 and (self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path))


@dataclass(frozen=True)
class Reply:
    status: int
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Pull:
    """A pull (merge) request in the fake's store."""

    number: int
    title: str
    body: str
    head: str
    base: str
    state: str = "open"  # open | closed; merged ones are closed with merged=True
    merged: bool = False
    merge_commit: str | None = None
    head_sha: str = ""
    labels: list[str] = field(default_factory=list)
    created: int = 0


def fake_sha(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()


class Store:
    """Pull requests and labels of the one repository a fake serves."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pulls: dict[int, Pull] = {}
        self.labels: dict[str, int] = {}  # name -> id
        self._next_number = 1
        self._next_label = 101

    def add_pull(self, *, head: str, base: str, title: str = "t", body: str = "",
                 labels: list[str] | None = None, state: str = "open") -> Pull:
        with self.lock:
            number = self._next_number
            self._next_number += 1
            pull = Pull(number=number, title=title, body=body, head=head, base=base, state=state,
                        head_sha=fake_sha(head, number), created=number)
            for label in labels or []:
                self.ensure_label(label)
                pull.labels.append(label)
            self.pulls[number] = pull
            return pull

    def ensure_label(self, name: str) -> int:
        with self.lock:
            if name not in self.labels:
                self.labels[name] = self._next_label
                self._next_label += 1
            return self.labels[name]

    def label_name(self, label_id: int) -> str | None:
        with self.lock:
            return next((name for name, lid in self.labels.items() if lid == label_id), None)

    def open_pull(self, head: str, base: str) -> Pull | None:
        with self.lock:
            return next((p for p in self.pulls.values()
                         if p.state == "open" and p.head == head and p.base == base), None)

    def snapshot(self) -> list[Pull]:
        with self.lock:
            return [dataclasses.replace(p, labels=list(p.labels)) for p in self.pulls.values()]


class FakeForge:
    """Base of the GitHub, GitLab and Gitea fakes: life cycle, log, faults, test controls."""

    api_prefix = ""
    owner, name = "acme", "config"

    def __init__(self) -> None:
        self.store = Store()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.valid_tokens = {GOOD_TOKEN}
        self.page_size_cap = 100
        self.honour_filters = True
        self._lock = threading.Lock()
        self._http: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        self._http = _Server((HOST, 0), _Handler, self)
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self._http.shutdown()
        self._http.cut_connections()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def root(self) -> str:
        """Scheme, host and port: the web root, and where ``api_prefix`` starts."""
        if self._http is None:
            raise RuntimeError("the fake is not started")
        return f"http://{HOST}:{self._http.server_address[1]}"

    @property
    def url(self) -> str:
        """The API URL a driver is configured with."""
        return self.root + self.api_prefix

    # -- test controls ---------------------------------------------------------------------------

    def fail(self, status: int, *, times: int = 1, body: Json = None,
             headers: dict[str, str] | None = None, method: str | None = None,
             path_contains: str | None = None, drop_connection: bool = False,
             after_handling: bool = False) -> Fault:
        fault = Fault(status=status, body=body, headers=dict(headers or {}), times=times,
                      method=method, path_contains=path_contains, drop_connection=drop_connection,
                      after_handling=after_handling)
        with self._lock:
            self.faults.append(fault)
        return fault

    def rate_limited(self, seconds: float, *, times: int = 1) -> Fault:
        """Install this host's documented rate-limit answer, asking to wait ``seconds``."""
        raise NotImplementedError

    def seed_pull(self, head: str, base: str = "main", **kwargs: Any) -> Pull:
        return self.store.add_pull(head=head, base=base, **kwargs)

    def merge(self, number: int, sha: str | None = None) -> str:
        with self.store.lock:
            pull = self.store.pulls[number]
            pull.state, pull.merged = "closed", True
            pull.merge_commit = sha or fake_sha("merge", number)
            return pull.merge_commit

    def close(self, number: int) -> None:
        with self.store.lock:
            self.store.pulls[number].state = "closed"

    def pulls(self) -> list[Pull]:
        return self.store.snapshot()

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and contains in r.path]

    # -- serving (subclasses implement ``route`` and ``authorized``) ----------------------------------

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        raise NotImplementedError

    def route(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def common_headers(self) -> dict[str, str]:
        return {}

    def dispatch(self, request: Recorded) -> Reply | None:
        """The reply to send, or None to drop the connection."""
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.matches(request.method, request.path)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.after_handling:
            self.route(request)
            return None
        if fault is not None:
            return None if fault.drop_connection else Reply(fault.status, fault.body, fault.headers)
        if not self.authorized(request.headers):
            return self.unauthorized()
        if not request.path.startswith(self.api_prefix + "/"):
            return Reply(404, {"message": "Not Found"})
        return self.route(request)

    # -- helpers for subclasses ------------------------------------------------------------------

    def page_of(self, items: list[Any], request: Recorded, *, default_size: int,
                size_param: str) -> tuple[list[Any], int, int, int]:
        """(items on the page, page, page size, last page) for 1-based ``page`` pagination."""
        page = max(1, int(first(request.query, "page") or 1))
        size = min(max(1, int(first(request.query, size_param) or default_size)), self.page_size_cap)
        last = max(1, -(-len(items) // size))
        return items[(page - 1) * size: page * size], page, size, last

    def link_header(self, request: Recorded, page: int, last: int, *, separator: str = ", ",
                    rels: tuple[str, ...] = ("next", "last", "first", "prev")) -> str:
        """RFC 8288 links to other pages of the same query, absolute URLs on this server."""
        targets = {"next": page + 1 if page < last else None, "last": last if page < last else None,
                   "first": 1 if page > 1 else None, "prev": page - 1 if page > 1 else None}
        links = []
        for rel in rels:
            target = targets[rel]
            if target is None:
                continue
            query = {k: v[0] for k, v in request.query.items()}
            query["page"] = str(target)
            links.append(f'<{self.root}{request.path}?{urllib.parse.urlencode(query)}>; rel="{rel}"')
        return separator.join(links)


def first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Callable[..., BaseHTTPRequestHandler],
                 fake: FakeForge) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed ACK
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the fake's ``requests``."""

    def _serve(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request = Recorded(method=self.command, path=split.path,
                           query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
                           headers={k.lower(): v for k, v in self.headers.items()},
                           body=_decode_body(raw, self.headers.get("Content-Type", "")))
        reply = self.server.fake.dispatch(request)
        if reply is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(reply.body, str):
            data, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        elif reply.body is None and reply.status == 204:
            data, content_type = b"", ""
        else:
            data, content_type = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
        self.send_response(reply.status)
        headers = {**self.server.fake.common_headers(), **reply.headers}
        if content_type:
            headers.setdefault("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _decode_body(raw: bytes, content_type: str) -> Json:
    if not raw:
        return None
    if "application/x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
