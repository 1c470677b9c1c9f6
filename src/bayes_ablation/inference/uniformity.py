"""Ranks of true values among posterior draws, and tests of their uniformity.

Simulation-based calibration (Talts et al. 2018): if θ̃ ~ p(θ), ỹ ~ p(y | θ̃) and θ₁…θ_L are
*independent* draws from p(θ | ỹ), the rank r = #{l : θ_l < θ̃} is uniform on {0, …, L}. MCMC
draws are autocorrelated, so the draws are thinned to L ≈ the effective sample size first.

Two tests of uniformity per parameter, from N ranks:

* **χ² on binned ranks**: the L + 1 rank values are grouped into B equal bins (B divides
  L + 1); counts are multinomial(N, 1/B) under uniformity; X² = Σ (n_b − N/B)² / (N/B) on
  B − 1 degrees of freedom.
* **ECDF with simultaneous bands** (Säilynoja, Bürkner & Vehtari 2022, Statistics and
  Computing 32:32): with fractional ranks u = (r + 1)/(L + 1), the ECDF at z_k = k/(L + 1),
  k = 1…L, counts c_k = #{r < k} ~ Binomial(N, z_k) under uniformity. The statistic is the
  smallest two-sided pointwise tail probability over k,
  s = min_k 2·min(F_k(c_k), 1 − F_k(c_k − 1)); its null distribution (which depends only on N
  and L) is simulated once, the p-value is P₀(S ≤ s) and the 1 − α simultaneous band is the
  pointwise binomial band at the level γ = the α-quantile of S (the ECDF leaves the band
  exactly when the test rejects at level α). ``arviz_stats.ecdf_utils`` implements the same
  band for continuous PIT values evaluated at i/N; ranks need evaluation at k/(L + 1) and a
  p-value, so it is written out here. (Its simulation helper also drops the upper tail
  whenever a count is 0 — ``bdtr(-1, …)`` is NaN and ``min(x, nan)`` returns x — which
  narrows its band for small N; the tests compare the two where no count can be 0 and check
  the size of this test directly.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats


def thin(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """``n_keep`` draws evenly spaced over all draws (chains concatenated, chain-major)."""
    flat = np.asarray(draws, dtype=float).reshape(-1)
    if n_keep > flat.size:
        raise ValueError(f"cannot keep {n_keep} of {flat.size} draws")
    idx = np.round(np.linspace(0, flat.size - 1, n_keep)).astype(int)
    return flat[idx]


def rank_of(truth: float, draws: np.ndarray) -> int:
    """#{draws < truth}: the SBC rank, in 0 … len(draws)."""
    return int(np.sum(np.asarray(draws, dtype=float) < truth))


def n_bins(n_ranks: int, max_rank: int, *, max_bins: int = 20, min_expected: float = 5.0) -> int:
    """The largest number of bins ≤ ``max_bins`` that divides ``max_rank + 1`` and expects at
    least ``min_expected`` ranks per bin (at least 2 bins)."""
    best = 2 if (max_rank + 1) % 2 == 0 else 1
    for b in range(2, max_bins + 1):
        if (max_rank + 1) % b == 0 and n_ranks / b >= min_expected:
            best = b
    return best


