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
    rows, counts = distinct_cover_rows(lower, upper, left, right)
    if rows.shape[0] == 0 or right.size == 0:
        return right[finite], np.zeros(int(finite.sum()))
    p = _squarem(rows, counts.astype(float), float(tol), int(max_iter))
    return right[finite], np.cumsum(p[finite])


def distinct_cover_rows(lower: np.ndarray, upper: np.ndarray, left: np.ndarray,
                        right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of the cover matrix α_ik = 1[(l_k, r_k] ⊂ (L_i, U_i]] (as floats) and
    how many observations share each; rows covering every interval (flat in the likelihood)
    are left out. Lesions scanned on the same schedule share a row.

    With sorted innermost intervals (the usual case) the intervals inside (L_i, U_i] are the
    contiguous run first_i … last_i − 1 (left ends ≥ L_i: a suffix; right ends ≤ U_i: a
    prefix), so the distinct rows are the distinct (first, last) pairs; otherwise (a last
    right-censored interval starting before a finite one) the cover matrix is built."""
    k = right.size
    if np.all(np.diff(left) >= 0) and np.all(np.diff(right) >= 0):
        first = np.searchsorted(left, lower, side="left")
        last = np.searchsorted(right, upper, side="right")
        keep = (last > first) & ((last - first) < k)
        runs, counts = np.unique(first[keep] * (k + 1) + last[keep], return_counts=True)
        cols = np.arange(k)
        lo, hi = runs // (k + 1), runs % (k + 1)
        rows = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
    else:
        cover = (lower[:, None] <= left[None, :]) & (right[None, :] <= upper[:, None])
        cover = cover[cover.sum(axis=1) < k]
        rows, counts = np.unique(cover, axis=0, return_counts=True)
    return np.ascontiguousarray(rows, dtype=float), counts


@numba.njit(cache=True, nogil=True)
def _em(a: np.ndarray, c: np.ndarray, n: float, p: np.ndarray) -> np.ndarray:
    """One self-consistency step p_k ← p_k Σ_i c_i α_ik / (n Σ_k' α_ik' p_k')."""
    return p * (a.T @ (c / (a @ p))) / n


@numba.njit(cache=True, nogil=True)
def _loglik(a: np.ndarray, c: np.ndarray, p: np.ndarray) -> float:
    return float(np.sum(c * np.log(a @ p)))


@numba.njit(cache=True, nogil=True)
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
