"""Turning a request URL into what it addresses: a discovery document or a resource.

Owns: the URL grammar of kube-apiserver (``/api/v1/...``, ``/apis/<group>/<version>/...``,
optional ``namespaces/<ns>/`` prefix, object name, ``status`` subresource) and the query
parameters the server honours. Pure: resource lookups come in as a function; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fake_apiserver import errors, resources

FindType = Callable[[str, str, str], "resources.ResourceType | None"]


@dataclass(frozen=True)
class Discovery:
    """A discovery URL: ``document`` is version, core, groups, group, resources or openapi."""

    document: str
    group: str = ""
    version: str = ""


@dataclass(frozen=True)
class ResourceRoute:
    """A resource URL: a collection (``name`` None) or one object, maybe its status."""

    rt: resources.ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass(frozen=True)
class Query:
    """The query parameters the server acts on (the others are accepted and ignored)."""

    watch: bool = False
    label_selector: str = ""
    field_selector: str = ""
    resource_version: str | None = None
    timeout_seconds: float | None = None
    allow_bookmarks: bool = False
    send_initial_events: bool | None = None
    dry_run: bool = False


def parse_query(raw_query: str) -> Query:
    values = {key: items[-1] for key, items in parse_qs(raw_query).items()}
    timeout = values.get("timeoutSeconds")
    initial = values.get("sendInitialEvents")
    try:
        timeout_seconds = float(timeout) if timeout else None
    except ValueError as exc:
        raise errors.bad_request(f"invalid timeoutSeconds {timeout!r}") from exc
    return Query(
        watch=values.get("watch") in ("true", "1"),
        label_selector=values.get("labelSelector", ""),
        field_selector=values.get("fieldSelector", ""),
        resource_version=values.get("resourceVersion"),
        timeout_seconds=timeout_seconds,
        allow_bookmarks=values.get("allowWatchBookmarks") == "true",
        send_initial_events=None if initial is None else initial == "true",
        dry_run="dryRun" in values,
    )


_FIXED = {
    "/version": Discovery("version"),
    "/api": Discovery("core"),
    "/apis": Discovery("groups"),
    "/openapi/v2": Discovery("openapi"),
    "/openapi/v3": Discovery("openapi"),
    "/healthz": Discovery("health"),
    "/readyz": Discovery("health"),
    "/livez": Discovery("health"),
}


def route(raw_path: str, find_type: FindType) -> Discovery | ResourceRoute:
    """Resolve a request path; raise 404 ``ApiError`` for anything the server does not serve."""
    path = urlsplit(raw_path).path.rstrip("/") or "/"
    if path in _FIXED:
        return _FIXED[path]
    segments = [unquote(segment) for segment in path.split("/")[1:]]
    if segments[0] == "api" and len(segments) >= 2:
        group, version, rest = "", segments[1], segments[2:]
    elif segments[0] == "apis" and len(segments) == 2:
        return Discovery("group", group=segments[1])
    elif segments[0] == "apis" and len(segments) >= 3:
        group, version, rest = segments[1], segments[2], segments[3:]
    else:
        raise errors.path_not_found()
    if not rest:
        return Discovery("resources", group=group, version=version)
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = find_type(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise errors.path_not_found()
    rt = find_type(group, version, rest[0])
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if rt is None or (subresource and not (subresource == "status" and rt.status_subresource)):
        raise errors.path_not_found()
    if rt.namespaced and namespace is None and name is not None:
        raise errors.path_not_found()
    return ResourceRoute(rt=rt, version=version, namespace=namespace, name=name,
                         subresource=subresource)
