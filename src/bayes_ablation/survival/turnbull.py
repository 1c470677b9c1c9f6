"""The Turnbull NPMLE of interval-censored event times (self-consistency on the innermost
intervals) and step functions on a grid."""

from __future__ import annotations

import numba
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
    mass of each innermost interval placed at its right end. Compiled (numba), on the distinct
    rows of the cover matrix weighted by their counts (the same iterates).
    """
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    left, right = innermost_intervals(lower, upper)
    finite = np.isfinite(right)
    cover = (lower[:, None] <= left[None, :]) & (right[None, :] <= upper[:, None])
    cover = cover[cover.sum(axis=1) < right.size]            # rows covering everything are flat
    if cover.shape[0] == 0 or right.size == 0:
        return right[finite], np.zeros(int(finite.sum()))
    # lesions scanned on the same schedule share a row: EM on the distinct rows, weighted
    rows, counts = np.unique(cover, axis=0, return_counts=True)
    p = _squarem(np.ascontiguousarray(rows, dtype=float), counts.astype(float),
                 float(tol), int(max_iter))
    return right[finite], np.cumsum(p[finite])


@numba.njit(cache=True)
def _em(a: np.ndarray, c: np.ndarray, n: float, p: np.ndarray) -> np.ndarray:
    """One self-consistency step p_k ← p_k Σ_i c_i α_ik / (n Σ_k' α_ik' p_k')."""
    return p * (a.T @ (c / (a @ p))) / n


@numba.njit(cache=True)
def _loglik(a: np.ndarray, c: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum(c * np.log(a @ p)))


@numba.njit(cache=True)
def _squarem(a: np.ndarray, c: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    """SQUAREM-accelerated EM of the rows ``a`` (distinct cover patterns) with counts ``c``."""
    n = c.sum()
    k = a.shape[1]
    p = np.full(k, 1.0 / k)
    for _ in range(max_iter // 3 + 1):
        p1 = _em(a, c, n, p)
        p2 = _em(a, c, n, p1)
        r = p1 - p
        v = p2 - 2.0 * p1 + p
        norm_v = np.sqrt(np.sum(v * v))
        new = p2
        if norm_v > 0.0:
            step = min(-np.sqrt(np.sum(r * r)) / norm_v, -1.0)
            trial = p
            while step < -1.0:
                trial = p - 2.0 * step * r + step * step * v
                if trial.min() >= 0.0:
                    break
                step = (step - 1.0) / 2.0
            if step < -1.0:
                trial = trial / trial.sum()
                if (a @ trial).min() > 0.0:
                    trial = _em(a, c, n, trial)
                    if _loglik(a, c, trial) >= _loglik(a, c, p2):
                        new = trial
        converged = np.max(np.abs(new - p)) < tol
        p = new
        if converged:
            break
    return p


def step_on_grid(atoms: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Right-continuous step function through (atoms, values), 0 before the first atom."""
    pos = np.searchsorted(atoms, grid, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)
