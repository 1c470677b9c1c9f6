"""Rank-normalised R-hat, bulk/tail ESS and MCSE of the mean for many scalars at once.

The same estimators as ArviZ (``arviz_stats``; Vehtari et al. 2021, *Bayesian Analysis*
16:667): chains split in halves; z = Φ⁻¹((r − 3/8)/(N + 1/4)) of the pooled ranks r;
R-hat = max(R̂(z), R̂(z of |θ − median|)); bulk ESS = ESS(z); tail ESS = min over
q ∈ {0.05, 0.95} of ESS(1[θ ≤ θ_q]); MCSE = sd/√ESS(θ) — with Geyer's initial positive and
monotone sequences on FFT autocovariances. ArviZ evaluates them one scalar at a time in a
Python loop (≈ 8 ms per scalar and statistic); here every statistic is one array operation
over the (scalar, chain, draw) stack, so a 400-patient frailty model's gate takes tens of
milliseconds instead of seconds. ``tests/inference/test_mcmc_stats.py`` checks equality with
ArviZ to 1e-9 relative.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import NamedTuple

import numpy as np
from scipy import fft, special

#: Blom's fractional offset of the rank normal scores
_BLOM = 3.0 / 8.0
#: tail ESS at the 5% and 95% quantiles (Stan's ``ess_tail``; ArviZ 1's default is its
#: ``stats.ci_prob`` 0.89, i.e. 11%/89%: ``az.ess(method="tail", prob=0.95)`` is this)
TAIL_PROBS = (1 - 0.95, 0.95)


class ChainStats(NamedTuple):
    """Per scalar (the leading axis of the input): R-hat, bulk/tail ESS, MCSE of the mean."""

    rhat: np.ndarray
    ess_bulk: np.ndarray
    ess_tail: np.ndarray
    mcse_mean: np.ndarray


def split_chains(x: np.ndarray) -> np.ndarray:
    """(K, C, D) → (K, 2C, ⌊D/2⌋): first and last halves of every chain."""
    half = x.shape[-1] // 2
    return np.concatenate([x[..., :half], x[..., -half:]], axis=-2)


def average_ranks(flat: np.ndarray) -> np.ndarray:
    """Ranks 1…N along the last axis, ties given their average rank (``scipy.stats.rankdata``
    ``method="average"``; an unstable sort suffices, as tied values share one rank)."""
    order = np.argsort(flat, axis=-1)
    values = np.take_along_axis(flat, order, axis=-1)
    n = flat.shape[-1]
    sorted_ranks = np.broadcast_to(np.arange(1.0, n + 1.0), flat.shape).copy()
    starts = np.ones(flat.shape, bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    tied = ~starts.all(axis=-1)
    if tied.any():  # average the positions of each run of equal values
        st = starts[tied]
        pos = np.broadcast_to(np.arange(n, dtype=float), st.shape)
        ends = np.ones(st.shape, bool)
        ends[:, :-1] = st[:, 1:]
        first = np.maximum.accumulate(np.where(st, pos, 0.0), axis=-1)
        last = np.minimum.accumulate(np.where(ends, pos, n)[:, ::-1], axis=-1)[:, ::-1]
        sorted_ranks[tied] = (first + last) / 2.0 + 1.0
    ranks = np.empty(flat.shape)
    np.put_along_axis(ranks, order, sorted_ranks, axis=-1)
    return ranks


def z_scale(x: np.ndarray) -> np.ndarray:
    """Rank normal scores over all of each scalar's draws (average ranks for ties)."""
    k = x.shape[0]
    flat = x.reshape(k, -1)
    ranks = average_ranks(flat)
    return special.ndtri((ranks - _BLOM) / (flat.shape[-1] - 2 * _BLOM + 1)).reshape(x.shape)


