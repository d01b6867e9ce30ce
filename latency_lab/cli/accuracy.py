"""`latency-lab accuracy evaluate|show|export`: one evaluation, and the accuracy cache.

Every evaluation a search makes (Zen-Score, a py: function, a training) is kept in the store
(`latency_lab.search.accuracy_cache`); `evaluate` makes one without a search (a network a user
checks, or a search's winner: `result.json`, `compare.json#compound`), cached the same way;
`show` lists what is there per evaluator, `export` writes one evaluator's values as a CSV that
`--accuracy table:PATH` reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latency_lab.cli.options import (Accuracy, AsJson, EvaluatorFilter, NetworkFilter, Reevaluate,
                                     Resolution, Rows, StorePath)

from latency_lab.errors import UserError

accuracy_app = typer.Typer(no_args_is_help=True,
                           help="The accuracy cache: every evaluation kept in the store.")

def _open(store_path: Optional[Path]):
    from latency_lab.paths import default_store_path
    from latency_lab.measure.store import Store

    path = store_path or default_store_path()
    if not path.exists():
        raise UserError(f"no store at {path}: nothing has been measured or evaluated there")
    return Store(path)


def _fingerprint(network: Optional[str]) -> Optional[str]:
    if network is None:
        return None
    from latency_lab.network.presets import PRESETS, load_network

    if network in PRESETS or network.endswith(".json"):
        return load_network(network).fingerprint
    return network


def _value(row: dict) -> str:
    ci = (f"  CI [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
          if row["ci_low"] not in ("", None) else "")
    unit = "%" if row["metric"] == "accuracy" else ""
    return f"{row['value']:.4f}{unit}{ci}"


@accuracy_app.command("evaluate")
def accuracy_evaluate(
    network: str = typer.Argument(..., help="Preset name, network JSON, or a result file "
                                            "(result.json, compare.json#METHOD)."),
    accuracy: Accuracy = ...,
    resolution: Resolution = None,
    store_path: StorePath = None,
    reevaluate: Reevaluate = False,
    as_json: AsJson = False,
) -> None:
    """Evaluate one network at one resolution (cached like every evaluation)."""
    import json
    import time

    from latency_lab.network.presets import load_network
    from latency_lab.network.spec import check_resolution
    from latency_lab.paths import default_store_path
    from latency_lab.search.accuracy_cache import AccuracyCache
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.measure.store import Store

    spec = load_network(network)
    res = check_resolution(spec.resolution if resolution is None else resolution)
    evaluator = parse_evaluator(accuracy)
    t0 = time.perf_counter()
    try:
        request = evaluator.request(spec.with_resolution(res), res)
        if evaluator.cacheable:
            with Store(store_path or default_store_path()) as store:
                result, fresh = AccuracyCache(store, evaluator, reevaluate).get(request)
        else:
            result, fresh = evaluator.evaluate(request), True
            evaluator.check(request, result.value)
    finally:
        evaluator.close()
    synthetic = getattr(evaluator, "synthetic", "")
    out = {"value": result.value, "n": result.n, "ci": list(result.ci) if result.ci else None,
           "seconds": result.seconds, "evaluator": evaluator.describe(),
           "evaluator_key": evaluator.key(), "metric": evaluator.metric, "unit": evaluator.unit,
           "network": spec.name, "fingerprint": spec.fingerprint, "resolution": res,
           "cached": not fresh, "wall_seconds": time.perf_counter() - t0,
           "synthetic": bool(synthetic), "details": result.details}
    if as_json:
        print(json.dumps(out, indent=2, default=str))
        return
    unit = evaluator.unit
    fmt = (lambda v: f"{v:.2f}{unit}") if unit else (lambda v: f"{v:.4f}")
    ci = (f" (95% CI {fmt(result.ci[0])} to {fmt(result.ci[1])}, n={result.n}"
          + (f": {result.details['ci']}" if isinstance(result.details.get("ci"), str) else "")
          + ")") if result.ci else f" (n={result.n}, no interval)"
    word = f"SYNTHETIC {evaluator.metric}" if synthetic else evaluator.metric
    print(f"{spec.name} ({spec.fingerprint}) at {res} px: {word} {fmt(result.value)}{ci}")
    print(f"  {'from the accuracy cache' if not fresh else 'evaluated now'}; "
          f"{result.seconds:.1f} s when made; evaluator {evaluator.describe()}")


@accuracy_app.command("show")
def accuracy_show(
    store_path: StorePath = None,
    evaluator: EvaluatorFilter = None,
    network: NetworkFilter = None,
    rows: Rows = True,
) -> None:
    """List the cached evaluations, grouped by evaluator key (newest value per key)."""
    from latency_lab.search.accuracy_cache import select_key, table_rows

    with _open(store_path) as store:
        key = select_key(store, evaluator)
        found = table_rows(store, key, _fingerprint(network))
        if not found:
            raise UserError(f"no evaluations in {store.path}"
                            + (f" for {evaluator}" if evaluator else "")
                            + (f" of {network}" if network else ""))
        print(f"{store.path}: {len(found)} evaluations")
        for k in sorted({r["evaluator_key"] for r in found}):
            group = [r for r in found if r["evaluator_key"] == k]
            seconds = sum(r["seconds"] for r in group)
            print(f"evaluator key {k}\n  {group[0]['metric']}: {len(group)} evaluations "
                  f"({len({r['fingerprint'] for r in group})} networks), {seconds:.1f} s "
                  f"evaluating; e.g. {group[0]['evaluator']}")
            for r in group if rows else []:
                print(f"  {r['network']:28s} {r['fingerprint']} {r['resolution']:5d}  "
                      f"{_value(r)}  n={r['n']}  {r['seconds']:.2f} s  {r['evaluated_at']}"
                      + (f"  lineage {r['lineage']}" if r["lineage"] else ""))


@accuracy_app.command("export")
def accuracy_export(
    out_arg: Optional[Path] = typer.Argument(None, metavar="[OUT]", help="Same as --out."),
    out: Optional[Path] = typer.Option(None, help="CSV to write (read back with --accuracy "
                                                  "table:OUT)."),
    store_path: StorePath = None,
    evaluator: EvaluatorFilter = None,
    network: NetworkFilter = None,
) -> None:
    """Write one evaluator's cached values as an accuracy table."""
    from latency_lab.fileio import check_output_file
    from latency_lab.search.accuracy_cache import export_table, select_key

    if out_arg and out and out_arg != out:
        raise UserError(f"two outputs given ({out_arg} and --out {out}): give one")
    out = out or out_arg
    if out is None:
        raise UserError("give the CSV to write: --out FILE")
    check_output_file(out, "table")
    with _open(store_path) as store:
        written = export_table(store, out, select_key(store, evaluator), _fingerprint(network))
    print(f"wrote {out}: {len(written)} rows, {written[0]['metric']} by "
          f"{written[0]['evaluator_key']}")


def evaluators_command(
    as_json: AsJson = False,
) -> None:
    """List the accuracy evaluators --accuracy can name, with their argument and options."""
    import json

    from latency_lab.search.evaluators import describe_evaluators

    rows = describe_evaluators()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        if row.get("error"):
            print(f"{row['name']}  (unavailable: {row['error']})\n")
            continue
        print(f"{row['usage']}\n    {row['summary'] or '(no summary)'}; value: {row['metric']}"
              f"{' (' + row['unit'] + ')' if row['unit'] else ''}; from {row['class']}")
        for name, opt in row["options"].items():
            rule = (f" one of {'|'.join(opt['choices'])}" if opt["choices"] else "") + \
                   (f" >= {opt['minimum']:g}" if opt["minimum"] is not None else "")
            print(f"    {name + '=' + opt['default']:<24} {opt['type']}{rule}: {opt['help']}")
        print()
