"""The ADB transport of the `android` and `pixel2` drivers (android.py): how we talk to a phone.

adbutils talks to the ADB server over its socket (`adb_host`/`adb_port`, default from
`ANDROID_ADB_SERVER_HOST`/`ANDROID_ADB_SERVER_PORT`, i.e. 127.0.0.1:5037); the device is the
one `serial` names (or `ANDROID_SERIAL`), else the only one attached.

Everything the driver says to the phone goes through `AdbTransport`: `AdbTransport.connect` is
the one place a connection is made (the server's socket, its device list, the device chosen),
`shell` and `push` the one place each request is made (`check` and `getprops` are built on
`shell`). A failure of the transport is a `DeviceError` that says what to do; what the phone's
commands print and what they mean is the driver's business.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from latency_lab.measure.api import DeviceError


class AdbTransport:
    """One device on one ADB server; `timeout_s` bounds every request."""

    def __init__(self, client, device, serial: str, timeout_s: float):
        self.client, self.device, self.serial, self.timeout_s = client, device, serial, timeout_s

    @classmethod
    def connect(cls, host: str | None, port: int | None, serial: str | None,
                timeout_s: float) -> AdbTransport:
        """Reach the ADB server and choose the device (see the module docstring)."""
        adbutils = _adbutils()

        client = adbutils.AdbClient(host=host, port=port, socket_timeout=timeout_s)
        where = f"{client.host}:{client.port}"
        # adbutils would spawn `adb start-server` on a refused connection (a background daemon
        # the user did not ask for, on the default port); check the socket ourselves first.
        try:
            socket.create_connection((client.host, client.port), timeout=3).close()
        except OSError:
            raise DeviceError(f"no ADB server at {where}: start it with `adb start-server` "
                              f"(or set ANDROID_ADB_SERVER_PORT)") from None
        try:
            infos = client.list()
        except (adbutils.AdbError, OSError) as exc:
            raise DeviceError(f"ADB server at {where} does not answer: {exc}") from None
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
        return cls(client, client.device(serial=serial), serial, timeout_s)

    # -- requests ------------------------------------------------------------------------------
    def shell(self, command: str, what: str) -> tuple[str, int]:
        """Run one shell command line on the device: (stdout+stderr, exit status)."""
        adbutils = _adbutils()

        try:
            r = self.device.shell2(command, timeout=self.timeout_s, v2=True)
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise DeviceError(f"lost device {self.serial} while {what} ({exc or type(exc).__name__}"
                              f"); what was measured is in the store: reconnect it and run "
                              f"again to resume") from None
        return r.output, r.returncode

    def push(self, local: Path | bytes, remote: str, mode: int, what: str) -> None:
        adbutils = _adbutils()

        try:
            self.device.sync.push(local, remote, mode=mode)
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise DeviceError(f"cannot push {what} to {self.serial}:{remote} ({exc}); what was "
                              f"measured is in the store: run again to resume") from None

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


def _adbutils():
    """adbutils, or a one-line error saying how to install it (the `android` extra)."""
    try:
        import adbutils
    except ImportError:
        raise DeviceError("the android and pixel2 devices need adbutils, which is not installed:"
                          " pip install 'latency-lab[android]'") from None
    return adbutils
