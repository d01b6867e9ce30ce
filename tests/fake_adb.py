"""A loopback ADB server for tests: the real ADB host protocol, a phone simulated on the host.

There is no phone in CI, so this stands in for `adb` + device, speaking the ADB smart-socket
protocol as adbutils (and the adb client) use it (platform/packages/modules/adb
SERVICES.TXT, SYNC.TXT; adbutils' own tests/adb_server.py, openatx/adbutils@7c43ec6, fakes the
same subset; what adbutils sends was read in adbutils/_device.py and sync.py at tags 2.8.10 and
2.12, and tests/test_adb_floor.py runs the driver through 2.8.10 against this server too).
Where a real adbd interleaves a v2 shell's stdout and stderr packets as they come, this sends
all of stdout, then all of stderr; the driver's commands redirect 2>&1, so it reads one stream:

* request: 4 hex digits of length + the service name; reply `OKAY`, or `FAIL` + 4 hex length +
  message (with adb's own messages: "device 'X' not found", "device unauthorized. ...");
* host services: `host:version`, `host:devices`, `host:devices-l`, `host-serial:S:features`,
  `host:tport:serial:S` (OKAY + 8-byte transport id), `host:transport:S`, `host:kill`;
* device services after a transport is chosen: `shell:CMD` (raw stream, closed at exit),
  `shell,v2:CMD` (packets: id 1 stdout, 2 stderr, 3 exit, each with a LE32 length) and `sync:`
  (STAT, SEND path,mode + DATA*/DONE -> OKAY, RECV -> DATA*/DONE, LIST -> DENT*/DONE, QUIT).

The "device" runs shell commands with /bin/sh on the host, in a sandbox directory: device paths
under /data/local/tmp and /sys/devices/system/cpu/ are mapped into it, `getprop` and `dumpsys`
are small scripts printing what a Pixel 2 prints, and `taskset` maps the phone's 8 cores onto
the host's. The sandbox file `thermal_status` is what `dumpsys thermalservice` reports; the
server can drop the device after a number of benchmark visits (an unplugged cable), take
device requests and never answer them (`stall`, a hung adbd), or answer its features with a
length that is not hex (`garbled`).
"""

from __future__ import annotations

import os
import socketserver
import stat
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

DEVICE_TMP = "/data/local/tmp"
DEVICE_CPU_SYSFS = "/sys/devices/system/cpu/"
PIXEL2_PROPS = {
    "ro.product.model": "Pixel 2",
    "ro.product.manufacturer": "Google",
    "ro.board.platform": "msm8998",
    "ro.build.version.release": "11",
    "ro.build.version.sdk": "30",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.build.fingerprint": "google/walleye/walleye:11/RP1A.201005.004.A1/6934943:user/release-keys",
}
UNAUTHORIZED = ("device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
                "Try 'adb kill-server' if that seems wrong.\n"
                "Otherwise check for a confirmation dialog on your device.")


def _block(text: str) -> bytes:
    data = text.encode()
    return f"{len(data):04x}".encode() + data


