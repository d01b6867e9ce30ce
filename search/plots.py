"""Figures of a search: the incremental path per resolution, and RBIS vs the baselines.

- `plot_paths`: the evaluator's value (accuracy, or a proxy score such as Zen-Score, named
  as such on the axis) vs latency, one line per resolution through the parents RBIS
  accepted (each point labelled with its step, e.g. `w3+6`: a width step on stages 3 and 6;
  `d5+5`: two blocks added to stage 5; explained on the figure), the other evaluated candidates
  faint, the budget as a vertical line (the thesis's Figure 4.2).
- `plot_compare`: value vs latency of the baseline network, RBIS's winner and the
  networks compound, fast and ResNet-RS scaling give at the same budget (the thesis's
  Figure 1.2).

Matplotlib is imported inside the functions, with the Agg backend (files only, no display).
"""

from __future__ import annotations

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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_paths(result: dict, trace: Sequence[dict], path: str | Path) -> Path:
    """`result` is result.json's dict, `trace` the trace rows (dicts as in trace.csv)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=120)
    budget = float(result["budget_ms"])
    metric = result.get("metric", "accuracy")
    label = result.get("metric_label", "accuracy (%)")
    unit = "%" if metric == "accuracy" else ""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
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
    ax.set_title(f"RBIS: {result['baseline']} to {budget:g} ms, incremental path per resolution\n"
                 + value_title(label, result["evaluator"], synthetic),
                 fontsize=9, color="crimson" if synthetic else "black")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              title=STEP_LABELS, title_fontsize=6)
    fig.text(0.01, 0.005, f"latency: {result['latency_source']}\n{label}: {result['evaluator']}",
             fontsize=6, color="gray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, plt, path)


def plot_compare(rows: Sequence[dict], budget_ms: float, path: str | Path,
                 title: str = "", footnote: str = "", metric: str = "accuracy",
                 metric_label: str = "accuracy (%)", unit: str = "%") -> Path:
    """`rows`: dicts with method, label, latency_ms, `metric`, resolution (compare.csv)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
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
    ax.axvline(budget_ms, color="crimson", lw=1.2, ls="--", label=f"budget {budget_ms:g} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel(metric_label)
    ax.set_title(title or "RBIS vs compound, fast and ResNet-RS scaling", fontsize=9,
                 color="crimson" if metric_label.startswith("SYNTHETIC") else "black")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    if footnote:
        fig.text(0.01, 0.005, footnote, fontsize=6, color="gray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
