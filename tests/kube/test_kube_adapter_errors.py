"""The Kubernetes adapter's error translation and Event limits, without any server.

The same behaviour is exercised end to end against the real kube-apiserver in
``test_real_apiserver.py``; these pin the one-line messages and the byte arithmetic.
"""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from reconciler.adapters import kube
from reconciler.core import errors


def api_exception(status: int, reason: str, message: str | None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": message}) if message else None
    return exc


def test_a_403_is_a_permanent_access_error_naming_what_was_refused() -> None:
    """Forbidden: not retried (permanent), and the line carries the server's own words."""
    said = ('customers.reconciler.ahoi.dev "acme" is forbidden: User "system:serviceaccount:'
            'gitops-reconciler:gitops-reconciler" cannot patch resource "customers/status"')
    error = kube._translate(api_exception(403, "Forbidden", said), "patch customers/acme status")
    assert isinstance(error, errors.AccessDeniedError)
    assert isinstance(error, errors.PermanentError)
    assert "\n" not in str(error)
    assert str(error).startswith("patch customers/acme status: HTTP 403 Forbidden: ")
    assert 'cannot patch resource "customers/status"' in str(error)
    assert "deploy/base/rbac.yaml" in str(error)


def test_a_401_says_the_credentials_were_refused() -> None:
    """Unauthorized: permanent too, with a hint instead of an empty server message."""
    error = kube._translate(api_exception(401, "Unauthorized", None), "list customers")
    assert isinstance(error, errors.AccessDeniedError)
    assert str(error) == ("list customers: HTTP 401 Unauthorized: the API server refused the "
                          "credentials")


def test_a_422_keeps_the_servers_field_message_and_a_503_stays_temporary() -> None:
    """Invalid names the field the schema refused; a server error is retried later."""
    invalid = kube._translate(api_exception(422, "Unprocessable Entity",
                                            'Customer "acme" is invalid: status.conditions[0]'
                                            '.status: Unsupported value: "Maybe"'), "patch")
    assert isinstance(invalid, errors.PermanentError)
    assert 'status.conditions[0].status: Unsupported value: "Maybe"' in str(invalid)
    unavailable = kube._translate(api_exception(503, "Service Unavailable", None), "list")
    assert isinstance(unavailable, errors.ClusterError)


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("short", 1024, "short"),
    ("x" * 1024, 1024, "x" * 1024),
    ("x" * 1025, 1024, "x" * 1021 + "…"),
    ("ä" * 600, 1024, "ä" * 510 + "…"),  # 2 bytes each: 1020 + 3 for the ellipsis
    ("€" * 400, 1024, "€" * 340 + "…"),  # 3 bytes each, never cut inside one
])
def test_event_messages_are_cut_by_utf8_bytes_on_a_character_boundary(
        text: str, limit: int, expected: str) -> None:
    """The API server counts bytes: a cut message fits in ``limit`` bytes and ends in '…'."""
    fitted = kube.fit_bytes(text, limit)
    assert fitted == expected
    assert len(fitted.encode()) <= limit
