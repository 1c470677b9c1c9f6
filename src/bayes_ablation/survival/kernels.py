"""Compiled (numba, cached on disk) core of the survival estimands.

Marginal survival over a normal random effect, per posterior draw d and arm a::

    S_da(t) = Σ_p w_p ∫ exp(−exp(log H_da(t) + o_dp + s_da u)) φ(u) du
            ≈ Σ_p w_p Σ_j ω_j exp(−H_da(t) · exp(o_dp + s_da √2 x_j))       (Gauss–Hermite)

The number of Gauss–Hermite nodes is chosen per draw from the draw's sd s_da: the smallest
order in :data:`GH_ORDERS` whose error for this integrand is ≤ 1e-9 for every H (measured
against adaptive quadrature; :data:`GH_MAX_SD`, re-checked in ``tests/test_estimands_speed.py``),
and 64 nodes beyond. s = 0 (an average site) is one exact evaluation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numba
import numpy as np

#: Gauss–Hermite orders, and the largest sd each integrates to an absolute error ≤ 1e-9
GH_ORDERS = (8, 12, 16, 24, 32, 48, 64)
GH_MAX_SD = (0.26, 0.40, 0.50, 0.66, 0.80, 1.02, math.inf)


@functools.lru_cache(maxsize=1)
def gh_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Node and weight tables for N(0, 1) expectations, padded to the largest order (computed
    once per process, ~20 ms; shared: read them, never write)."""
    width = max(GH_ORDERS)
    nodes = np.zeros((len(GH_ORDERS), width))
    weights = np.zeros((len(GH_ORDERS), width))
    for i, n in enumerate(GH_ORDERS):
        x, w = np.polynomial.hermite.hermgauss(n)
        nodes[i, :n] = np.sqrt(2.0) * x
        weights[i, :n] = w / np.sqrt(np.pi)
    return (nodes, weights, np.array(GH_ORDERS, dtype=np.int64),
            np.array(GH_MAX_SD, dtype=float))


@numba.njit(cache=True, nogil=True)
def mixed_survival(log_cumhaz: np.ndarray, offsets: np.ndarray, pattern_weights: np.ndarray,
                   sd: np.ndarray, nodes: np.ndarray, weights: np.ndarray, orders: np.ndarray,
                   max_sd: np.ndarray) -> np.ndarray:
    """S (draw, arm, time) from log H (draw, arm, time), covariate-pattern offsets
    (draw, pattern) with weights (pattern,), and random-effect sds (draw, arm)."""
    n_draw, n_arm, n_time = log_cumhaz.shape
    n_pat = offsets.shape[1]
    out = np.zeros(log_cumhaz.shape)
    hazard = np.exp(log_cumhaz)
    for d in range(n_draw):
        for a in range(n_arm):
            s = sd[d, a]
            for p in range(n_pat):
                if s == 0.0:
                    f = -math.exp(offsets[d, p])
                    c = pattern_weights[p]
                    for t in range(n_time):
                        out[d, a, t] += c * math.exp(hazard[d, a, t] * f)
                    continue
                k = 0
                while k < orders.size - 1 and s > max_sd[k]:
                    k += 1
                for j in range(orders[k]):
                    f = -math.exp(offsets[d, p] + s * nodes[k, j])
                    c = pattern_weights[p] * weights[k, j]
                    for t in range(n_time):
                        out[d, a, t] += c * math.exp(hazard[d, a, t] * f)
    return out


@numba.njit(cache=True, nogil=True)
def mixed_survival_draw_weights(log_cumhaz: np.ndarray, offsets: np.ndarray,
                                pattern_weights: np.ndarray, sd: np.ndarray, nodes: np.ndarray,
                                weights: np.ndarray, orders: np.ndarray, max_sd: np.ndarray
                                ) -> np.ndarray:
    """:func:`mixed_survival` with one weight vector per draw: ``pattern_weights`` (draw,
    pattern), e.g. Bayesian-bootstrap weights of the covariate distribution."""
    n_draw, n_arm, n_time = log_cumhaz.shape
    n_pat = offsets.shape[1]
    out = np.zeros(log_cumhaz.shape)
    hazard = np.exp(log_cumhaz)
    for d in range(n_draw):
        for a in range(n_arm):
            s = sd[d, a]
            k = 0
            while k < orders.size - 1 and s > max_sd[k]:
                k += 1
            n_nodes = 1 if s == 0.0 else orders[k]
            for p in range(n_pat):
                w_p = pattern_weights[d, p]
                if w_p == 0.0:
                    continue
                for j in range(n_nodes):
                    u = 0.0 if s == 0.0 else s * nodes[k, j]
                    c = w_p if s == 0.0 else w_p * weights[k, j]
                    f = -math.exp(offsets[d, p] + u)
                    for t in range(n_time):
                        out[d, a, t] += c * math.exp(hazard[d, a, t] * f)
    return out


