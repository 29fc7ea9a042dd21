"""Kubernetes resource quantities (``250m``, ``8Gi``, ``1.5``) as exact numbers.

Pure. Exact decimals, never floats, so that "fits the quota" is decided without rounding.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")

GI = _SUFFIXES["Gi"]


def parse(text: str | int) -> Decimal:
    """The value of a quantity (``ValueError`` when it is not one we understand)."""
    return _parse(str(text))


@functools.lru_cache(maxsize=1024)  # a fleet's renderings repeat the same few quantities
def _parse(text: str) -> Decimal:  # a Decimal is immutable: sharing one is safe
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a quantity")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{text!r} is not a quantity") from exc


def describe_cpu(value: Decimal) -> str:
    """CPU for a message: ``8.25`` or ``250m``."""
    if value < 1 and value != 0:
        return f"{(value * 1000).normalize():f}m"
    return f"{value.normalize():f}"


def describe_bytes(value: Decimal) -> str:
    """Bytes for a message, in the largest binary unit that keeps it readable."""
    for unit in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        size = _SUFFIXES[unit]
        if value >= size:
            scaled = (value / size).quantize(Decimal("0.01")).normalize()
            return f"{scaled:f}{unit}"
    return f"{value.normalize():f}"
