"""Preview time-to-live: parsing ``spec.ttl`` and telling how long is left.

Pure: ``now`` is always passed in.
"""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(text: str) -> int:
    """Seconds in ``72h``, ``7d``, ``1d12h``, ``90m``; ValueError for anything else."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 72h, 7d, 90m)")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60


def expires_at(created: float, ttl: str) -> float:
    """When a preview created at ``created`` with ``ttl`` expires."""
    return created + parse_duration(ttl)


def describe_left(expires: float, now: float) -> str:
    """``expires in 3h12m`` or ``expired 5m ago``."""
    seconds = int(expires - now)
    span = abs(seconds)
    days, rest = divmod(span, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = "".join(f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v) \
        or f"{span}s"
    return f"expires in {text}" if seconds > 0 else f"expired {text} ago"


def timestamp_seconds(stamp: str | None) -> float | None:
    """Seconds since the epoch of a Kubernetes timestamp (``2026-12-01T15:00:00Z``); None
    when missing or unreadable."""
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
