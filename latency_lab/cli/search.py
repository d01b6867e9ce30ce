"""CLI commands `search`, `scale` and `compare` (registered in latency_lab/cli/app.py).

Thin wrappers over `latency_lab.search.rbis.run_rbis` and
`latency_lab.search.scaling.scale_to_budget`: parse the options, open the latency source and
the evaluator, write the files, print a summary. The search library is imported inside the
commands so that `latency-lab --help` stays fast.
"""

from __future__ import annotations

import csv
import gc
import json
import sys
from contextlib import contextmanager
import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from latency_lab.cli.options import (DEFAULT_NETWORK, Accuracy, BatchTimeCap, BudgetMs, Candidates,
                                     CiTarget, DeviceOptions, Executor, Latency, MaxCandidates,
                                     LatencyScaleTable, MaxRounds, MaxSeeds, MinRounds,
                                     NetworkName, Reevaluate, Remeasure,
                                     Resolutions, ResolutionsFrom, Stages, StorePath,
                                     device_options, parse_int_list, protocol)
from latency_lab.errors import UserError, check_number
from latency_lab.measure.settings import NETWORK_PROTOCOL as P
from latency_lab.search.racing import DEFAULT_MAX_SEEDS

def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolutions_from_csv(path: Path) -> list[int]:
    import io

    from latency_lab.fileio import read_text

    reader = csv.DictReader(io.StringIO(read_text(path, "--resolutions-from file")))
    try:
        if "resolution" not in (reader.fieldnames or []):
            raise UserError(f"{path} has no `resolution` column")
        keep = "kept" in (reader.fieldnames or [])   # a candidates table: its kept rows
        values = [_whole(row["resolution"], path) for row in reader
                  if (row["resolution"] or "").strip()
                  and (not keep or (row["kept"] or "").strip().lower() in ("true", "1"))]
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


def candidates_from_csv(path: Path, spec, budget_ms: float, stages, max_candidates: int,
                        out: Path) -> list[int] | None:
    """A jumps candidates.csv re-selected for this search (`latency_lab.sweeps.candidates.select`:
    this budget, this network's cheapest step, the best `max_candidates` by jump size), the
    decisions written to out/candidates.csv; None for a CSV that is not one."""
    import pandas as pd

    from latency_lab.sweeps.candidates import COLUMNS, kept, network_step_cost, select
    from latency_lab.fileio import atomic_path

    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None            # resolutions_from_csv says what is wrong with it
    need = {"resolution", "latency_ms", "jump_pct", "offset", "role", "jump_resolution_before",
            "reason"}
    if not need <= set(frame.columns):
        return None
    try:
        decided = select(frame, budget_ms, max_candidates=max_candidates,
                         step_cost=network_step_cost(spec, stages))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a usable candidates table ({exc})") from None
    with atomic_path(out / "candidates.csv") as tmp:
        decided[COLUMNS].to_csv(tmp, index=False, float_format="%.4f")
    for row in decided.itertuples():
        _log(f"candidate {row.resolution}: {row.reason.split(' | ')[-1]}")
    picks = kept(decided)
    if not picks:
        raise UserError(f"no resolution of {path} leaves room for a scaling step of {spec.name} "
                        f"under {budget_ms:g} ms; the reasons are in {out / 'candidates.csv'}")
    return picks


def _resolutions(spec, resolutions: Optional[str], resolutions_from: Optional[Path],
                 budget_ms: float = 0.0, stages=None, max_candidates: int = 4,
                 out: Optional[Path] = None) -> list[int]:
    from latency_lab.network.spec import check_resolution

    if resolutions and resolutions_from:
        raise UserError("give --resolutions or --resolutions-from, not both")
    if max_candidates < 0:
        raise UserError(f"--max-candidates must be >= 0, got {max_candidates}")
    if resolutions_from:
        values = None
        if out is not None and resolutions_from.is_file():
            values = candidates_from_csv(resolutions_from, spec, budget_ms, stages,
                                         max_candidates, out)
        if values is None:
            values = resolutions_from_csv(resolutions_from)
    elif resolutions:
        from latency_lab.sweeps.run import parse_resolutions   # one syntax for every command

        values = parse_resolutions(resolutions)
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


