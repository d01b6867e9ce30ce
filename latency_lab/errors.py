"""The one base of every error the user caused: `UserError`.

The CLI catches `UserError` alone and prints it as one line with exit code 2; anything else is
a bug and keeps its traceback. Each module derives its own error from it (SpecError,
DeviceError, StoreError, ProtocolError, TableError, ...), so a library caller can catch either
the specific error or all user errors, and this module imports nothing.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a request that cannot be carried out; the message is for the user."""


class JumpInputError(UserError):
    """A sweep the jump detector cannot use (latency_lab.jumps); defined here so that matching
    user errors never imports pandas."""
