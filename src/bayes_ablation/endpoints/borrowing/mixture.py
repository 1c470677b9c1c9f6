"""Normal mixtures: EM fit to draws, robustification, and the ELIR effective sample size.

A mixture π(θ) = Σ_k w_k N(θ; m_k, s_k²) approximates a MAP prior's draws (Schmidli et al.
2014, as RBesT's ``automixfit``): EM for K = 1 … K_max components, the K of smallest AIC kept.
``robustify`` adds a vague component of weight w_R: (1 − w_R) π + w_R N(m_R, s_R²).

Effective sample size by the expected local-information ratio (Neuenschwander, Weber,
Schmidli & O'Hagan 2020): ESS = E_π[ i_π(θ) / i_F(θ) ] with i_π = −d²/dθ² log π(θ) and i_F
the Fisher information of one unit (here constant 1/σ_u², σ_u the unit sd), so
ESS = σ_u² E_π[i_π]; for a single normal N(m, s²) this is σ_u²/s² exactly. The expectation is
computed by Gauss–Legendre quadrature over the mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats


@dataclass(frozen=True)
class NormalMixture:
    """Σ_k w_k N(m_k, s_k²)."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    sds: tuple[float, ...]

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, float)
        if not (len(w) == len(self.means) == len(self.sds)) or len(w) == 0:
            raise ValueError("weights, means and sds must have the same, non-zero length")
        if np.any(w < 0) or abs(w.sum() - 1.0) > 1e-8 or np.any(np.asarray(self.sds) <= 0):
            raise ValueError(f"invalid mixture: weights {self.weights}, sds {self.sds}")

    @property
    def w(self) -> np.ndarray:
        return np.asarray(self.weights, float)

    @property
    def m(self) -> np.ndarray:
        return np.asarray(self.means, float)

    @property
    def s(self) -> np.ndarray:
        return np.asarray(self.sds, float)

    @property
    def n_components(self) -> int:
        return len(self.weights)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)[..., None]
        return special.logsumexp(np.log(np.maximum(self.w, 1e-300))
                                 + stats.norm.logpdf(x, self.m, self.s), axis=-1)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.logpdf(x))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)[..., None]
        return (self.w * stats.norm.cdf(x, self.m, self.s)).sum(-1)

    def mean(self) -> float:
        return float(self.w @ self.m)

    def sd(self) -> float:
        second = float(self.w @ (self.s**2 + self.m**2))
        return float(np.sqrt(max(second - self.mean() ** 2, 0.0)))

    def quantile(self, p: float) -> float:
        lo = float(np.min(self.m - 12 * self.s))
        hi = float(np.max(self.m + 12 * self.s))
        return float(optimize.brentq(lambda x: float(self.cdf(x)) - p, lo, hi, xtol=1e-10))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        k = rng.choice(self.n_components, size=n, p=self.w)
        return rng.normal(self.m[k], self.s[k])

    def robustify(self, weight: float, mean: float, sd: float) -> NormalMixture:
        """(1 − weight) · self + weight · N(mean, sd²)."""
        if weight == 0:
            return self
        return NormalMixture(weights=(*(self.w * (1 - weight)), float(weight)),
                             means=(*self.means, float(mean)), sds=(*self.sds, float(sd)))

    def to_dict(self) -> dict[str, list[float]]:
        return {"weights": [float(v) for v in self.weights],
                "means": [float(v) for v in self.means], "sds": [float(v) for v in self.sds]}


def fit_em(draws: np.ndarray, n_components: int, seed: int = 0, max_iter: int = 500,
           tol: float = 1e-7) -> tuple[NormalMixture, float]:
    """Maximum-likelihood normal mixture of ``n_components`` by EM; (mixture, log-likelihood).

    Initialised at quantiles of the draws (deterministic given ``seed``); stops when the mean
    log-likelihood per draw changes by less than ``tol`` (or after ``max_iter`` steps)."""
    x = np.asarray(draws, float).ravel()
    k = int(n_components)
    rng = np.random.default_rng(seed)
    qs = (np.arange(k) + 0.5) / k
    m = np.quantile(x, qs) + rng.normal(0, 1e-3 * x.std(), k)
    s = np.full(k, x.std() / np.sqrt(k))
    w = np.full(k, 1.0 / k)
    floor = 1e-6 * x.std()
    last = -np.inf
    half_log_2pi = 0.5 * np.log(2 * np.pi)
    for _ in range(max_iter):
        logr = np.log(w) - np.log(s) - half_log_2pi - 0.5 * ((x[:, None] - m) / s) ** 2
        top = logr.max(axis=1, keepdims=True)
        r = np.exp(logr - top)
        norm = r.sum(axis=1, keepdims=True)
        ll = float((np.log(norm) + top).sum())
        r /= norm
        nk = r.sum(0) + 1e-300
        w = nk / x.size
        m = (r * x[:, None]).sum(0) / nk
        s = np.sqrt(np.maximum((r * (x[:, None] - m) ** 2).sum(0) / nk, floor**2))
        if abs(ll - last) < tol * x.size:
            break
        last = ll
    order = np.argsort(m)
    w = w[order] / w.sum()
    return NormalMixture(tuple(w), tuple(m[order]), tuple(s[order])), ll


def auto_fit(draws: np.ndarray, max_components: int = 4, seed: int = 0
             ) -> tuple[NormalMixture, dict[int, float]]:
    """EM fits with 1 … ``max_components`` components; the one of smallest AIC (and the AICs)."""
    best, aics = None, {}
    for k in range(1, int(max_components) + 1):
        mix, ll = fit_em(draws, k, seed=seed)
        aics[k] = 2 * (3 * k - 1) - 2 * ll
        if best is None or aics[k] < aics[best[0]]:
            best = (k, mix)
    assert best is not None
    return best[1], aics


def local_information(mix: NormalMixture, x: np.ndarray) -> np.ndarray:
    """i_π(x) = −d²/dx² log π(x) = (π'/π)² − π''/π."""
    x = np.asarray(x, float)[..., None]
    z = (x - mix.m) / mix.s**2
    logc = np.log(np.maximum(mix.w, 1e-300)) + stats.norm.logpdf(x, mix.m, mix.s)
    c = np.exp(logc - special.logsumexp(logc, axis=-1, keepdims=True))   # responsibilities
    d1 = -(c * z).sum(-1)                                                # π'/π
    d2 = (c * (z**2 - 1 / mix.s**2)).sum(-1)                             # π''/π
    return d1**2 - d2


def ess_elir(mix: NormalMixture, unit_sd: float, panels: int = 400) -> float:
    """ELIR effective sample size of ``mix`` in units of sd ``unit_sd`` (module docstring):
    σ_u² ∫ π i_π by a 20-point Gauss–Legendre rule on ``panels`` panels over ±15 sd."""
    lo = float(np.min(mix.m - 15 * mix.s))
    hi = float(np.max(mix.m + 15 * mix.s))
    edges = np.unique(np.concatenate([np.linspace(lo, hi, panels + 1),
                                      mix.m - 3 * mix.s, mix.m + 3 * mix.s]))
    nodes, weights = np.polynomial.legendre.leggauss(20)
    half = np.diff(edges) / 2
    mid = (edges[1:] + edges[:-1]) / 2
    x = (mid[:, None] + half[:, None] * nodes[None, :]).ravel()
    w = (half[:, None] * weights[None, :]).ravel()
    return float(unit_sd**2 * np.sum(w * mix.pdf(x) * local_information(mix, x)))
