"""How samples are taken on a noisy machine: the measurement protocol and its loop.

The host (and a throttling phone) drifts by tens of percent over tens of seconds, so a point
measured all at once is biased by whatever the machine did then. Instead, every point of a
sweep is visited once per *round*, in a freshly shuffled order, taking `runs_per_visit`
samples after `warmup_per_visit` unrecorded runs (unset: after another resolution of the same
network, for runs of 10 ms or more, the device's `warmup_after_switch`, 0 for the cpu device;
else 1); drift then hits every point alike. Rounds
repeat until each point's 95% CI half-width of the median is under `ci_target_pct` of the
median (after at least `min_rounds`), or a cap is hit; each point records why it stopped.

After each round the machine's common-mode drift is fitted over all visits of the run and
divided out of each point's samples before its CI is judged (`drift.py`; needs at least 8
points, so a sweep gets it and a single network does not). Raw samples are kept as taken;
the CSV gives both the corrected median (`latency_ms`) and the raw one (`raw_median_ms`).

Every visit's samples are committed to the store before the next visit, with the host's load
average then, so an interrupted run loses at most one visit; `measure_points` resumes open
measurements, reuses finished ones that meet this protocol (its CI target after its minimum
rounds, or its maximum rounds) and goes on measuring the ones that fall short of it (an
earlier run with fewer rounds, a wider target, a time cap: the cap is the run's limit, not the
point's answer). A reused measurement says so (`Measurement.reused`, `conditions()`).

The time cap holds between any two visits, also in the first round: a point's first visit in a
process may cost seconds of set-up (`Device.setup`: on a GPU, cuDNN autotuning and warm-up of a
new input shape: 0.7 to 3.5 s per shape at batch 256 on an H100, results/cuda/, against 0.2 s
of measured runs), so a sweep of 61 new shapes can spend minutes before its first round ends.
Points not reached stop as "time_cap" with no samples (their store entries stay open and resume
on the next run); the set-up time of each point is kept as its `setup_s`. An interruption
(Ctrl-C, or SIGTERM where the caller maps it) raises `Interrupted`, which carries every point
as far as it got, so the caller can still write them.

A caller may choose, before each round, which open points it visits, or stop them all
(`planner`, a `RoundPlan` per round: a sweep measures where its jump decision is uncertain,
`latency_lab.sweeps.adaptive`); the drift fit works on such partial rounds as on full ones
(its window is counted in visits, which cost about the same time whichever points they are).

After every round (and while a point is being set up) the caller's `progress` gets a
`RunStatus`: rounds so far, the open points' current CI half-widths, an estimate of the time
left (each open point needs about n * (CI / target)^2 rounds, since a CI narrows as
1/sqrt(rounds); visits cost what they have cost so far) and what happens now (`note`).
"""

from __future__ import annotations

import logging
import math
import os
import random
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from latency_lab.measure import lease
from latency_lab.measure.drift import drift_factors
from latency_lab.errors import UserError
from latency_lab.measure.api import Device, Measurement, ReplayDevice
from latency_lab.measure.settings import Protocol, ProtocolError  # noqa: F401  (re-exported)
from latency_lab.network.spec import NetworkSpec
from latency_lab.measure.store import Store


log = logging.getLogger(__name__)


Point = tuple[NetworkSpec, int]
MAX_RUNS_PER_VISIT = 200      # a block of a LUT runs in microseconds: a visit stays bounded
# A device's `warmup_after_switch` (no warm-up after a resize) applies to runs at least this
# long. The first run after a resize costs a fixed extra: on a 0.07-0.18 ms tiny network +0.03
# to +0.06 ms (+40-70%, a CI of +-22% where the warm-up gave +-4%), on EfficientNet-B0's
# 24-135 ms runs nothing measurable (first run / the visit's others 0.996-1.001).
NO_WARMUP_MIN_MS = 10.0


