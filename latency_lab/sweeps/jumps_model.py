"""Jump detection by a sparse regression model of the whole sweep (`detect(..., method="model")`).

A sweep is modelled as one smooth trend (1, r, r^2) plus a few terms taken from a dictionary:
a level step after each resolution, a hinge (a change of slope, continuous) at each resolution
and a spike (one outlying point) at each resolution. Which terms enter is an L0-penalised least
squares choice on the noise-weighted curve (chi-square plus `PENALTY_LN` ln(n) per term; spikes
cost `SPIKE_COST` times more): the search starts from ruptures' Pelt breaks (a step and a hinge
at each) and the spikes the jumps module found, again from nothing, and from a step at every
local step candidate (`local_steps`; the cheapest end wins: on a dense staircase measured with
+-3% CIs the first two settle on a ramp of hinges and miss +8-11% steps);
it alternates adding the best term, dropping terms that do not pay their penalty, moving a
term up to `MOVE_STEPS` grid steps and, once those stall, adding a step or hinge and dropping
what it makes redundant (two hinges that ramp where the curve steps), until nothing changes
(`select`). Every step term is then tested with the whole model's covariance:
`z` = step / SE. A step next to a hinge may be a kink that falls between two grid points (a
hinge there is a step plus a hinge at the next point), so the right-minus-left gap is also
evaluated at both ends of the interval, with the hinges within `CROSS_MARGIN` steps: if it
changes sign there, or one step beyond, the break is a kink; otherwise its smaller end must
pass `z_free_min` (`kink_proof_gap`).

Why not Pelt alone (the "pelt" method in `latency_lab.sweeps.jumps`): Pelt's linear pieces each fit
their own slope from <= 12 points, so a step's standard error is ~0.9 sigma; the model shares
the trend across the curve, and a kink costs one term, not a new segment. On the benchmark's
curves with CIs this raises recall at the same false-alarm rate (`benchmarks/jumps_benchmark.py`);
without CIs, the noise estimated from the curve is too uncertain for it and Pelt's test is kept.
Why written here: ruptures' costs fit every segment on its own (no shared trend, no
continuity across a kink), and scikit-learn's greedy selectors (OMP, LARS) have neither a cost
per kind of term, nor moves, nor per-point noise weights. Numpy least squares on at most ~180
candidate columns of 61 rows: 60-90 ms a curve (5 s for 217 points with 27 jumps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PENALTY_LN = 2.5       # chi-square cost of a term, in units of ln(n) (tuned on the benchmark)
SPIKE_COST = 1.5       # a spike costs this many terms (one point should not be a cheap fit)
PELT_PENALTY = 2.0     # ln(n) units for the Pelt breaks that seed the search (generous)
MOVE_STEPS = 2         # a term may move this many grid steps in one move
CROSS_MARGIN = 1       # grid steps beyond a break where crossing gaps still mean a kink
MAX_TERMS = 25         # ... or a third of the points, whichever is more (long, fine sweeps)
MISFIT = 4.0           # reduced chi-square above which the noise is rescaled and the fit redone
MAX_ROUNDS = 60
ADD_KINDS = ("step", "hinge")
N_BASE = 3             # 1, u, u^2


@dataclass(frozen=True)
class Atoms:
    """The dictionary: columns of `matrix`, each a `kind` ("step", "hinge", "spike") at an
    index `where` (step: after point where; hinge: at point where; spike: point where)."""
    base: np.ndarray
    matrix: np.ndarray
    kind: np.ndarray
    where: np.ndarray
    span: float

    def index(self, kind: str, where: int) -> int | None:
        hit = np.flatnonzero((self.kind == kind) & (self.where == where))
        return int(hit[0]) if hit.size else None


def atoms(r: np.ndarray) -> Atoms:
    n = len(r)
    span = float(r.max() - r.min()) or 1.0
    u = (r - r.mean()) / span
    base = np.column_stack([np.ones(n), u, u ** 2])
    idx = np.arange(n)
    cols, kind, where = [], [], []
    for k in range(1, n - 2):           # >= 2 points each side: one end point is a spike
        cols.append((idx > k) * 1.0), kind.append("step"), where.append(k)
    for k in range(1, n - 1):
        cols.append(np.maximum(0.0, r - r[k]) / span), kind.append("hinge"), where.append(k)
    for k in range(n):
        cols.append((idx == k) * 1.0), kind.append("spike"), where.append(k)
    return Atoms(base, np.column_stack(cols), np.array(kind), np.array(where), span)


def _design(a: Atoms, chosen: list[int]) -> np.ndarray:
    return np.column_stack([a.base] + [a.matrix[:, c] for c in chosen]) if chosen else a.base


def chi2(X: np.ndarray, y: np.ndarray, s: np.ndarray) -> float:
    """Chi-square of the weighted least-squares fit of y (errors s) on the columns of X."""
    coef, *_ = np.linalg.lstsq(X / s[:, None], y / s, rcond=None)
    res = (y - X @ coef) / s
    return float(res @ res)


def select(a: Atoms, y: np.ndarray, s: np.ndarray, init: list[int] = ()) -> list[int]:
    """L0-penalised choice of terms: forward (best gain), backward (drop what does not pay),
    moves (a term to any term within MOVE_STEPS), until a round changes nothing."""
    n = len(y)
    pen = penalties(a, n)
    chosen = list(dict.fromkeys(int(c) for c in init))
    Aw = a.matrix / s[:, None]
    aw_norm = np.einsum("ij,ij->j", Aw, Aw)
    for _ in range(MAX_ROUNDS):
        changed = False
        # forward: the term that lowers chi-square most, if by more than its penalty
        Q, _ = np.linalg.qr(_design(a, chosen) / s[:, None])
        rw = y / s - Q @ (Q.T @ (y / s))
        Ap = Aw - Q @ (Q.T @ Aw)
        norm = np.einsum("ij,ij->j", Ap, Ap)
        gain = np.where(norm > 1e-9 * aw_norm, (rw @ Ap) ** 2 / np.maximum(norm, 1e-300), 0.0)
        gain[chosen] = 0.0
        best = int(np.argmax(gain - pen))
        if gain[best] > pen[best] and len(chosen) < max(MAX_TERMS, n // 3):
            chosen.append(best)
            changed = True
        # backward: drop the term whose loss is furthest below its penalty
        pruned = _prune(a, chosen, y, s, pen)
        if len(pruned) < len(chosen):
            chosen[:] = pruned
            changed = True
        # moves: the best replacement of one term by another within MOVE_STEPS
        if chosen:
            full = chi2(_design(a, chosen), y, s) + pen[chosen].sum()
            best_move = (full - 1e-9, None, None)
            for m, c in enumerate(chosen):
                for c2 in np.flatnonzero(np.abs(a.where - a.where[c]) <= MOVE_STEPS):
                    if c2 in chosen:
                        continue
                    trial = chosen[:m] + [int(c2)] + chosen[m + 1:]
                    cost = chi2(_design(a, trial), y, s) + pen[trial].sum()
                    if cost < best_move[0]:
                        best_move = (cost, m, int(c2))
            if best_move[1] is not None:
                chosen[best_move[1]] = best_move[2]
                changed = True
        if not changed:
            changed = _add_and_prune(a, chosen, y, s, pen)
        if not changed:
            break
    return chosen


def _drop_losses(a: Atoms, chosen: list[int], y, s) -> np.ndarray:
    """Rise in chi-square if each chosen term alone were dropped: coef^2 / (X'WX)^-1_jj, all
    from one fit (the standard identity for removing one column from least squares)."""
    Xw = _design(a, chosen) / s[:, None]
    coef, *_ = np.linalg.lstsq(Xw, y / s, rcond=None)
    inv = np.diag(np.linalg.pinv(Xw.T @ Xw))[N_BASE:]
    return np.where(inv > 1e-12, coef[N_BASE:] ** 2 / np.maximum(inv, 1e-300), 0.0)


def _prune(a: Atoms, chosen: list[int], y, s, pen) -> list[int]:
    """Drop, one at a time, the term whose chi-square loss is furthest below its penalty."""
    chosen = list(chosen)
    while chosen:
        loss = _drop_losses(a, chosen, y, s) - pen[chosen]
        worst = int(np.argmin(loss))
        if loss[worst] >= 0:
            break
        del chosen[worst]
    return chosen


def _add_and_prune(a: Atoms, chosen: list[int], y, s, pen) -> bool:
    """A step that pays only once the terms it replaces are gone (two hinges that make a
    ramp where the curve steps): add each step in turn, drop what no longer pays, keep the
    cheapest result if it beats the current choice. Changes `chosen` in place."""
    current = chi2(_design(a, chosen), y, s) + pen[chosen].sum()
    best = (current - 1e-9, None)
    for c in np.flatnonzero(np.isin(a.kind, ADD_KINDS)):
        if c in chosen or len(chosen) >= max(MAX_TERMS, len(y) // 3):
            continue
        trial = _prune(a, chosen + [int(c)], y, s, pen)
        if int(c) not in trial:
            continue
        total = chi2(_design(a, trial), y, s) + pen[trial].sum()
        if total < best[0]:
            best = (total, trial)
    if best[1] is None:
        return False
    chosen[:] = best[1]
    return True


def penalties(a: Atoms, n: int) -> np.ndarray:
    """Chi-square cost of each term of the dictionary for a curve of n points."""
    return PENALTY_LN * np.log(n) * np.where(a.kind == "spike", SPIKE_COST, 1.0)


def cost(a: Atoms, chosen: list[int], y: np.ndarray, s: np.ndarray) -> float:
    """The penalised objective `select` minimises."""
    return chi2(_design(a, chosen), y, s) + float(penalties(a, len(y))[chosen].sum())


@dataclass(frozen=True)
class Fit:
    atoms: Atoms
    chosen: list[int]
    coef: np.ndarray
    cov: np.ndarray
    fitted: np.ndarray       # model prediction at every point, spikes excluded (ms)
    reduced_chi2: float      # chi-square / degrees of freedom of the chosen model

    def terms(self, kind: str) -> list[tuple[int, int]]:
        """(column in coef, where) of the chosen terms of one kind, by position."""
        out = [(N_BASE + m, int(self.atoms.where[c])) for m, c in enumerate(self.chosen)
               if self.atoms.kind[c] == kind]
        return sorted(out, key=lambda t: t[1])


def fit_model(r: np.ndarray, y: np.ndarray, s: np.ndarray, init_breaks: list[int],
              init_spikes: list[int]) -> Fit:
    """Choose the terms (seeded with a step and a hinge at each break, and the spikes) and fit
    them; the covariance is inflated by the reduced chi-square when the fit is worse than the
    noise says."""
    a = atoms(r)
    y0 = y - np.median(y)
    init = []
    for k in init_breaks:
        init += [a.index("step", k), a.index("hinge", k + 1)]
    init += [a.index("spike", k) for k in init_spikes]
    # Three starts, the Pelt seeds, nothing, and a step at every local step candidate: the
    # search is local, so keep the cheaper end. The third finds the big steps of a dense
    # staircase measured with wide CIs (a busy machine's +-3%), where Pelt's linear pieces
    # and a greedy start from nothing both settle on a ramp of hinges instead.
    local = [a.index("step", k) for k in local_steps(r, y, s)]
    starts = [select(a, y0, s, [c for c in init if c is not None]), select(a, y0, s, []),
              select(a, y0, s, [c for c in local if c is not None])]
    chosen = min(starts, key=lambda ch: cost(a, ch, y0, s))
    X = _design(a, chosen)
    Xw = X / s[:, None]
    coef, *_ = np.linalg.lstsq(Xw, y0 / s, rcond=None)
    res = (y0 - X @ coef) / s
    dof = len(y) - X.shape[1]
    red = float(res @ res) / dof if dof > 0 else 1.0
    cov = np.linalg.pinv(Xw.T @ Xw) * max(1.0, red)
    no_spike = coef.copy()
    for m, c in enumerate(chosen):
        if a.kind[c] == "spike":
            no_spike[N_BASE + m] = 0.0
    return Fit(a, chosen, coef, cov, X @ no_spike + np.median(y), red)


LOCAL_HALF_WINDOW = 3   # points each side of a local step test
LOCAL_Z = 1.5           # |z| of a local step worth seeding the search with (2.0: 51, 1.5: 54 of
                        # 57 real steps >= 8% found at busy +-3% CIs, no false jump either way)


def local_steps(r: np.ndarray, y: np.ndarray, s: np.ndarray, w: int = LOCAL_HALF_WINDOW,
                z_min: float = LOCAL_Z) -> list[int]:
    """Break indices k where a step between points k and k+1, fitted with a shared line on
    the w points each side, has |z| >= z_min and is the strongest of its neighbours: seeds
    for `select`, not results (every chosen step is tested with the whole model)."""
    n = len(r)
    z = np.zeros(n)
    for k in range(w - 1, n - w):
        idx = np.arange(k - w + 1, k + w + 1)
        X = np.column_stack([np.ones(len(idx)), r[idx] - (r[k] + r[k + 1]) / 2,
                             (idx > k) * 1.0]) / s[idx, None]
        coef, *_ = np.linalg.lstsq(X, y[idx] / s[idx], rcond=None)
        z[k] = coef[2] / np.sqrt(np.linalg.pinv(X.T @ X)[2, 2])
    a = np.abs(z)
    return [k for k in range(1, n - 2)
            if a[k] >= z_min and a[k] >= a[k - 1] and a[k] >= a[k + 1]]


def kink_proof_gap(f: Fit, r: np.ndarray, col: int, k: int) -> tuple[float, float, float]:
    """(gap, se, z_slope) of the step in column `col` after point k: right minus left level,
    with the hinges within CROSS_MARGIN of the break, at the end of [r_k, r_k+1] where it is
    smaller; gap 0 when it changes sign in that interval or CROSS_MARGIN steps beyond it.
    z_slope: the hinges' total slope change over its standard error (0 without a hinge)."""
    near = [(c, j) for c, j in f.terms("hinge") if k - CROSS_MARGIN <= j <= k + 1 + CROSS_MARGIN]

    def vec(t: float) -> np.ndarray:
        v = np.zeros(len(f.coef))
        v[col] = 1.0
        for c, j in near:
            v[c] = (t - r[j]) / f.atoms.span
        return v

    n = len(r)
    ends = [vec(r[k]), vec(r[k + 1])]
    outer = [vec(r[max(0, k - CROSS_MARGIN)]), vec(r[min(n - 1, k + 1 + CROSS_MARGIN)])]
    d = [v @ f.coef for v in ends]
    d_out = [v @ f.coef for v in outer]
    z_slope = 0.0
    if near:
        w = np.zeros(len(f.coef))
        for c, _ in near:
            w[c] = 1.0
        z_slope = float(w @ f.coef / np.sqrt(w @ f.cov @ w))
    at = int(np.argmin(np.abs(d)))
    se = float(np.sqrt(ends[at] @ f.cov @ ends[at]))
    if d[0] * d[1] <= 0 or d_out[0] * d_out[1] <= 0:
        return 0.0, se, z_slope
    return float(d[at]), se, z_slope
