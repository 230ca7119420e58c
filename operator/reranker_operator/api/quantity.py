"""Kubernetes resource quantities ("500m", "4Gi", "1.5") parsed to exact decimals."""

from __future__ import annotations

import re
from decimal import Decimal

QUANTITY_PATTERN = (
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def is_quantity(value: str) -> bool:
    """True when `value` is a non-negative Kubernetes quantity string."""
    return bool(_QUANTITY_RE.fullmatch(value))


def parse_quantity(value: str | float) -> Decimal:
    """The quantity's value in base units; ValueError when it is not a quantity."""
    text = str(value)
    match = _QUANTITY_RE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    suffix = match.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(text)
    return Decimal(text[: len(text) - len(suffix)]) * _SUFFIX[suffix]
