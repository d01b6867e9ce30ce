"""Proxy-ranking study: how the evaluators rank the thesis's 11 single-step candidates of B0.

The thesis ranked the single-step candidates of EfficientNet-B0 twice, by full training (FT)
and by network transformation with short fine-tuning (NT), and found them to agree only
partly (Kendall tau 0.60 between its two rankings). This script ranks the same 11 candidates
by every evaluator given (default: Zen-Score, tuned Zen-Score and the synthetic py: function
of benchmarks/analytic_sources.py), and reports Kendall tau and Spearman rho between every
pair of rankings, the thesis's two included.

The candidates, from EfficientNet-B0 at 224 px (the thesis's table names them w1..w5, d1..d5,
r; we read w_i / d_i as the i-th of the five scalable stages, body stages 2..6, the stages
RBIS scales by default, and r as the step to 240 px, the next of the thesis's candidate
resolutions; the thesis does not spell these out):
- w_i: one RBIS width step (+10% of the base width, rounded to 4) on stage i + 1;
- d_i: one more block on stage i + 1;
- r: B0 unchanged at 240 px.
Rank 1 is the candidate with the highest value. An evaluator with repeats > 1 also gets a
"first draw" ranking: its first repeat alone, which is what a search with repeats=1 sees.

With --network mbconv-tiny (and the synthetic set of `latency-lab dataset synth`) the same
11 single steps of the tiny preset are ranked by the training evaluators: `train:` at several
epoch counts and `net2net:` (each candidate warm-started from the baseline, whose request is
its parent; r fine-tunes the baseline's weights at the next resolution). The longest `train:`
is the reference: every ranking's Kendall tau against it is reported beside the thesis's 0.60
between full training and network transformation.

Every evaluation goes through the accuracy cache (--store), so a rerun, or another evaluator
list, evaluates only what is new. Writes proxy_ranking.csv (values and ranks), .md (tables)
and .png (ranks per candidate; Kendall tau matrix) under --out.
Usage: python benchmarks/proxy_ranking.py [--evaluator TEXT ...] [--store PATH]
       [--network mbconv-tiny --r-step 16 --prefix proxy_ranking_tiny]
       [--executor local|local:N|ray|ray:auto|ray://HOST:PORT]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ranking_seeds import bootstrap, cost, separated_pairs  # noqa: E402

CANDIDATES = ("w1", "w2", "w3", "w4", "w5", "d1", "d2", "d3", "d4", "d5", "r")
THESIS = {"thesis FT (full training)": (10, 1, 2, 3, 7, 6, 9, 5, 8, 4, 11),
          "thesis NT (net transformation)": (7, 2, 1, 3, 5, 6, 8, 10, 11, 4, 9)}
DEFAULT_EVALUATORS = ("zen,repeats=8", "zen-tuned,repeats=8",
                      "py:benchmarks.analytic_sources:accuracy")
BASE_RES, R_STEP = 224, 240
SYNTHETIC = "py:benchmarks.analytic_sources"   # a made-up function, not a measurement


def base_network(network: str, resolution: int | None = None):
    """The preset, at `resolution` when given (else its own)."""
    from latency_lab.network import presets

    base = presets.get(network)
    return base.with_resolution(resolution) if resolution else base


def candidates(network: str = "efficientnet-b0", r_step: int = R_STEP - BASE_RES,
               resolution: int | None = None):
    """[(label, spec, resolution, description)] in the thesis's column order: a width and a
    depth step on each of the five scalable stages (the last five), then the resolution step;
    at the preset's resolution or at `resolution`."""
    from latency_lab.network.scaling import default_stages
    from latency_lab.search.scaling import DEPTH, WIDTH, rbis_step

    base = base_network(network, resolution)
    zero = (0,) * len(base.stages)
    res = base.resolution
    out = []
    for dim, tag in ((WIDTH, "w"), (DEPTH, "d")):
        for i, stage in enumerate(default_stages(base), start=1):
            spec, _ = rbis_step(base, base, zero, dim, (stage,))
            what = (f"stage {stage} width {base.stages[stage].width} -> "
                    f"{spec.stages[stage].width}" if dim == WIDTH else
                    f"stage {stage} depth {base.stages[stage].depth} -> "
                    f"{spec.stages[stage].depth}")
            out.append((f"{tag}{i}", spec, res, what))
    out.append(("r", base, res + r_step, f"resolution {res} -> {res + r_step}"))
    return out


