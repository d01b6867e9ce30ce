"""Resolution-jump detection (RBIS step 1): latency vs resolution -> jumps, drops, candidates.

A sweep (DataFrame with `resolution`, `latency_ms`, optionally `ci_low_ms`/`ci_high_ms`) is
validated (`prepare_curve`), its per-point noise estimated (`estimate_noise`: from the CIs when
present, else from the curve's own scatter) and single-point spikes found
(`isolated_outliers`). Then one of two detectors (`detect(method=...)`; "auto" picks "model"
when the curve has CIs, else "pelt", see docs/jumps.md):

- "model" (`latency_lab.sweeps.jumps_model`): a sparse regression of the whole curve, trend plus
  level steps, slope changes and spikes, each chosen step tested with the whole model's
  covariance and a kink-proof gap;
- "pelt": segments from ruptures' Pelt on a noise-weighted linear cost (`segment`), each break
  put through a level-gap test (`level_gap`): robust weighted lines left and right, compared
  over the interval between the two resolutions. If they cross there the break is a change of
  slope, not a jump; otherwise the smaller gap, in standard errors, must exceed `z_min`.

Upward steps are jumps; downward ones (GPU kernel switches) are drops, reported separately.
Turning jumps into candidate resolutions and writing the report is `report.py`'s
(`analyze_sweep`); nothing here writes a file.

Everything is expressed in noise units, so the answer does not change when latency is scaled or
shifted (a constant offset is absorbed by each line's intercept; the noise scales with it).
"""

from __future__ import annotations

import numpy as np

from latency_lab.errors import JumpInputError, check_number
from latency_lab.sweeps.curve import (  # noqa: F401  (the detectors' types, re-exported)
    CI_Z95, JUMP_COLUMNS, MIN_POINTS, Curve, Gap, JumpResult, _robust_fit, _robust_line,
    make_result, prepare_curve)
from latency_lab.sweeps.jumps_model import CROSS_MARGIN
from latency_lab.sweeps.noise import (  # noqa: F401  (re-exported)
    _robust_scale, curve_residuals, estimate_noise, isolated_outliers)

# Defaults tuned with benchmarks/jumps_benchmark.py (see results/benchmarks/).
DEFAULT_Z_MIN = 3.5          # step needed, in standard errors (common-trend step model)
DEFAULT_Z_FREE_MIN = 2.0     # ... and the free-slope gap (kink-proof) must pass this
Z_KINK = 3.0                 # a slope change this significant bounds the lines of its neighbours
DEFAULT_PENALTY = 3.0        # Pelt penalty per breakpoint, in units of ln(n) (chi-square scale)
DEFAULT_MIN_SIZE = 3         # points per Pelt segment: one point alone is never a level
DEFAULT_WINDOW = 12          # at most this many points each side feed a gap test's lines
SPIKE_WEIGHT = 1e3           # a spike's sigma is multiplied by this (it is all but left out)


# --------------------------------------------------------------------------------------------
# segmentation and the level-gap test

def segment(curve: Curve, sigma_ms: np.ndarray, penalty: float = DEFAULT_PENALTY,
            min_size: int = DEFAULT_MIN_SIZE) -> list[int]:
    """Pelt (ruptures) with the linear cost on noise-weighted data: rows y/s ~ [1/s, x/s], so
    a segment's cost is its chi-square around its best line and the penalty per break is
    `penalty` * ln(n) in those units. Returns k for each break (k = last index on the left)."""
    import ruptures as rpt

    r, y, s = curve.resolution, curve.latency_ms, sigma_ms
    x = (r - r.mean()) / (r.std() or 1.0)
    yc = (y - np.median(y)) / np.median(s)
    sc = s / np.median(s)
    signal = np.column_stack([yc / sc, 1 / sc, x / sc])
    algo = rpt.Pelt(custom_cost=rpt.costs.CostLinear(), min_size=min_size, jump=1).fit(signal)
    ends = algo.predict(pen=penalty * np.log(curve.n))
    return [e - 1 for e in ends[:-1]]