def _build_note(source, started: float) -> str:
    """How much of the wall time a live device spent making models (emitting or converting
    them and loading interpreters), for devices that count it (the cpu device)."""
    import time

    dev = getattr(source, "device", None)
    if dev is None or not hasattr(dev, "build_s"):
        return ""
    wall = time.monotonic() - started
    return (f"; models built: {dev.builds} in {dev.build_s:.1f} s, {100 * dev.build_s / wall:.1f}% "
            f"of {wall:.0f} s wall ({getattr(dev, 'builder', '?')} builder)")


@contextmanager
def _gc_paused(pause: bool):
    """Python's cycle collector off for a search that only replays files and computes a
    formula: a second or so of work that makes tens of thousands of small objects (specs,
    rows), on which the collector's passes took 7% of the front page's offline search (1.22 ->
    1.14 CPU-s, median of 7 at load 8). Reference counting still frees everything without
    cycles; the collector is back on when the block ends. Live devices and trained evaluators
    run for hours, so they keep it on."""
    if not pause:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _run_search(network, budget_ms, latency, accuracy, resolutions, resolutions_from, stages,
                candidates, out, store_path=None, reevaluate=False, plot_name="paths.png",
                max_candidates=4, device_option=(), protocol=None, executor="local",
                remeasure=False, latency_scale=None, max_seeds=1):
    """Shared by `search` and `compare`: returns (spec, result, source, executor); the caller
    closes the source, the evaluator and the executor."""
    from latency_lab.scaleout.executors import open_executor, parse_executor
    from latency_lab.search.evaluators import evaluation_runner
    from latency_lab.paths import default_store_path
    from latency_lab.search.plots import plot_paths
    from latency_lab.network.presets import load_network
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.search.rbis import run_rbis
    from latency_lab.search.sources import parse_latency_sources

    from latency_lab.search.rbis import check_stages
    from latency_lab.search.search_cache import check_state
    from latency_lab.search.sources import read_scale_table

    where = parse_executor(executor)
    spec = load_network(network)
    _check_budget(budget_ms)
    if candidates < 1:
        raise UserError(f"--candidates must be at least 1, got {candidates}")
    stage_list = parse_int_list(stages, "stages") if stages else None
    _check_out_dir(out)
    check_state(out)    # before a store or a device is opened: a refusal touches no file
    if latency_scale is not None:
        read_scale_table(str(latency_scale))     # read again by the sources (a CSV: ms)
    grid = _resolutions(spec, resolutions, resolutions_from, budget_ms,
                        check_stages(spec, stage_list), max_candidates, out)
    evaluator = parse_evaluator(accuracy, elsewhere=where.kind != "local")
    store_path = store_path or default_store_path()
    acc_cache = None
    if evaluator.cacheable:     # the store (SQLite, numpy) only where it keeps something
        from latency_lab.measure.store import Store
        from latency_lab.search.accuracy_cache import AccuracyCache

        acc_cache = AccuracyCache(Store(store_path), evaluator, reevaluate)
    ex = source = None
    replayed = all(t.strip().split(":")[0] in ("table", "lut") for t in latency if t.strip())
    try:
        ex = open_executor(where)
        with _gc_paused(replayed and evaluator.instant):
            source = parse_latency_sources(latency, store_path=store_path, protocol=protocol,
                                           device_options=device_options(list(device_option)),
                                           executor=ex, reference=spec, remeasure=remeasure,
                                           say=_log, scale_table=latency_scale)
            result = run_rbis(spec, budget_ms, grid, source, evaluator, stage_list, candidates,
                              out, log=_log, accuracy_cache=acc_cache, run=evaluation_runner(ex),
                              max_seeds=max_seeds)
            d = result.to_dict()
            plot_paths(d, result.trace, out / plot_name)
        if hasattr(source, "report"):
            _log(source.report())
        _write_summary(out, result, spec)
        result.cache.flush()
    except BaseException as exc:
        if source is not None:
            source.close()
        evaluator.close()
        if ex is not None:
            ex.abort() if isinstance(exc, KeyboardInterrupt) else ex.close()
        raise
    return spec, result, source, ex


