"""The ADB transport of the `android` and `pixel2` drivers (android.py): how we talk to a phone.

adbutils talks to the ADB server over its socket (`adb_host`/`adb_port`, default from
`ANDROID_ADB_SERVER_HOST`/`ANDROID_ADB_SERVER_PORT`, i.e. 127.0.0.1:5037); the device is the
one `serial` names (or `ANDROID_SERIAL`), else the only one attached.

Everything the driver says to the phone goes through `AdbTransport`: `AdbTransport.connect` is
the one place a connection is made (the server's socket, its device list, the device chosen),
`shell` and `push` the one place each request is made (`check` and `getprops` are built on
`shell`). A failure of the transport is a `DeviceError` that says what to do; what the phone's
commands print and what they mean is the driver's business.

Timeouts: adbutils' timeouts are socket timeouts, i.e. the longest silence on one request,
not a deadline. Connecting (the server's socket, `host:devices`, the device's features) waits
at most `connect_timeout_s` (default 5 s), each request (a shell command, a push) at most
`request_timeout_s` (60 s) unless the caller gives its own (a benchmark visit: the driver's
`timeout_s`). Without them a server that accepts and never answers held the driver silent for
the visit timeout (900 s); adbutils' own default for a device request is 600 s
(`_DEFAULT_SOCKET_TIMEOUT` in adbutils/_device.py, 2.8.10 to 2.12.0).

adbutils floor: 2.8.10. `AdbDevice.shell2(..., v2=True)` (the shell v2 protocol, whose exit
packet gives each command's exit status) first appears in 2.8.10 (adbutils/_device.py at tag
2.8.10, 2025-05; absent at 2.8.9, where the keyword is a TypeError). `_adbutils()` checks the
installed one has it and says how to upgrade when it does not; tests/test_adb_floor.py runs
this transport with exactly 2.8.10 and shows 2.8.9 refused in one line.
"""

from __future__ import annotations

import inspect
import os
import socket
import struct
from pathlib import Path

from latency_lab.measure.api import DeviceError

MIN_ADBUTILS = "2.8.10"
DEFAULT_PORT = 5037
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0
# What adbutils raises on a reply outside the protocol: a length that is not 4 hex digits
# (`int(length, 16)` in read_string_block, adbutils/_adb.py 2.8.10 to 2.12.0: a ValueError),
# a sync header cut short (`struct.unpack` in sync.py: struct.error). Text is decoded with
# errors="replace" there, so no UnicodeDecodeError comes out of it.
PROTOCOL_ERRORS = (ValueError, struct.error)
RESUME = "what was measured is in the store: check the phone and run again to resume"


def server_address(host: str | None, port: int | None) -> tuple[str, int]:
    """The ADB server's (host, port): the options, else the environment as adb reads it.

    ANDROID_ADB_SERVER_PORT is checked here, before adbutils is imported: adbutils builds a
    client at import time (`adb = AdbClient()` in adbutils/__init__.py, 2.8.10 to 2.12.0) and
    a port that is not a number makes `import adbutils` itself raise a ValueError.
    """
    env_port = os.environ.get("ANDROID_ADB_SERVER_PORT")
    env_value = _port_number(env_port) if env_port not in (None, "") else DEFAULT_PORT
    if env_value is None:
        raise DeviceError(f"ANDROID_ADB_SERVER_PORT={env_port!r} is not a port number (1-65535): "
                          f"unset it or set it to the ADB server's port (adb's default "
                          f"{DEFAULT_PORT})")
    if port is not None and _port_number(str(port)) is None:
        raise DeviceError(f"adb_port={port!r} is not a port number (1-65535)")
    host = host or os.environ.get("ANDROID_ADB_SERVER_HOST") or "127.0.0.1"
    return host, int(port) if port else env_value


