"""Rank correlations that know their seeds: bootstrap CIs, costs, pairs a reference orders.

Used by benchmarks/proxy_ranking.py for evaluators whose value is a mean over draws (the
seeds of `train:`/`net2net:` with seeds=K, the repeats of a Zen-Score):

- `bootstrap`: Kendall tau and Spearman rho of an evaluator's ranking against the reference's,
  with 95% percentile intervals from resampling each candidate's draws with replacement, in
  both rankings, independently per candidate (the seeds of two networks are not paired: seed
  0 of w1 and seed 0 of w2 start from different weights), `n_boot` times with a fixed seed;
- `separated_pairs`: the candidate pairs whose intervals are disjoint, with each candidate's
  own t-interval over its draws and with the seed noise pooled over all candidates (more
  degrees of freedom: the better estimate when noise does not depend on the candidate);
- `cost`: what one candidate's value costs, in training epochs (the measure that does not
  depend on the machine's load) and in seconds as measured; for `net2net:` the baseline's
  training is shared by every candidate and counted once per seed, spread over them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def _stats(a, b) -> tuple[float, float]:
    from scipy.stats import kendalltau, spearmanr

    return float(kendalltau(a, b).statistic), float(spearmanr(a, b).statistic)


def bootstrap(draws: Sequence[Sequence[float]], ref: Sequence[Sequence[float]],
              n_boot: int = 2000, seed: int = 0, k: int | None = None) -> dict:
    """{"tau": [point, lo, hi], "rho": [...]} of the means of `draws` against those of `ref`
    (one list of draws per candidate, same order). `k`: resample k draws per candidate for
    the evaluator instead of all (k=1: what an evaluator with one seed would give; its point
    value is then the mean of the replicates)."""
    rng = np.random.default_rng(seed)
    point = _stats([np.mean(d) for d in draws], [np.mean(d) for d in ref])
    taus, rhos = [], []
    for _ in range(n_boot):
        a = [np.mean(rng.choice(d, k or len(d))) for d in draws]
        b = [np.mean(rng.choice(d, len(d))) for d in ref]
        tau, rho = _stats(a, b)
        if not (math.isnan(tau) or math.isnan(rho)):     # every value tied in a replicate
            taus.append(tau)
            rhos.append(rho)
    def ci(xs) -> list[float]:      # no interval when every replicate had all values tied
        return [float(np.percentile(xs, q)) for q in (2.5, 97.5)] if xs else [math.nan] * 2
    if k is not None and taus:
        point = (float(np.mean(taus)), float(np.mean(rhos)))
    return {"tau": [point[0], *ci(taus)], "rho": [point[1], *ci(rhos)], "n_boot": len(taus)}


def separated_pairs(draws: Sequence[Sequence[float]]) -> dict:
    """Pairs of candidates with disjoint 95% intervals: own t-intervals and pooled ones."""
    from latency_lab.search.intervals import mean_ci, pooled_ci, pooled_sd

    own = [mean_ci(d)[1] for d in draws]
    pooled = pooled_sd(draws)
    shared = [pooled_ci(d, *pooled) for d in draws] if pooled else None

    def count(cis) -> int | None:
        if cis is None or any(c is None for c in cis):
            return None
        return sum(a[0] > b[1] or b[0] > a[1] for i, a in enumerate(cis) for b in cis[i + 1:])
    n = len(draws)
    return {"pairs": n * (n - 1) // 2, "own_t": count(own), "pooled": count(shared),
            "pooled_sd": pooled[0] if pooled else None, "dof": pooled[1] if pooled else None,
            "seed_range": [float(max(d) - min(d)) for d in draws]}


def cost(ev, details: Sequence[dict], seconds: Sequence[float], base_seconds: float = 0.0) -> dict:
    """Per candidate and seed: epochs of training and measured seconds (see the docstring)."""
    name, o = ev.name, ev.options
    n = len(details)
    seeds = o.get("seeds", 1)
    if name == "train":
        epochs = float(o["epochs"])
    elif name == "net2net":
        epochs = o["epochs"] + o["base_epochs"] / n      # the baseline's training, shared
    else:
        epochs = 0.0
    per_draw = [s / max(1, len(d.get("seed_values") or d.get("repeats") or [0]))
                for s, d in zip(seconds, details)]
    measured = (sum(d.get("train_seconds") or 0.0 for d in details) + base_seconds) / (n * seeds) \
        if name in ("train", "net2net") else float(np.mean(per_draw))
    return {"epochs_per_candidate_seed": epochs, "seconds_per_candidate_seed": measured,
            "base_seconds": base_seconds}


__all__ = ["bootstrap", "separated_pairs", "cost"]
