"""Android device profiles as plain data: which cores to pin to and where things live.

A profile names the CPU affinity mask handed to `taskset` (hex, as Android's toybox taskset
takes it), the CPU ids that mask selects (their governor and frequencies are recorded), the
default thread count, and optionally the benchmark binary on the host. Users pick one by
driver name (`pixel2`) or pass `profile=` / `mask=` options to the generic `android` driver.

Sources: Pixel 2 (Snapdragon 835, 4 little cores 0-3 + 4 big cores 4-7): mask `f0` is the one
given for "big cores on Pixel 2" in tensorflow/lite/tools/benchmark/README.md ("Reducing
variance between runs on Android"); the thesis ran one thread on the big cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AndroidProfile:
    name: str
    mask: str = ""                     # taskset mask (hex), "" = not pinned
    cpus: tuple[int, ...] = ()         # CPU ids selected by `mask`
    threads: int = 1
    binary: str = ""                   # host path of benchmark_model; "" = option/env/none
    remote_dir: str = "/data/local/tmp/latency_lab"
    extra: dict = field(default_factory=dict)


PROFILES: dict[str, AndroidProfile] = {
    "pixel2": AndroidProfile("pixel2", mask="f0", cpus=(4, 5, 6, 7), threads=1,
                             extra={"soc": "Snapdragon 835"}),
    "android": AndroidProfile("android"),
}


def mask_cpus(mask: str) -> tuple[int, ...]:
    """'f0' -> (4, 5, 6, 7); ValueError for a mask that is not hexadecimal."""
    value = int(mask, 16)
    return tuple(i for i in range(value.bit_length()) if value >> i & 1)


def get_profile(name: str) -> AndroidProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown Android profile {name!r}; known: {', '.join(PROFILES)}") from None
