"""Jump detection that reads the network (`detect(..., method="lattice")`).

The sweep is one linear model fitted to the whole curve:

    latency(r_i) = trend(r_i) + sum over places p of step_p * [i > k_p]
                              + sum over chosen other breaks q of step_q * [i > k_q] + e_i

- `trend`: a quadratic in r, shared by the whole curve (the smooth part: the maps of small
  stride grow at nearly every grid step, and MACs grow as r^2);
- places: every break where a coarse feature map grows (`latency_lab.network.lattice`, from
  the network's block walk). Each place's step is in the model whether it is large or zero,
  so each is estimated from the whole segments on both sides and the trend from all points,
  never from a few neighbours, and no search can trade a step for a ramp of slope changes;
- other breaks: a step anywhere else enters only at a stricter bar (`z_other`), one at a time,
  the strongest first, so a runtime or a network that steps elsewhere is still seen;
- e_i: the sweep's own noise, sigma_i from its CIs (or, without CIs, from the curve's
  scatter), rescaled to the model's residuals when they are wider. The fit is robust (Huber
  weights, iterated): a busy machine's errors are heavy-tailed, and one slow point must not
  move a step or inflate every standard error.

Each step gets its size, standard error (the model's covariance, times the residual scale),
z = size / SE and a 95% interval. A step at a place is a jump (or a drop) when |z| >= z_min;
at another break, when |z| >= z_other. A place one point from either end cannot tell a step
from one odd point: its step stays in the model (so the trend is not bent by it) but is never
reported.

Written here rather than taken from a library: this is weighted least squares with a fixed
design and a forward selection (numpy's lstsq); ruptures' costs fit every segment on its own
(no shared trend, no places), statsmodels' RLM would add a dependency for the Huber weights
alone. 61 points, 15 places: about 5 ms a fit (docs/jumps.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# |z| of a step at a place that makes it a jump: one test per place, and a place is where steps
# are (every one of the 14 had one on each quiet cpu sweep). 2.5 found 5 of the 7 large steps on
# both real busy sweeps with CIs of at most 5%, 3.0 found 4 and 3 (results/benchmarks/
# busy_jumps_benchmark.md); on smooth synthetic curves it makes 0.33 false steps a curve at the
# places with Gaussian noise (0.65 with Student-t, 3 dof), 0-0.07 elsewhere (z_other).
DEFAULT_Z_PLACE = 2.5
DEFAULT_Z_OTHER = 5.0     # ... at any other break (tens of breaks tested: a stricter bar)
TREND_DEGREE = 2
HUBER_C = 2.0             # residuals beyond this many (scaled) sigma get weight c / |res|
IRLS_ROUNDS = 8
MIN_DOF = 6               # leave at least this many residual degrees of freedom
MIN_SIDE = 2              # points each side of a reported step
SCALE_FLOOR = 1.0
CI_Z95 = 1.959964


@dataclass(frozen=True)
class Step:
    """One step of the model, after grid point k (between r_k and r_k+1)."""

    k: int
    step_ms: float
    se_ms: float
    z: float
    level_ms: float          # the fitted curve at r_k (the level the step is relative to)
    place: object | None     # latency_lab.network.lattice.Place, or None (another break)
    reported: bool           # False for a place at an end of the curve (a nuisance term)

    @property
    def pct(self) -> float:
        return 100 * self.step_ms / self.level_ms if self.level_ms > 0 else float("nan")

    @property
    def ci_pct(self) -> tuple[float, float]:
        """95% interval of the step, in % of the level before it."""
        half = CI_Z95 * self.se_ms
        return (100 * (self.step_ms - half) / self.level_ms,
                100 * (self.step_ms + half) / self.level_ms)


@dataclass(frozen=True)
class LatticeFit:
    steps: list[Step]        # every step term, sorted by k
    fitted: np.ndarray       # the model at every point (ms)
    scale: float             # factor applied to sigma: the residuals' robust scale (>= 1 with CIs)
    weights: np.ndarray      # Huber weights of the points (1: a normal point)
    notes: list[str]

    def slope_at(self, r: np.ndarray, k: int, side: int) -> float:
        """Slope (ms per px) of the fitted curve just left (side -1) or right (+1) of break k."""
        n = len(r)
        a, b = (k - 1, k) if side < 0 else (k + 1, k + 2)
        if a < 0 or b >= n:
            a, b = (k + 1, k + 2) if side < 0 else (k - 1, k)
        if a < 0 or b >= n:
            return 0.0
        return float((self.fitted[b] - self.fitted[a]) / (r[b] - r[a]))


def _trend(r: np.ndarray) -> np.ndarray:
    span = float(np.ptp(r)) or 1.0
    u = (r - r.mean()) / span
    return np.column_stack([u ** d for d in range(TREND_DEGREE + 1)])


def _robust_scale(e: np.ndarray, p: int) -> float:
    """sigma of standardized residuals: the MAD (normal-consistent), corrected for the p
    fitted terms."""
    n = len(e)
    mad = float(np.median(np.abs(e - np.median(e)))) / 0.6744898
    return mad * np.sqrt(n / max(1, n - p))


def _irls(X: np.ndarray, y: np.ndarray, s: np.ndarray, fixed_scale: float | None):
    """Huber-weighted least squares. Returns coef, the covariance in units of the noise as
    given (times scale^2 it is the estimate's covariance), the residual scale and the weights.

    The covariance is Huber's sandwich, (X'S^-2X)^-1 * mean(psi^2) / mean(psi')^2 * K^2
    (Huber 1981, sec. 7.6; statsmodels RLM's H1), not the weighted least-squares one: with
    heavy tails the Huber estimate varies more than a Gaussian's of the same scale would, and
    the plain formula made 0.28 false jumps per curve on Student-t (3) noise at the places,
    where a z bar of 3 promises 0.04."""
    n, p = X.shape
    w = np.ones(n)
    scale = 1.0
    for _ in range(IRLS_ROUNDS):
        sw = np.sqrt(w) / s
        coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
        e = (y - X @ coef) / s
        scale = _robust_scale(e, p) if fixed_scale is None else fixed_scale
        scale = max(scale, 1e-12)
        a = np.abs(e) / scale
        w_new = np.where(a <= HUBER_C, 1.0, HUBER_C / np.maximum(a, 1e-300))
        if np.allclose(w_new, w, atol=1e-4):
            w = w_new
            break
        w = w_new
    sw = np.sqrt(w) / s
    Xw = X * sw[:, None]
    coef, *_ = np.linalg.lstsq(Xw, y * sw, rcond=None)
    u = (y - X @ coef) / s / scale
    inside = np.abs(u) <= HUBER_C
    m_psi2 = float(np.mean(np.clip(u, -HUBER_C, HUBER_C) ** 2))
    m_dpsi = max(float(np.mean(inside)), 1.0 / n)
    k = 1.0 + p / n * (1.0 - m_dpsi) / m_dpsi
    X0 = X / s[:, None]
    cov = np.linalg.pinv(X0.T @ X0) * m_psi2 / m_dpsi ** 2 * k ** 2
    return coef, cov, scale, w


def too_few_points(n: int, places: Sequence) -> str:
    """Why a grid of n points cannot carry a step at each of its places ('' when it can):
    the trend and the places must leave a third of the points as residual degrees of
    freedom, else each step is measured on one or two points a side and the model has
    nothing left to tell its noise from its steps (a GPU sweep on an 8-px grid with points
    the time cap never reached: 21 points, 12 places)."""
    p = TREND_DEGREE + 1 + sum(1 for pl in places if 0 <= int(pl.k) <= n - 2)
    if n - p < max(MIN_DOF, n // 3):
        return (f"{n} points are too few for a step at each of the network's {p - TREND_DEGREE - 1} "
                f"places (they would leave {n - p} degrees of freedom, fewer than a third)")
    return ""


def fit_lattice(r: np.ndarray, y: np.ndarray, sigma: np.ndarray, places: Sequence,
                z_other: float = DEFAULT_Z_OTHER, sigma_known: bool = True) -> LatticeFit:
    """Fit trend + a step at every place + the other steps that pass `z_other`.

    `places`: objects with `k` (break index into the sorted grid; `lattice.Place`).
    `sigma_known`: the sigmas come from CIs, so the residual scale only ever widens them (a
    model that fits better than the CIs say keeps the CIs); from the curve, it sets them."""
    r, y, s = (np.asarray(a, float) for a in (r, y, sigma))
    n = len(r)
    idx = np.arange(n)
    notes: list[str] = []
    by_k = {int(p.k): p for p in places if 0 <= int(p.k) <= n - 2}
    base = _trend(r)
    y0 = y - np.median(y)
    place_ks = sorted(by_k)
    other_ks = _other_steps(base, place_ks, idx, y0, s, r, by_k, z_other, sigma_known)
    X = np.column_stack([base] + [(idx > k) * 1.0 for k in place_ks + other_ks])
    coef, cov, scale, w = _irls(X, y0, s, None)
    ks = place_ks + other_ks
    factor = max(scale, SCALE_FLOOR) if sigma_known else scale
    cov = cov * factor ** 2
    trend_cols = base.shape[1]
    fitted = X @ coef + np.median(y)
    steps = []
    for m, k in enumerate(ks):
        c = trend_cols + m
        se = float(np.sqrt(max(cov[c, c], 0.0)))
        step = float(coef[c])
        z = step / se if se > 0 else (np.inf * np.sign(step) if step else 0.0)
        place = by_k.get(k)
        reported = MIN_SIDE - 1 <= k <= n - 1 - MIN_SIDE
        steps.append(Step(k, step, se, float(z), float(fitted[k]), place, reported))
    steps.sort(key=lambda st: st.k)
    return LatticeFit(steps, fitted, float(factor), w, notes)


def _other_steps(base, place_ks, idx, y0, s, r, by_k, z_other, sigma_known) -> list[int]:
    """Steps away from the places. Forward: the strongest other break by its z against the
    noise as given (the CIs; from the curve, the current model's residual scale), while it
    passes z_other. Backward: each chosen step's z in the whole model with the residual scale
    of that model (what the CIs miss of a busy machine's noise), the weakest dropped while it
    fails z_other. Forward alone would judge a GPU's kernel switches against the misfit of the
    switches not yet in the model; backward alone would start from too many terms."""
    n = len(y0)
    chosen: list[int] = []
    candidates = [k for k in range(MIN_SIDE - 1, n - MIN_SIDE) if k not in by_k]
    limit = max(1, n // 4)
    while len(chosen) < limit:
        X = np.column_stack([base] + [(idx > k) * 1.0 for k in place_ks + chosen])
        if n - X.shape[1] - 1 < MIN_DOF:
            break
        coef, cov, scale, w = _irls(X, y0, s, None)
        if sigma_known:     # screened against the CIs; the backward pass applies the scale
            scale = 1.0
        sw = np.sqrt(w) / s
        Q, _ = np.linalg.qr(X * sw[:, None])
        yw = y0 * sw
        res = yw - Q @ (Q.T @ yw)
        best, best_z = None, 0.0
        for k in candidates:
            if k in chosen:
                continue
            c = (idx > k) * sw
            c = c - Q @ (Q.T @ c)
            nn = float(c @ c)
            if nn < 1e-9 * float(sw @ sw):
                continue
            z = float(c @ res) / np.sqrt(nn) / max(scale, 1e-12)
            if abs(z) > abs(best_z):
                best, best_z = k, z
        if best is None or abs(best_z) < z_other:
            break
        chosen.append(best)
    while chosen:
        ks = place_ks + chosen
        X = np.column_stack([base] + [(idx > k) * 1.0 for k in ks])
        coef, cov, scale, _ = _irls(X, y0, s, None)
        factor = max(scale, SCALE_FLOOR) if sigma_known else scale
        m0 = base.shape[1] + len(place_ks)
        z = np.abs(coef[m0:]) / np.sqrt(np.maximum(np.diag(cov)[m0:], 1e-300)) / factor
        weakest = int(np.argmin(z))
        if z[weakest] >= z_other:
            break
        del chosen[weakest]
    return chosen


# Residual scale (x the CIs) above which the places do not explain the curve: a GPU's
# staircase of kernel switches measured with +-0.05% CIs leaves x10-40 (results/cuda/); the
# CPU sweeps, quiet or busy, x1.0-1.8. `jumps.detect` then falls back to the "model" method.
MISFIT = 4.0


def detect_lattice(curve, places, z_min: float = DEFAULT_Z_PLACE,
                   z_other: float = DEFAULT_Z_OTHER):
    """The lattice detector on a prepared `curve.Curve` with the network's `places`: a
    `curve.JumpResult` (method "lattice") whose `tests` are every reported step of the model,
    jumps those at a place with |z| >= z_min and the others (all passed z_other); or None and
    why not, when the grid is too coarse for its places or the model leaves the curve
    unexplained (residuals over MISFIT times its CIs)."""
    from latency_lab.sweeps.curve import Gap, make_result
    from latency_lab.sweeps.noise import estimate_noise

    why = too_few_points(curve.n, places)
    if why:
        return None, why
    sigma, source = estimate_noise(curve, rescale_ci=False)
    known = curve.ci_low_ms is not None
    if known:
        # A CI narrower than the curve's typical one is no better evidence: over 5-10 rounds a
        # bootstrap interval is itself uncertain, and on a busy machine one point's CI came
        # out at 1% beside neighbours at 5-40% (results/cpu/busy/); weighted as given, such
        # points would pull the whole fit. The floor is the typical CI at each resolution (a
        # power law in r through the CIs, its level their median: invariant to a shift).
        lr, ls = np.log(curve.resolution), np.log(sigma)
        b = float(np.clip(np.polyfit(lr, ls, 1)[0], -1.0, 3.0))
        sigma = np.maximum(sigma, np.exp(float(np.median(ls - b * lr)) + b * lr))
    r, y = curve.resolution, curve.latency_ms
    fit = fit_lattice(r, y, sigma, places, z_other, sigma_known=known)
    if known:
        if fit.scale > 1.0:
            source += f", x{fit.scale:.2f} to the model's residuals"
    else:
        source += f", scaled x{fit.scale:.2f} to the model's residuals"
    sigma = sigma * fit.scale
    tests, jumps = [], []
    ks = [st.k for st in fit.steps]
    n = curve.n
    for st in fit.steps:
        if not st.reported:
            continue
        lo = max([b + 1 for b in ks if b < st.k] + [0])
        hi = min([b + 1 for b in ks if b > st.k] + [n])
        sl, sr = fit.slope_at(r, st.k, -1), fit.slope_at(r, st.k, +1)
        level_r = float(fit.fitted[st.k + 1])
        p = st.place
        g = Gap(st.k, st.step_ms, st.se_ms, st.z, st.step_ms, st.se_ms, st.z, 0.0,
                (lo, st.k + 1), (st.k + 1, hi), (st.level_ms - sl * r[st.k], sl),
                (level_r - sr * r[st.k + 1], sr),
                stride=p.stride if p is not None else 0,
                place=p.label if p is not None else "")
        tests.append(g)
        if abs(st.z) >= (z_min if p is not None else z_other):
            jumps.append(g)
    if known and fit.scale > MISFIT:
        return None, (f"the network's places leave this curve unexplained (residuals "
                      f"x{fit.scale:.1f} its CIs, over {MISFIT:g})")
    result = make_result(curve, sigma, source, [], tests, jumps, np.array([], dtype=int),
                         "lattice", fit.fitted, places, fit.notes)
    return result, ""
