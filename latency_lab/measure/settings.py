"""The measurement protocol's settings and their defaults, declared once.

Plain data that imports nothing heavy, so the command line reads its defaults from here
(`--help` must not pull in numpy and scipy) and every command shows the same numbers.
`protocol.py` runs the loop these settings describe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from latency_lab.errors import UserError, check_number


class ProtocolError(UserError):
    """Protocol settings that cannot work (a user error: the CLI prints it in one line)."""


@dataclass(frozen=True)
class Protocol:
    runs_per_visit: int = 8
    # unrecorded runs after the device switched to another point; None: after another
    # resolution of the same network the device's own `warmup_after_switch` (1, except where a
    # driver measured that it buys nothing: cpu 0), after another network 1
    warmup_per_visit: int | None = None
    warmup_first_visit: int = 3   # the first visit of a point in this process
    min_rounds: int = 8
    max_rounds: int = 100
    ci_target_pct: float = 1.0    # stop a point at CI half-width <= this % of its median
    time_cap_s: float = 900.0     # for the whole call; unfinished points stop as "time_cap"
    confidence: float = 0.95
    seed: int = 0                 # visiting order of each round
    # A visit lasts at least this long where samples are cheap: more runs per warm-up (see
    # protocol._Run.visit). 0: always `runs_per_visit`.
    min_visit_s: float = 0.0

    def __post_init__(self) -> None:
        if self.runs_per_visit < 1 or self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise ProtocolError("protocol needs runs_per_visit >= 1 and 1 <= min_rounds <= max_rounds")
        if self.warmup_per_visit is not None and (isinstance(self.warmup_per_visit, bool)
                                                  or not isinstance(self.warmup_per_visit, int)
                                                  or not 0 <= self.warmup_per_visit <= 100):
            raise ProtocolError(f"warmup_per_visit must be an integer from 0 to 100 (or unset: "
                                f"the device's choice), got {self.warmup_per_visit!r}")
        check_number(self.ci_target_pct, "--ci-target-pct", 0, 100, "a CI half-width in % of "
                     "the median", ProtocolError, low_open=True)
        check_number(self.time_cap_s, "--time-cap-s", 0, None, "seconds; inf for no cap",
                     ProtocolError, low_open=True, allow_inf=True)
        check_number(self.min_visit_s, "min_visit_s", 0, 60, "seconds a visit lasts at least",
                     ProtocolError)
        if not 0 < self.confidence < 1:   # also false for NaN
            raise ProtocolError(f"confidence must lie strictly between 0 and 1, got {self.confidence}")

    def to_dict(self) -> dict:
        """JSON-safe (the store and LUT files keep it): no time cap (inf) is None. JSON has no
        infinity, and `lut record --time-cap-s inf` failed at its very end (issue 25)."""
        d = asdict(self)
        if d["time_cap_s"] == float("inf"):
            d["time_cap_s"] = None
        return d


# A network sweep or a live search: what `Protocol()` gives.
NETWORK_PROTOCOL = Protocol()
# The blocks of a lookup table (`lut record`): thousands of short models, each a small part of
# a network's latency, so a wider CI target and fewer rounds, with more samples per visit
# (a block runs in well under a millisecond; the visit's switch costs more than its samples).
BLOCK_PROTOCOL = Protocol(runs_per_visit=10, min_rounds=5, max_rounds=30, ci_target_pct=2.0)


def protocol_from(base: Protocol, ci_target_pct: float | None = None,
                  min_rounds: int | None = None, max_rounds: int | None = None,
                  runs_per_visit: int | None = None, time_cap_s: float | None = None) -> Protocol:
    """`base` with the options a user gave (None: keep the base's). `--max-rounds N` below the
    base's minimum, with the minimum left as it was, lowers the minimum to N: asking for at
    most 3 rounds means 3 rounds."""
    given = {"ci_target_pct": ci_target_pct, "min_rounds": min_rounds, "max_rounds": max_rounds,
             "runs_per_visit": runs_per_visit, "time_cap_s": time_cap_s}
    given = {k: v for k, v in given.items() if v is not None}
    if "max_rounds" in given and given.get("min_rounds", base.min_rounds) == base.min_rounds:
        given["min_rounds"] = min(base.min_rounds, given["max_rounds"])
    return Protocol(**{**asdict(base), **given})
