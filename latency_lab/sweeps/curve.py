"""What every jump detector reads and returns: the validated sweep (`Curve`, `prepare_curve`),
one tested step (`Gap`), the result (`JumpResult`) and its tables (jumps.csv, drops.csv).

The detectors themselves are `jumps.py` (dispatch, "pelt", "model" through `jumps_model.py`)
and `jumps_lattice.py` (the network's places); the noise they share is `noise.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from latency_lab.errors import JumpInputError
from latency_lab.network.spec import MAX_RESOLUTION

# z of a 95% normal interval: the sweep's CIs (latency_lab.measure.stats) are 95% intervals.
CI_Z95 = 1.959964
# Normal-consistency factor of the MAD (MAD / 0.6745 estimates sigma).
MAD_TO_SIGMA = 1.0 / 0.6744898
MIN_POINTS = 8
OUTLIER_Z = 3.5              # residual (in sigma) above which a point is left out of a line fit


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
    stride: int = 0          # the coarsest feature map that grows at this break (0: none known)
    place: str = ""          # which, in words ('1/32 map 7->8: stages 5-6 + head')


@dataclass
class JumpResult:
    curve: Curve
    sigma_ms: np.ndarray
    noise_source: str
    breaks: list[int]                    # Pelt breaks (index of the last point before each)
    tests: list[Gap]                     # every step tested (pelt: one per break after
                                         # elimination; model: chosen; lattice: every place)
    jumps: pd.DataFrame
    drops: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    outliers: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    method: str = "pelt"                  # which detector ran: "pelt", "model" or "lattice"
    fitted_ms: np.ndarray | None = None   # the model's curve ("model", "lattice"), for the plot
    places: list = field(default_factory=list)   # the network's places on this grid
                                                 # (latency_lab.network.lattice.Place), if known

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



def make_result(curve, sigma, source, breaks, tests, jumps, spikes, method, fitted,
                places=(), notes=()) -> JumpResult:
    """The result of a detector: its jumps split into upward (jumps) and downward (drops),
    each step named by the place it sits at when the network's places are known."""
    at = {int(p.k): p for p in places}

    def named(g: Gap) -> Gap:
        p = at.get(g.k)
        return g if g.place or p is None else replace(g, stride=p.stride, place=p.label)

    tests = [named(g) for g in tests]
    jumps = [named(g) for g in jumps]
    up = [g for g in jumps if g.z > 0]
    down = [g for g in jumps if g.z < 0]
    notes = list(curve.notes) + list(notes)
    if spikes.size:
        notes.append("single-point outliers left out: "
                     + ", ".join(str(int(curve.resolution[i])) for i in spikes))
    return JumpResult(curve, sigma, source, breaks, tests, _table(curve, up), _table(curve, down),
                      notes, spikes, method, fitted, list(places))


JUMP_COLUMNS = ["resolution_before", "resolution_after", "latency_before_ms", "latency_after_ms",
                "jump_ms", "jump_pct", "z", "se_ms", "gap_free_ms", "z_free",
                "slope_before_ms_per_px",
                "slope_after_ms_per_px", "points_before", "points_after",
                "ci_low_pct", "ci_high_pct", "stride", "place"]


def _table(curve: Curve, gaps: list[Gap]) -> pd.DataFrame:
    rows = []
    for g in sorted(gaps, key=lambda g: g.k):
        r0, r1 = curve.resolution[g.k], curve.resolution[g.k + 1]
        level = g.left_coef[0] + g.left_coef[1] * r0

        def pct(ms: float) -> float:
            return 100 * ms / level if level > 0 else np.nan

        half = CI_Z95 * g.step_se_ms
        rows.append({
            "resolution_before": int(r0), "resolution_after": int(r1),
            "latency_before_ms": float(curve.latency_ms[g.k]),
            "latency_after_ms": float(curve.latency_ms[g.k + 1]),
            "jump_ms": g.step_ms, "jump_pct": pct(g.step_ms),
            "z": g.z, "se_ms": g.step_se_ms, "gap_free_ms": g.gap_ms, "z_free": g.z_free,
            "slope_before_ms_per_px": g.left_coef[1], "slope_after_ms_per_px": g.right_coef[1],
            "points_before": g.left[1] - g.left[0], "points_after": g.right[1] - g.right[0],
            "ci_low_pct": pct(g.step_ms - half), "ci_high_pct": pct(g.step_ms + half),
            "stride": int(g.stride), "place": g.place,
        })
    return pd.DataFrame(rows, columns=JUMP_COLUMNS)
