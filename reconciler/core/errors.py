"""The error hierarchy: temporary (retry later) versus permanent, user input versus infrastructure.

Pure. Adapters translate library exceptions into these and chain the cause.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error the reconciler raises on purpose."""


class TemporaryError(ReconcilerError):
    """Worth retrying after a delay (the network, a moved branch, a lock)."""


class PermanentError(ReconcilerError):
    """Retrying will not help until someone changes something."""


class UserInputError(PermanentError):
    """The user's input is wrong; the message is one line naming what and where."""


class RepoError(TemporaryError):
    """The config repository could not be read or written."""


class HeadMovedError(RepoError):
    """The target branch moved while a commit was being made."""


class UnsafeWriteError(PermanentError):
    """A write would leave the path it is confined to."""


class ClusterError(TemporaryError):
    """The Kubernetes API could not be reached or answered with a server error."""


class ConflictError(TemporaryError):
    """A write carried a stale resourceVersion (HTTP 409): re-read and try again."""


class WatchExpiredError(TemporaryError):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class AccessDeniedError(PermanentError):
    """The API server refused our credentials (HTTP 401) or our RBAC (HTTP 403).

    Permanent: retrying with the same ServiceAccount and Roles cannot succeed; the message
    names the verb and resource the server refused, for the operator to grant or fix.
    """


class NotFoundError(PermanentError):
    """The object does not exist (HTTP 404)."""