def level_gap(curve: Curve, sigma_ms: np.ndarray, k: int, left: tuple[int, int],
              right: tuple[int, int]) -> Gap:
    """Test a level shift between r_k and r_k+1 with the points [left) and [right), two ways.

    Step: one smooth trend (quadratic in r) through both sides plus a step after r_k -- the
    powerful test when the slope is the same on both sides, as in a piecewise-linear curve.
    Free gap: separate lines left and right, compared over [r_k, r_k+1] -- zero when the lines
    cross there, so a change of slope alone (a kink) never passes it."""
    r, y, s = curve.resolution, curve.latency_ms, sigma_ms
    cl, vl, _ = _robust_line(r[slice(*left)], y[slice(*left)], s[slice(*left)])
    cr, vr, _ = _robust_line(r[slice(*right)], y[slice(*right)], s[slice(*right)])
    ends = np.array([r[k], r[k + 1]])
    d = (cr[0] + cr[1] * ends) - (cl[0] + cl[1] * ends)
    at = int(np.argmin(np.abs(d)))
    # Lines crossing between r_k and r_k+1, or up to CROSS_MARGIN grid steps beyond (where a
    # kink next to the break may really be), mean a change of slope: no level gap.
    outer = np.array([r[max(0, k - CROSS_MARGIN)], r[min(curve.n - 1, k + 1 + CROSS_MARGIN)]])
    d_outer = (cr[0] + cr[1] * outer) - (cl[0] + cl[1] * outer)
    crossing = d[0] * d[1] <= 0 or d_outer[0] * d_outer[1] <= 0
    gap = 0.0 if crossing else float(d[at])
    v = np.array([1.0, ends[at]])
    se = float(np.sqrt(v @ vl @ v + v @ vr @ v))
    idx = np.arange(left[0], right[1])
    h = float(np.median(np.diff(r))) or 1.0
    u = (r[idx] - (r[k] + r[k + 1]) / 2) / h
    cols = [np.ones(len(idx)), u] + ([u ** 2] if len(idx) >= 7 else []) + [(idx > k) * 1.0]
    coef, cov, _ = _robust_fit(np.column_stack(cols), y[idx], s[idx])
    step, step_se = float(coef[-1]), float(np.sqrt(cov[-1, -1]))
    z_slope = _ratio(cr[1] - cl[1], float(np.sqrt(vl[1, 1] + vr[1, 1])))
    return Gap(k, step, step_se, _ratio(step, step_se), gap, se, _ratio(gap, se), z_slope,
               left, right, (float(cl[0]), float(cl[1])), (float(cr[0]), float(cr[1])))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (float(np.sign(a)) * np.inf if a else 0.0)


def strength(g: Gap | None, z_free_min: float = DEFAULT_Z_FREE_MIN) -> float:
    """|z| of the step when the free-slope gap agrees in sign and passes z_free_min, else 0."""
    if g is None or np.sign(g.z) != np.sign(g.z_free) or abs(g.z_free) < z_free_min:
        return 0.0
    return abs(g.z)


def _test_break(curve, sigma, k, lo, hi, window, min_size):
    """Gap test of a break at k with lines inside the piece pair [lo, hi), or None when a side
    has fewer than `min_size` points. The break stays where Pelt put it: moving it to where
    the step looks strongest put kinks next to breaks and faked steps in the benchmark."""
    if k + 1 - lo < min_size or hi - (k + 1) < min_size:
        return None
    return level_gap(curve, sigma, k, (max(lo, k + 1 - window), k + 1),
                     (k + 1, min(hi, k + 1 + window)))


def _eliminate(curve, sigma, ks, z_min, z_free_min, window, min_size):
    """Backward elimination: test every break with lines bounded by its neighbouring breaks,
    drop the weakest one if it is neither a jump (step z >= z_min) nor a kink (slope change
    z >= Z_KINK), and retest, so each surviving break's lines are as long as the jumps and
    kinks around it allow, and never straddle either."""
    while ks:
        bounds = [0] + [k + 1 for k in ks] + [curve.n]
        tests = [_test_break(curve, sigma, k, bounds[i], bounds[i + 2], window, min_size)
                 for i, k in enumerate(ks)]
        st = [max(strength(g, z_free_min) / z_min, abs(g.z_slope) / Z_KINK if g else 0.0)
              for g in tests]
        weakest = int(np.argmin(st))
        if st[weakest] < 1.0:
            del ks[weakest]
            continue
        return tests
    return []


METHODS = ("auto", "lattice", "model", "pelt")


