"""A sweep plan: networks x devices x resolution ranges, run across the devices at once.

`latency-lab sweep-plan plan.toml` reads a plan like this one:

    networks = ["efficientnet-b0", "s3nas-b0"]    # presets or network JSON files
    resolutions = ["160:224:8", "240:320:16"]     # ranges and lists; their union is swept
    out = "sweeps"                                # CSVs: OUT/DEVICE/NETWORK.csv
    host_store_dir = "/var/tmp/latency-lab"       # optional, see below

    [protocol]                                    # optional: the sweep protocol's settings
    max_rounds = 20

    [devices.cpu0]
    driver = "cpu"
    options = { threads = 1, affinity = "0" }

    [devices.phone]
    driver = "pixel2"
    options = { serial = "HT7A1..." }
    resources = { pixel2 = 1 }                    # declared by `ray start --resources`
    # host = "10.0.0.7"; cpus = 1; gpus = 0       # other placement, all optional

Every (network, device) pair is one sweep over the union of the resolutions (one sweep, so
the protocol interleaves all its points). A device runs its sweeps one after another; devices
run side by side where the executor allows: with Ray each device is a `DeviceHost` actor
(`device_actor.py`) and its samples go to a store on its own host (`host_store_dir`, default
that host's cache), merged into `--store` as each sweep comes back (why not one shared file:
see `device_actor.py`); with `local:N` each device is owned by one of N local processes and
with `local` by this process, and both write straight into `--store` (one machine, one local
disk: SQLite's own locking is enough there). A rerun resumes every unfinished sweep.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from latency_lab.scaleout.device_actor import DeviceSpec
from latency_lab.errors import UserError
from latency_lab.network.spec import NetworkSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOP_KEYS = {"networks", "resolutions", "devices", "protocol", "out", "host_store_dir"}
DEVICE_KEYS = {"driver", "options", "host", "cpus", "gpus", "resources"}


class PlanError(UserError):
    """A plan file that cannot be read or names something that does not exist."""


@dataclass(frozen=True)
class Plan:
    path: Path
    networks: tuple[NetworkSpec, ...]
    resolutions: tuple[int, ...]
    devices: tuple[DeviceSpec, ...]
    protocol: Any                       # latency_lab.measure.protocol.Protocol
    out: Path | None = None
    host_store_dir: str | None = None


@dataclass(frozen=True)
class SweepJob:
    device: DeviceSpec
    network: NetworkSpec
    resolutions: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.network.name} on {self.device.label}"

    def csv_path(self, out: Path) -> Path:
        """OUT/DEVICE/NETWORK.csv, both names through `fileio.safe_name` (a network named
        `../../x` or `a/b/net` stays one file in its device's folder)."""
        from latency_lab.fileio import safe_name

        return out / self.device.file_label / f"{safe_name(self.network.name)}.csv"


@dataclass
class SweepOutcome:
    job: SweepJob
    measurements: list = field(default_factory=list)
    error: str | None = None
    host: str = ""
    merged: int = 0
    csv: Path | None = None


def _table(d: Any, where: str) -> dict:
    if not isinstance(d, dict):
        raise PlanError(f"{where} must be a table")
    return d


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise PlanError(f"{where} = {v!r}: need a number >= 0")
    return float(v)


def _device(label: str, d: Any, where: str) -> DeviceSpec:
    d = _table(d, where)
    unknown = set(d) - DEVICE_KEYS
    if unknown:
        raise PlanError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: "
                        f"{', '.join(sorted(DEVICE_KEYS))})")
    driver = d.get("driver")
    if not isinstance(driver, str) or not driver:
        raise PlanError(f"{where}: needs driver = \"NAME\" (see `latency-lab devices`)")
    options = _table(d.get("options", {}), f"{where}.options")
    resources = _table(d.get("resources", {}), f"{where}.resources")
    host = d.get("host")
    if host is not None and not isinstance(host, str):
        raise PlanError(f"{where}.host must be a node's IP address as text")
    return DeviceSpec(label, driver, tuple(sorted(options.items())), host,
                      _number(d["cpus"], f"{where}.cpus") if "cpus" in d else None,
                      _number(d["gpus"], f"{where}.gpus") if "gpus" in d else None,
                      tuple(sorted((str(k), _number(v, f"{where}.resources.{k}"))
                                   for k, v in resources.items())))


