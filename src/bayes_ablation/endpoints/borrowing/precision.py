"""The commensurate prior with its precision integrated out, and the precision's draws afterwards.

Hobbs et al. (2011): the external baseline is α_ext = α + δ with δ | τ ~ N(0, 1/τ) and
τ ~ p(τ) (``[borrowing.precision]``). One δ informs τ, so (τ, δ) is a funnel whatever the
parameterisation: centred it pinches where δ → 0 and τ → ∞, non-centred where the data pin δ
(143 of 200 SBC fits of ``models/pfs_external_controls.toml`` diverged, bench/sbc/README.md).
The sampler therefore sees only δ, with its exact marginal prior, a scale mixture of normals

    p(δ) = ∫ N(δ | 0, 1/τ) p(τ) dτ ≈ Σ_j w_j N(δ | 0, e^{−v_j}),

v = log τ on an even grid of :data:`N_NODES` nodes spanning the prior's quantiles 1e−10 to
1 − 1e−10, w_j ∝ p_v(v_j) (trapezoid rule, weights normalised; the integrand is smooth in v,
so the error falls geometrically with the spacing: below 1e−6 relative at the shipped prior,
tests/endpoints/borrowing/test_precision.py). Given δ, τ is independent of everything else:

    p(τ | δ, data) = p(τ | δ) ∝ p(τ) N(δ | 0, 1/τ),

so each posterior draw of δ gets one draw of τ from this one-dimensional conditional (node j
with probability ∝ w_j N(δ | 0, e^{−v_j}), then v uniform within the node's cell), with a
seeded generator (:func:`complete_posterior`). The joint draws (τ, δ, …) are then draws of
the original model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from bayes_ablation.endpoints.prior_draws import positive_prior_logpdf, positive_prior_quantile
from bayes_ablation.spec.plan import AnalysisSpec, PriorSpec

#: quadrature nodes in log τ
N_NODES = 512
#: prior tail probability left out at each end of the grid
TAIL = 1e-10


@dataclass(frozen=True)
class PrecisionQuadrature:
    """Nodes v_j = log τ_j (even spacing ``step``) and normalised weights w_j of τ's prior."""

    log_tau: np.ndarray
    weights: np.ndarray
    step: float

    @property
    def offset_sd(self) -> np.ndarray:
        """σ_j = τ_j^(−1/2): the sds of the normal components of δ's marginal prior."""
        return np.exp(-0.5 * self.log_tau)

    def offset_logpdf(self, delta: np.ndarray) -> np.ndarray:
        """log p(δ) of the marginal prior (NumPy; the model uses ``pm.NormalMixture``)."""
        d = np.asarray(delta, float)[..., None]
        comp = stats.norm.logpdf(d, 0.0, self.offset_sd) + np.log(self.weights)
        return special.logsumexp(comp, axis=-1)

    def draw_precision(self, delta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw of τ | δ for each element of ``delta`` (any shape)."""
        d = np.asarray(delta, float)
        logw = (np.log(self.weights) + stats.norm.logpdf(d[..., None], 0.0, self.offset_sd))
        prob = np.exp(logw - logw.max(axis=-1, keepdims=True))
        cdf = np.cumsum(prob, axis=-1)
        u = rng.uniform(size=(*d.shape, 1)) * cdf[..., -1:]
        node = np.minimum((cdf < u).sum(axis=-1), self.log_tau.size - 1)
        jitter = rng.uniform(-0.5, 0.5, size=d.shape) * self.step
        return np.exp(self.log_tau[node] + jitter)


def quadrature(prior: PriorSpec, n_nodes: int = N_NODES) -> PrecisionQuadrature:
    """The quadrature of τ's prior in v = log τ (module docstring)."""
    lo, hi = positive_prior_quantile(prior, [TAIL, 1 - TAIL])
    log_tau = np.linspace(np.log(lo), np.log(hi), n_nodes)
    step = float(log_tau[1] - log_tau[0])
    # density of v = log τ: p_τ(e^v) e^v (trapezoid rule; the end weights halved)
    logw = positive_prior_logpdf(prior, np.exp(log_tau)) + log_tau
    logw[[0, -1]] += np.log(0.5)
    w = np.exp(logw - logw.max())
    return PrecisionQuadrature(log_tau=log_tau, weights=w / w.sum(), step=step)


def complete_posterior(posterior: Any, spec: AnalysisSpec) -> Any:
    """``posterior`` (an xarray Dataset of draws) with ``commensurate_precision`` (chain, draw):
    one draw of τ | δ per draw of ``external_offset`` (seeded by the spec's sampler seed).
    Other methods: ``posterior`` unchanged."""
    b = spec.borrowing
    if b is None or b.method != "commensurate" or "commensurate_precision" in posterior:
        return posterior
    delta = posterior["external_offset"]
    rng = np.random.default_rng([spec.sampler.seed, 1])
    tau = quadrature(b.precision).draw_precision(delta.values, rng)
    return posterior.assign(commensurate_precision=(delta.dims, tau))