@dataclass
class FakePhone:
    serial: str
    root: Path
    state: str = "device"                  # device | unauthorized | offline
    props: dict = field(default_factory=lambda: dict(PIXEL2_PROPS))
    unplug_after_visits: int | None = None  # drop off the bus after this many benchmark visits
    stall: bool = False                     # take device requests (shell, sync) and never answer
    garbled: bool = False                   # features and v2 shells answered with a bad length
    visits: int = 0
    commands: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tmp = self.root / "data" / "local" / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.bin = self.root / "fakebin"
        self.bin.mkdir(exist_ok=True)
        (self.root / "thermal_status").write_text("0\n")
        py = sys.executable
        getprop = "\n".join(f"[{k}]: [{v}]" for k, v in self.props.items())
        self._script("getprop", f"#!/bin/sh\ncat <<'EOF'\n{getprop}\nEOF\n")
        self._script("dumpsys", "#!/bin/sh\n[ \"$1\" = thermalservice ] || exit 0\n"
                     "echo 'IsStatusOverride: false'\n"
                     f"echo \"Thermal Status: $(cat '{self.root}/thermal_status')\"\n")
        self._script("taskset", f"#!{py}\n" + _TASKSET)
        cpu = self.root / "sys" / "devices" / "system" / "cpu"
        for c in range(8):  # Snapdragon 835: 4 little (1.9 GHz) + 4 big (2.45 GHz) cores
            d = cpu / f"cpu{c}" / "cpufreq"
            d.mkdir(parents=True, exist_ok=True)
            top = "2457600" if c >= 4 else "1900800"
            for name, value in (("scaling_governor", "schedutil"), ("scaling_cur_freq", top),
                                ("scaling_min_freq", "300000"), ("scaling_max_freq", top),
                                ("cpuinfo_max_freq", top)):
                (d / name).write_text(value + "\n")
        zone = self.root / "sys" / "class" / "thermal" / "thermal_zone0"
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "temp").write_text("38000\n")

    def _script(self, name: str, text: str) -> None:
        p = self.bin / name
        p.write_text(text)
        p.chmod(0o755)

    # device path <-> sandbox path
    def host_path(self, device_path: str) -> Path:
        if device_path.startswith(DEVICE_TMP):
            return self.tmp / device_path[len(DEVICE_TMP):].lstrip("/")
        return self.root / "other" / device_path.lstrip("/")

    def map_command(self, cmd: str) -> str:
        return (cmd.replace(DEVICE_TMP, str(self.tmp))
                .replace(DEVICE_CPU_SYSFS, f"{self.root}/sys/devices/system/cpu/"))

    def run_shell(self, cmd: str) -> tuple[bytes, bytes, int]:
        self.commands.append(cmd)
        if "run_bench" in cmd and "--graph=" in cmd:   # a visit runs the benchmark
            self.visits += 1
        env = dict(os.environ, PATH=f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                   LL_SYSFS_ROOT=str(self.root), FAKE_DEVICE_ROOT=str(self.root))
        p = subprocess.run(["/bin/sh", "-c", self.map_command(cmd)], cwd=self.root, env=env,
                           capture_output=True, timeout=600)
        return p.stdout, p.stderr, p.returncode


_TASKSET = '''"""Android toybox `taskset MASK CMD...` on a virtual 8-core phone, pinned on the host."""
import os, sys
if len(sys.argv) < 3:
    sys.exit("usage: taskset MASK COMMAND...")
try:
    mask = int(sys.argv[1], 16)
except ValueError:
    sys.stderr.write("taskset: bad mask '%s'\\n" % sys.argv[1]); sys.exit(1)
phone = [c for c in range(8) if mask >> c & 1]
if not phone:
    sys.stderr.write("taskset: sched_setaffinity: Invalid argument\\n"); sys.exit(1)
host = sorted(os.sched_getaffinity(0))
os.sched_setaffinity(0, {host[c % len(host)] for c in phone})
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as e:
    sys.stderr.write("taskset: exec %s: %s\\n" % (sys.argv[2], e.strerror)); sys.exit(126 if e.errno == 13 else 127)
'''