def rhat_basic(x: np.ndarray) -> np.ndarray:
    """Gelman–Rubin R̂ of (K, C, D) arrays: √((B/W + D − 1)/D), B = D·Var(chain means)."""
    n = x.shape[-1]
    between = n * np.var(x.mean(axis=-1), axis=-1, ddof=1)
    within = np.var(x, axis=-1, ddof=1).mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def ess_basic(x: np.ndarray) -> np.ndarray:
    """ESS of (K, C, D) arrays (ArviZ's ``_ess``: Geyer's initial positive sequence, then its
    monotone version, τ̂ ≥ 1/log₁₀(CD))."""
    x = np.asarray(x, float)
    k, c, n = x.shape
    centred = x - x.mean(axis=-1, keepdims=True)
    m = fft.next_fast_len(2 * n)
    spec = fft.rfft(centred, n=m, axis=-1, workers=-1)
    acov = fft.irfft(spec * np.conjugate(spec), n=m, axis=-1, workers=-1)[..., :n] / n
    mean_var = acov[..., 0].mean(axis=-1) * n / (n - 1.0)                     # (K,)
    var_plus = mean_var * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + np.var(x.mean(axis=-1), axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]  # (K, n)
    rho[:, 0] = 1.0
    # pairs P_j = ρ_2j + ρ_2j+1; ArviZ computes pairs j = 1 … j_last (while 2j − 1 < n − 3)
    # and stops at the first pair j ≥ 1 with P_j ≤ 0
    j_last = max((n - 1) // 2 - 1, 0)
    n_pairs = j_last + 1
    lag = np.arange(2 * n_pairs)
    r = np.where(lag < n, rho[:, np.minimum(lag, n - 1)], 0.0).reshape(k, n_pairs, 2)
    pairs = r.sum(axis=-1)                                                      # (K, n_pairs)
    nonpos = pairs[:, 1:] <= 0
    first = np.where(nonpos.any(axis=1), nonpos.argmax(axis=1) + 1, j_last)    # pair j = m
    first = np.minimum(first, j_last)
    # Σ_{j < m} of the monotone (running-minimum) pair sums
    mono = np.minimum.accumulate(pairs, axis=1)
    csum = np.concatenate([np.zeros((k, 1)), np.cumsum(mono, axis=1)], axis=1)
    rows = np.arange(k)
    total = csum[rows, first]
    # the even-lag value of pair m is added when positive (or when P_m = 0 exactly: stored)
    even = r[rows, first, 0]
    stored = (pairs[rows, first] >= 0) & (first >= 1)
    extra = np.where((even > 0) | stored, even, 0.0)
    extra = np.where(first == 0, 1.0, extra)  # no pair computed: ρ_0 = 1 stays
    tau = -1.0 + 2.0 * total + extra
    size = c * n
    tau = np.maximum(tau, 1.0 / np.log10(size))
    ess = size / tau
    ess = np.where(np.isnan(rho).any(axis=1), np.nan, ess)
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
    return np.where(constant, float(size), ess)


def chain_stats(x: np.ndarray) -> ChainStats:
    """R-hat, bulk and tail ESS and MCSE of the mean of (K, chain, draw) draws."""
    x = np.asarray(x, float)
    split = split_chains(x)
    z = z_scale(split)
    folded = np.abs(split - np.median(split.reshape(x.shape[0], -1), axis=-1)[:, None, None])
    rhat = (np.maximum(rhat_basic(z), rhat_basic(z_scale(folded))) if x.shape[1] > 1
            else np.full(x.shape[0], np.nan))
    ess_bulk = ess_basic(z)
    flat = x.reshape(x.shape[0], -1)
    tail = []
    for prob in TAIL_PROBS:
        q = np.quantile(flat, prob, axis=-1)
        tail.append(ess_basic(split_chains((x <= q[:, None, None]).astype(float))))
    ess_tail = np.minimum(*tail)
    mcse = np.std(flat, axis=-1, ddof=1) / np.sqrt(ess_basic(split))
    return ChainStats(rhat, ess_bulk, ess_tail, mcse)


class SharedChainStats:
    """:func:`chain_stats` of (K, chain, draw) draws, computed in chunks of scalars by every
    thread that calls :meth:`work` (each claims the next chunk until none is left; NumPy's
    sorts and FFTs release the GIL, so two threads use two cores). The statistics are per
    scalar: chunked, they are those of one call on all scalars."""

    def __init__(self, x: np.ndarray, chunk: int = 48) -> None:
        self.x = np.asarray(x, float)
        k = self.x.shape[0]
        self.chunks = [slice(i, min(i + chunk, k)) for i in range(0, k, chunk)]
        self.done: list[ChainStats | None] = [None] * len(self.chunks)
        self.error: BaseException | None = None
        self._next = itertools.count()
        self._lock = threading.Lock()
        #: seconds spent computing, summed over the threads that worked
        self.busy_seconds = 0.0

    def work(self) -> None:
        """Compute chunks until none is left (errors are kept for :meth:`result`)."""
        t0 = time.perf_counter()
        try:
            self._work()
        finally:
            with self._lock:
                self.busy_seconds += time.perf_counter() - t0

    def _work(self) -> None:
        while self.error is None:
            i = next(self._next)      # atomic under the GIL: each chunk goes to one thread
            if i >= len(self.chunks):
                return
            try:
                self.done[i] = chain_stats(self.x[self.chunks[i]])
            except BaseException as exc:
                self.error = exc
                return

    def result(self) -> ChainStats:
        """The statistics of all scalars (every chunk must be done)."""
        if self.error is not None:
            raise self.error
        if not self.chunks:
            return chain_stats(self.x)
        parts = [d for d in self.done if d is not None]
        if len(parts) != len(self.chunks):
            raise RuntimeError("chain statistics: not every chunk was computed")
        return ChainStats(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ChainStats._fields))
