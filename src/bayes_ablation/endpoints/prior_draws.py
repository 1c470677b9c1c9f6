"""Draws from the spec's priors with NumPy (no PyMC): the parameter draws of an SBC study.

Each family is drawn in PyMC's parameterisation (``gamma(alpha, beta)``: ``beta`` is a rate;
``lognormal_variance``: the prior is on the variance, the draw returned is its square root, as
:func:`bayes_ablation.endpoints.priors.prior` does). A test checks every family against PyMC's own
prior draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayes_ablation.spec.plan import PriorSpec


def draw_prior(prior: PriorSpec, rng: np.random.Generator, size: int | tuple[int, ...] | None = None
               ) -> float | np.ndarray:
    """One draw (``size=None``: a float) or an array of draws from ``prior``."""
    p = prior.params
    match prior.family:
        case "normal":
            out = rng.normal(p["mu"], p["sigma"], size)
        case "studentt":
            out = p["mu"] + p["sigma"] * rng.standard_t(p["nu"], size)
        case "halfnormal":
            out = np.abs(rng.normal(0.0, p["sigma"], size))
        case "halfcauchy":
            out = np.abs(p["beta"] * rng.standard_cauchy(size))
        case "halfstudentt":
            out = np.abs(p["sigma"] * rng.standard_t(p["nu"], size))
        case "lognormal":
            out = np.exp(rng.normal(p["mu"], p["sigma"], size))
        case "exponential":
            out = rng.exponential(1.0 / p["lam"], size)
        case "gamma":
            out = rng.gamma(p["alpha"], 1.0 / p["beta"], size)
        case "uniform":
            out = rng.uniform(p["lower"], p["upper"], size)
        case "lognormal_variance":
            out = np.sqrt(np.exp(rng.normal(p["mu"], p["sigma"], size)))
        case _:
            raise ValueError(f"unknown prior family {prior.family!r}")
    return float(out) if size is None else np.asarray(out, dtype=float)


def _positive_scipy(prior: PriorSpec) -> tuple[Any, bool]:
    """(frozen SciPy distribution, folded): τ ~ the distribution, or |τ| of it when folded."""
    from scipy import stats

    p = prior.params
    match prior.family:
        case "gamma":
            return stats.gamma(p["alpha"], scale=1 / p["beta"]), False
        case "halfnormal":
            return stats.halfnorm(scale=p["sigma"]), False
        case "halfcauchy":
            return stats.halfcauchy(scale=p["beta"]), False
        case "halfstudentt":
            return stats.t(p["nu"], scale=p["sigma"]), True
        case "lognormal":
            return stats.lognorm(p["sigma"], scale=np.exp(p["mu"])), False
        case "lognormal_variance":  # the draw is √V, V ~ LogNormal(μ, σ): LogNormal(μ/2, σ/2)
            return stats.lognorm(p["sigma"] / 2, scale=np.exp(p["mu"] / 2)), False
        case "exponential":
            return stats.expon(scale=1 / p["lam"]), False
    raise ValueError(f"prior family {prior.family!r} is not a positive family")


def positive_prior_quantile(prior: PriorSpec, q: np.ndarray | float) -> np.ndarray:
    """Quantiles at probabilities ``q`` of a positive prior (the quantity :func:`draw_prior`
    draws)."""
    dist, folded = _positive_scipy(prior)
    q = np.asarray(q, float)
    return np.asarray(dist.ppf((1 + q) / 2 if folded else q), float)


def positive_prior_logpdf(prior: PriorSpec, x: np.ndarray) -> np.ndarray:
    """Log density of a positive prior at ``x`` > 0."""
    dist, folded = _positive_scipy(prior)
    return np.asarray(dist.logpdf(x), float) + (np.log(2.0) if folded else 0.0)