class FakeAdbServer:
    """`with FakeAdbServer(tmp) as adb:` -> adb.port, adb.add_phone(serial, state=...)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.phones: dict[str, FakePhone] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    outer._serve(self.request)
                except (ConnectionError, OSError):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def add_phone(self, serial: str, state: str = "device", **kw) -> FakePhone:
        phone = FakePhone(serial, self.root / serial, state=state, **kw)
        self.phones[serial] = phone
        return phone

    # -- protocol ------------------------------------------------------------------------------
    @staticmethod
    def _read(sock, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("client closed")
            buf += chunk
        return buf

    def _request(self, sock) -> str:
        n = int(self._read(sock, 4), 16)
        return self._read(sock, n).decode()

    @staticmethod
    def _fail(sock, message: str) -> None:
        sock.sendall(b"FAIL" + _block(message))

    def _listed(self) -> list[FakePhone]:
        with self.lock:
            return [p for p in self.phones.values() if not self._gone(p)]

    @staticmethod
    def _gone(p: FakePhone) -> bool:
        return p.unplug_after_visits is not None and p.visits >= p.unplug_after_visits

    def _phone(self, sock, serial: str) -> FakePhone | None:
        p = self.phones.get(serial)
        if p is None or self._gone(p):
            self._fail(sock, f"device '{serial}' not found")
            return None
        if p.state == "unauthorized":
            self._fail(sock, UNAUTHORIZED)
            return None
        if p.state != "device":
            self._fail(sock, "device offline")
            return None
        return p

    def _serve(self, sock) -> None:
        req = self._request(sock)
        if req == "host:version":
            sock.sendall(b"OKAY" + _block("0029"))  # 41: adb 1.0.41 (platform-tools >= 29)
        elif req in ("host:devices", "host:devices-l"):
            lines = []
            for p in self._listed():
                extra = (f" product:walleye model:{p.props['ro.product.model'].replace(' ', '_')}"
                         f" device:walleye transport_id:1") if req.endswith("-l") else ""
                lines.append(f"{p.serial}\t{p.state}{extra}\n")
            sock.sendall(b"OKAY" + _block("".join(lines)))
        elif req.startswith("host-serial:") and req.endswith(":features"):
            serial = req[len("host-serial:"):-len(":features")]
            p = self._phone(sock, serial)
            if p and p.garbled:     # a length that is not 4 hex digits
                sock.sendall(b"OKAYzz!!shell_v2")
            elif p:
                sock.sendall(b"OKAY" + _block("shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir"))
        elif req.startswith("host:tport:serial:") or req.startswith("host:transport:"):
            serial = req.split(":", 3)[-1] if req.startswith("host:tport") else req.split(":", 2)[2]
            p = self._phone(sock, serial)
            if p is None:
                return
            sock.sendall(b"OKAY" + (struct.pack("<Q", 1) if "tport" in req else b""))
            self._device_service(sock, p, self._request(sock))
        elif req == "host:kill":
            sock.sendall(b"OKAY")
        else:
            self._fail(sock, f"unknown host service '{req}'")

    def _device_service(self, sock, p: FakePhone, req: str) -> None:
        if p.stall:   # a hung adbd: the request is taken, nothing comes back until the client goes
            while sock.recv(4096):
                pass
            return
        if req.startswith("shell,v2:"):
            sock.sendall(b"OKAY")
            out, err, rc = p.run_shell(req[len("shell,v2:"):])
            for kind, data in ((1, out), (2, err)):
                if data:
                    sock.sendall(bytes([kind]) + struct.pack("<I", len(data)) + data)
            sock.sendall(bytes([3]) + struct.pack("<I", 1) + bytes([rc & 0xFF]))
        elif req.startswith("shell:"):
            sock.sendall(b"OKAY")
            out, err, rc = p.run_shell(req[len("shell:"):])
            sock.sendall(out + err)
        elif req == "sync:":
            sock.sendall(b"OKAY")
            self._sync(sock, p)
        else:
            self._fail(sock, f"unknown device service '{req}'")

    def _sync(self, sock, p: FakePhone) -> None:
        while True:
            try:
                cmd = self._read(sock, 4)
            except ConnectionError:
                return
            n = struct.unpack("<I", self._read(sock, 4))[0]
            arg = self._read(sock, n).decode()
            if cmd == b"QUIT":
                return
            if cmd == b"STAT":
                path = p.host_path(arg)
                if path.exists():
                    st = path.stat()
                    sock.sendall(b"STAT" + struct.pack("<III", st.st_mode, st.st_size,
                                                       int(st.st_mtime)))
                else:
                    sock.sendall(b"STAT" + struct.pack("<III", 0, 0, 0))
            elif cmd == b"SEND":
                remote, _, mode = arg.rpartition(",")
                data = bytearray()
                while True:
                    kind = self._read(sock, 4)
                    size = struct.unpack("<I", self._read(sock, 4))[0]
                    if kind == b"DATA":
                        data += self._read(sock, size)
                    elif kind == b"DONE":
                        break
                    else:
                        self._fail(sock, f"unexpected sync packet {kind!r}")
                        return
                path = p.host_path(remote)
                if not path.parent.is_dir():
                    msg = "secure_mkdirs() failed: No such file or directory".encode()
                    sock.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                path.write_bytes(bytes(data))
                path.chmod(stat.S_IMODE(int(mode)))
                sock.sendall(b"OKAY" + struct.pack("<I", 0))
            elif cmd == b"RECV":
                path = p.host_path(arg)
                if not path.is_file():
                    msg = b"No such file or directory"
                    sock.sendall(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                data = path.read_bytes()
                for i in range(0, len(data), 64 * 1024):
                    chunk = data[i:i + 64 * 1024]
                    sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                sock.sendall(b"DONE" + struct.pack("<I", 0))
            elif cmd == b"LIST":
                path = p.host_path(arg)
                for child in sorted(path.iterdir()) if path.is_dir() else []:
                    st = child.stat()
                    name = child.name.encode()
                    sock.sendall(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size,
                                                       int(st.st_mtime), len(name)) + name)
                sock.sendall(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            else:
                self._fail(sock, f"unknown sync command {cmd!r}")
                return