@dataclass(frozen=True)
class RunStatus:
    """Where a `measure_points` call stands, handed to its `progress` callback."""

    done: int                     # points finished (reused ones included)
    total: int
    elapsed_s: float              # since the clock started (after preparing the networks)
    rounds: int                   # rounds of visits run in this call
    ci_pct: float | None          # median CI half-width (% of median) of the open points
    worst_ci_pct: float | None    # the widest of them
    target_pct: float
    eta_s: float | None           # estimated seconds left (None before the first round)
    time_cap_s: float
    reused: int = 0               # finished points taken from the store as they were
    resumed: int = 0              # open or time-capped points measured further
    note: str = ""                # what happens now ("setting up 224 px"), or ""
    met: int = 0                  # finished points that met the CI target (reused ones too)
    prior_rounds: int = 0         # rounds the resumed points had from earlier runs (the most)
    kept_samples: int = 0         # samples of the resumed points kept from earlier runs

    @property
    def round_label(self) -> str:
        """The round the points are in: a resumed sweep goes on counting where it stopped."""
        if not self.prior_rounds:
            return str(self.rounds)
        return f"{self.prior_rounds + self.rounds} ({self.prior_rounds} before this run)"

    @property
    def capped_eta(self) -> bool:
        """True when the estimate runs into the time cap (the cap will end the run)."""
        return self.eta_s is not None and self.elapsed_s + self.eta_s >= self.time_cap_s


Progress = Callable[[RunStatus], None]


@dataclass(frozen=True)
class RoundPlan:
    """What a caller's planner wants of the next round: visit only the open points `visit`
    (indices into the points; None or none of them open: all), or, with `stop`, stop every
    open point with that reason (e.g. "decided"). `note` is shown with the progress."""

    visit: frozenset[int] | None = None
    stop: str = ""
    note: str = ""


# planner({index: the point's measurement so far} for every finished or open point, indices of
# the open points) -> RoundPlan; called after every round's judgement, before its visits.
Planner = Callable[[dict[int, Measurement], frozenset[int]], RoundPlan]


def ci_met(m: Measurement, protocol: Protocol) -> bool:
    """Did a measurement reach `protocol`'s CI target after at least its minimum rounds?"""
    return (m.n_rounds >= protocol.min_rounds
            and 100 * m.stats.ci_halfwidth_rel <= protocol.ci_target_pct)


def meets(m: Measurement, protocol: Protocol) -> bool:
    """Does a finished measurement meet what `protocol` asks: its CI target after at least its
    minimum rounds, or all of its maximum rounds? (What may be reused as it is.)"""
    if not m.measured or m.recorded is not None:
        return False
    return m.n_rounds >= protocol.max_rounds or ci_met(m, protocol)


