"""The HTTP side of the fake API server: one handler per request, on a threading HTTP/1.1 server.

Owns: reading bodies (JSON or YAML), dispatching a routed request to the store, writing JSON
responses and ``Status`` errors, streaming watches as chunked JSON lines (with bookmarks,
``timeoutSeconds`` and 410 as an ERROR event), and the request log. It must not hold state of
its own beyond the connection; objects live in the store.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.fake_apiserver import (
    discovery,
    errors,
    protobuf,
    routing,
    selectors,
    store,
    tables,
    watches,
)

RawObject = errors.RawObject
_IDLE_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class RequestRecord:
    """One served request, for tests that assert on what a client did."""

    method: str
    path: str
    query: str
    status: int


class ApiHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its store and its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, object_store: store.ObjectStore,
                 bookmark_interval: float, log_requests: bool) -> None:
        super().__init__(address, ApiRequestHandler)
        self.object_store = object_store
        self.bookmark_interval = bookmark_interval
        self.log_requests = log_requests
        self.requests: list[RequestRecord] = []
        self.requests_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def record(self, entry: RequestRecord) -> None:
        with self.requests_lock:
            self.requests.append(entry)

    def cut_connections(self) -> None:
        """Shut down every client connection (idle keep-alives included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Serves one connection; each request is routed to discovery or to the object store."""

    protocol_version = "HTTP/1.1"
    server: ApiHTTPServer
    _status = 0

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        self._record()  # before the client can read the answer: a test may count at once
        super().send_response(code, message)

    def _record(self) -> None:
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None:
            method, url = pending
            self.server.record(RequestRecord(method, url.path, url.query, self._status))

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            sys.stderr.write(f"fake-apiserver: {format % args}\n")

    # -- plumbing ------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        self._pending: tuple[str, Any] | None = (method, url)
        try:
            raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._dispatch(method, raw_body)
        except errors.ApiError as exc:
            self._send_json(exc.code, exc.to_status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: answer like the real server, then log
            traceback.print_exc()
            self._send_json(500, errors.ApiError(code=500, reason="InternalError",
                                                 message=f"fake apiserver: {exc!r}").to_status())
        finally:
            self._record()  # no answer was sent (the client went away)

    def _send_json(self, code: int, raw: RawObject) -> None:
        if code < 300 and tables.wants_table(self.headers.get("Accept", "")):
            raw = tables.to_table(raw, now=datetime.now(UTC))
        body = json.dumps(raw).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _decode_body(self, raw_body: bytes) -> Any:
        if not raw_body:
            return {}
        content_type = self.headers.get("Content-Type", "")
        if "protobuf" in content_type:
            return protobuf.decode_object(raw_body)
        try:
            if "yaml" in content_type:
                return yaml.safe_load(raw_body)
            return json.loads(raw_body)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"the body of the request could not be decoded: {exc}") \
                from exc

    def _decode_object(self, raw_body: bytes) -> RawObject:
        decoded = self._decode_body(raw_body)
        if not isinstance(decoded, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        return decoded

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, method: str, raw_body: bytes) -> None:
        object_store = self.server.object_store
        target = routing.route(self.path, object_store.find_type)
        if isinstance(target, routing.Discovery):
            if method != "GET":
                raise errors.method_not_allowed()
            self._serve_discovery(target)
            return
        query = routing.parse_query(urlsplit(self.path).query)
        if target.name is None:
            self._serve_collection(method, target, query, raw_body)
        else:
            self._serve_object(method, target, query, raw_body)

    def _serve_discovery(self, target: routing.Discovery) -> None:
        registry = self.server.object_store.registry
        with self.server.object_store.lock:
            if target.document == "version":
                document: RawObject | None = discovery.SERVER_VERSION
            elif target.document == "core":
                document = discovery.core_versions(f"127.0.0.1:{self.server.server_port}")
            elif target.document == "groups":
                document = discovery.group_list(registry)
            elif target.document == "group":
                document = discovery.group(registry, target.group)
            elif target.document == "resources":
                document = discovery.resource_list(registry, target.group, target.version)
            elif target.document == "health":
                self._send_text(200, "ok")
                return
            else:
                document = None
        if document is None:
            raise errors.path_not_found()
        self._send_json(200, document)

    def _send_text(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _predicate(self, target: routing.ResourceRoute,
                   query: routing.Query) -> store.Predicate:
        requirements = selectors.parse_label_selector(query.label_selector)
        fields = selectors.parse_field_selector(
            query.field_selector, extra_fields=target.rt.extra_field_labels)
        return lambda raw: selectors.matches_labels(requirements, raw) and fields(raw)

    def _serve_collection(self, method: str, target: routing.ResourceRoute,
                          query: routing.Query, raw_body: bytes) -> None:
        object_store, rt = self.server.object_store, target.rt
        if method == "GET" and query.watch:
            self._serve_watch(target, query)
        elif method == "GET":
            predicate = self._predicate(target, query)
            self._send_json(200, object_store.list_objects(
                rt, target.version, target.namespace, predicate))
        elif method == "POST" and (target.namespace is not None or not rt.namespaced):
            created = object_store.create(rt, target.version, target.namespace,
                                          self._decode_object(raw_body), dry_run=query.dry_run)
            self._send_json(201, created)
        elif method == "DELETE":
            predicate = self._predicate(target, query)
            self._send_json(200, object_store.delete_collection(
                rt, target.version, target.namespace, predicate, dry_run=query.dry_run))
        else:
            raise errors.method_not_allowed()

    def _serve_object(self, method: str, target: routing.ResourceRoute,
                      query: routing.Query, raw_body: bytes) -> None:
        object_store, rt, name = self.server.object_store, target.rt, target.name
        assert name is not None
        where = (rt, target.version, target.namespace, name)
        if method == "GET":
            self._send_json(200, object_store.get(*where))
        elif method == "PUT":
            self._send_json(200, object_store.replace(
                *where, self._decode_object(raw_body), subresource=target.subresource,
                dry_run=query.dry_run))
        elif method == "PATCH":
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
            self._send_json(200, object_store.patch(
                *where, content_type=content_type, raw_patch=self._decode_body(raw_body),
                subresource=target.subresource, dry_run=query.dry_run))
        elif method == "DELETE" and target.subresource is None:
            self._send_json(200, object_store.delete(
                *where, self._decode_object(raw_body), dry_run=query.dry_run))
        else:
            raise errors.method_not_allowed()

    # -- watches -------------------------------------------------------------------------------

    def _serve_watch(self, target: routing.ResourceRoute, query: routing.Query) -> None:
        object_store = self.server.object_store
        object_store.watch_gate.wait(timeout=60)  # a test holding watches (see hold_watches)
        try:
            watcher = object_store.watch(
                target.rt, target.version, target.namespace, self._predicate(target, query),
                resource_version=query.resource_version,
                send_initial_events=query.send_initial_events,
                allow_bookmarks=query.allow_bookmarks)
        except errors.ApiError as exc:
            if exc.code != 410:
                raise
            self._start_stream()
            self._write_chunk(json.dumps({"type": "ERROR", "object": exc.to_status()}) + "\n")
            self._write_chunk("")
            return
        try:
            self._start_stream()
            self._pump(watcher, query)
        except OSError:
            self.close_connection = True
        finally:
            object_store.unwatch(watcher)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _pump(self, watcher: watches.Watcher, query: routing.Query) -> None:
        """Copy events to the socket until timeout, client hang-up or an end marker."""
        now = time.monotonic()
        deadline = now + query.timeout_seconds if query.timeout_seconds else None
        interval = self.server.bookmark_interval
        next_bookmark = now + interval if query.allow_bookmarks else None
        while True:
            waits = [at - time.monotonic() for at in (deadline, next_bookmark) if at is not None]
            item = watcher.next(timeout=max(0.0, min([*waits, _IDLE_CHECK_SECONDS])))
            if item is watches.StreamEnd.ABRUPT:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if item is watches.StreamEnd.GRACEFUL:
                break
            if isinstance(item, dict):
                self._write_chunk(json.dumps(item) + "\n")
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if next_bookmark is not None and now >= next_bookmark:
                self.server.object_store.bookmark(watcher)
                next_bookmark = now + interval
            if self._client_gone():
                self.close_connection = True
                return
        self._write_chunk("")