def _write_summary(out: Path, result, spec) -> None:
    """summary.md; the baseline at its own resolution too, where the sources have it."""
    from latency_lab.search.summary import write_search_summary

    try:
        base_point = (result.cache.latencies([(spec, spec.resolution)])[0],
                      result.cache.value_of(spec, spec.resolution, race_seeds(result)))
    except UserError:
        base_point = None
    write_search_summary(out / "summary.md", result, base_point)


def _value(x: float, unit: str) -> str:
    return f"{x:.3f}{unit}" if unit else f"{x:.4f}"


def race_seeds(result) -> int | None:
    """The seeds a value outside the race is evaluated with (the baseline at its own
    resolution, a scaling family's member): the race's cap, for an evaluator with seeds."""
    seeds = result.cache.evaluator.seeds
    return max(seeds, result.max_seeds) if seeds is not None else None


def spread_text(d: dict | None, unit: str) -> str:
    """' [lo, hi] (n=3)' for a value with an interval, else ''."""
    if not d or not d.get("ci"):
        return ""
    lo, hi = d["ci"]
    return f" [{_value(lo, unit)}, {_value(hi, unit)}] (n={d.get('n')})"


VERDICT = {"win": "above the baseline's interval", "tie": "a tie: inside the baseline's "
           "interval", "below": "below the baseline's interval",
           "no interval": "the baseline has no interval", "baseline": "no step taken"}


def metric_word(d: dict) -> str:
    """The metric's name, with SYNTHETIC before it when the evaluator was synthetic."""
    return f"SYNTHETIC {d['metric']}" if d.get("accuracy_synthetic") else d["metric"]


def search_command(
    network: NetworkName = DEFAULT_NETWORK,
    budget_ms: BudgetMs = ...,
    latency: Latency = ...,
    accuracy: Accuracy = ...,
    resolutions: Resolutions = None,
    resolutions_from: ResolutionsFrom = None,
    stages: Stages = None,
    candidates: Candidates = 10,
    max_candidates: MaxCandidates = 4,
    out: Annotated[Path, typer.Option(help="Directory for result.json, trace.csv, paths.png "
                                           "and the resumable state.json.")] = Path("rbis-out"),
    store_path: StorePath = None,
    reevaluate: Reevaluate = False,
    device_option: DeviceOptions = [],  # noqa: B006  (typer copies it)
    ci_target_pct: CiTarget = P.ci_target_pct,
    min_rounds: MinRounds = P.min_rounds,
    max_rounds: MaxRounds = P.max_rounds,
    batch_time_cap_s: BatchTimeCap = P.time_cap_s,
    executor: Executor = "local",
    remeasure: Remeasure = False,
    latency_scale: LatencyScaleTable = None,
    max_seeds: MaxSeeds = DEFAULT_MAX_SEEDS,
) -> None:
    """RBIS: scale a network to a latency budget, stage by stage, at each candidate resolution."""
    import time

    started = time.monotonic()
    _, result, source, ex = _run_search(network, budget_ms, latency, accuracy, resolutions,
                                        resolutions_from, stages, candidates, out, store_path,
                                        reevaluate, max_candidates=max_candidates,
                                        device_option=device_option,
                                        protocol=protocol(P, ci_target_pct, min_rounds,
                                                          max_rounds, None, batch_time_cap_s),
                                        executor=executor, remeasure=remeasure,
                                        latency_scale=latency_scale, max_seeds=max_seeds)
    source.close()
    result.cache.evaluator.close()
    ex.close()
    d = result.to_dict()
    c = d["counts"]
    metric, unit = d["metric"], result.cache.evaluator.unit
    word = metric_word(d)
    for pr in d["per_resolution"]:
        if pr["feasible"]:
            ties = sum(x["outcome"] == "tie at cap" for x in pr["decisions"])
            print(f"{pr['resolution']:5d}  {word} {_value(pr[metric], unit)}{spread_text(pr, unit)}"
                  f"  {pr['latency_ms']:.3f} ms  {pr['iterations']} steps  widths {pr['widths']} "
                  f"depths {pr['depths']}; baseline {_value(pr['baseline']['value'], unit)}"
                  f"{spread_text(pr['baseline'], unit)}: {VERDICT[pr['verdict']]}"
                  + (f"; {ties} of {len(pr['decisions'])} decisions tied at the cap" if ties
                     else ""))
        else:
            print(f"{pr['resolution']:5d}  infeasible: {pr['reason']}")
    print(f"winner: {d['resolution']} px, {word} {_value(d[metric], unit)}"
          f"{spread_text(d, unit)} ({VERDICT[d['verdict']]}), "
          f"{d['latency_ms']:.3f} ms (budget {budget_ms:g} ms); {c['latency_reads']} latency "
          f"reads, {c['evaluations']} evaluations, {c['accuracy_cache_hits']} taken from the "
          f"accuracy cache{' (resumed)' if c['resumed'] else ''}{_build_note(source, started)}")
    synthetic = getattr(result.cache.evaluator, "synthetic", "")
    print(f"{metric}: {d['evaluator']}" + (f" (SYNTHETIC: {synthetic})" if synthetic else "")
          + f"\nlatency: {d['latency_source']}")
    scale_line = _scale_line(result.cache)
    if scale_line:
        print(scale_line)
    print(f"wrote {out}/result.json, summary.md, trace.csv, paths.png")