def binned_counts(ranks: np.ndarray, max_rank: int, bins: int) -> np.ndarray:
    """Counts of ranks in ``bins`` equal groups of rank values 0 … max_rank."""
    if (max_rank + 1) % bins:
        raise ValueError(f"{bins} bins do not divide the {max_rank + 1} rank values")
    ranks = np.asarray(ranks, dtype=int)
    if ranks.size and (ranks.min() < 0 or ranks.max() > max_rank):
        raise ValueError(f"ranks must lie in 0 … {max_rank}")
    width = (max_rank + 1) // bins
    return np.bincount(ranks // width, minlength=bins)


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    df: int
    p_value: float
    bins: int
    counts: tuple[int, ...]


def chi_square_test(ranks: np.ndarray, max_rank: int, bins: int | None = None) -> ChiSquare:
    """Pearson χ² test of uniformity of binned ranks (module docstring)."""
    ranks = np.asarray(ranks, dtype=int)
    bins = bins or n_bins(ranks.size, max_rank)
    counts = binned_counts(ranks, max_rank, bins)
    if ranks.size == 0 or bins < 2:
        return ChiSquare(float("nan"), max(bins - 1, 0), float("nan"), bins, tuple(counts))
    expected = ranks.size / bins
    statistic = float(np.sum((counts - expected) ** 2) / expected)
    return ChiSquare(statistic, bins - 1, float(stats.chi2.sf(statistic, bins - 1)), bins,
                     tuple(int(c) for c in counts))


def histogram_band(n_ranks: int, bins: int, prob: float = 0.99) -> tuple[float, float]:
    """Pointwise ``prob`` band of one bin's count: Binomial(N, 1/B) quantiles (Talts et al.)."""
    lo, hi = stats.binom.ppf([(1 - prob) / 2, 1 - (1 - prob) / 2], n_ranks, 1.0 / bins)
    return float(lo), float(hi)


def _ecdf_counts(ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """c_k = #{r < k} for k = 1 … L (last axis), for one or many rank samples."""
    ranks = np.asarray(ranks, dtype=int)
    hist = np.apply_along_axis(np.bincount, -1, ranks, minlength=max_rank + 1)
    return np.cumsum(hist, axis=-1)[..., :-1]


def _min_tail(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.min(2.0 * np.minimum(lower, upper), axis=-1).clip(max=1.0)


@lru_cache(maxsize=32)
def _null_statistics(n: int, max_rank: int, n_simulations: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = np.arange(1, max_rank + 1) / (max_rank + 1)
    out = np.empty(n_simulations)
    step = 500
    for start in range(0, n_simulations, step):
        m = min(step, n_simulations - start)
        ranks = rng.integers(0, max_rank + 1, size=(m, n))
        out[start:start + m] = _min_tail(_ecdf_counts(ranks, max_rank), n, z)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class EcdfTest:
    """ECDF-difference curve, its simultaneous band and the test (module docstring)."""

    z: np.ndarray            # evaluation points k/(L+1)
    ecdf_diff: np.ndarray    # ECDF(z) − z
    lower: np.ndarray        # simultaneous band, as a difference from z
    upper: np.ndarray
    statistic: float         # smallest pointwise two-sided tail probability
    p_value: float
    band_prob: float
    pointwise_level: float   # γ: the pointwise level giving the simultaneous band


def ecdf_test(ranks: np.ndarray, max_rank: int, *, band_prob: float = 0.95,
              n_simulations: int = 4000, seed: int = 20221130) -> EcdfTest:
    """Simultaneous-band ECDF test of uniform ranks in 0 … ``max_rank`` (module docstring)."""
    ranks = np.asarray(ranks, dtype=int)
    n = ranks.size
    z = np.arange(1, max_rank + 1) / (max_rank + 1)
    if n == 0:
        nan = np.full(z.shape, np.nan)
        return EcdfTest(z, nan, nan, nan, float("nan"), float("nan"), band_prob, float("nan"))
    if ranks.min() < 0 or ranks.max() > max_rank:
        raise ValueError(f"ranks must lie in 0 … {max_rank}")
    counts = _ecdf_counts(ranks, max_rank)
    statistic = float(_min_tail(counts, n, z))
    null = _null_statistics(n, max_rank, n_simulations, seed)
    p_value = float((np.sum(null <= statistic) + 1) / (null.size + 1))
    gamma = float(np.quantile(null, 1 - band_prob))
    lo = stats.binom.ppf(gamma / 2, n, z) / n
    hi = stats.binom.ppf(1 - gamma / 2, n, z) / n
    return EcdfTest(z=z, ecdf_diff=counts / n - z, lower=lo - z, upper=hi - z,
                    statistic=statistic, p_value=p_value, band_prob=band_prob,
                    pointwise_level=gamma)
