"""Preview time-to-live rules (pure): reading ``spec.ttl``, the deadline, and the time-left text
that ``status`` and the Expired Event show."""

from __future__ import annotations

import pytest

from reconciler.core import expiry

HOUR = 3600


@pytest.mark.parametrize(("ttl", "seconds"), [
    ("72h", 72 * HOUR),
    ("7d", 7 * 24 * HOUR),
    ("1d12h", 36 * HOUR),
    ("90m", 90 * 60),
    ("2d3h4m", ((2 * 24 + 3) * 60 + 4) * 60),
])
def test_a_ttl_is_read_as_days_hours_and_minutes(ttl: str, seconds: int) -> None:
    """Every unit and combination the CRD accepts gives the expected number of seconds."""
    assert expiry.parse_duration(ttl) == seconds


@pytest.mark.parametrize("ttl", ["", "72", "3s", "1w", "1h1d", "h", "-1h", "1.5h", " 1h", "1H"])
def test_a_ttl_that_is_not_a_duration_is_refused_with_an_example(ttl: str) -> None:
    """Anything but days/hours/minutes in that order is a ValueError that names a valid form."""
    with pytest.raises(ValueError, match="72h"):
        expiry.parse_duration(ttl)


def test_a_preview_expires_its_ttl_after_it_was_created() -> None:
    """The deadline is the creation time plus the ttl."""
    assert expiry.expires_at(1_000_000.0, "1h") == 1_000_000.0 + HOUR
    assert expiry.expires_at(1_000_000.0, "1d12h") == 1_000_000.0 + 36 * HOUR


@pytest.mark.parametrize(("left", "text"), [
    (3 * HOUR + 12 * 60, "expires in 3h12m"),
    (2 * 86400 + 5 * HOUR, "expires in 2d5h"),
    (59 * 60 + 30, "expires in 59m"),
    (45, "expires in 45s"),
    (-5 * 60, "expired 5m ago"),
    (-(26 * HOUR), "expired 1d2h ago"),
    (0, "expired 0s ago"),
])
def test_the_time_left_reads_as_a_short_duration(left: int, text: str) -> None:
    """Time left (or past) is written as days, hours and minutes, seconds only under a minute;
    the deadline itself counts as expired."""
    assert expiry.describe_left(1_000_000.0 + left, 1_000_000.0) == text