def requests(ev, cands, network: str = "efficientnet-b0", resolution: int | None = None):
    """One request per candidate; for an evaluator that starts from the parent (net2net:),
    the baseline's request is every candidate's parent, with the step that made it."""
    from latency_lab.network.scaling import default_stages
    from latency_lab.search.evaluators import Step

    base = base_network(network, resolution)
    scaled = default_stages(base)
    parent = ev.request(base, base.resolution) if ev.uses_parent else None
    out = []
    for label, spec, res, _ in cands:
        step = None
        if parent is not None:
            dim = {"w": "width", "d": "depth", "r": "resolution"}[label[0]]
            stages = (scaled[int(label[1:]) - 1],) if label != "r" else ()
            step = Step(dim, stages)
        out.append(ev.request(spec, res, parent, step))
    return out


def ranks(values):
    """Rank 1 = highest value; ties share the better rank (scipy's 'min' on negatives)."""
    from scipy.stats import rankdata

    return [int(x) for x in rankdata([-v for v in values], method="min")]


def short_name(ev) -> str:
    """The evaluator with only its non-default options that change the number."""
    changed = [f"{k}={v}" for k, v in sorted(ev.options.items())
               if ev.OPTIONS[k].keyed and v != ev.OPTIONS[k].default]
    return ",".join([ev.name + (f":{ev.arg}" if ev.arg else "")] + changed)


def evaluate_all(texts, store_path, log=print, network="efficientnet-b0",
                 r_step=R_STEP - BASE_RES, executor="local", resolution=None):
    """{ranking name: (values or None, ranks)}, and per evaluator its label and details.
    `executor`: where the evaluations of each evaluator run, as one batch (--executor)."""
    from latency_lab.scaleout.executors import open_executor, parse_executor
    from latency_lab.search.evaluators import evaluation_runner
    from latency_lab.search.evaluators import parse_evaluator
    from latency_lab.measure.store import Store

    cands = candidates(network, r_step, resolution)
    rankings, about = {}, {}
    store = Store(store_path)
    where = parse_executor(executor)
    with open_executor(where) as ex:
        for text in texts:
            _evaluate_one(text, cands, network, store, rankings, about, log, ex,
                          parse_evaluator(text, elsewhere=where.kind != "local"),
                          evaluation_runner(ex), resolution)
    store.close()
    for name, r in THESIS.items():
        rankings[name] = (None, list(r))
    return rankings, about


def _evaluate_one(text, cands, network, store, rankings, about, log, ex, ev, run,
                  resolution=None):
    """One evaluator's 11 values (one batch; cached ones not evaluated again) and ranks."""
    from latency_lab.search.accuracy_cache import AccuracyCache

    t0 = time.perf_counter()
    got = AccuracyCache(store, ev).get_many(requests(ev, cands, network, resolution), run)
    fresh = sum(now for _, now in got)
    values = [result.value for result, _ in got]
    cis = [list(result.ci) if result.ci else None for result, _ in got]
    draws = [list(result.details.get("seed_values") or result.details.get("repeats")
                  or [result.value]) for result, _ in got]
    firsts = [d[0] for d in draws if len(d) > 1]
    name = short_name(ev) + (" [SYNTHETIC]" if text.startswith(SYNTHETIC) else "")
    rankings[name] = (values, ranks(values))
    if len(firsts) == len(cands):
        rankings[f"{name} (first draw)"] = (firsts, ranks(firsts))
    about[name] = {"evaluator": ev.describe(), "metric": ev.metric, "label": ev.metric_label,
                   "key": ev.key(), "evaluated_now": fresh,
                   "seconds_this_run": time.perf_counter() - t0,
                   "evaluation_seconds": sum(result.seconds for result, _ in got),
                   "epochs": ev.options.get("epochs"), "executor": ex.spec.text,
                   "ci95": cis if all(cis) else None, "draws": draws,
                   "cost": cost(ev, [r.details for r, _ in got], [r.seconds for r, _ in got],
                                _base_seconds(ev, got, base_network(network, resolution)
                                              .fingerprint))}
    log(f"{name}: {fresh} evaluated, {len(cands) - fresh} from the cache, "
        f"{time.perf_counter() - t0:.1f} s on {ex.describe()}; ranks {rankings[name][1]}")