def _scale_line(cache) -> str:
    """How the search's latencies came to be on one scale, in a line (provenance counts, the
    live batches' factors)."""
    from latency_lab.search.summary import provenance_counts, scale_summary

    counts = provenance_counts(cache)
    return "\n".join(([f"latency provenance: {counts}"] if counts else [])
                     + scale_summary(cache))


def scale_command(
    method: Annotated[str, typer.Option(help="compound (dwr), fast (dWr) or rs (ResNet-RS "
                                              "encoding).")] = ...,
    network: NetworkName = DEFAULT_NETWORK,
    budget_ms: BudgetMs = ...,
    latency: Latency = ...,
    out: Annotated[Optional[Path], typer.Option(help="JSON of the scaled network (with its "
                                                     "resolution, provenance and the search "
                                                     "probes; default scale-METHOD.json).")]
    = None,
    store_path: StorePath = None,
    device_option: DeviceOptions = [],  # noqa: B006  (typer copies it)
    ci_target_pct: CiTarget = P.ci_target_pct,
    min_rounds: MinRounds = P.min_rounds,
    max_rounds: MaxRounds = P.max_rounds,
    batch_time_cap_s: BatchTimeCap = P.time_cap_s,
    executor: Executor = "local",
    remeasure: Remeasure = False,
    latency_scale: LatencyScaleTable = None,
) -> None:
    """The largest network of a scaling family (compound, fast, rs) within the budget."""
    from latency_lab.scaleout.executors import open_executor, parse_executor
    from latency_lab.network.presets import load_network
    from latency_lab.search.scaling import family_grid, get_family, scale_to_budget
    from latency_lab.search.sources import parse_latency_sources

    where = parse_executor(executor)
    family = get_family(method)
    spec = load_network(network)
    _check_budget(budget_ms)
    if out:
        from latency_lab.fileio import check_output_file

        check_output_file(out, "--out")
    if where.kind == "processes":
        raise UserError(f"--executor {where.text}: scale evaluates nothing; its one live "
                        f"device is opened here (local) or by a device actor (ray)")
    proto = protocol(P, ci_target_pct, min_rounds, max_rounds, None, batch_time_cap_s)
    with open_executor(where) as ex, parse_latency_sources(
            latency, store_path=store_path, protocol=proto,
            device_options=device_options(device_option), executor=ex, reference=spec,
            remeasure=remeasure, say=_log, scale_table=latency_scale) as source:
        res = scale_to_budget(family, spec, budget_ms, source.latency_ms)
        described = source.describe()
        grid = dict(family_grid(family, spec))
        for probe in res.probes:   # where each probe's latency came from (scale, provenance)
            net = grid[probe["x"]]
            probe.update({k: v for k, v in source.provenance(net, net.resolution).items()
                          if not (isinstance(v, float) and v != v)})
        scale_state = getattr(source, "scale_state", lambda: None)()
    d, w, r = res.factors
    s = res.spec
    print(f"{method} ({res.label}) {family.parameter} = {res.x:.2f}: depth x{d:.3f}, width "
          f"x{w:.3f}, resolution x{r:.3f} -> {s.resolution} px, {res.latency_ms:.3f} ms "
          f"(budget {budget_ms:g} ms, {len(res.probes)} latency reads)")
    print(f"widths {list(s.widths)} depths {list(s.depths)} stem {s.stem.width} head "
          f"{s.head_width}  fingerprint {s.fingerprint}")
    if res.note:
        print(f"note: {res.note}")
    from latency_lab.fileio import write_atomic

    out = out or Path(f"scale-{method}.json")
    write_atomic(out, json.dumps({**res.to_dict(), "budget_ms": budget_ms,
                                  "latency_source": described, "latency_scale": scale_state},
                                 indent=2))
    print(f"wrote {out}")