def detect(frame_or_curve, z_min: float | None = None, penalty: float = DEFAULT_PENALTY,
           min_size: int = DEFAULT_MIN_SIZE, window: int = DEFAULT_WINDOW,
           z_free_min: float = DEFAULT_Z_FREE_MIN, use_ci: bool = True,
           method: str = "auto", network=None, min_stride: int | None = None,
           z_other: float | None = None) -> JumpResult:
    """Find upward jumps and downward drops in a latency-vs-resolution curve.

    `method`: "lattice" (trend + a step at every place where a coarse feature map of `network`
    grows, + steps elsewhere at the stricter `z_other`; `latency_lab.sweeps.jumps_lattice`),
    "pelt" (Pelt breaks, each tested with local lines), "model" (a sparse model of the whole
    curve, `latency_lab.sweeps.jumps_model`), or "auto": "lattice" when the swept network is
    known, else "model" when the curve has CIs (its noise is known point by point), else
    "pelt" (docs/jumps.md). `z_min`: the bar of a jump, default per method (lattice 2.5 at a
    place, pelt and model 3.5). Where the grid is too coarse for the places, or they leave the
    curve unexplained (residuals over `jumps_lattice.MISFIT` times its CIs: a GPU's kernel
    switches), "lattice" falls back to "model" (or "pelt" without CIs) and says so in the
    notes; the steps are still named by their places."""
    if method not in METHODS:
        raise JumpInputError(f"unknown jump method {method!r} (one of {', '.join(METHODS)})")
    if z_min is not None:
        check_number(z_min, "--z-min", 0, None, "the step a jump needs, in standard errors",
                     JumpInputError, low_open=True)
    curve = frame_or_curve if isinstance(frame_or_curve, Curve) else prepare_curve(frame_or_curve)
    if not use_ci and curve.ci_low_ms is not None:
        curve = Curve(curve.resolution, curve.latency_ms, None, None, curve.notes)
    if method == "auto":
        method = "lattice" if network is not None else (
            "model" if curve.ci_low_ms is not None else "pelt")
    places, notes = [], []
    if network is not None:
        from latency_lab.network.lattice import DEFAULT_MIN_STRIDE, lattice_places

        places = lattice_places(network, curve.resolution.astype(int),
                                min_stride or DEFAULT_MIN_STRIDE)
    if method == "lattice":
        from latency_lab.sweeps import jumps_lattice as L

        if network is None:
            raise JumpInputError("the lattice detector needs the swept network (--network, or "
                                 "a preset named in the sweep's network column)")
        result, why = L.detect_lattice(curve, places,
                                       L.DEFAULT_Z_PLACE if z_min is None else z_min,
                                       L.DEFAULT_Z_OTHER if z_other is None else z_other)
        if result is not None:
            return result
        method = "model" if curve.ci_low_ms is not None else "pelt"
        notes.append(f"{why}: the {method} detector was used")
    z_min = DEFAULT_Z_MIN if z_min is None else z_min
    sigma, source = estimate_noise(curve)
    spikes = isolated_outliers(curve, sigma)
    if method == "model" and curve.ci_low_ms is not None:   # the CIs as given (estimate_noise)
        sigma, source = estimate_noise(curve, rescale_ci=False)
    elif spikes.size:
        sigma, source = estimate_noise(curve, breaks=list(spikes) + list(spikes - 1))
    if method == "model":
        return _detect_model(curve, sigma, source, spikes, z_min, z_free_min, window, min_size,
                             places, notes)
    sigma[spikes] *= SPIKE_WEIGHT
    breaks = segment(curve, sigma, penalty, min_size)
    tests = _eliminate(curve, sigma, list(breaks), z_min, z_free_min, window, min_size)
    if tests:   # second pass: the noise without the residuals the found breaks inflated
        sigma, source = estimate_noise(curve, breaks=[g.k for g in tests] + list(spikes)
                                       + list(spikes - 1))
        sigma[spikes] *= SPIKE_WEIGHT
        breaks = segment(curve, sigma, penalty, min_size)
        tests = _eliminate(curve, sigma, list(breaks), z_min, z_free_min, window, min_size)
    jumps = [g for g in tests if strength(g, z_free_min) >= z_min]
    return make_result(curve, sigma, source, breaks, tests, jumps, spikes, "pelt", None, places)


def _detect_model(curve, sigma, source, spikes, z_min, z_free_min, window, min_size,
                  places=(), notes=()):
    """The "model" method: Pelt breaks seed `jumps_model.fit_model`; each chosen step becomes a
    Gap with the whole model's z and its kink-proof gap."""
    from latency_lab.sweeps import jumps_model as M

    r, y, n = curve.resolution, curve.latency_ms, curve.n
    seeded = sigma.copy()
    seeded[spikes] *= SPIKE_WEIGHT
    breaks = segment(curve, seeded, M.PELT_PENALTY, min_size)
    f = M.fit_model(r, y, sigma, breaks, list(spikes))
    if f.reduced_chi2 > M.MISFIT:    # the noise is larger than the CIs (or the curve) say
        factor = float(np.sqrt(f.reduced_chi2))
        sigma = sigma * factor
        source += f", x{factor:.2f} to the model's residuals"
        f = M.fit_model(r, y, sigma, breaks, list(spikes))
    spikes = np.array([j for _, j in f.terms("spike")], dtype=int)
    steps = f.terms("step")
    ks = [k for _, k in steps]
    fit = f.fitted
    tests = []
    for col, k in steps:
        step, se = float(f.coef[col]), float(np.sqrt(f.cov[col, col]))
        gap, gap_se, z_slope = M.kink_proof_gap(f, r, col, k)
        lo = max([b + 1 for b in ks if b < k] + [0, k + 1 - window])
        hi = min([b + 1 for b in ks if b > k] + [n, k + 1 + window])
        slope_l = (fit[k] - fit[k - 1]) / (r[k] - r[k - 1]) if k >= 1 else np.nan
        slope_r = (fit[k + 2] - fit[k + 1]) / (r[k + 2] - r[k + 1]) if k + 2 < n else np.nan
        slope_l = slope_r if np.isnan(slope_l) else slope_l
        slope_r = slope_l if np.isnan(slope_r) else slope_r
        tests.append(Gap(k, step, se, _ratio(step, se), gap, gap_se, _ratio(gap, gap_se),
                         z_slope, (lo, k + 1), (k + 1, hi),
                         (float(fit[k] - slope_l * r[k]), float(slope_l)),
                         (float(fit[k + 1] - slope_r * r[k + 1]), float(slope_r))))
    jumps = [g for g in tests if strength(g, z_free_min) >= z_min]
    return make_result(curve, sigma, source, breaks, tests, jumps, spikes, "model", fit, places,
                       notes)