def _base_seconds(ev, got, base_fp: str) -> float:
    """Seconds of net2net:'s baseline trainings (one per seed), read from their run results:
    the runs of the baseline network with the evaluator's base recipe and each seed."""
    if ev.name != "net2net":
        return 0.0
    from dataclasses import replace

    from latency_lab.training.train import runs_dir

    d = got[0][0].details
    want = {f"scratch(seed={s})": replace(ev.base_recipe, seed=s).to_dict()
            for s in d.get("seeds", [ev.options["seed"]])}
    total = 0.0
    for path in runs_dir().glob("*/result.json"):
        r = json.loads(path.read_text())
        if (r.get("network") == base_fp and r.get("data") == d["data"]
                and want.get(r.get("init")) == r.get("recipe")):
            total += r["train_seconds"]
    return total


def correlations(rankings):
    from scipy.stats import kendalltau, spearmanr

    names = list(rankings)
    tau = {a: {b: float(kendalltau(rankings[a][1], rankings[b][1]).statistic) for b in names}
           for a in names}
    rho = {a: {b: float(spearmanr(rankings[a][1], rankings[b][1]).statistic) for b in names}
           for a in names}
    return tau, rho


def _short(name: str) -> str:
    """A label for tables and figures: a training evaluator by its kind and the epochs it
    names, with the warm-up and seeds where the name sets them (its data and defaults are in
    the evaluator list), and " (first draw)" kept; anything else cut to 36."""
    suffix = " (first draw)" if name.endswith(" (first draw)") else ""
    name = name[:len(name) - len(suffix)]
    kind, _, rest = name.partition(":")
    if kind in ("train", "net2net") and rest:
        named = dict(o.split("=", 1) for o in rest.split(",")[1:] if "=" in o)
        opts = dict(named)
        try:          # the name leaves defaults out (short_name): the evaluator knows them
            from latency_lab.search.evaluators import parse_evaluator

            opts = {**parse_evaluator(name).options, **opts}
        except Exception:   # noqa: BLE001 - a name that no longer parses keeps what it says
            pass
        keep = [f"{k}={opts[k]}" for k in ("base_epochs", "epochs") if k in opts]
        keep += [f"{k}={named[k]}" for k in ("warmup", "seeds") if k in named]
        return f"{kind}: " + ", ".join(keep) + suffix
    name += suffix
    name = name.replace("py:benchmarks.analytic_sources:accuracy", "py:analytic_sources")
    return name if len(name) <= 36 else name[:33] + "..."


def reference(rankings, about=None) -> str | None:
    """The longest `train:` ranking (most epochs), the reference for training evaluators.

    A ranking's name leaves default options out (`short_name`), so the epochs come from
    `about` (what `evaluate_all` recorded) or from parsing the name back into its evaluator.
    """
    from latency_lab.search.evaluators import parse_evaluator

    trains = [n for n in rankings if n.startswith("train:") and not n.endswith("(first draw)")]
    if not trains:
        return None

    def epochs(name: str) -> int:
        known = (about or {}).get(name, {}).get("epochs")
        return int(known) if known is not None else parse_evaluator(name).options["epochs"]

    return max(trains, key=epochs)


