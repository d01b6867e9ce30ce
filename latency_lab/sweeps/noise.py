"""The noise of a sweep, point by point (`estimate_noise`), and its single-point spikes
(`isolated_outliers`): what every detector weighs a step against."""

from __future__ import annotations

import numpy as np

from latency_lab.sweeps.curve import CI_Z95, MAD_TO_SIGMA, Curve
from latency_lab.sweeps.jumps_model import chi2

NOISE_WINDOW = 15            # residuals per group in the curve-only noise estimate
SPIKE_Z = 4.0                # a single point this far off its neighbours' line may be a spike
SPIKE_CHI2 = 9.0             # ... and leaving it out beats a step next to it by this chi-square
# When CIs and the curve's scatter disagree by more than this factor, the scatter wins.
CI_TRUST_RATIO = 1.5


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


