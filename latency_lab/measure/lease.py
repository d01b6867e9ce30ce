"""Who owns an open measurement: this process's identity, and whether another owner is gone.

Two sweeps of the same points at once must not add samples to the same open measurement (they
would share one drift fit and mix two machines' loads; an experiment gave CSVs 18.7% apart).
So the store keeps a lease per open measurement (`store.py`, table `leases`): the owner's host,
process id and process start time. A lease is taken over only from an owner that is gone:

- same host: the process id no longer exists, or it now belongs to a process started at
  another time (a reused id, e.g. after a reboot);
- another host (a store on a shared file system): the owner cannot be asked, so its lease
  counts as gone once it has not been renewed for `STALE_AFTER_S` (it is renewed at every
  visit, and a visit never takes that long).

A lease is released when its measurement finishes and when the measuring call ends (normally,
by an error or by Ctrl-C); only `kill -9` or a crash leaves one behind, and then the owner's
process is gone.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

STALE_AFTER_S = 3600.0


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux /proc), or '' elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]   # field 22; the name may contain spaces
    except (OSError, IndexError):
        return ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str    # process start time, '' where unknown

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


_me: Owner | None = None


def me() -> Owner:
    """This process (recomputed after a fork: the child is another owner)."""
    global _me
    if _me is None or _me.pid != os.getpid():
        _me = Owner(socket.gethostname(), os.getpid(), _start_time(os.getpid()))
    return _me


def is_gone(owner: Owner, renewed_at: float, now: float | None = None) -> bool:
    """True when `owner` can no longer be measuring (see the module docstring)."""
    if owner.host != me().host:
        return (now or time.time()) - renewed_at > STALE_AFTER_S
    if owner.pid <= 0:
        return True
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass   # exists, belongs to another user
    started = _start_time(owner.pid)
    return bool(owner.started and started and started != owner.started)