def compare_command(**options) -> None:
    """RBIS and the compound, fast and rs baselines on the same sources and budget."""
    import time

    (network, budget_ms, latency, accuracy, resolutions, resolutions_from, stages, candidates,
     max_candidates, out, store_path, reevaluate, device_option, ci_target_pct, min_rounds,
     max_rounds, batch_time_cap_s, executor, remeasure, latency_scale, max_seeds) = (
        options[k] for k in SEARCH_OPTIONS)

    from latency_lab.search.plots import plot_compare, run_label, value_title
    from latency_lab.fileio import write_atomic
    from latency_lab.search.intervals import verdict
    from latency_lab.search.racing import value_interval
    from latency_lab.search.scaling import FAMILIES, scale_to_budget

    started = time.monotonic()
    spec, result, source, ex = _run_search(network, budget_ms, latency, accuracy, resolutions,
                                           resolutions_from, stages, candidates, out,
                                           store_path, reevaluate,
                                           max_candidates=max_candidates,
                                           device_option=device_option,
                                           protocol=protocol(P, ci_target_pct, min_rounds,
                                                             max_rounds, None,
                                                             batch_time_cap_s),
                                           executor=executor, remeasure=remeasure,
                                           latency_scale=latency_scale, max_seeds=max_seeds)
    cache = result.cache
    ev = cache.evaluator
    try:
        lat = lambda s, r: cache.latencies([(s, r)])[0]  # noqa: E731  same cache as RBIS
        rows, networks = [], {}
        [base_lat] = cache.latencies([(spec, spec.resolution)])
        scaled = {m: scale_to_budget(f, spec, budget_ms, lat) for m, f in FAMILIES.items()}
        # the baseline and the three family members are one batch of evaluations, with the
        # race's seeds for an evaluator that has seeds (their spreads beside their values)
        seeds = race_seeds(result)
        reqs = [cache.request(s, s.resolution) for s in [spec, *(r.spec for r in scaled.values())]]
        reqs = [cache.seeded(q, seeds) for q in reqs] if seeds else reqs
        base_value, *values = cache.evaluate(reqs)
        ivs = [value_interval(cache, q) for q in reqs]
        ns = [cache.spread_of(q)["n"] for q in reqs]
        base_ci = ivs[0]
        rows.append(_compare_row("baseline", spec.name, spec, base_lat, base_value, "",
                                 ev.metric, base_ci, ns[0], "baseline"))
        networks["baseline"] = spec
        w = result.winner.best
        rows.append(_compare_row("rbis", "RBIS", w.spec, w.latency_ms, w.value,
                                 f"{result.winner.iterations} steps", ev.metric, w.ci, w.n,
                                 verdict(w.value, base_ci)))
        networks["rbis"] = result.provenance(result.winner)
        for (method, res), value, ci, n in zip(scaled.items(), values, ivs[1:], ns[1:]):
            family = FAMILIES[method]
            d, wm, r = res.factors
            rows.append(_compare_row(method, f"{method} ({family.label})", res.spec,
                                     res.latency_ms, value, f"{family.parameter}={res.x:.2f} "
                                     f"d{d:.3f} w{wm:.3f} r{r:.3f} {res.note}".strip(),
                                     ev.metric, ci, n, verdict(value, base_ci)))
            networks[method] = res.spec
        for row in rows:    # where each latency came from (live, reused, table, lut, ...)
            p = cache.provenance.get(f"{row['fingerprint']}@{row['resolution']}") or {}
            row["latency_provenance"] = p.get("provenance") or ""
    finally:
        cache.flush()
        source.close()
        ev.close()
        ex.close()
    write_atomic(out / "compare.json", json.dumps({
        "baseline": spec.name, "budget_ms": budget_ms, "latency_source": source.describe(),
        "evaluator": ev.describe(), "metric": ev.metric,
        "accuracy_synthetic": bool(getattr(ev, "synthetic", "")),
        "methods": {r["method"]: {**r, "network": networks[r["method"]].to_dict()}
                    for r in rows}}, indent=2))
    cols = list(rows[0])
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "compare.csv", buf.getvalue())
    synthetic = getattr(ev, "synthetic", "")
    label = f"SYNTHETIC {ev.metric_label}" if synthetic else ev.metric_label
    foot = f"latency: {source.describe()}\n{ev.metric_label}: {ev.describe()}" \
        + (f" (SYNTHETIC: {synthetic})" if synthetic else "")
    plot_compare(rows, budget_ms, out / "compare.png", metric=ev.metric,
                 metric_label=label, unit=ev.unit,
                 title=f"{spec.name} scaled to {budget_ms:g} ms {run_label(source.device_label())}\n"
                       + value_title(ev.metric_label, ev.describe(), bool(synthetic), 400),
                 footnote=foot)
    word = f"SYNTHETIC {ev.metric}" if synthetic else ev.metric
    for r in rows:
        ci = r[f"{ev.metric}_ci_low"] != ""
        spread = (f" [{_value(r[f'{ev.metric}_ci_low'], ev.unit)}, "
                  f"{_value(r[f'{ev.metric}_ci_high'], ev.unit)}] (n={r['n']}), "
                  f"{r['verdict']}" if ci else "")
        print(f"{r['label']:16s} {word} {_value(r[ev.metric], ev.unit):>10s}{spread}  "
              f"{r['latency_ms']:9.3f} ms  {r['resolution']:4d} px  {r['detail']}")
    print(f"{ev.metric}: {ev.describe()}" + (f" (SYNTHETIC: {synthetic})" if synthetic else "")
          + f"\nlatency: {source.describe()}")
    scale_line = _scale_line(cache)
    if scale_line:
        print(scale_line)
    c = cache
    print(f"wrote {out}/compare.csv, compare.json, compare.png, result.json, summary.md, "
          f"trace.csv, paths.png; {c.latency_calls} latency reads, {c.evaluations} evaluations, "
          f"{c.store_hits} taken from the accuracy cache{_build_note(source, started)}")


