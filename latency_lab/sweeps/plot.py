"""Figures: `plot_sweep` draws a latency-vs-resolution sweep with its jumps (sweep.png).

Matplotlib's `Figure` is imported inside the function and drawn without pyplot (Agg, files
only), so importing this module is cheap and no display is needed. Modelled on the thesis's
Figure 4.1: measured points with their confidence band, the fitted linear pieces, upward
jumps marked, downward drops marked differently, candidate resolutions highlighted and
labelled.
"""

from __future__ import annotations

from pathlib import Path

from latency_lab.fileio import atomic_path


def plot_sweep(result, candidates, path: str | Path, title: str = "", verdict: str = "",
               budget_ms: float | None = None) -> Path:
    """Draw `result` (latency_lab.sweeps.jumps.JumpResult) and `candidates` (its candidates
    table); with `verdict` (a curve too noisy to judge) the curve and its CIs only, and why;
    the budget as a horizontal line when one is given."""
    import numpy as np
    from matplotlib.figure import Figure

    curve = result.curve
    r, y = curve.resolution, curve.latency_ms
    fig = Figure(figsize=(11, 6), dpi=120)
    ax = fig.subplots()
    if curve.ci_low_ms is not None:
        ax.fill_between(r, curve.ci_low_ms, curve.ci_high_ms, color="tab:blue", alpha=0.18,
                        linewidth=0, label="95% CI")
    else:
        ax.fill_between(r, y - 1.96 * result.sigma_ms, y + 1.96 * result.sigma_ms,
                        color="tab:gray", alpha=0.15, linewidth=0,
                        label="±1.96σ (noise estimated from the curve)")
    ax.plot(r, y, "o", color="tab:blue", ms=3.5, label="median latency", zorder=3)
    if len(result.outliers):
        ax.plot(r[result.outliers], y[result.outliers], "x", color="tab:orange", ms=8, mew=2,
                label="single-point outlier (left out)", zorder=4)
    if result.fitted_ms is not None and not verdict:   # the "model" method: trend, steps, hinges
        cut = np.array(sorted({g.k for g in result.tests}), dtype=int)
        xs, ys = np.insert(r, cut + 1, np.nan), np.insert(result.fitted_ms, cut + 1, np.nan)
        ax.plot(xs, ys, "-", color="black", lw=1.2, alpha=0.75, zorder=2,
                label="fitted model (trend, steps, slope changes)")
    pieces = result.segments() if result.fitted_ms is None and not verdict else []
    for i, (a, b, c0, c1) in enumerate(pieces):
        xs = np.array([r[a], r[b - 1]])
        ax.plot(xs, c0 + c1 * xs, "-", color="black", lw=1.2, alpha=0.75,
                label="fitted linear pieces" if i == 0 else None, zorder=2)
    for i, row in enumerate(result.jumps.itertuples()):
        x = (row.resolution_before + row.resolution_after) / 2
        ax.axvline(x, color="tab:red", ls="--", lw=1, alpha=0.7,
                   label="upward jump" if i == 0 else None)
        # below and right of the step's top: under a rising curve, away from the candidates
        ax.annotate(f"+{row.jump_pct:.1f}%\n(z {row.z:.0f})", (x, row.latency_after_ms),
                    xytext=(4, -24), textcoords="offset points", fontsize=7.5,
                    color="tab:red", ha="left")
    for i, row in enumerate(result.drops.itertuples()):
        x = (row.resolution_before + row.resolution_after) / 2
        ax.axvline(x, color="tab:purple", ls=":", lw=1.2, alpha=0.8,
                   label="downward step (not a candidate)" if i == 0 else None)
        ax.annotate(f"{row.jump_pct:.1f}%", (x, row.latency_before_ms), xytext=(4, -14),
                    textcoords="offset points", fontsize=8, color="tab:purple")
    proposed = len(candidates)
    if "kept" in candidates.columns:     # dropped proposals stay in candidates.csv, not here
        candidates = candidates[candidates["kept"].astype(bool)]
    if len(candidates):
        before = candidates[candidates["role"] == "before-jump"]
        other = candidates[candidates["role"] != "before-jump"]
        ax.plot(other["resolution"], other["latency_ms"], "o", ms=9, mfc="none",
                mec="tab:green", mew=1.5, label="candidate (neighbour)", zorder=4)
        ax.plot(before["resolution"], before["latency_ms"], "o", ms=10, color="tab:green",
                alpha=0.85, label="candidate (last before a jump)", zorder=4)
        for row in before.itertuples():   # neighbours stay unlabelled: they would overlap
            ax.annotate(str(row.resolution), (row.resolution, row.latency_ms),
                        xytext=(-8, 8), textcoords="offset points", fontsize=9,
                        color="darkgreen", ha="right", fontweight="bold")
    if budget_ms:
        ax.axhline(budget_ms, color="crimson", lw=1.2, ls="--", label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("input resolution (px)")
    ax.set_ylabel("latency (ms)")
    n_up, n_down = len(result.jumps), len(result.drops)
    ci = ""
    if curve.ci_low_ms is not None:   # how wide the CIs were: what a step must beat
        half = (curve.ci_high_ms - curve.ci_low_ms) / 2 / curve.latency_ms
        ci = f" (median CI +-{100 * float(np.median(half)):.2f}%)"
    sub = (f"{curve.n} points, {n_up} jump(s), {n_down} downward step(s), "
           f"{len(candidates)} candidate(s) kept of {proposed}; noise: {result.noise_source}"
           f"{ci}; method: {result.method}")
    if verdict:
        import textwrap

        sub = f"{curve.n} points{ci}\n" + textwrap.fill(verdict.upper()[:1] + verdict[1:], 130)
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=10,
                 color="crimson" if verdict else "black")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Title": title or sub})
    return path
