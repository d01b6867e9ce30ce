"""The one base of every error the user caused: `UserError`.

The CLI catches `UserError` alone and prints it as one line with exit code 2; anything else is
a bug and keeps its traceback. Each module derives its own error from it (SpecError,
DeviceError, StoreError, ProtocolError, TableError, ...), so a library caller can catch either
the specific error or all user errors, and this module imports nothing. `check_number` is the
one bound check of numeric options (NaN, infinity, out of range), with the reason in the error.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a request that cannot be carried out; the message is for the user."""


class JumpInputError(UserError):
    """A sweep the jump detector cannot use (latency_lab.sweeps.jumps); defined here so that matching
    user errors never imports pandas."""


def check_number(value: float, name: str, low: float | None = None, high: float | None = None,
                 why: str = "", error: type[UserError] = UserError, low_open: bool = False,
                 allow_inf: bool = False) -> float:
    """`value` if it is a number within [low, high] (low excluded when `low_open`), else a
    one-line `error` saying what the bound means. NaN always fails (a comparison with NaN is
    false, so an unchecked NaN passes every `x <= limit` test silently); infinity fails
    unless `allow_inf`."""
    import math

    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise error(f"{name} must be a finite number, got {value}")
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and x > high
    if too_low or too_high:
        lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
        hi = "" if high is None else f"<= {high:g}"
        rule = " and ".join(r for r in (lo, hi) if r)
        raise error(f"{name} must be {rule}, got {value}" + (f" ({why})" if why else ""))
    return x
