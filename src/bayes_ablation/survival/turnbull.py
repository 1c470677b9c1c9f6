"""The Turnbull NPMLE of interval-censored event times (self-consistency on the innermost
intervals) and step functions on a grid."""

from __future__ import annotations

import numpy as np


def innermost_intervals(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turnbull's innermost intervals (l, r] of interval-censored data T ∈ (L, U].

    Walking the sorted endpoints (a right end U = t before a left end L = t: (L, U] excludes
    L), each left end directly followed by a right end bounds an innermost interval; with
    right-censored data (U = +inf) the last one is (max L, +inf). The NPMLE puts all its mass
    on these intervals.
    """
    finite = np.isfinite(upper)
    values = np.concatenate([lower, upper[finite]])
    is_left = np.concatenate([np.ones(lower.size, bool), np.zeros(int(finite.sum()), bool)])
    order = np.lexsort((is_left, values))
    v, left = values[order], is_left[order]
    pair = left[:-1] & ~left[1:]
    lo, hi = v[:-1][pair], v[1:][pair]
    if not finite.all():
        lo, hi = np.append(lo, lower[~finite].max()), np.append(hi, np.inf)
    return lo, hi


def turnbull(lower: np.ndarray, upper: np.ndarray, tol: float = 1e-9,
             max_iter: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Turnbull NPMLE for interval-censored times T ∈ (L, U] (U = +inf: right-censored).

    Self-consistency EM (p_k ← p_k · mean_i α_ik / Σ_k' α_ik' p_k', α_ik = 1[(l_k, r_k] ⊂
    (L_i, U_i]]) over the innermost intervals, accelerated by SQUAREM (Varadhan & Roland 2008;
    step shortened until it stays a probability vector, and never accepted when it lowers the
    likelihood below the plain EM step). Returns (atoms, F at the atoms), F(t) = P(T ≤ t), the
    mass of each innermost interval placed at its right end.
    """
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    left, right = innermost_intervals(lower, upper)
    finite = np.isfinite(right)
    cover = (lower[:, None] <= left[None, :]) & (right[None, :] <= upper[:, None])
    cover = cover[cover.sum(axis=1) < right.size]            # rows covering everything are flat
    if cover.shape[0] == 0 or right.size == 0:
        return right[finite], np.zeros(int(finite.sum()))
    a = cover.astype(float)
    n = a.shape[0]

    def em(p: np.ndarray) -> np.ndarray:
        return p * (a.T @ (1.0 / (a @ p))) / n

    def loglik(p: np.ndarray) -> float:
        return float(np.log(a @ p).sum())

    p = np.full(right.size, 1.0 / right.size)
    for _ in range(int(max_iter) // 3 + 1):
        p1 = em(p)
        p2 = em(p1)
        r, v = p1 - p, p2 - 2.0 * p1 + p
        norm_v = float(np.sqrt(v @ v))
        new = p2
        if norm_v > 0.0:
            step = min(-float(np.sqrt(r @ r)) / norm_v, -1.0)
            while step < -1.0:
                trial = p - 2.0 * step * r + step * step * v
                if trial.min() >= 0.0:
                    break
                step = (step - 1.0) / 2.0
            if step < -1.0:
                trial = trial / trial.sum()
                if (a @ trial).min() > 0.0:
                    trial = em(trial)
                    if loglik(trial) >= loglik(p2):
                        new = trial
        converged = np.max(np.abs(new - p)) < tol
        p = new
        if converged:
            break
    return right[finite], np.cumsum(p[finite])


def step_on_grid(atoms: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Right-continuous step function through (atoms, values), 0 before the first atom."""
    pos = np.searchsorted(atoms, grid, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)