def separable_pairs(cis) -> int:
    """Candidate pairs whose 95% intervals are disjoint: the pairs an evaluator can order."""
    return sum(a[0] > b[1] or b[0] > a[1] for i, a in enumerate(cis) for b in cis[i + 1:])


def separability(rankings, about) -> list[str]:
    """How much of each ranking with intervals (top-1 %, Wilson) is above its noise."""
    rows = [(n, rankings[n][0], about[n]["ci95"]) for n in about if about[n].get("ci95")]
    if not rows:
        return []
    total = len(CANDIDATES) * (len(CANDIDATES) - 1) // 2
    md = ["", "Noise: each value's 95% interval (Wilson, over the validation images) against "
          "the spread of the values; a pair of candidates is ordered beyond noise only where "
          "its two intervals are disjoint:", ""]
    for name, values, cis in rows:
        widths = sorted(hi - lo for lo, hi in cis)
        md.append(f"- {_short(name)}: values {min(values):.2f}-{max(values):.2f} (spread "
                  f"{max(values) - min(values):.2f}), median interval width "
                  f"{widths[len(widths) // 2]:.2f}; {separable_pairs(cis)} of {total} pairs "
                  "disjoint")
    return md


def separated_text(sep: dict) -> str:
    """One sentence: the pairs the reference's intervals separate (seeds >= 2 only)."""
    if sep["own_t"] is None:
        return "The reference has one draw per candidate: no interval of its own."
    return (f"The reference separates {sep['own_t']} of its {sep['pairs']} candidate pairs "
            f"with each candidate's own t-interval over its seeds, and {sep['pooled']} with "
            f"the seed noise pooled over the 11 candidates (sd {sep['pooled_sd']:.2f} points, "
            f"{sep['dof']} degrees of freedom); its seed ranges per candidate: "
            + ", ".join(f"{c} {r:.2f}" for c, r in zip(CANDIDATES, sep["seed_range"])) + ".")


def against_reference(rankings, about) -> tuple[list[str], dict]:
    """Markdown lines and a dict: every evaluator with draws against the reference, Kendall
    tau and Spearman rho with 95% bootstrap intervals over seeds (and with one draw per
    candidate: what a single seed ranks), the cost per candidate and seed in epochs and in
    seconds, and the pairs the reference's own intervals separate."""
    ref = reference(rankings, about)
    if ref is None or not about.get(ref, {}).get("draws"):
        return [], {}
    ref_draws, ref_cost = about[ref]["draws"], about[ref]["cost"]
    rows, out = [], {"reference": ref, "separated": separated_pairs(ref_draws), "evaluators": {}}
    for name, a in about.items():
        if name == ref or not a.get("draws"):
            continue
        b = bootstrap(a["draws"], ref_draws)
        one = bootstrap(a["draws"], ref_draws, k=1) if min(map(len, a["draws"])) > 1 else None
        c = a["cost"]
        by_epochs = (c["epochs_per_candidate_seed"] / ref_cost["epochs_per_candidate_seed"]
                     if c["epochs_per_candidate_seed"] else None)
        by_seconds = c["seconds_per_candidate_seed"] / ref_cost["seconds_per_candidate_seed"]
        ratio = by_epochs if by_epochs is not None else by_seconds
        out["evaluators"][name] = {**b, "one_draw": one, "cost": c, "cost_ratio_epochs": by_epochs,
                                   "cost_ratio_seconds": by_seconds,
                                   "meets_aim": bool(b["tau"][0] >= 0.6 and ratio <= 0.2)}
        fmt = lambda v: f"{v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}]"  # noqa: E731
        rows.append(f"| {_short(name)} | {len(a['draws'][0])} | {fmt(b['tau'])} | "
                    f"{fmt(b['rho'])} | {fmt(one['tau']) if one else ''} | "
                    f"{c['epochs_per_candidate_seed']:.2f} | "
                    + (f"{by_epochs:.2f}" if by_epochs is not None else "") + " | "
                    f"{c['seconds_per_candidate_seed']:.1f} | {by_seconds:.3f} | "
                    f"{'yes' if out['evaluators'][name]['meets_aim'] else 'no'} |")
    sep = out["separated"]
    md = ["", f"Against the reference, {_short(ref)} ({len(ref_draws[0])} seeds), with 95% "
          "bootstrap intervals over seeds (each candidate's draws resampled with replacement, "
          "in both rankings, 2000 times); 'one draw' resamples a single draw per candidate: "
          "what an evaluator with one seed would rank. Cost per candidate and seed: epochs "
          "of training (net2net: its fine-tuning plus the baseline's training spread over the "
          "11 candidates) and the seconds measured on this shared machine. The aim: tau >= "
          "0.6 at a fifth of the reference's cost or less.", "",
          "| evaluator | draws | Kendall tau [95%] | Spearman rho [95%] | tau, one draw [95%] "
          "| epochs | cost / reference (epochs) | seconds | cost / reference (seconds) | aim "
          "met |", "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
          separated_text(sep)]
    return md, out


