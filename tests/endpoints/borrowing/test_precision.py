"""The commensurate prior with τ integrated out: the quadrature's marginal p(δ) against adaptive
numerical integration, and the draws of τ | δ against the exact conditional and the prior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from bayes_ablation.endpoints.borrowing.precision import quadrature
from bayes_ablation.endpoints.prior_draws import (
    draw_prior,
    positive_prior_logpdf,
    positive_prior_quantile,
)
from bayes_ablation.spec.plan import PriorSpec

PRIORS = [
    PriorSpec("lognormal", {"mu": 3.0, "sigma": 2.0}, "shipped spec"),
    PriorSpec("gamma", {"alpha": 2.0, "beta": 0.1}, "gamma"),
    PriorSpec("halfnormal", {"sigma": 50.0}, "halfnormal"),
    PriorSpec("halfstudentt", {"nu": 3.0, "sigma": 20.0}, "halfstudentt"),
]


def exact_marginal(prior: PriorSpec, delta: float) -> float:
    """∫ N(δ | 0, 1/τ) p(τ) dτ by adaptive quadrature in v = log τ."""
    def integrand(v: float) -> float:
        tau = np.exp(v)
        return (np.exp(positive_prior_logpdf(prior, tau)) * tau
                * stats.norm.pdf(delta, 0.0, tau**-0.5))

    val, _ = integrate.quad(integrand, -60, 60, limit=500, epsabs=0, epsrel=1e-10,
                            points=[np.log(positive_prior_quantile(prior, 0.5))])
    return val


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p.family)
def test_marginal_prior_of_the_offset_matches_numerical_integration(prior):
    quad = quadrature(prior)
    deltas = np.array([0.0, 1e-3, 0.05, 0.2, 0.7, 2.0])
    ours = np.exp(quad.offset_logpdf(deltas))
    exact = np.array([exact_marginal(prior, d) for d in deltas])
    np.testing.assert_allclose(ours, exact, rtol=1e-6)


def test_model_offset_prior_is_the_quadrature_mixture():
    import pymc as pm

    prior = PRIORS[0]
    quad = quadrature(prior)
    with pm.Model():
        offset = pm.NormalMixture("external_offset", w=quad.weights,
                                  mu=np.zeros(quad.weights.size), sigma=quad.offset_sd)
    for d in (0.0, 0.1, -0.8):
        assert pm.logp(offset, d).eval() == pytest.approx(float(quad.offset_logpdf(d)),
                                                          rel=1e-9)


def test_precision_draws_follow_the_exact_conditional():
    prior = PRIORS[0]
    quad = quadrature(prior)
    rng = np.random.default_rng(11)
    for delta in (0.02, 0.3):
        draws = quad.draw_precision(np.full(20000, delta), rng)
        norm = exact_marginal(prior, delta)

        def cdf(x: float, delta: float = delta, norm: float = norm) -> float:
            val, _ = integrate.quad(
                lambda v: np.exp(positive_prior_logpdf(prior, np.exp(v))) * np.exp(v)
                * stats.norm.pdf(delta, 0.0, np.exp(-v / 2)), -60, np.log(x), limit=500)
            return val / norm

        grid = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95])
        exact = np.array([cdf(x) for x in grid])
        # the empirical CDF at its own quantiles vs the exact CDF: MC error sd ≤ 0.0035
        np.testing.assert_allclose(exact, [0.05, 0.25, 0.5, 0.75, 0.95], atol=0.015)


def test_drawing_the_precision_back_recovers_its_prior():
    """τ₀ ~ p(τ), δ ~ N(0, 1/τ₀), τ₁ ~ p(τ | δ): τ₁ has the prior's distribution, and the
    rank of τ₀ among 99 draws of τ | δ is uniform (the SBC property of the completion)."""
    prior = PRIORS[0]
    quad = quadrature(prior)
    rng = np.random.default_rng(5)
    tau0 = np.asarray(draw_prior(prior, rng, 4000))
    delta = rng.normal(0.0, tau0**-0.5)
    tau1 = quad.draw_precision(delta, rng)
    reference = np.asarray(draw_prior(prior, np.random.default_rng(6), 400_000))  # ≈ exact CDF
    assert stats.kstest(tau1, reference).pvalue > 0.01
    ranks = (quad.draw_precision(np.repeat(delta[:1000, None], 99, axis=1), rng)
             < tau0[:1000, None]).sum(axis=1)
    counts = np.bincount(ranks // 10, minlength=10)
    assert stats.chisquare(counts).pvalue > 0.01


@pytest.mark.parametrize("family,params", [
    ("gamma", {"alpha": 2.0, "beta": 0.5}), ("halfnormal", {"sigma": 2.0}),
    ("halfcauchy", {"beta": 1.5}), ("halfstudentt", {"nu": 4.0, "sigma": 2.0}),
    ("lognormal", {"mu": 1.0, "sigma": 0.7}), ("lognormal_variance", {"mu": 0.5, "sigma": 1.0}),
    ("exponential", {"lam": 0.5})])
def test_positive_prior_quantiles_and_density_describe_the_drawn_prior(family, params):
    """Quantile function and density of every positive family agree with :func:`draw_prior`
    (PyMC's parameterisation, checked against PyMC elsewhere): the share of 200 000 draws
    below each quantile, and the density integrating to the probability between quantiles."""
    prior = PriorSpec(family, params, "test")
    draws = np.asarray(draw_prior(prior, np.random.default_rng(1), 200_000))
    q = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    x = positive_prior_quantile(prior, q)
    np.testing.assert_allclose((draws[:, None] <= x).mean(axis=0), q, atol=0.004)
    mass, _ = integrate.quad(lambda t: np.exp(positive_prior_logpdf(prior, t)), x[0], x[-1])
    assert mass == pytest.approx(0.9, abs=1e-7)