def _compare_row(method, label, spec, latency_ms, value, detail, metric="accuracy", ci=None,
                 n=1, verdict="") -> dict:
    """One method's row; `ci` the interval of its value, `verdict` against the baseline's
    (win, tie: inside the baseline's noise, below)."""
    return {"method": method, "label": label, "resolution": spec.resolution,
            "latency_ms": round(latency_ms, 6), metric: round(value, 6),
            "fingerprint": spec.fingerprint, "widths": " ".join(map(str, spec.widths)),
            "depths": " ".join(map(str, spec.depths)), "head_width": spec.head_width,
            "detail": detail, f"{metric}_ci_low": round(ci[0], 6) if ci else "",
            f"{metric}_ci_high": round(ci[1], 6) if ci else "", "n": n, "verdict": verdict}


# `compare` takes exactly `search`'s options (declared once, above), with its own --out.
SEARCH_OPTIONS = tuple(inspect.signature(search_command).parameters)
_sig = inspect.signature(search_command, eval_str=True)
compare_command.__signature__ = _sig.replace(parameters=[
    p.replace(annotation=Annotated[Path, typer.Option(help="Directory for compare.csv, "
                                                           "compare.json, compare.png and "
                                                           "RBIS's files.")],
              default=Path("compare-out")) if p.name == "out" else p
    for p in _sig.parameters.values()])
