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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from latency_lab.errors import JumpInputError, check_number
from latency_lab.sweeps.jumps_model import CROSS_MARGIN, chi2
from latency_lab.network.spec import MAX_RESOLUTION

# z of a 95% normal interval: the sweep's CIs (latency_lab.measure.stats) are 95% intervals.
CI_Z95 = 1.959964
# Normal-consistency factor of the MAD (MAD / 0.6745 estimates sigma).
MAD_TO_SIGMA = 1.0 / 0.6744898
MIN_POINTS = 8
# Defaults tuned with benchmarks/jumps_benchmark.py (see results/benchmarks/).
DEFAULT_Z_MIN = 3.5          # step needed, in standard errors (common-trend step model)
DEFAULT_Z_FREE_MIN = 2.0     # ... and the free-slope gap (kink-proof) must pass this
Z_KINK = 3.0                 # a slope change this significant bounds the lines of its neighbours
DEFAULT_PENALTY = 3.0        # Pelt penalty per breakpoint, in units of ln(n) (chi-square scale)
DEFAULT_MIN_SIZE = 3         # points per Pelt segment: one point alone is never a level
DEFAULT_WINDOW = 12          # at most this many points each side feed a gap test's lines
NOISE_WINDOW = 15            # residuals per group in the curve-only noise estimate
OUTLIER_Z = 3.5              # residual (in sigma) above which a point is left out of a line fit
SPIKE_Z = 4.0                # a single point this far off its neighbours' line may be a spike
SPIKE_CHI2 = 9.0             # ... and leaving it out beats a step next to it by this chi-square
SPIKE_WEIGHT = 1e3           # a spike's sigma is multiplied by this (it is all but left out)
# When CIs and the curve's scatter disagree by more than this factor, the scatter wins.
CI_TRUST_RATIO = 1.5


@dataclass(frozen=True)
class Curve:
    resolution: np.ndarray        # float, sorted, unique
    latency_ms: np.ndarray
    ci_low_ms: np.ndarray | None
    ci_high_ms: np.ndarray | None
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.resolution)


@dataclass(frozen=True)
class Gap:
    """The level-gap test at the break between points k and k+1."""
    k: int
    step_ms: float           # the step of one trend (quadratic) with a level shift after r_k
    step_se_ms: float
    z: float                 # step_ms / step_se_ms: how sure the jump is
    gap_ms: float            # right line minus left, the smaller over [r_k, r_k+1]; 0 if they cross
    se_ms: float
    z_free: float            # gap_ms / se_ms: the step even if the slope changed at the break
    z_slope: float           # (right slope - left slope) / its standard error: a kink
    left: tuple[int, int]    # index range [start, end) of the points the left line used
    right: tuple[int, int]
    left_coef: tuple[float, float]   # intercept, slope (ms, ms per pixel) of the left line
    right_coef: tuple[float, float]


@dataclass
class JumpResult:
    curve: Curve
    sigma_ms: np.ndarray
    noise_source: str
    breaks: list[int]                    # Pelt breaks (index of the last point before each)
    tests: list[Gap]                     # one per Pelt break, after location refinement
    jumps: pd.DataFrame
    drops: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    outliers: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    method: str = "pelt"                  # which detector ran: "pelt" or "model"
    fitted_ms: np.ndarray | None = None   # the model's curve (method "model"), for the plot

    def __str__(self) -> str:
        def fmt(t):
            return ", ".join(f"{r.resolution_before}->{r.resolution_after} {r.jump_pct:+.1f}% "
                             f"(z {r.z:.1f})" for r in t.itertuples()) or "none"
        return f"jumps: {fmt(self.jumps)}; drops: {fmt(self.drops)}"

    def segments(self) -> list[tuple[int, int, float, float]]:
        """Pieces between breaks as (start, end, intercept, slope), lines fitted per piece."""
        bounds = [0] + [k + 1 for k in sorted({g.k for g in self.tests})] + [self.curve.n]
        out = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b - a >= 2:
                c, _, _ = _robust_line(self.curve.resolution[a:b], self.curve.latency_ms[a:b],
                                       self.sigma_ms[a:b])
                out.append((a, b, float(c[0]), float(c[1])))
        return out


# --------------------------------------------------------------------------------------------
# input

