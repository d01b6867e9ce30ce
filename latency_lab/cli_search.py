"""CLI commands `search`, `scale` and `compare` (registered in latency_lab/cli.py).

Thin wrappers over `latency_lab.search.rbis.run_rbis` and `latency_lab.search.scaling.scale_to_budget`: parse the
options, open the latency source and the evaluator, write the files, print a summary. The
search library is imported inside the commands so that `latency-lab --help` stays fast.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from latency_lab.errors import UserError, check_number

PY_HELP = ("py:MODULE:FUNCTION runs your own Python code (MODULE: a .py file, a module of the "
           "current directory, or an installed one; add ,timeout=SECONDS to stop a call that "
           "hangs).")
LATENCY_HELP = ("Latency source: a device name (measured live, cached in the store), "
                "table:PATH, lut:PATH or py:MODULE:FUNCTION. " + PY_HELP)
ACCURACY_HELP = ("Accuracy evaluator: table:PATH (fingerprint,resolution,accuracy) or "
                 "py:MODULE:FUNCTION. " + PY_HELP)
RES_HELP = "Candidate resolutions, e.g. 240,256,272,288 (default: the network's own resolution)."
RES_FROM_HELP = "Read candidate resolutions from a CSV's `resolution` column (e.g. jumps' candidates.csv)."
STAGES_HELP = "0-based body stages to scale, e.g. 2,3,4,5,6 (default: the last five)."


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UserError(f"malformed {what} {text!r}: give comma-separated integers") from None
    if not values:
        raise UserError(f"no {what} in {text!r}")
    return values


def resolutions_from_csv(path: Path) -> list[int]:
    import io

    from latency_lab.fileio import read_text

    reader = csv.DictReader(io.StringIO(read_text(path, "--resolutions-from file")))
    try:
        if "resolution" not in (reader.fieldnames or []):
            raise UserError(f"{path} has no `resolution` column")
        values = [_whole(row["resolution"], path) for row in reader
                  if (row["resolution"] or "").strip()]
    except csv.Error as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}") from None
    if not values:
        raise UserError(f"{path} lists no resolutions")
    return sorted(set(values))


def _whole(text: str, path: Path) -> int:
    """A resolution from a CSV: 240 or 240.0, not 240.5, 1e9 or nan (checked for range later)."""
    try:
        x = float(text)
    except ValueError:
        raise UserError(f"{path}: resolution {text!r} is not a number") from None
    if not x.is_integer():
        raise UserError(f"{path}: resolution {text!r} is not a whole number of pixels")
    return int(x)


def _resolutions(spec, resolutions: Optional[str], resolutions_from: Optional[Path]) -> list[int]:
    from latency_lab.spec import check_resolution

    if resolutions and resolutions_from:
        raise UserError("give --resolutions or --resolutions-from, not both")
    if resolutions_from:
        values = resolutions_from_csv(resolutions_from)
    elif resolutions:
        values = parse_int_list(resolutions, "resolutions")
    else:
        values = [spec.resolution]
    return sorted({check_resolution(v) for v in values})


def _check_budget(budget_ms: float) -> None:
    check_number(budget_ms, "--budget-ms", 0, None, "a latency in ms", low_open=True)


def _check_out_dir(out: Path) -> None:
    """Refuse an --out that cannot be written before any work; it is made by the first file
    written into it, so an error before that leaves no empty directory behind."""
    from latency_lab.fileio import check_output_dir

    check_output_dir(out, "--out")


def _run_search(network, budget_ms, latency, accuracy, resolutions, resolutions_from, stages,
                candidates, out, plot_name="paths.png"):
    """Shared by `search` and `compare`: returns (spec, result, cache)."""
    from latency_lab.plots_search import plot_paths
    from latency_lab.presets import load_network
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.search.rbis import run_rbis
    from latency_lab.search.sources import parse_latency_source

    spec = load_network(network)
    _check_budget(budget_ms)
    if candidates < 1:
        raise UserError(f"--candidates must be at least 1, got {candidates}")
    grid = _resolutions(spec, resolutions, resolutions_from)
    stage_list = parse_int_list(stages, "stages") if stages else None
    _check_out_dir(out)
    evaluator = parse_evaluator(accuracy)
    source = parse_latency_source(latency)
    try:
        result = run_rbis(spec, budget_ms, grid, source, evaluator, stage_list, candidates, out,
                          log=_log)
        d = result.to_dict()
        plot_paths(d, result.trace, out / plot_name)
    except BaseException:
        source.close()
        raise
    return spec, result, source


def search_command(
    network: str = typer.Option("efficientnet-b0", help="Preset name or network JSON file."),
    budget_ms: float = typer.Option(..., "--budget-ms", help="Latency budget T in ms."),
    latency: str = typer.Option(..., help=LATENCY_HELP),
    accuracy: str = typer.Option(..., help=ACCURACY_HELP),
    resolutions: Optional[str] = typer.Option(None, help=RES_HELP),
    resolutions_from: Optional[Path] = typer.Option(None, "--resolutions-from", help=RES_FROM_HELP),
    stages: Optional[str] = typer.Option(None, help=STAGES_HELP),
    candidates: int = typer.Option(10, help="K: candidates evaluated per iteration (lowest latency)."),
    out: Path = typer.Option(Path("rbis-out"), help="Directory for result.json, trace.csv, "
                                                    "paths.png and the resumable state.json."),
) -> None:
    """RBIS: scale a network to a latency budget, stage by stage, at each candidate resolution."""
    _, result, source = _run_search(network, budget_ms, latency, accuracy, resolutions,
                                    resolutions_from, stages, candidates, out)
    source.close()
    d = result.to_dict()
    c = d["counts"]
    for pr in d["per_resolution"]:
        if pr["feasible"]:
            print(f"{pr['resolution']:5d}  {pr['accuracy']:.3f}%  {pr['latency_ms']:.3f} ms  "
                  f"{pr['iterations']} steps  widths {pr['widths']} depths {pr['depths']}")
        else:
            print(f"{pr['resolution']:5d}  infeasible: {pr['reason']}")
    print(f"winner: {d['resolution']} px, {d['accuracy']:.3f}%, {d['latency_ms']:.3f} ms "
          f"(budget {budget_ms:g} ms); {c['latency_reads']} latency reads, "
          f"{c['accuracy_evaluations']} accuracy evaluations"
          f"{' (resumed)' if c['resumed'] else ''}; wrote {out}/result.json, trace.csv, paths.png")


def scale_command(
    method: str = typer.Option(..., help="compound (dwr), fast (dWr) or rs (ResNet-RS encoding)."),
    network: str = typer.Option("efficientnet-b0", help="Preset name or network JSON file."),
    budget_ms: float = typer.Option(..., "--budget-ms", help="Latency budget T in ms."),
    latency: str = typer.Option(..., help=LATENCY_HELP),
    out: Optional[Path] = typer.Option(None, help="Write the scaled network (with its "
                                                  "resolution and the search probes) as JSON."),
) -> None:
    """The largest network of a scaling family (compound, fast, rs) within the budget."""
    from latency_lab.presets import load_network
    from latency_lab.search.scaling import get_family, scale_to_budget
    from latency_lab.search.sources import parse_latency_source

    family = get_family(method)
    spec = load_network(network)
    _check_budget(budget_ms)
    if out:
        from latency_lab.fileio import check_output_file

        check_output_file(out, "--out")
    with parse_latency_source(latency) as source:
        res = scale_to_budget(family, spec, budget_ms, source.latency_ms)
        described = source.describe()
    d, w, r = res.factors
    s = res.spec
    print(f"{method} ({res.label}) {family.parameter} = {res.x:.2f}: depth x{d:.3f}, width "
          f"x{w:.3f}, resolution x{r:.3f} -> {s.resolution} px, {res.latency_ms:.3f} ms "
          f"(budget {budget_ms:g} ms, {len(res.probes)} latency reads)")
    print(f"widths {list(s.widths)} depths {list(s.depths)} stem {s.stem.width} head "
          f"{s.head_width}  fingerprint {s.fingerprint}")
    if res.note:
        print(f"note: {res.note}")
    if out:
        from latency_lab.fileio import write_atomic

        write_atomic(out, json.dumps({**res.to_dict(), "budget_ms": budget_ms,
                                      "latency_source": described}, indent=2))
        print(f"wrote {out}")


def compare_command(
    network: str = typer.Option("efficientnet-b0", help="Preset name or network JSON file."),
    budget_ms: float = typer.Option(..., "--budget-ms", help="Latency budget T in ms."),
    latency: str = typer.Option(..., help=LATENCY_HELP),
    accuracy: str = typer.Option(..., help=ACCURACY_HELP),
    resolutions: Optional[str] = typer.Option(None, help=RES_HELP),
    resolutions_from: Optional[Path] = typer.Option(None, "--resolutions-from", help=RES_FROM_HELP),
    stages: Optional[str] = typer.Option(None, help=STAGES_HELP),
    candidates: int = typer.Option(10, help="K: candidates evaluated per iteration (lowest latency)."),
    out: Path = typer.Option(Path("compare-out"), help="Directory for compare.csv, compare.png "
                                                       "and RBIS's files."),
) -> None:
    """RBIS and the compound, fast and rs baselines on the same sources and budget."""
    from latency_lab.plots_search import plot_compare
    from latency_lab.fileio import write_atomic
    from latency_lab.search.scaling import FAMILIES, scale_to_budget

    spec, result, source = _run_search(network, budget_ms, latency, accuracy, resolutions,
                                       resolutions_from, stages, candidates, out)
    cache = result.cache
    try:
        lat = lambda s, r: cache.latencies([(s, r)])[0]  # noqa: E731  same cache as RBIS
        rows = []
        [base_lat] = cache.latencies([(spec, spec.resolution)])
        [base_acc] = cache.accuracies([(spec, spec.resolution)])
        rows.append(_compare_row("baseline", spec.name, spec, base_lat, base_acc, ""))
        w = result.winner.best
        rows.append(_compare_row("rbis", "RBIS", w.spec, w.latency_ms, w.accuracy,
                                 f"{result.winner.iterations} steps"))
        for method, family in FAMILIES.items():
            res = scale_to_budget(family, spec, budget_ms, lat)
            [acc] = cache.accuracies([(res.spec, res.spec.resolution)])
            d, wm, r = res.factors
            rows.append(_compare_row(method, f"{method} ({family.label})", res.spec,
                                     res.latency_ms, acc, f"{family.parameter}={res.x:.2f} "
                                     f"d{d:.3f} w{wm:.3f} r{r:.3f} {res.note}".strip()))
    finally:
        source.close()
    cols = list(rows[0])
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "compare.csv", buf.getvalue())
    foot = f"latency: {source.describe()}   accuracy: {cache.evaluator.describe()}"
    plot_compare(rows, budget_ms, out / "compare.png",
                 title=f"{spec.name} scaled to {budget_ms:g} ms", footnote=foot)
    for r in rows:
        print(f"{r['label']:16s} {r['accuracy']:8.3f}%  {r['latency_ms']:9.3f} ms  "
              f"{r['resolution']:4d} px  {r['detail']}")
    c = cache
    print(f"wrote {out}/compare.csv, compare.png, result.json, trace.csv, paths.png; "
          f"{c.latency_calls} latency reads, {c.accuracy_calls} accuracy evaluations")


def _compare_row(method, label, spec, latency_ms, accuracy, detail) -> dict:
    return {"method": method, "label": label, "resolution": spec.resolution,
            "latency_ms": round(latency_ms, 6), "accuracy": round(accuracy, 6),
            "fingerprint": spec.fingerprint, "widths": " ".join(map(str, spec.widths)),
            "depths": " ".join(map(str, spec.depths)), "head_width": spec.head_width,
            "detail": detail}