def write_outputs(out: Path, rankings, about, tau, rho, meta, network="efficientnet-b0",
                  r_step=R_STEP - BASE_RES, prefix="proxy_ranking", resolution=None) -> None:
    import pandas as pd

    from latency_lab.fileio import write_atomic

    cands = candidates(network, r_step, resolution)
    frame = pd.DataFrame({"candidate": [c[0] for c in cands],
                          "change": [c[3] for c in cands],
                          "fingerprint": [c[1].fingerprint for c in cands],
                          "resolution": [c[2] for c in cands]})
    for name, (values, rk) in rankings.items():
        if values is not None:
            frame[f"value: {name}"] = values
        frame[f"rank: {name}"] = rk
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    write_atomic(out / f"{prefix}.csv", buf.getvalue())
    names = list(rankings)
    md = [f"# Rankings of {network}'s 11 single-step candidates", "",
          f"{meta['when']}; load average {meta['load']}. Rank 1 = highest value. Values are "
          "each evaluator's own metric (Zen-Scores are scores, not accuracies).", "",
          "| ranking | " + " | ".join(CANDIDATES) + " |",
          "|---|" + "---|" * len(CANDIDATES)]
    md += [f"| {_short(n)} | " + " | ".join(map(str, rankings[n][1])) + " |" for n in names]
    for title, m in (("Kendall tau", tau), ("Spearman rho", rho)):
        md += ["", f"{title} between rankings (the thesis's FT vs NT: Kendall tau 0.60):", "",
               "| | " + " | ".join(f"({i + 1})" for i in range(len(names))) + " |",
               "|---|" + "---|" * len(names)]
        md += [f"| ({i + 1}) {_short(a)} | " + " | ".join(f"{m[a][b]:+.2f}" for b in names) + " |"
               for i, a in enumerate(names)]
    ref = reference(rankings, about)
    if ref:
        md += ["", f"Kendall tau against the longest training, {_short(ref)} (the thesis: 0.60 "
               "between full training and network transformation, on B0 and ImageNet):", ""]
        md += [f"- {_short(n)}: {tau[n][ref]:+.2f}" for n in names if n != ref]
    md += separability(rankings, about)
    seeded_md, seeded = against_reference(rankings, about)
    md += seeded_md
    md += ["", "Evaluators (a [SYNTHETIC] one is benchmarks/analytic_sources.py's made-up "
           "accuracy function, shown as a reference point, not a result):", ""]
    md += [f"- {k}: `{v['evaluator']}`, {v['label']} (cache key `{v['key']}`); the 11 "
           f"evaluations took {v['evaluation_seconds']:.0f} s when made"
           for k, v in about.items()]
    md += ["", "Candidates:", ""] + [f"- {c[0]}: {c[3]} (fingerprint {c[1].fingerprint})"
                                     for c in cands]
    write_atomic(out / f"{prefix}.md", "\n".join(md) + "\n")
    write_atomic(out / f"{prefix}.json", json.dumps(
        {"meta": {**meta, "network": network, "reference": ref}, "evaluators": about,
         "rankings": {k: v[1] for k, v in rankings.items()}, "against_reference": seeded,
         "values": {k: v[0] for k, v in rankings.items() if v[0] is not None},
         "kendall_tau": tau, "spearman_rho": rho}, indent=2))
    plot(out / f"{prefix}.png", rankings, tau, network, r_step, cands[0][2])


