"""Failures of the fake API server, shaped as the ``Status`` bodies kube-apiserver sends.

Owns: the ``ApiError`` exception raised by the store and the HTTP handler, and one constructor per
failure reason with the message wording of the real server (clients and humans match on it).
Must not do I/O or know about HTTP framing; the handler turns an ``ApiError`` into a response.
"""

from __future__ import annotations

from typing import Any

RawObject = dict[str, Any]

_CONFLICT_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class ApiError(Exception):
    """A request the server refuses, carrying the HTTP code and the ``Status`` reason."""

    def __init__(
        self, *, code: int, reason: str, message: str, details: RawObject | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self) -> RawObject:
        """Return the ``Status`` object the real server would send for this failure."""
        raw_status: RawObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            raw_status["details"] = self.details
        return raw_status


def qualified_resource(group: str, plural: str) -> str:
    """Return ``plural.group`` (or just ``plural`` for the core group), as messages spell it."""
    return f"{plural}.{group}" if group else plural


def _details(group: str, kind: str, name: str) -> RawObject:
    raw_details: RawObject = {"name": name}
    if group:
        raw_details["group"] = group
    raw_details["kind"] = kind
    return raw_details


def not_found(*, group: str, plural: str, name: str) -> ApiError:
    """An object that does not exist (or a namespace that does not)."""
    return ApiError(
        code=404,
        reason="NotFound",
        message=f'{qualified_resource(group, plural)} "{name}" not found',
        details=_details(group, plural, name),
    )


def path_not_found() -> ApiError:
    """A URL the server does not serve at all (unknown group, version or resource)."""
    return ApiError(
        code=404,
        reason="NotFound",
        message="the server could not find the requested resource",
        details={},
    )


def already_exists(*, group: str, plural: str, name: str) -> ApiError:
    """A create whose name is taken."""
    return ApiError(
        code=409,
        reason="AlreadyExists",
        message=f'{qualified_resource(group, plural)} "{name}" already exists',
        details=_details(group, plural, name),
    )


def conflict(*, group: str, plural: str, name: str, why: str = _CONFLICT_MODIFIED) -> ApiError:
    """A write whose precondition (usually the resourceVersion) no longer holds."""
    return ApiError(
        code=409,
        reason="Conflict",
        message=f'Operation cannot be fulfilled on {qualified_resource(group, plural)} '
        f'"{name}": {why}',
        details=_details(group, plural, name),
    )


def invalid(*, group: str, kind: str, name: str, field: str, why: str) -> ApiError:
    """A body that fails validation (HTTP 422)."""
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(
        code=422,
        reason="Invalid",
        message=f'{qualified_kind} "{name}" is invalid: {field}: {why}',
        details={
            **_details(group, kind, name),
            "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
        },
    )


def bad_request(message: str) -> ApiError:
    """A malformed request: unparsable body or selector, mismatched name or namespace."""
    return ApiError(code=400, reason="BadRequest", message=message)


def expired(*, requested: int, oldest: int) -> ApiError:
    """A watch from a resourceVersion older than the retained history (HTTP 410)."""
    return ApiError(
        code=410,
        reason="Expired",
        message=f"too old resource version: {requested} ({oldest})",
    )


def method_not_allowed() -> ApiError:
    """A verb the addressed URL does not support."""
    return ApiError(
        code=405,
        reason="MethodNotAllowed",
        message="the server does not allow this method on the requested resource",
        details={},
    )


def unsupported_media_type(accepted: tuple[str, ...]) -> ApiError:
    """A body (usually a patch) in a format this resource does not accept."""
    return ApiError(
        code=415,
        reason="UnsupportedMediaType",
        message="the body of the request was in an unknown format - accepted media types "
        f"include: {', '.join(accepted)}",
    )