# ------------------------------------------------------- many covariate patterns: binned

#: lattice step of the binned standardisation (log-hazard scale). Linear binning of the
#: offsets and linear interpolation of the tabulated mixture each err by at most
#: step²/8 · max|G''| (G(z) = exp(−e^z), max|G''| = 0.309), so |ΔS| ≤ 1.93e-6 in all
#: (measured against the exact sum: ≤ 1.4e-6, tests/endpoints/pfs/test_estimands_accuracy.py)
BIN_STEP = 0.005
#: mixture tables below this: 1 − e^z Σ w e^o is exact to 1e-16 (all z + o ≤ −18)
_BIN_LOWER = -18.0
#: above this G(z + o) < 2e-24 for every pattern: S = 0
_BIN_UPPER = 4.0
#: draws per FFT batch (memory: batch × FFT length × 16 bytes)
_BIN_BATCH = 256
#: fewer patterns than this are summed exactly (:func:`mixed_survival`)
BIN_MIN_PATTERNS = 48


def _binned_tables(offsets: np.ndarray, pattern_weights: np.ndarray, step: float = BIN_STEP
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per draw d the mixture F_d(z) = Σ_p w_p G(z + o_dp − m_d h) on the lattice z_k = (k0 + k) h,
    by linear binning of the offsets (relative to the draw's lowest lattice point m_d h) and one
    FFT correlation with G per draw. ``pattern_weights``: (pattern,) shared by all draws, or
    (draw, pattern). Returns (tables (D, K), shift m_d h (D,), Σ_p w_p e^{o_dp} (D,), k0)."""
    from scipy import fft

    h = step
    q = offsets / h
    base = np.floor(q.min(axis=1))                                     # m_d
    rel = q - base[:, None]
    idx = np.floor(rel).astype(np.int64)
    frac = rel - idx
    width = int(idx.max()) + 2                                         # bins 0 .. width-1
    n_draw = offsets.shape[0]
    k0 = int(np.floor((_BIN_LOWER - width * h) / h)) - 1
    k1 = int(np.ceil(_BIN_UPPER / h)) + 1
    n_table = k1 - k0 + 1
    # G on lattice points (k0 + k + m) h, k < n_table, m < width
    g = np.exp(-np.exp((k0 + np.arange(n_table + width - 1)) * h))
    n_fft = fft.next_fast_len(g.size + width - 1, real=True)
    g_f = fft.rfft(g, n_fft)
    tables = np.empty((n_draw, n_table))
    rows = np.arange(n_draw)[:, None]
    per_draw = pattern_weights.ndim == 2
    for start in range(0, n_draw, _BIN_BATCH):
        stop = min(start + _BIN_BATCH, n_draw)
        w = pattern_weights[start:stop] if per_draw else pattern_weights
        # linear binning: one weighted bincount over (row, bin) of the lower then the upper
        # neighbours (the same additions, in the same order, as two np.add.at calls)
        r = np.broadcast_to(rows[: stop - start], idx[start:stop].shape)
        cell = (r * width + idx[start:stop]).ravel()
        bins = np.bincount(np.concatenate([cell, cell + 1]),
                           weights=np.concatenate([(w * (1.0 - frac[start:stop])).ravel(),
                                                   (w * frac[start:stop]).ravel()]),
                           minlength=(stop - start) * width).reshape(stop - start, width)
        # F[k] = Σ_m b[m] g[k + m]: convolution of g with the reversed bins
        conv = fft.irfft(g_f * fft.rfft(bins[:, ::-1], n_fft, axis=1), n_fft, axis=1)
        tables[start:stop] = conv[:, width - 1: width - 1 + n_table]
    tail = (np.exp(offsets) * pattern_weights).sum(axis=1)
    return tables, base * h, tail, k0


@numba.njit(cache=True, nogil=True)
def _interpolated_survival(log_cumhaz: np.ndarray, tables: np.ndarray, shift: np.ndarray,
                           tail: np.ndarray, k0: int, step: float, sd: np.ndarray,
                           nodes: np.ndarray, weights: np.ndarray, orders: np.ndarray,
                           max_sd: np.ndarray) -> np.ndarray:
    n_draw, n_arm, n_time = log_cumhaz.shape
    n_table = tables.shape[1]
    out = np.zeros(log_cumhaz.shape)
    lower = k0 * step
    for d in range(n_draw):
        for a in range(n_arm):
            s = sd[d, a]
            k = 0
            if s == 0.0:
                n_nodes = 1
            else:
                while k < orders.size - 1 and s > max_sd[k]:
                    k += 1
                n_nodes = orders[k]
            for j in range(n_nodes):
                u = 0.0 if s == 0.0 else s * nodes[k, j]
                c = 1.0 if s == 0.0 else weights[k, j]
                for t in range(n_time):
                    z = log_cumhaz[d, a, t] + u
                    pos = (z + shift[d] - lower) / step
                    if pos < 1.0:
                        value = 1.0 - math.exp(z) * tail[d]
                    elif pos >= n_table - 1:
                        value = 0.0
                    else:
                        i = int(pos)
                        f = pos - i
                        value = (1.0 - f) * tables[d, i] + f * tables[d, i + 1]
                    out[d, a, t] += c * value
    return out


#: lattice step of the g-computed (causal) estimands: |ΔS| ≤ 2 · step²/8 · 0.309 = 3.1e-5,
#: far below their Monte Carlo error (posterior sd of a survival difference ≈ 0.03 over 4000
#: draws: standard error ≈ 5e-4), at a quarter of the FFT length of :data:`BIN_STEP`
CAUSAL_BIN_STEP = 0.02


def standardised_survival(log_cumhaz: np.ndarray, offsets: np.ndarray,
                          pattern_weights: np.ndarray, sd: np.ndarray,
                          step: float = BIN_STEP, binned_from: int = BIN_MIN_PATTERNS
                          ) -> np.ndarray:
    """S (draw, arm, time) standardised over covariate patterns, as :func:`mixed_survival`.

    Few patterns (< :data:`BIN_MIN_PATTERNS`): the exact sum. Many (continuous covariates: one
    pattern per patient): S_da(t) = Σ_j ω_j F_d(log H_da(t) + s_da u_j) with the mixture
    F_d(z) = Σ_p w_p exp(−e^{z + o_dp}) tabulated once per draw on a lattice of step
    :data:`BIN_STEP` (linear binning of o_dp, FFT correlation with G) and interpolated
    linearly; |ΔS| ≤ 1.93e-6 (:data:`BIN_STEP`). The cost no longer grows with patients ×
    times × nodes. ``pattern_weights`` (pattern,) is shared by all draws; (draw, pattern) gives
    each draw its own weights (Bayesian bootstrap of the covariate distribution). ``step``: the
    lattice step (error bound step²/4 · 0.309); ``binned_from``: the number of patterns from
    which the binned sum is used."""
    return standardised_survival_by_sd(log_cumhaz, offsets, pattern_weights, [sd], step,
                                       binned_from)[0]


def standardised_survival_by_sd(log_cumhaz: np.ndarray, offsets: np.ndarray,
                                pattern_weights: np.ndarray, sds: Sequence[np.ndarray],
                                step: float = BIN_STEP, binned_from: int = BIN_MIN_PATTERNS
                                ) -> list[np.ndarray]:
    """:func:`standardised_survival` for each random-effect sd of ``sds`` (e.g. an average and
    a new site) over the same covariate mix: the binned mixture's tables are made once, a
    batch of :data:`_BIN_BATCH` draws at a time, and interpolated for every sd before the next
    batch (a few MB live at a time instead of draws × lattice: the tables of 4000 draws are
    ~200 MB, whose first touch alone took 0.3 s)."""
    pattern_weights = np.asarray(pattern_weights, float)
    sds = [np.ascontiguousarray(sd, dtype=float) for sd in sds]
    if offsets.shape[1] < max(binned_from, 2):
        if pattern_weights.ndim == 2:
            w = np.ascontiguousarray(pattern_weights)
            return [mixed_survival_draw_weights(log_cumhaz, offsets, w, sd, *gh_tables())
                    for sd in sds]
        return [mixed_survival(log_cumhaz, offsets, pattern_weights, sd, *gh_tables())
                for sd in sds]
    log_cumhaz = np.ascontiguousarray(log_cumhaz, dtype=float)
    outs = [np.empty(log_cumhaz.shape) for _ in sds]
    per_draw = pattern_weights.ndim == 2
    for start in range(0, offsets.shape[0], _BIN_BATCH):
        rows = slice(start, min(start + _BIN_BATCH, offsets.shape[0]))
        tables, shift, tail, k0 = _binned_tables(
            offsets[rows], pattern_weights[rows] if per_draw else pattern_weights, step)
        for out, sd in zip(outs, sds, strict=True):
            out[rows] = _interpolated_survival(log_cumhaz[rows], tables, shift, tail, k0, step,
                                               sd[rows], *gh_tables())
    return outs
