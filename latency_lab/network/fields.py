"""Field checks for networks read from JSON, and the error they raise.

The spec, the block walk and the counts all check their numbers the same way; they sit here,
below all three, so that none of them needs the others to read a field.
"""

from __future__ import annotations

import math
from typing import Any

from latency_lab.errors import UserError


class SpecError(UserError):
    """A network description that is not a valid network."""


def _num(x: float) -> float | int:
    """Write 6.0 as 6 so that JSON and fingerprints do not depend on int/float spelling."""
    return int(x) if float(x).is_integer() else float(x)


MAX_INT = 2**31 - 1   # no count in a network comes near; 1e308 passed as an integral float


def int_field(value: Any, where: str) -> int:
    """A JSON integer: 16 or 16.0, never 16.7, "16" or true (bool is an int in Python, and
    int() would truncate, giving B0's fingerprint to a network that is not B0), and within
    +-MAX_INT: a width of 1e308 is integral, and overflowed the counts later (issue 25)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where} must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise SpecError(f"{where} must be an integer, got {value!r}")
    if abs(value) > MAX_INT:
        raise SpecError(f"{where} must be an integer of at most {MAX_INT:,d}, got {value!r:.20}")
    return int(value)


def float_field(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{where} must be a finite number, got {value!r}")
    return float(value)