def host_load() -> float | None:
    """The host's 1-minute load average now (None where the OS does not say)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


class Interrupted(KeyboardInterrupt):
    """A measurement interrupted from outside; `measurements` holds every point as far as it
    got (stop reason "interrupted" for the open ones; their store entries stay open)."""

    def __init__(self, measurements: list[Measurement]):
        super().__init__("interrupted")
        self.measurements = measurements


@dataclass
class _State:
    spec: NetworkSpec
    resolution: int
    measurement_id: int
    samples: list[float]
    rounds: list[int]
    times: list[float]
    drift: list[float]
    visited: bool = False
    facts: dict = field(default_factory=dict)  # merged facts of every visit (as in the store)
    loads: list[float] = field(default_factory=list)   # host load average at each visit

    def measurement(self, device_info, reason: str, confidence: float) -> Measurement:
        corrected = any(d != 1.0 for d in self.drift)
        return Measurement(context=device_info, network=self.spec.name,
                           fingerprint=self.spec.fingerprint, resolution=self.resolution,
                           samples_ms=tuple(self.samples), rounds=tuple(self.rounds),
                           stop_reason=reason, confidence=confidence, facts=dict(self.facts),
                           drift=tuple(self.drift) if corrected else (),
                           taken=(min(self.times), max(self.times)) if self.times else None,
                           times=tuple(self.times),
                           load=(min(self.loads), max(self.loads)) if self.loads else None,
                           measurement_id=self.measurement_id)

    def visits(self):
        """(round, time, median ms) of every visit."""
        by_round: dict[int, list] = {}
        for s, r, t in zip(self.samples, self.rounds, self.times):
            by_round.setdefault(r, [t, []])[1].append(s)
        return [(r, t, statistics.median(v)) for r, (t, v) in by_round.items()]


def _correct_drift(states: list[_State], open_states: list[_State], store: Store) -> None:
    """Fit the machine's drift over all visits of `states` (see drift.py) and apply it to the
    points still open; a finished point keeps the factors it was judged and reported with."""
    ids, rounds, times, medians = [], [], [], []
    for k, st in enumerate(states):
        for r, t, m in st.visits():
            ids.append(k), rounds.append(r), times.append(t), medians.append(m)
    factors = drift_factors(ids, times, medians)
    by_visit = {(k, r): f for k, r, f in zip(ids, rounds, factors)}
    updates = []
    for k, st in enumerate(states):
        if any(st is o for o in open_states):
            st.drift = [by_visit[(k, r)] for r in st.rounds]
            updates.extend((st.measurement_id, r, by_visit[(k, r)]) for r in set(st.rounds))
    store.set_drift(updates)


def measure_points(device: Device, points: Sequence[Point], store: Store | None,
                   protocol: Protocol = Protocol(), remeasure: bool = False,
                   progress: Progress | None = None,
                   planner: Planner | None = None, fresh: bool = False) -> list[Measurement]:
    """Measure every (network, resolution) point, interleaved; results in input order.
    A replay device's points are its recorded measurements, as recorded (no store needed).
    `remeasure`: a new measurement of every point; `fresh`: no finished measurement is
    reused (a new one is opened), but an open one, left by an interrupted run, is resumed
    (what a latency scale's batch asks: `scale.py`).

    Three phases: `_Run.open` takes each point from the store (finished: reused; open:
    resumed; else a new measurement), `device.prepare` converts or loads each network once,
    and the rounds loop (`_Run.judge` then `_Run.visit` per point, shuffled) runs until every
    point has stopped. Points that another running process is measuring are left to it and
    collected at the end (`_Run.collect_held`); what was taken over from a process that is
    gone goes through the phases again. Leases are given back however the call ends.
    """
    if isinstance(device, ReplayDevice):
        return [device.recorded(spec, res) for spec, res in points]
    run = _Run(device, store, protocol, progress, fresh)
    try:
        run.open(points, remeasure)
        while run.active or run.held:
            run.prepare()
            rng = random.Random(protocol.seed)
            capped = False
            while run.active:
                run.judge(stop_all="time_cap" if capped else None)
                order = run.plan(planner)
                rng.shuffle(order)
                for i in order:
                    # between any two visits, also before a first visit's set-up
                    if run.elapsed() > protocol.time_cap_s:
                        capped = True
                        break
                    run.visit(i)
            run.collect_held()
    except KeyboardInterrupt:
        run.release(everything=True)
        raise Interrupted(run.partial()) from None
    finally:
        run.release()
    if run.rounds == 0:    # everything came from the store: say so once
        run._report()
    return [run.results[i] for i in range(run.total)]


class _Run:
    """The state of one `measure_points` call: open points, finished results, timing."""

    def __init__(self, device: Device, store: Store, protocol: Protocol,
                 progress: Progress | None, fresh: bool = False):
        self.device, self.store, self.protocol, self.progress = device, store, protocol, progress
        self.fresh = fresh
        self.info = device.info()
        self.results: dict[int, Measurement] = {}
        self.active: dict[int, _State] = {}
        self.held: dict[int, tuple[Point, int]] = {}   # another process measures these
        self._holders: dict = {}
        self.leased: set[int] = set()                  # measurement ids this call holds
        self.measured: list[_State] = []   # every point measured in this call, for the drift fit
        self.total = 0
        self.start = time.monotonic()
        self.setup_s = 0.0          # time spent in Device.setup in this call
        self.rounds = 0
        self.visits = 0
        self._last_spec = None    # the network of the last visit (which warm-up a switch needs)
        self.reused = self.resumed = 0
        self.met = 0                         # finished at the CI target (reused ones too)
        self.prior_rounds = self.kept_samples = 0   # what resumed points bring from the store
        self.ci_pct: dict[int, float] = {}   # current CI half-width % of each open point

    def _reusable(self, measurement_id: int) -> bool | str:
        """A finished measurement is taken as it is when it meets this protocol; one that
        falls short of it is measured further; with `fresh`, a new one is opened ("new")."""
        if self.fresh:
            return "new"
        return meets(self.store.measurement(measurement_id), self.protocol)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def partial(self) -> list[Measurement]:
        """Every point as far as it got, the open ones marked "interrupted" (not finished in
        the store, so a new run resumes them)."""
        out = dict(self.results)
        for i, st in self.active.items():
            out[i] = st.measurement(self.info, "interrupted", self.protocol.confidence)
        return [out[i] for i in sorted(out)]

    def open(self, points: Sequence[Point], remeasure: bool) -> None:
        """Reuse finished measurements, resume open ones, open the rest; each open one is
        leased to this process in the store (`lease.claim`), and one that a running process
        holds is left to it."""
        self.total = len(points)
        for i, (spec, res) in enumerate(points):
            claim = lease.claim(self.store, self.info, spec, res, self.protocol.to_dict(),
                                remeasure, reuse=self._reusable)
            self._take(i, (spec, res), claim)
        self.measured = list(self.active.values())
        if self.held:
            owners = sorted({c.describe() for c in self._holders.values()})
            log.warning("%d of %d points are being measured by %s; measuring the other %d, "
                        "then waiting for those", len(self.held), self.total, ", ".join(owners),
                        len(self.active))

    def _take(self, i: int, point: Point, claim) -> None:
        spec, res = point
        mid = claim.measurement_id
        if claim.status == "done":
            self.results[i] = replace(self.store.measurement(mid), reused=True)
            self.reused += 1
            self.met += ci_met(self.results[i], self.protocol)
        elif claim.status == "held":
            self.held[i] = (point, mid)
            self._holders[i] = claim.holder
        else:
            self.leased.add(mid)
            self.resumed += claim.status == "resume"
            samples, rounds, times, drift = self.store.samples(mid)
            before = self.store.measurement(mid) if samples else None
            if samples:
                self.kept_samples += len(samples)
                self.prior_rounds = max(self.prior_rounds, len(set(rounds)))
            self.active[i] = _State(spec, res, mid, samples, rounds, times, drift,
                                    facts=dict(before.facts) if before else {},
                                    loads=list(before.load) if before and before.load else [])

    def collect_held(self, poll_s: float = 1.0, say_every_s: float = 60.0) -> None:
        """Wait for the points another process holds: reuse each once it is finished, take
        over (and measure, through the phases again) each whose owner is gone."""
        said = time.monotonic()
        while self.held:
            for i, (point, mid) in list(self.held.items()):
                claim = lease.reclaim(self.store, mid)
                if claim.status != "held":
                    del self.held[i], self._holders[i]
                    self._take(i, point, claim)
                    if claim.status == "resume":
                        self.measured.append(self.active[i])
                        log.warning("took over %s at %d from a process that is gone",
                                    point[0].name, point[1])
            if self.active or not self.held:
                return
            if time.monotonic() - said > say_every_s:
                said = time.monotonic()
                log.warning("still waiting for %d point(s) that %s measure(s)", len(self.held),
                            ", ".join(sorted({c.describe() for c in self._holders.values()})))
            time.sleep(poll_s)

    def release(self, everything: bool = False) -> None:
        """Give back every lease this call took (it ends: normally, by an error, by Ctrl-C);
        `everything`: every lease of this process (it stops on a signal, and one claimed the
        moment the signal came may not be in `leased` yet)."""
        try:
            lease.release(self.store, self.leased)
            if everything:
                lease.release_all_mine(self.store)
        except UserError:
            pass   # the store is unusable (full disk): the lease goes when this process does

    def prepare(self) -> None:
        """One `device.prepare` per network with all its open resolutions; the clock starts after."""
        by_network: dict[str, tuple[NetworkSpec, list[int]]] = {}
        for st in self.active.values():
            by_network.setdefault(st.spec.fingerprint, (st.spec, []))[1].append(st.resolution)
        for spec, resolutions in by_network.values():
            self.device.prepare(spec, resolutions)
        self.start = time.monotonic()

    def judge(self, stop_all: str | None = None) -> None:
        """Fit the drift, then stop the points that reached the CI target or max rounds (and
        every open point with reason `stop_all`, when given)."""
        p = self.protocol
        _correct_drift(self.measured, list(self.active.values()), self.store)
        for i in list(self.active):
            st = self.active[i]
            n_rounds = len(set(st.rounds))
            if n_rounds >= min(2, p.min_rounds):
                stats = st.measurement(self.info, "", p.confidence).stats
                self.ci_pct[i] = 100 * stats.ci_halfwidth_rel
            if n_rounds >= p.min_rounds:
                if self.ci_pct[i] <= p.ci_target_pct:
                    self._finish(i, "ci_target")
                elif n_rounds >= p.max_rounds:
                    self._finish(i, "max_rounds")
        if stop_all:
            for i in list(self.active):
                self._finish(i, stop_all)
        self.store.checkpoint()   # once per round, after the drift rewrite: the WAL stays small
        self._report()
        self.rounds += 1

    def plan(self, planner: Planner | None) -> list[int]:
        """The open points the next round visits: all, or those the planner picks; a planner's
        `stop` finishes every open point with its reason."""
        order = list(self.active)
        if planner is None or not order:
            return order
        p = self.protocol
        now = dict(self.results)
        now.update((i, st.measurement(self.info, "", p.confidence))
                   for i, st in self.active.items())
        plan = planner(now, frozenset(order))
        if plan.stop:
            for i in order:
                self._finish(i, plan.stop)
            self._report(plan.note)
            return []
        chosen = [i for i in order if plan.visit is None or i in plan.visit]
        if plan.note:
            self._report(plan.note)
        return chosen or order

    def status(self, note: str = "") -> RunStatus:
        p = self.protocol
        cis = [self.ci_pct[i] for i in self.active if i in self.ci_pct]
        eta = None
        if self.visits:
            left = sum(self._rounds_left(i) for i in self.active)
            eta = min(left * self.elapsed() / self.visits, max(0.0, p.time_cap_s - self.elapsed()))
        return RunStatus(len(self.results), self.total, self.elapsed(), self.rounds,
                         statistics.median(cis) if cis else None, max(cis) if cis else None,
                         p.ci_target_pct, eta, p.time_cap_s, self.reused, self.resumed, note,
                         self.met, self.prior_rounds, self.kept_samples)

    def _rounds_left(self, i: int) -> int:
        """Rounds point i still needs: a CI narrows as 1/sqrt(rounds)."""
        p, st = self.protocol, self.active[i]
        n = len(set(st.rounds))
        need = p.min_rounds
        if i in self.ci_pct and n:
            need = max(need, math.ceil(n * (self.ci_pct[i] / p.ci_target_pct) ** 2))
        return max(1, min(need, p.max_rounds) - n)

    def visit(self, i: int) -> None:
        """One visit of point i: on the first, the device's set-up of the point (timed,
        shown); then warm-up, `runs_per_visit` samples, committed to the store."""
        st, p = self.active[i], self.protocol
        setup = {} if st.visited else self._setup(st)
        warmup = (self._switch_warmup(st) if st.visited else p.warmup_first_visit)
        run = self.device.sample(st.spec, st.resolution, self._runs(st), warmup)
        self._last_spec = st.spec
        round_index = (max(st.rounds) + 1) if st.rounds else 0
        facts = {**setup, **run.facts, **({"summary_only": True} if run.summary_only else {})}
        load, now = host_load(), time.time()
        self.store.add_samples(st.measurement_id, round_index, run.samples_ms, facts, load, now)
        st.facts.update(facts)
        if load is not None:
            st.loads.append(load)
        n = len(run.samples_ms)
        st.samples.extend(run.samples_ms)
        st.rounds.extend([round_index] * n)
        st.times.extend([now] * n)     # the store's time, so a reused point pairs as it did
        st.drift.extend([1.0] * n)
        st.visited = True
        self.visits += 1

    def _switch_warmup(self, st: _State) -> int:
        """Unrecorded runs after a switch: the protocol's `warmup_per_visit` when set; else,
        after another resolution of the same network and where the point's runs take at least
        `NO_WARMUP_MIN_MS`, the device's `warmup_after_switch` (what was measured: a sweep's
        resize); after another network (other weights, a search's or a LUT's switch), for
        cheaper runs, or on a wrapper without the attribute, 1."""
        w = self.protocol.warmup_per_visit
        if w is not None:
            return w
        last, spec = self._last_spec, st.spec
        same = last is spec or (last is not None and getattr(last, "fingerprint", None)
                                == getattr(spec, "fingerprint", ""))
        recent = st.samples[-self.protocol.runs_per_visit:]
        costly = bool(recent) and statistics.median(recent) >= NO_WARMUP_MIN_MS
        return int(getattr(self.device, "warmup_after_switch", 1)) if same and costly else 1

    def _runs(self, st: _State) -> int:
        """Runs of this visit: `runs_per_visit`, or more where a sample is cheap enough that
        `min_visit_s` holds more: a device that warms up after a switch pays one unrecorded
        run a visit (8 runs a visit: 1/8 more inference than recorded, most of the sweep's
        1.18x wall / recorded time; the cpu device takes none). Judged on the point's median
        sample so far."""
        p = self.protocol
        if not p.min_visit_s or not st.samples:
            return p.runs_per_visit
        typical_s = statistics.median(st.samples[-p.runs_per_visit:]) / 1000
        if typical_s <= 0:
            return p.runs_per_visit
        return max(p.runs_per_visit, min(MAX_RUNS_PER_VISIT, math.ceil(p.min_visit_s / typical_s)))

    def _setup(self, st: _State) -> dict:
        """`Device.setup` of a point, timed and shown while it happens."""
        self._report(f"setting up {st.resolution} px")
        t0 = time.monotonic()
        facts = dict(self.device.setup(st.spec, st.resolution) or {})
        facts["setup_s"] = round(time.monotonic() - t0, 4)
        self.setup_s += facts["setup_s"]
        self._report(f"set-up of {st.resolution} px took {facts['setup_s']:.1f} s "
                     f"(all set-ups {self.setup_s:.0f} s)")
        return facts

    def _finish(self, i: int, reason: str) -> None:
        st = self.active.pop(i)
        if st.samples:   # a point never reached stays open in the store: the next run resumes it
            self.store.finish(st.measurement_id, reason)
        self.results[i] = st.measurement(self.info, reason, self.protocol.confidence)
        self.met += reason == "ci_target"
        self.ci_pct.pop(i, None)

    def _report(self, status: str = "") -> None:
        if self.progress:
            self.progress(self.status(status))
