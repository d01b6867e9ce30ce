"""Figures of a search: the incremental path per resolution, and RBIS vs the baselines.

- `plot_paths`: the evaluator's value (accuracy, or a proxy score such as Zen-Score, named
  as such on the axis) vs latency, one line per resolution through the parents RBIS
  accepted (each point labelled with its step, e.g. `w3+6`: a width step on stages 3 and 6;
  `d5+5`: two blocks added to stage 5; explained on the figure), the other evaluated candidates
  faint, the budget as a vertical line (the thesis's Figure 4.2).
- `plot_compare`: value vs latency of the baseline network, RBIS's winner and the
  networks compound, fast and ResNet-RS scaling give at the same budget (the thesis's
  Figure 1.2).

Every title names the network, the device the latencies are from and the date; long titles,
legends and footers are wrapped to the figure's width, never cut (the net2net paths.png lost
its evaluator options past the right edge, compare.png its title and footer).

Matplotlib's `Figure` is used without pyplot (files only, no display, no backend switch):
pyplot cost 0.17 s more to import than the figure alone, a sixth of the offline search.
"""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path
from typing import Sequence

from latency_lab.fileio import atomic_path


# What the point labels of `plot_paths` mean (the legend's title says it on the figure).
STEP_LABELS = ("point labels: the step taken, w = one width step\n(+10% of the stage's base "
               "width), d = one more block,\non the 0-based body stages joined by +:\nw3+6 = "
               "width of stages 3 and 6, d5+5 = two\nblocks on stage 5, d4 = one on stage 4")


def value_title(label: str, evaluator: str, synthetic: bool, width: int = 100) -> str:
    """The evaluator for a plot title: SYNTHETIC said first when it is."""
    text = (f"{label} SYNTHETIC, not a trained network's (evaluator below)" if synthetic
            else f"{label}: {evaluator}")
    return text if len(text) <= width else text[:width - 3] + "..."


def _figure(width_in: float, height_in: float):
    """A figure (Agg, through `Figure.savefig`) and its axes; no pyplot, no global state."""
    from latency_lab.figures import figure_class

    Figure, _ = figure_class()
    fig = Figure(figsize=(width_in, height_in), dpi=120)
    return fig, fig.subplots()


def wrap(text: str, width_in: float, fontsize: float, share: float = 1.0) -> str:
    """`text` wrapped to `share` of a figure `width_in` wide at `fontsize` points (a
    character is at most about 0.62 of the font size wide in DejaVu Sans), each line apart."""
    chars = max(20, int(share * width_in * 72 / (0.62 * fontsize)))
    return "\n".join(textwrap.fill(line, chars, break_long_words=True, break_on_hyphens=False)
                     for line in text.splitlines())


def run_label(device: str = "", when: str | None = None) -> str:
    """'on DEVICE, YYYY-MM-DD' for a title: where the latencies are from, and the date."""
    day = when or date.today().isoformat()
    return f"on {device}, {day}" if device else day