def _port_number(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 0 < value < 65536 else None


class AdbTransport:
    """One device on one ADB server; every request waits at most `request_timeout_s` (or
    the timeout the caller gives) for the device to say something."""

    def __init__(self, client, device, serial: str, request_timeout_s: float):
        self.client, self.device, self.serial = client, device, serial
        self.request_timeout_s = request_timeout_s

    @classmethod
    def connect(cls, host: str | None, port: int | None, serial: str | None,
                connect_timeout_s: float = CONNECT_TIMEOUT_S,
                request_timeout_s: float = REQUEST_TIMEOUT_S) -> AdbTransport:
        """Reach the ADB server and choose the device (see the module docstring)."""
        if connect_timeout_s <= 0 or request_timeout_s <= 0:
            raise DeviceError("connect_timeout_s and request_timeout_s must be positive")
        host, port = server_address(host, port)
        where = f"{host}:{port}"
        adbutils = _adbutils()
        # adbutils would spawn `adb start-server` on a refused connection (a background daemon
        # the user did not ask for, on the default port); check the socket ourselves first.
        try:
            socket.create_connection((host, port), timeout=connect_timeout_s).close()
        except OSError:
            raise DeviceError(f"no ADB server at {where}: start it with `adb start-server` "
                              f"(or set ANDROID_ADB_SERVER_PORT)") from None
        lister = adbutils.AdbClient(host=host, port=port, socket_timeout=connect_timeout_s)
        try:
            infos = lister.list()
        except (adbutils.AdbError, OSError, EOFError) as exc:
            if _timed_out(adbutils, exc):
                raise DeviceError(f"the server at {where} accepted the connection but did not "
                                  f"answer the device list within {connect_timeout_s:g} s: is it "
                                  f"an ADB server? (option connect_timeout_s)") from None
            raise DeviceError(f"ADB server at {where} does not answer: {exc}") from None
        except PROTOCOL_ERRORS as exc:
            raise DeviceError(_garbled(where, "the device list", exc, "is it an ADB server?")) \
                from None
        serial = serial or os.environ.get("ANDROID_SERIAL") or None
        states = {i.serial: i.state for i in infos}
        listed = ", ".join(f"{s} ({st})" for s, st in states.items()) or "none"
        if serial:
            state = states.get(serial)
            if state is None:
                raise DeviceError(f"no device {serial!r} on the ADB server at {where}; "
                                  f"attached: {listed}")
        else:
            ready = [s for s, st in states.items() if st == "device"]
            if len(ready) > 1:
                raise DeviceError(f"several devices attached ({', '.join(ready)}): choose one "
                                  f"with --serial")
            if not ready:
                if not states:
                    raise DeviceError(f"no Android device attached (ADB server at {where} lists "
                                      f"none): connect the phone and enable USB debugging")
                serial = next(iter(states))
            else:
                serial = ready[0]
            state = states[serial]
        if state == "unauthorized":
            raise DeviceError(f"device {serial} is unauthorized: unlock it and accept the "
                              f"'Allow USB debugging' prompt, then run again")
        if state != "device":
            raise DeviceError(f"device {serial} is {state}, not ready (adb devices: {listed})")
        client = adbutils.AdbClient(host=host, port=port, socket_timeout=request_timeout_s)
        transport = cls(client, client.device(serial=serial), serial, request_timeout_s)
        transport._read_features(adbutils, connect_timeout_s)
        return transport

    def _read_features(self, adbutils, timeout_s: float) -> None:
        """Ask the device's features ourselves, within the connect timeout.

        `shell2(v2=True)` asks them on first use through `get_features()`, which always waits
        adbutils' 600 s default (`open_transport(command)` in adbutils/_device.py, 2.8.10 to
        2.12.0); `_features` is the set it keeps them in (the same versions), so filling it
        here leaves no unbounded request. Without shell v2 (Android < 7) adbutils falls back to
        `shell` plus an echoed exit status, which also works.
        """
        try:
            with self.device.open_transport("features", timeout=timeout_s) as c:
                features = c.read_string_block()
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise self._error(adbutils, exc, "reading its features", timeout_s) from None
        except PROTOCOL_ERRORS as exc:
            raise DeviceError(_garbled(f"device {self.serial}", "its features", exc,
                                       "is the ADB server adb's own?")) from None
        if hasattr(self.device, "_features"):
            self.device._features = set(features.split(","))

    # -- requests ------------------------------------------------------------------------------
    def shell(self, command: str, what: str, timeout_s: float | None = None) -> tuple[str, int]:
        """Run one shell command line on the device: (stdout+stderr, exit status)."""
        adbutils = _adbutils()
        timeout = timeout_s or self.request_timeout_s
        try:
            r = self.device.shell2(command, timeout=timeout, v2=True)
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise self._error(adbutils, exc, what, timeout) from None
        except PROTOCOL_ERRORS as exc:
            raise DeviceError(_garbled(f"device {self.serial}", f"its reply while {what}", exc,
                                       RESUME)) from None
        return r.output, r.returncode

    def push(self, local: Path | bytes, remote: str, mode: int, what: str) -> None:
        adbutils = _adbutils()

        try:
            self.device.sync.push(local, remote, mode=mode)
        except (adbutils.AdbError, OSError, EOFError) as exc:
            if _timed_out(adbutils, exc):
                raise self._error(adbutils, exc, f"pushing {what}", self.request_timeout_s) \
                    from None
            raise DeviceError(f"cannot push {what} to {self.serial}:{remote} ({exc}); what was "
                              f"measured is in the store: run again to resume") from None
        except PROTOCOL_ERRORS as exc:
            raise DeviceError(_garbled(f"device {self.serial}", f"its reply while pushing {what}",
                                       exc, RESUME)) from None

    def _error(self, adbutils, exc: BaseException, what: str, timeout_s: float) -> DeviceError:
        if _timed_out(adbutils, exc):
            return DeviceError(f"device {self.serial} did not answer within {timeout_s:g} s while "
                               f"{what}; what was measured is in the store: check the phone "
                               f"and run again to resume")
        return DeviceError(f"lost device {self.serial} while {what} ({exc or type(exc).__name__}"
                           f"); what was measured is in the store: reconnect it and run "
                           f"again to resume")

    def check(self, command: str, what: str) -> str:
        """`shell`, and a DeviceError unless the command exits 0: its output."""
        out, rc = self.shell(command, what)
        if rc != 0:
            raise DeviceError(f"{what} failed on {self.serial} (exit {rc}): {out.strip()[-200:]}")
        return out

    def getprops(self) -> dict[str, str]:
        """The device's system properties (`getprop`)."""
        out = self.check("getprop", "reading device properties")
        props = {}
        for line in out.splitlines():
            if line.startswith("[") and "]: [" in line:
                key, _, value = line.partition("]: [")
                props[key[1:]] = value.rstrip().rstrip("]")
        return props


def _garbled(who: str, what: str, exc: BaseException, advice: str) -> str:
    """One line for a reply outside the ADB protocol (a length that is not hex, a short header):
    not a server this driver can talk to, or a connection that broke mid-reply."""
    return f"{who} sent {what} outside the ADB protocol ({exc}): {advice}"


def _timed_out(adbutils, exc: BaseException) -> bool:
    """adbutils raises AdbTimeout from its reads, plain socket timeouts from a few raw recv()s
    (sync STAT/LIST in adbutils/sync.py)."""
    return isinstance(exc, (adbutils.AdbTimeout, TimeoutError, socket.timeout))


def _adbutils():
    """adbutils, or a one-line error saying how to install it (the `android` extra) or that
    the installed one is older than what this transport uses."""
    try:
        import adbutils
    except ImportError:
        raise DeviceError("the android and pixel2 devices need adbutils, which is not installed:"
                          " pip install 'latency-lab[android]'") from None
    try:
        has_v2 = "v2" in inspect.signature(adbutils.AdbDevice.shell2).parameters
    except (AttributeError, TypeError, ValueError):
        has_v2 = False
    if not has_v2:
        version = getattr(adbutils, "__version__", "unknown")
        raise DeviceError(f"adbutils {version} is too old for the android and pixel2 devices: "
                          f"they read each command's exit status with shell2(v2=True), new in "
                          f"adbutils {MIN_ADBUTILS}: pip install 'adbutils>={MIN_ADBUTILS}'")
    return adbutils
