"""The search's figures: the title names network, device and date; nothing is cut at the
figure's edge however long the evaluator's options or the latency source's description
(issue 26: compare.png lost its title's end and footer, the net2net paths.png its options)."""

from __future__ import annotations

from datetime import date

import pytest

from latency_lab.search import plots

LONG_EVAL = ("net2net:demo-data,amp=true,base_epochs=8,base_lr=0.0,batch=32,bn_momentum=0.1,"
             "crop_pct=0.875,device=cpu,ema=0.0,epochs=1,label_smoothing=0.1,lr=0.0,"
             "min_scale=0.5,momentum=0.9,opt=sgd,progress=true,seed=0,split_seed=0,threads=1,"
             "val_fraction=0.2,warmup_epochs=0,wd=4e-05,workers=1")
LONG_SOURCE = ("table:/a/very/long/path/to/results/cpu/latency-table-b0-search.csv (AMD EPYC "
               "(2 logical CPUs, x86_64), table(litert), context table-e95718607354) else "
               "lut:/another/long/path/lut-efficientnet-b0-to-b2.json (AMD EPYC (2 logical CPUs,"
               " x86_64), lut(litert), context lut-1d066a3b7563)")


def _texts_inside(path):
    """Every text of the saved figure lies inside it (checked on the figure as drawn)."""
    fig = plots.LAST_FIGURE
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    cut = []
    for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible()):
        if not t.get_text().strip():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
            cut.append(t.get_text()[:60])
    return cut


def _result():
    path = [{"step": "baseline", "latency_ms": 10.0, "accuracy": 70.0},
            {"step": "w6+6", "latency_ms": 11.0, "accuracy": 71.0}]
    return {"budget_ms": 12.0, "metric": "accuracy", "metric_label": "top-1 accuracy (%)",
            "baseline": "mbconv-tiny", "evaluator": LONG_EVAL, "latency_source": LONG_SOURCE,
            "device": "AMD EPYC (2 logical CPUs, x86_64) (recorded table, recorded lut)",
            "date": "2026-12-01", "resolution": 64, "latency_ms": 11.0, "accuracy": 71.0,
            "accuracy_synthetic": False,
            "per_resolution": [{"resolution": 64, "feasible": True, "reason": "",
                                "iterations": 1, "path": path}]}


@pytest.mark.slow
def test_paths_plot_names_network_device_date_and_cuts_nothing(tmp_path):
    out = plots.plot_paths(_result(), [], tmp_path / "paths.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    title = plots.LAST_FIGURE.axes[0].get_title()
    assert "mbconv-tiny" in title and "AMD EPYC" in title and "2026-12-01" in title
    assert _texts_inside(out) == []


@pytest.mark.slow
def test_compare_plot_cuts_nothing_and_draws_the_budget(tmp_path):
    rows = [{"method": m, "label": m, "latency_ms": 10 + i, "accuracy": 70 + i,
             "resolution": 224} for i, m in enumerate(["baseline", "rbis", "compound", "fast",
                                                       "rs"])]
    title = (f"efficientnet-b0 scaled to 20 ms {plots.run_label('AMD EPYC (2 logical CPUs)')}\n"
             + plots.value_title("top-1 accuracy (%)", LONG_EVAL, False, 400))
    plots.plot_compare(rows, 20.0, tmp_path / "compare.png", title=title,
                       footnote=f"latency: {LONG_SOURCE}\naccuracy: {LONG_EVAL}")
    fig = plots.LAST_FIGURE
    assert date.today().isoformat() in fig.axes[0].get_title()
    assert any("budget 20 ms" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    assert _texts_inside(tmp_path / "compare.png") == []