def _finish(fig, ax, footer: str, fontsize: float = 6) -> None:
    """Room for the title, the legend beside the axes and the wrapped footer, each from its
    own size: the legend measured by the Agg renderer, text by its line count. Not
    `tight_layout`, which draws the whole figure once more (0.1 s of a 0.27 s plot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    w_in, h_in = fig.get_size_inches()
    text = wrap(footer, w_in, fontsize) if footer else ""
    foot_in = (text.count("\n") + 1) * fontsize * 1.3 / 72 + 0.05 if text else 0.0
    if text:
        fig.text(0.01, 0.005, text, fontsize=fontsize, color="gray", va="bottom")
    title = ax.title
    title_in = ((title.get_text().count("\n") + 1) * title.get_fontsize() * 1.3 / 72 + 0.15
                if title.get_text() else 0.1)
    legend = ax.get_legend()
    legend_in = 0.0
    if legend is not None:
        legend_in = legend.get_window_extent(FigureCanvasAgg(fig).get_renderer()).width / fig.dpi
    fig.subplots_adjust(left=0.9 / w_in, right=1 - (legend_in + 0.2) / w_in,
                        top=1 - title_in / h_in, bottom=min(0.45, (foot_in + 0.6) / h_in))


def plot_paths(result: dict, trace: Sequence[dict], path: str | Path) -> Path:
    """`result` is result.json's dict, `trace` the trace rows (dicts as in trace.csv)."""
    import matplotlib

    width = 11.0
    fig, ax = _figure(width, 6.0)
    budget = float(result["budget_ms"])
    metric = result.get("metric", "accuracy")
    label = result.get("metric_label", "accuracy (%)")
    unit = "%" if metric == "accuracy" else ""
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, pr in enumerate(result["per_resolution"]):
        color = colors[n % len(colors)]
        r = pr["resolution"]
        evaluated = [row for row in trace if int(row["resolution"]) == r
                     and row[metric] not in ("", None) and row["phase"] != "baseline"]
        if evaluated:
            ax.scatter([float(x["latency_ms"]) for x in evaluated],
                       [float(x[metric]) for x in evaluated], s=8, color=color, alpha=0.25,
                       linewidths=0)
        if not pr["feasible"]:
            base = [row for row in trace if int(row["resolution"]) == r
                    and row["phase"] == "baseline"]
            if base:
                ax.axvline(float(base[0]["latency_ms"]), color=color, ls=":", lw=0.8)
            ax.plot([], [], color=color, ls=":", label=f"{r}: infeasible ({pr['reason']})")
            continue
        lat = [p["latency_ms"] for p in pr["path"]]
        acc = [p[metric] for p in pr["path"]]
        ax.plot(lat, acc, "-o", color=color, ms=4,
                label=f"{r}: {acc[-1]:.2f}{unit} at {lat[-1]:.1f} ms ({pr['iterations']} steps)")
        for p in pr["path"][1:]:
            ax.annotate(p["step"], (p["latency_ms"], p[metric]), fontsize=6, color=color,
                        xytext=(2, -8), textcoords="offset points")
    if result.get("resolution") is not None:
        ax.scatter([result["latency_ms"]], [result[metric]], marker="*", s=180,
                   color="gold", edgecolor="black", zorder=5,
                   label=f"winner: {result['resolution']} px")
    ax.axvline(budget, color="crimson", lw=1.2, ls="--", label=f"budget {budget:g} ms")
    synthetic = bool(result.get("accuracy_synthetic"))
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(f"SYNTHETIC {label}" if synthetic else label)
    title = (f"RBIS: {result['baseline']} to {budget:g} ms "
             f"{run_label(result.get('device', ''), result.get('date'))}, incremental path per "
             f"resolution\n" + value_title(label, result["evaluator"], synthetic, width=400))
    ax.set_title(wrap(title, width, 9, share=0.7), fontsize=9,
                 color="crimson" if synthetic else "black")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              title=STEP_LABELS, title_fontsize=6)
    _finish(fig, ax, f"latency: {result['latency_source']}\n{label}: {result['evaluator']}")
    return _save(fig, path)


def plot_compare(rows: Sequence[dict], budget_ms: float, path: str | Path,
                 title: str = "", footnote: str = "", metric: str = "accuracy",
                 metric_label: str = "accuracy (%)", unit: str = "%") -> Path:
    """`rows`: dicts with method, label, latency_ms, `metric`, resolution (compare.csv)."""
    width = 9.0
    fig, ax = _figure(width, 5.5)
    markers = {"baseline": ("s", "gray"), "rbis": ("*", "crimson"), "compound": ("o", "C0"),
               "fast": ("^", "C2"), "rs": ("D", "C4")}
    base = next((r for r in rows if r["method"] == "baseline"), None)
    for r in rows:
        m, c = markers.get(r["method"], ("x", "black"))
        ax.scatter([r["latency_ms"]], [r[metric]], marker=m, color=c,
                   s=160 if m == "*" else 60, zorder=3, edgecolor="black", linewidths=0.5,
                   label=f"{r['label']}: {r[metric]:.2f}{unit} at {r['latency_ms']:.1f} ms, "
                         f"{r['resolution']} px")
        if base is not None and r is not base:
            ax.plot([base["latency_ms"], r["latency_ms"]], [base[metric], r[metric]],
                    color=c, lw=0.8, alpha=0.6)
    if budget_ms:
        ax.axvline(budget_ms, color="crimson", lw=1.2, ls="--", label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(wrap(metric_label, 5.0, 10))
    ax.set_title(wrap(title or "RBIS vs compound, fast and ResNet-RS scaling", width, 9,
                      share=0.62), fontsize=9,
                 color="crimson" if metric_label.startswith("SYNTHETIC") else "black")
    ax.grid(alpha=0.3)
    # beside the axes: inside, it hid the points it names (compare.png, the rs network)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _finish(fig, ax, footnote)
    return _save(fig, path)


LAST_FIGURE = None   # the figure last saved (tests check its texts against its edges)


def _save(fig, path: str | Path) -> Path:
    global LAST_FIGURE
    LAST_FIGURE = fig
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