def prepare_curve(frame: pd.DataFrame) -> Curve:
    """Validate a sweep and return it sorted by resolution.

    Rules: `resolution` and `latency_ms` are required, numeric, finite; resolutions are positive
    integers; latencies positive. Rows are sorted by resolution. Duplicate resolutions are merged:
    the median latency, and the CI envelope (lowest ci_low, highest ci_high), noted in `notes`.
    CI columns are used only when present, numeric and non-degenerate on every row (else ignored,
    with a note). Fewer than 8 distinct resolutions is refused.
    """
    if not isinstance(frame, pd.DataFrame):
        raise JumpInputError("expected a table with columns resolution and latency_ms")
    missing = [c for c in ("resolution", "latency_ms") if c not in frame.columns]
    if missing:
        raise JumpInputError(f"sweep has no column {', '.join(missing)} "
                             f"(columns: {', '.join(map(str, frame.columns)) or 'none'})")
    notes: list[str] = []
    if "n_samples" in frame.columns and "stop_reason" in frame.columns:
        # a sweep stopped by its time cap or an interruption lists the points it never
        # reached (no samples, no latency): they are not part of the curve
        unreached = (pd.to_numeric(frame["n_samples"], errors="coerce") == 0) & \
            frame["latency_ms"].isna()
        if unreached.any():
            notes.append(f"{int(unreached.sum())} point(s) never measured (stop reason "
                         f"{', '.join(sorted(set(frame.loc[unreached, 'stop_reason'].astype(str))))}"
                         f"): left out")
            frame = frame[~unreached]
    res = _numeric(frame["resolution"], "resolution")
    lat = _numeric(frame["latency_ms"], "latency_ms")
    if np.any(res <= 0) or np.any(res != np.round(res)):
        bad = int(np.flatnonzero((res <= 0) | (res != np.round(res)))[0])
        raise JumpInputError(f"row {bad + 1}: resolution {frame['resolution'].iloc[bad]!r} "
                             "is not a positive integer")
    if np.any(res > MAX_RESOLUTION):
        bad = int(np.flatnonzero(res > MAX_RESOLUTION)[0])
        raise JumpInputError(f"row {bad + 1}: resolution {frame['resolution'].iloc[bad]!r} is "
                             f"above {MAX_RESOLUTION}, the largest input a network is measured at")
    if np.any(lat <= 0):
        bad = int(np.flatnonzero(lat <= 0)[0])
        raise JumpInputError(f"row {bad + 1}: latency_ms {lat[bad]:g} is not positive")
    lo = hi = None
    if "ci_low_ms" in frame.columns and "ci_high_ms" in frame.columns:
        lo = pd.to_numeric(frame["ci_low_ms"], errors="coerce").to_numpy(float)
        hi = pd.to_numeric(frame["ci_high_ms"], errors="coerce").to_numpy(float)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            notes.append("CI columns have empty or non-numeric values: CIs ignored, "
                          "noise estimated from the curve")
            lo = hi = None
        elif np.any(hi < lo):
            bad = int(np.flatnonzero(hi < lo)[0])
            raise JumpInputError(f"row {bad + 1}: ci_high_ms {hi[bad]:g} < ci_low_ms {lo[bad]:g}")
    order = np.argsort(res, kind="stable")
    if np.any(np.diff(order) < 0):
        notes.append("rows were not sorted by resolution: sorted")
    res, lat = res[order], lat[order]
    if lo is not None:
        lo, hi = lo[order], hi[order]
    uniq, first, counts = np.unique(res, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dups = uniq[counts > 1].astype(int).tolist()
        notes.append(f"duplicate resolutions {dups[:5]}{'...' if len(dups) > 5 else ''} merged: "
                     "median latency, widest CI")
        groups = np.split(np.arange(len(res)), first[1:])
        lat = np.array([np.median(lat[g]) for g in groups])
        if lo is not None:
            lo = np.array([lo[g].min() for g in groups])
            hi = np.array([hi[g].max() for g in groups])
        res = uniq
    if len(res) < MIN_POINTS:
        raise JumpInputError(f"need at least {MIN_POINTS} distinct resolutions to find jumps, "
                             f"got {len(res)}")
    if lo is not None and np.any(hi - lo <= 0):
        notes.append("some CIs have zero width: CIs ignored, noise estimated from the curve")
        lo = hi = None
    return Curve(res.astype(float), lat.astype(float), lo, hi, tuple(notes))


def _numeric(col: pd.Series, name: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise JumpInputError(f"row {i + 1}: {name} {col.iloc[i]!r} is not a finite number"
                             + (f" ({bad.size} such rows)" if bad.size > 1 else ""))
    return values


# --------------------------------------------------------------------------------------------
# noise

def curve_residuals(r: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each interior point minus the line through its two neighbours, divided by that
    residual's noise gain sqrt(1 + w1^2 + w2^2): for white noise sigma its scale is sigma
    (on any grid, gaps included). A constant curvature shows as a constant offset."""
    h1, h2 = r[1:-1] - r[:-2], r[2:] - r[1:-1]
    w1, w2 = h2 / (h1 + h2), h1 / (h1 + h2)
    e = y[1:-1] - (w1 * y[:-2] + w2 * y[2:])
    return e / np.sqrt(1 + w1 ** 2 + w2 ** 2)


def _robust_scale(e: np.ndarray) -> float:
    return float(np.median(np.abs(e - np.median(e))) * MAD_TO_SIGMA)


def estimate_noise(curve: Curve, window: int = NOISE_WINDOW, breaks: list[int] = (),
                   rescale_ci: bool = True) -> tuple[np.ndarray, str]:
    """Per-point noise sigma (ms) and a word on where it came from.

    Curve only: the MAD of `curve_residuals`, robust to the few residuals a jump or an outlier
    touches, per group of `window` points, smoothed as a power law in resolution.
    With CIs: sigma_i = (ci_high - ci_low) / (2 * 1.96); if the curve scatters more (or less)
    than that by over `CI_TRUST_RATIO`, the CI-based sigmas are rescaled to the scatter.
    Residuals next to `breaks` (k: last index before a break) are left out: a jump or a kink
    there is signal, not noise. `rescale_ci=False` keeps the CIs as they are: the "model"
    method checks them against its own fit instead, because small real steps (the CPU's 16-px
    staircase) inflate second differences and would be taken for noise.
    """
    r, y = curve.resolution, curve.latency_ms
    e = curve_residuals(r, y)
    n = curve.n
    use = np.ones(len(e), bool)
    for k in breaks:      # residual j belongs to point j + 1; a break k..k+1 touches k and k+1
        use[max(0, k - 1):k + 1] = False
    if use.sum() < len(e) // 2:
        use[:] = True
    # A floor for exact (or typed, rounded) curves: 1e-4 of the latency range, which scales
    # with latency and ignores a shift, like everything else here.
    # (A flat curve has no range: then 1e-4 of its level, so nothing divides by zero.)
    spread = float(np.ptp(y))
    floor = 1e-4 * (spread if spread > 0 else max(abs(float(np.median(y))), 1e-12))
    if curve.ci_low_ms is not None:
        se = (curve.ci_high_ms - curve.ci_low_ms) / (2 * CI_Z95)
        gain_se = _neighbour_se(r, se)
        ratio = _robust_scale((e / gain_se)[use])
        if rescale_ci and (ratio > CI_TRUST_RATIO or ratio < 1 / CI_TRUST_RATIO):
            return (np.maximum(se * ratio, floor),
                    f"CIs rescaled x{ratio:.2f} to the curve's scatter")
        return np.maximum(se, floor), "CIs"
    glob = _robust_scale(e[use])
    if glob == 0:
        return np.full(n, floor), "noiseless curve"
    # Noise usually grows with latency, hence with resolution: MADs of consecutive groups of
    # `window` residuals, then a power law sigma = c * r^b through them (log-log line). A
    # power law in r (not in latency) keeps the estimate invariant to shifting latency.
    groups = max(1, len(e) // window)
    parts = np.array_split(np.arange(len(e)), groups)
    parts = [g[use[g]] for g in parts if use[g].sum() >= 3]
    groups = len(parts)
    rr = np.array([np.median(r[1:-1][g]) for g in parts])
    ss = np.array([_robust_scale(e[g]) for g in parts])
    if groups >= 2 and np.all(ss > 0):
        b, a = np.polyfit(np.log(rr), np.log(ss), 1)
        b = float(np.clip(b, -1.0, 3.0))
        a = float(np.mean(np.log(ss) - b * np.log(rr)))
        sig = np.exp(a + b * np.log(r))
        how = f"curve scatter (MAD of second differences, ~ r^{b:.1f})"
    else:
        sig, how = np.full(n, glob), "curve scatter (MAD of second differences)"
    return np.maximum(sig, floor), how


def _neighbour_se(r: np.ndarray, se: np.ndarray) -> np.ndarray:
    h1, h2 = r[1:-1] - r[:-2], r[2:] - r[1:-1]
    w1, w2 = h2 / (h1 + h2), h1 / (h1 + h2)
    var = se[1:-1] ** 2 + (w1 * se[:-2]) ** 2 + (w2 * se[2:]) ** 2
    return np.sqrt(var / (1 + w1 ** 2 + w2 ** 2))


def isolated_outliers(curve: Curve, sigma_ms: np.ndarray, z: float | None = None) -> np.ndarray:
    """Indices of single-point spikes. A point at least two from the ends is one when it lies
    more than z sigma off the line through its neighbours and, in the 7 points around it, a line
    that leaves it out fits better (by SPIKE_CHI2 in chi-square) than a line with a step just
    before or just after it -- so a jump, whose edge points look like spikes to the first test,
    is not taken for one. Pelt's squared-error cost is not robust: spikes are down-weighted
    before it."""
    z = SPIKE_Z if z is None else z
    r, y, s = curve.resolution, curve.latency_ms, sigma_ms
    out = []
    for i in range(2, curve.n - 2):
        if abs(_line_residual(r, y, s, i - 1, i, i + 1)) <= z:
            continue
        idx = np.arange(max(0, i - 3), min(curve.n, i + 4))
        base = [np.ones(len(idx)), (r[idx] - r[i]) / (r[idx[-1]] - r[idx[0]])]
        spike, step_at, step_after = (chi2(np.column_stack(base + [col * 1.0]), y[idx], s[idx])
                                      for col in (idx == i, idx >= i, idx > i))
        if spike + SPIKE_CHI2 < min(step_at, step_after):
            out.append(i)
    return np.array(out, dtype=int)


def _line_residual(r, y, s, a, i, b) -> float:
    """Point i minus the line through points a and b, in units of its standard error."""
    w = (r[i] - r[a]) / (r[b] - r[a])
    pred = (1 - w) * y[a] + w * y[b]
    return float((y[i] - pred) / np.sqrt(s[i] ** 2 + ((1 - w) * s[a]) ** 2 + (w * s[b]) ** 2))


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


def _robust_fit(X: np.ndarray, y: np.ndarray, s: np.ndarray):
    """Weighted least squares of y on the columns of X; points whose residual exceeds OUTLIER_Z
    sigma are left out (one at a time, the worst first, keeping p + 1). Returns (coef, cov,
    kept mask); the covariance is inflated by the reduced chi-square when the fit is worse
    than the noise says (curvature, a missed kink)."""
    keep = np.ones(len(y), bool)
    p = X.shape[1]
    while True:
        w = 1 / s[keep]
        Xw = X[keep] * w[:, None]
        coef, *_ = np.linalg.lstsq(Xw, y[keep] * w, rcond=None)
        resid = (y - X @ coef) / s
        worst = int(np.argmax(np.where(keep, np.abs(resid), -1)))
        if keep.sum() > p + 1 and abs(resid[worst]) > OUTLIER_Z:
            keep[worst] = False
            continue
        break
    cov = np.linalg.pinv(Xw.T @ Xw)
    dof = int(keep.sum()) - p
    if dof > 0:
        cov = cov * max(1.0, float(np.sum(resid[keep] ** 2)) / dof)
    return coef, cov, keep


def _robust_line(r: np.ndarray, y: np.ndarray, s: np.ndarray):
    """Robust weighted line: ((intercept at r = 0, slope), its covariance, kept mask)."""
    r0 = float(r.mean())
    coef, cov, keep = _robust_fit(np.column_stack([np.ones(len(r)), r - r0]), y, s)
    J = np.array([[1.0, -r0], [0.0, 1.0]])
    return J @ coef, J @ cov @ J.T, keep


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


METHODS = ("auto", "model", "pelt")


def detect(frame_or_curve, z_min: float = DEFAULT_Z_MIN, penalty: float = DEFAULT_PENALTY,
           min_size: int = DEFAULT_MIN_SIZE, window: int = DEFAULT_WINDOW,
           z_free_min: float = DEFAULT_Z_FREE_MIN, use_ci: bool = True,
           method: str = "auto") -> JumpResult:
    """Find upward jumps and downward drops in a latency-vs-resolution curve.

    `method`: "pelt" (Pelt breaks, each tested with local lines), "model" (a sparse model of the
    whole curve, `latency_lab.sweeps.jumps_model`), or "auto": "model" when the curve has CIs (its
    noise is known point by point), else "pelt" -- the better of the two on the benchmark in
    each case (docs/jumps.md)."""
    if method not in METHODS:
        raise JumpInputError(f"unknown jump method {method!r} (one of {', '.join(METHODS)})")
    check_number(z_min, "--z-min", 0, None, "the step a jump needs, in standard errors",
                 JumpInputError, low_open=True)
    curve = frame_or_curve if isinstance(frame_or_curve, Curve) else prepare_curve(frame_or_curve)
    if not use_ci and curve.ci_low_ms is not None:
        curve = Curve(curve.resolution, curve.latency_ms, None, None, curve.notes)
    if method == "auto":
        method = "model" if curve.ci_low_ms is not None else "pelt"
    sigma, source = estimate_noise(curve)
    spikes = isolated_outliers(curve, sigma)
    if method == "model" and curve.ci_low_ms is not None:   # the CIs as given (estimate_noise)
        sigma, source = estimate_noise(curve, rescale_ci=False)
    elif spikes.size:
        sigma, source = estimate_noise(curve, breaks=list(spikes) + list(spikes - 1))
    if method == "model":
        return _detect_model(curve, sigma, source, spikes, z_min, z_free_min, window, min_size)
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
    return _result(curve, sigma, source, breaks, tests, jumps, spikes, "pelt", None)


def _detect_model(curve, sigma, source, spikes, z_min, z_free_min, window, min_size):
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
    return _result(curve, sigma, source, breaks, tests, jumps, spikes, "model", fit)


def _result(curve, sigma, source, breaks, tests, jumps, spikes, method, fitted) -> JumpResult:
    up = [g for g in jumps if g.z > 0]
    down = [g for g in jumps if g.z < 0]
    notes = list(curve.notes)
    if spikes.size:
        notes.append("single-point outliers left out: "
                     + ", ".join(str(int(curve.resolution[i])) for i in spikes))
    return JumpResult(curve, sigma, source, breaks, tests, _table(curve, up), _table(curve, down),
                      notes, spikes, method, fitted)


JUMP_COLUMNS = ["resolution_before", "resolution_after", "latency_before_ms", "latency_after_ms",
                "jump_ms", "jump_pct", "z", "se_ms", "gap_free_ms", "z_free",
                "slope_before_ms_per_px",
                "slope_after_ms_per_px", "points_before", "points_after"]


def _table(curve: Curve, gaps: list[Gap]) -> pd.DataFrame:
    rows = []
    for g in sorted(gaps, key=lambda g: g.k):
        r0, r1 = curve.resolution[g.k], curve.resolution[g.k + 1]
        level = g.left_coef[0] + g.left_coef[1] * r0
        rows.append({
            "resolution_before": int(r0), "resolution_after": int(r1),
            "latency_before_ms": float(curve.latency_ms[g.k]),
            "latency_after_ms": float(curve.latency_ms[g.k + 1]),
            "jump_ms": g.step_ms, "jump_pct": 100 * g.step_ms / level if level > 0 else np.nan,
            "z": g.z, "se_ms": g.step_se_ms, "gap_free_ms": g.gap_ms, "z_free": g.z_free,
            "slope_before_ms_per_px": g.left_coef[1], "slope_after_ms_per_px": g.right_coef[1],
            "points_before": g.left[1] - g.left[0], "points_after": g.right[1] - g.right[0],
        })
    return pd.DataFrame(rows, columns=JUMP_COLUMNS)


