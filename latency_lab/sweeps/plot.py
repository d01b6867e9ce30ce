"""Figures: `plot_sweep` draws a latency-vs-resolution sweep with its jumps (sweep.png).

Matplotlib is imported inside the function (about 0.45 s of CPU, half of what the `jumps`
command costs), its Figure on an Agg canvas without pyplot's global state, so importing this
module is cheap and no display is needed. Modelled on the thesis's Figure 4.1: measured points
with their confidence band, the fitted curve, upward jumps marked (coloured by the stage whose
feature map grows there, when the network is known), downward drops marked differently,
candidate resolutions highlighted and labelled, the network's places as ticks along the axis.
"""

from __future__ import annotations

from pathlib import Path

from latency_lab.fileio import atomic_path


def plot_sweep(result, candidates, path: str | Path, title: str = "", medians=None,
               verdict: str = "", budget_ms: float | None = None) -> Path:
    """Draw `result` (latency_lab.sweeps.jumps.JumpResult) and `candidates` (its candidates table).
    `medians` (a sweep table with resolution and latency_ms): when the jumps were found on the
    floor, the medians are drawn beside it, faint, and the candidates sit on the floor. With
    `verdict` (a curve too noisy to judge) the curve and its CIs only, and why; the budget as a
    horizontal line when one is given."""
    import numpy as np
    from latency_lab.figures import figure_class

    Figure, FigureCanvasAgg = figure_class()

    curve = result.curve
    r, y = curve.resolution, curve.latency_ms
    fig = Figure(figsize=(11, 6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if curve.ci_low_ms is not None:
        ax.fill_between(r, curve.ci_low_ms, curve.ci_high_ms, color="tab:blue", alpha=0.18,
                        linewidth=0, label="95% CI")
    else:
        ax.fill_between(r, y - 1.96 * result.sigma_ms, y + 1.96 * result.sigma_ms,
                        color="tab:gray", alpha=0.15, linewidth=0,
                        label="±1.96σ (noise estimated from the curve)")
    if medians is not None:
        ax.plot(medians["resolution"], medians["latency_ms"], ".", color="tab:gray", ms=4,
                alpha=0.6, label="median latency (busy: interference included)", zorder=2)
        label = "floor: 10th percentile of the raw samples (where the jumps were found)"
    else:
        label = "median latency"
    ax.plot(r, y, "o", color="tab:blue", ms=3.5, label=label, zorder=3)
    if len(result.outliers):
        ax.plot(r[result.outliers], y[result.outliers], "x", color="tab:orange", ms=8, mew=2,
                label="single-point outlier (left out)", zorder=4)
    if result.fitted_ms is not None and not verdict:   # "model", "lattice": trend + steps (+ hinges)
        cut = np.array(sorted({g.k for g in result.tests}), dtype=int)
        xs, ys = np.insert(r, cut + 1, np.nan), np.insert(result.fitted_ms, cut + 1, np.nan)
        ax.plot(xs, ys, "-", color="black", lw=1.2, alpha=0.75, zorder=2,
                label="fitted model (trend, steps"
                      + (", slope changes)" if result.method == "model" else ")"))
    pieces = result.segments() if result.fitted_ms is None and not verdict else []
    for i, (a, b, c0, c1) in enumerate(pieces):
        xs = np.array([r[a], r[b - 1]])
        ax.plot(xs, c0 + c1 * xs, "-", color="black", lw=1.2, alpha=0.75,
                label="fitted linear pieces" if i == 0 else None, zorder=2)
    _mark_steps(ax, result)
    proposed = len(candidates)
    if "kept" in candidates.columns:     # dropped proposals stay in candidates.csv, not here
        candidates = candidates[candidates["kept"].astype(bool)]
    if len(candidates):
        on_curve = dict(zip(r.astype(int), y))   # drawn on the curve the jumps were found on
        candidates = candidates.assign(
            latency_ms=[on_curve.get(int(v), np.nan) for v in candidates["resolution"]])
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
           f"{len(candidates)} candidate(s) kept of {proposed}; method: {result.method}\n"
           f"noise: {result.noise_source}{ci}")
    if verdict:
        import textwrap

        sub = f"{curve.n} points{ci}\n" + textwrap.fill(verdict.upper()[:1] + verdict[1:], 130)
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=10,
                 color="crimson" if verdict else "black")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    # fixed margins for the fixed size, not tight_layout: that lays out every text once more
    # and leaves a layout engine under which savefig draws the figure twice (0.2 -> 0.12 s)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.88)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Title": title or sub})
    return path


# Colours of the steps by the stride of the map that grows there (1/32: the last stages and
# the head, 1/16: the middle ones); a step at no place of the network is black.
STRIDE_COLOURS = {64: "tab:brown", 32: "tab:red", 16: "tab:orange", 8: "tab:olive"}


def _mark_steps(ax, result) -> None:
    """Jumps (dashed) and drops (dotted) as vertical lines coloured by the stage whose feature
    map grows at them, one legend entry per kind of place; the network's places as ticks."""
    if result.places:
        ax.plot([(p.before + p.after) / 2 for p in result.places], [0] * len(result.places),
                "|", color="gray", ms=10, mew=1, transform=ax.get_xaxis_transform(),
                label="where a coarse feature map grows (network's places)", zorder=1,
                clip_on=False)
    labelled: set = set()
    for table, up in ((result.jumps, True), (result.drops, False)):
        for row in table.itertuples():
            stride = int(getattr(row, "stride", 0) or 0)
            place = str(getattr(row, "place", "") or "")
            colour = STRIDE_COLOURS.get(stride, "tab:purple" if stride else "black")
            if not up:
                colour = "tab:purple" if not stride else colour
            key = (up, stride, place.split(": ", 1)[-1] if stride else "")
            if stride:
                what = f"1/{stride} map grows: {key[2]}"
            else:
                what = "no place of the network" if result.places else "network unknown"
            label = (f"{'jump' if up else 'drop (not a candidate)'}, {what}"
                     if key not in labelled else None)
            labelled.add(key)
            x = (row.resolution_before + row.resolution_after) / 2
            ax.axvline(x, color=colour, ls="--" if up else ":", lw=1.1 if up else 1.3,
                       alpha=0.75, label=label)
            if up:   # below and right of the step's top: under a rising curve, off the candidates
                ax.annotate(f"+{row.jump_pct:.1f}%\n(z {row.z:.0f})", (x, row.latency_after_ms),
                            xytext=(4, -24), textcoords="offset points", fontsize=7.5,
                            color=colour, ha="left")
            else:
                ax.annotate(f"{row.jump_pct:.1f}%", (x, row.latency_before_ms), xytext=(4, -14),
                            textcoords="offset points", fontsize=8, color=colour)