def plot(path: Path, rankings, tau, network="efficientnet-b0", r_step=R_STEP - BASE_RES,
         base_res=BASE_RES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latency_lab.fileio import atomic_path

    names = list(rankings)
    fig, (ax, hm) = plt.subplots(1, 2, figsize=(15, 6), dpi=110,
                                 gridspec_kw={"width_ratios": [1.1, 1]})
    x = range(len(CANDIDATES))
    for n in names:
        style = dict(lw=2.5, color="black" if "FT" in n else "gray", ls="-" if "FT" in n
                     else "--") if n.startswith("thesis") else dict(lw=1.2, marker="o", ms=4)
        ax.plot(x, rankings[n][1], label=_short(n), **style)
    ax.set_xticks(list(x), CANDIDATES)
    ax.invert_yaxis()
    ax.set_ylabel("rank (1 = best value)")
    ax.set_xlabel(f"single-step candidate of {network} (w: width, d: depth, r: {base_res}->"
                  f"{base_res + r_step} px)")
    ax.set_title("Rankings of the 11 candidates by each evaluator", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    m = [[tau[a][b] for b in names] for a in names]
    im = hm.imshow(m, vmin=-1, vmax=1, cmap="RdBu")
    hm.set_xticks(range(len(names)), [f"({i + 1})" for i in range(len(names))])
    hm.set_yticks(range(len(names)), [f"({i + 1}) {_short(n)}" for i, n in enumerate(names)],
                  fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            hm.text(j, i, f"{m[i][j]:.2f}", ha="center", va="center", fontsize=7)
    hm.set_title("Kendall tau between rankings (thesis FT vs NT: 0.60)", fontsize=10)
    fig.colorbar(im, ax=hm, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluator", action="append", help="an --accuracy text; repeatable "
                    f"(default: {', '.join(DEFAULT_EVALUATORS)})")
    ap.add_argument("--store", type=Path, help="SQLite store with the accuracy cache "
                                               "(default: the cache's measurements.sqlite)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    ap.add_argument("--network", default="efficientnet-b0", help="preset whose single steps "
                    "are ranked (mbconv-tiny for the training evaluators)")
    ap.add_argument("--resolution", type=int, help="the baseline's resolution (default: the "
                    "preset's own)")
    ap.add_argument("--r-step", type=int, default=R_STEP - BASE_RES,
                    help="pixels added by the resolution candidate r")
    ap.add_argument("--prefix", default="proxy_ranking", help="output file names")
    ap.add_argument("--executor", default="local", help="where the evaluations run: local, "
                    "local:N, ray, ray:auto, ray://HOST:PORT (as the CLI's --executor)")
    args = ap.parse_args()
    os.chdir(ROOT)     # py: modules are imported relative to the current directory
    from datetime import datetime, timezone

    from latency_lab.paths import default_store_path

    meta = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load": [round(x, 2) for x in os.getloadavg()]}
    rankings, about = evaluate_all(args.evaluator or DEFAULT_EVALUATORS,
                                   args.store or default_store_path(), network=args.network,
                                   r_step=args.r_step, executor=args.executor,
                                   resolution=args.resolution)
    tau, rho = correlations(rankings)
    meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    ft = reference(rankings) or "thesis FT (full training)"
    for name in rankings:
        print(f"{_short(name):36s} ranks {rankings[name][1]}  tau vs {_short(ft)} "
              f"{tau[name][ft]:+.2f}  rho {rho[name][ft]:+.2f}")
    write_outputs(args.out, rankings, about, tau, rho, meta, args.network, args.r_step,
                  args.prefix, args.resolution)
    print(f"wrote {args.out}/{args.prefix}.csv, .md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
