"""How samples are taken on a noisy machine: the measurement protocol and its loop.

The host (and a throttling phone) drifts by tens of percent over tens of seconds, so a point
measured all at once is biased by whatever the machine did then. Instead, every point of a
sweep is visited once per *round*, in a freshly shuffled order, taking `runs_per_visit`
samples after `warmup_per_visit` unrecorded runs; drift then hits every point alike. Rounds
repeat until each point's 95% CI half-width of the median is under `ci_target_pct` of the
median (after at least `min_rounds`), or a cap is hit; each point records why it stopped.

Every visit's samples are committed to the store before the next visit, so an interrupted run
loses at most one visit; `measure_points` resumes open measurements and reuses finished ones.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from latency_lab.measure import Device, Measurement
from latency_lab.spec import NetworkSpec
from latency_lab.store import Store


@dataclass(frozen=True)
class Protocol:
    runs_per_visit: int = 8
    warmup_per_visit: int = 1     # after the interpreter switched to another point
    warmup_first_visit: int = 3   # the first visit of a point in this process
    min_rounds: int = 8
    max_rounds: int = 100
    ci_target_pct: float = 1.0    # stop a point at CI half-width <= this % of its median
    time_cap_s: float = 900.0     # for the whole call; unfinished points stop as "time_cap"
    confidence: float = 0.95
    seed: int = 0                 # visiting order of each round

    def __post_init__(self) -> None:
        if self.runs_per_visit < 1 or self.min_rounds < 1 or self.max_rounds < self.min_rounds:
            raise ValueError("protocol needs runs_per_visit >= 1 and 1 <= min_rounds <= max_rounds")
        if self.ci_target_pct <= 0 or self.time_cap_s <= 0:
            raise ValueError("protocol needs a positive CI target and time cap")

    def to_dict(self) -> dict:
        return asdict(self)


Point = tuple[NetworkSpec, int]
Progress = Callable[[int, int, float], None]  # (points finished, points total, elapsed s)


@dataclass
class _State:
    spec: NetworkSpec
    resolution: int
    measurement_id: int
    samples: list[float]
    rounds: list[int]
    visited: bool = False
    facts: dict = field(default_factory=dict)  # merged facts of every visit (as in the store)

    def measurement(self, device_info, reason: str, confidence: float) -> Measurement:
        return Measurement(context=device_info, network=self.spec.name,
                           fingerprint=self.spec.fingerprint, resolution=self.resolution,
                           samples_ms=tuple(self.samples), rounds=tuple(self.rounds),
                           stop_reason=reason, confidence=confidence, facts=dict(self.facts))


def measure_points(device: Device, points: Sequence[Point], store: Store,
                   protocol: Protocol = Protocol(), remeasure: bool = False,
                   progress: Progress | None = None) -> list[Measurement]:
    """Measure every (network, resolution) point, interleaved; results in input order."""
    info = device.info()
    results: dict[int, Measurement] = {}
    active: dict[int, _State] = {}
    for i, (spec, res) in enumerate(points):
        latest = store.latest(info.context_key, spec.fingerprint, res)
        if latest and not remeasure:
            mid, status = latest
            if status == "done":
                results[i] = store.measurement(mid)
                continue
            samples, rounds = store.samples(mid)
            facts = dict(store.measurement(mid).facts)
        else:
            mid = store.open_measurement(info, spec, res, protocol.to_dict())
            samples, rounds, facts = [], [], {}
        active[i] = _State(spec, res, mid, samples, rounds, facts=facts)

    by_network: dict[str, tuple[NetworkSpec, list[int]]] = {}
    for st in active.values():
        by_network.setdefault(st.spec.fingerprint, (st.spec, []))[1].append(st.resolution)
    for spec, resolutions in by_network.values():
        device.prepare(spec, resolutions)

    rng = random.Random(protocol.seed)
    start = time.monotonic()
    total = len(points)
    if progress:
        progress(len(results), total, 0.0)

    def finish(i: int, reason: str) -> None:
        st = active.pop(i)
        store.finish(st.measurement_id, reason)
        results[i] = st.measurement(info, reason, protocol.confidence)
        if progress:
            progress(len(results), total, time.monotonic() - start)

    while active:
        order = list(active)
        rng.shuffle(order)
        for i in order:
            if time.monotonic() - start > protocol.time_cap_s:
                for j in list(active):
                    finish(j, "time_cap")
                break
            st = active[i]
            warmup = protocol.warmup_per_visit if st.visited else protocol.warmup_first_visit
            run = device.sample(st.spec, st.resolution, protocol.runs_per_visit, warmup)
            round_index = (max(st.rounds) + 1) if st.rounds else 0
            facts = {**run.facts, **({"summary_only": True} if run.summary_only else {})}
            store.add_samples(st.measurement_id, round_index, run.samples_ms, facts)
            st.facts.update(facts)
            st.samples.extend(run.samples_ms)
            st.rounds.extend([round_index] * len(run.samples_ms))
            st.visited = True
            n_rounds = round_index + 1
            if n_rounds >= protocol.min_rounds:
                stats = st.measurement(info, "", protocol.confidence).stats
                if 100 * stats.ci_halfwidth_rel <= protocol.ci_target_pct:
                    finish(i, "ci_target")
                elif n_rounds >= protocol.max_rounds:
                    finish(i, "max_rounds")
    return [results[i] for i in range(total)]