def load_plan(path: str | Path) -> Plan:
    """Read and check a plan; every error names the file and the field."""
    from latency_lab.network.presets import load_network
    from latency_lab.measure.protocol import Protocol
    from latency_lab.sweeps.run import parse_resolutions

    path = Path(path)
    try:
        d = tomllib.loads(path.read_text())
    except OSError as exc:
        raise PlanError(f"cannot read plan {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"plan {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise PlanError(f"plan {path} is nested too deeply to be a plan") from None
    unknown = set(d) - TOP_KEYS
    if unknown:
        raise PlanError(f"plan {path}: unknown key {sorted(unknown)[0]!r} (known: "
                        f"{', '.join(sorted(TOP_KEYS))})")
    for key in ("networks", "resolutions", "devices"):
        if not d.get(key):
            raise PlanError(f"plan {path} needs {key}")
    nets = _texts(d["networks"], f"plan {path}: networks", "preset names or network files")
    ranges = _texts(d["resolutions"], f"plan {path}: resolutions", "ranges, lists or "
                    "resolutions", numbers=True)
    for key in ("out", "host_store_dir"):
        if key in d and not isinstance(d[key], str):
            raise PlanError(f"plan {path}: {key} must be a path as text, got {d[key]!r}")
    networks = []
    for i, name in enumerate(nets):
        local = path.parent / str(name)
        try:
            networks.append(load_network(str(local) if local.is_file() else str(name)))
        except UserError as exc:
            raise PlanError(f"plan {path}: networks[{i}]: {exc}") from None
    _unique([n.name for n in networks], f"plan {path}: two networks", "named")
    grid: set[int] = set()
    for i, text in enumerate(ranges):
        try:
            grid.update(parse_resolutions(str(text)))
        except UserError as exc:
            raise PlanError(f"plan {path}: resolutions[{i}]: {exc}") from None
    devices = tuple(_device(str(label), v, f"plan {path}: devices.{label}")
                    for label, v in _table(d["devices"], f"plan {path}: devices").items())
    _unique([dev.label for dev in devices], f"plan {path}: two devices", "labelled")
    try:
        protocol = Protocol(**_table(d.get("protocol", {}), f"plan {path}: protocol"))
    except TypeError as exc:
        raise PlanError(f"plan {path}: protocol: {exc}") from None
    except UserError as exc:
        raise PlanError(f"plan {path}: protocol: {exc}") from None
    out = d.get("out")
    return Plan(path, tuple(networks), tuple(sorted(grid)), devices, protocol,
                path.parent / out if out else None, d.get("host_store_dir"))


def _texts(value: Any, where: str, what: str, numbers: bool = False) -> list:
    """A TOML string (or, with `numbers`, an integer) or a list of them, as a list."""
    ok = (str, int) if numbers else (str,)
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, bool) or not isinstance(v, ok):
            raise PlanError(f"{where} must be {what}: text{' or integers' if numbers else ''}, "
                            f"or a list of them; got {v!r:.60}")
    return items


def _unique(names: list[str], where: str, verb: str) -> None:
    """Names become file names (`fileio.safe_name`): two that are, or become, one are
    refused (their CSVs would overwrite each other)."""
    from latency_lab.fileio import safe_name

    seen: dict[str, str] = {}
    for name in names:
        if names.count(name) > 1:
            raise PlanError(f"{where} are {verb} {name!r}")
        other = seen.setdefault(safe_name(name), name)
        if other != name:
            raise PlanError(f"{where} are {verb} {other!r} and {name!r}, which are one file "
                            f"name, {safe_name(name)!r}: rename one")


def check_plan(plan: Plan, out: Path) -> None:
    """Everything the plan's sweeps will need, before any is run: every device's driver and
    its options (converted as they will be), and the CSV folder."""
    from latency_lab.fileio import check_output_dir

    for dev in plan.devices:
        try:
            dev.check()
        except UserError as exc:
            raise PlanError(f"plan {plan.path}: devices.{dev.label}: {exc}") from None
    check_output_dir(out, "plan output folder")


def check_devices(plan: Plan, open_here: bool) -> list[str]:
    """Every device of the plan, checked before any sweep starts: its driver is known and its
    options are the driver's (names and types); with `open_here` (the sweeps run on this
    machine) its extras are installed and it opens (a phone answers, a GPU is there), and is
    closed again. Returns one line per device (driver, hardware); the first problem is a
    PlanError naming the plan and the device. On Ray a device opens on its own host, which may
    have what this one lacks, so only driver and options are checked here (`DeviceSpec.check`,
    as `check_plan` does)."""
    from latency_lab.measure.api import get_device

    lines = []
    for dev in plan.devices:
        where = f"plan {plan.path}: devices.{dev.label}"
        try:
            dev.check()
            if not open_here:
                lines.append(f"{dev.label}: driver {dev.driver} (opened on its host)")
                continue
            device = get_device(dev.driver, **dict(dev.options))
            try:
                info = device.info()
            finally:
                device.close()
        except UserError as exc:
            raise PlanError(f"{where}: {exc}") from None
        lines.append(f"{dev.label}: {info.name} on {info.hardware}, {info.runtime} "
                     f"{info.runtime_version}")
    return lines


def plan_jobs(plan: Plan) -> list[SweepJob]:
    """One sweep per (device, network), devices in plan order, networks in plan order."""
    return [SweepJob(dev, net, plan.resolutions) for dev in plan.devices for net in plan.networks]


# -- running -----------------------------------------------------------------------------------
def _sweep_device(task: tuple) -> list[tuple[int, list, str | None, dict]]:
    """All sweeps of one device in this process, into the shared store: the unit a local
    executor runs. Returns (job index, measurements, error or None, where) per sweep."""
    from latency_lab.scaleout.device_actor import DeviceHost

    device, jobs, protocol, store_path, remeasure = task
    try:
        host = DeviceHost(device, store_path=store_path)
    except UserError as exc:     # the device cannot be opened: every sweep on it fails
        return [(index, [], f"cannot open device {device.label}: {exc}", {}) for index, _ in jobs]
    out = []
    try:
        where = host.where()
        for index, job in jobs:
            try:
                ms, _ = host.measure([(job.network, r) for r in job.resolutions], protocol,
                                     remeasure)
                out.append((index, ms, None, where))
            except UserError as exc:
                out.append((index, [], str(exc), where))
    finally:
        host.close()
    return out


def run_plan(plan: Plan, executor, store, out: Path, remeasure: bool = False,
             on_done: Callable[[SweepOutcome], None] | None = None) -> list[SweepOutcome]:
    """Run every sweep of the plan; `on_done(outcome)` as each sweep finishes (after its CSV
    is written and, on Ray, its samples merged into `store`). Failed sweeps are outcomes with
    an error; the others still run."""
    jobs = plan_jobs(plan)
    outcomes: list[SweepOutcome | None] = [None] * len(jobs)

    def finish(i: int, ms: list, error: str | None, host: str, merged: int = 0) -> None:
        from latency_lab.sweeps.run import to_frame, write_csv

        o = SweepOutcome(jobs[i], ms, error, host, merged)
        if error is None:
            o.csv = write_csv(to_frame(ms), jobs[i].csv_path(out))
        outcomes[i] = o
        if on_done:
            on_done(o)

    if executor.spec.is_ray:
        from latency_lab.scaleout.plan_ray import run_jobs_on_ray

        run_jobs_on_ray(executor.ray, jobs, plan, store, remeasure, finish)
    else:
        by_device: dict[str, tuple[DeviceSpec, list]] = {}
        for i, job in enumerate(jobs):
            by_device.setdefault(job.device.label, (job.device, []))[1].append((i, job))
        tasks = [(dev, js, plan.protocol, str(store.path), remeasure)
                 for dev, js in by_device.values()]
        for _, results in executor.map_unordered(_sweep_device, tasks):
            for i, ms, error, where in results:
                finish(i, ms, error, where.get("host", ""))
    return [o for o in outcomes if o is not None]


__all__ = ["Plan", "PlanError", "SweepJob", "SweepOutcome", "check_devices", "check_plan",
           "load_plan", "plan_jobs", "run_plan"]
