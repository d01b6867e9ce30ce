"""The exceptions that mean "the user asked for something that cannot be done".

The CLI prints these as one line and exits with code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class UserError(RuntimeError):
    """Bad input detected by the CLI itself."""


class JumpInputError(ValueError):
    """A sweep the jump detector cannot use (latency_lab.jumps); defined here so that matching
    user errors never imports pandas."""


def user_errors() -> tuple[type[BaseException], ...]:
    from latency_lab.build_keras import ConversionError
    from latency_lab.measure import DeviceError
    from latency_lab.protocol import ProtocolError
    from latency_lab.spec import SpecError
    from latency_lab.store import StoreError

    return (UserError, SpecError, DeviceError, StoreError, ProtocolError, JumpInputError,
            ConversionError)
