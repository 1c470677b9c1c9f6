"""Draws from the spec's priors with NumPy (no PyMC): the parameter draws of an SBC study.

Each family is drawn in PyMC's parameterisation (``gamma(alpha, beta)``: ``beta`` is a rate;
``lognormal_variance``: the prior is on the variance, the draw returned is its square root, as
:func:`bayes_ablation.endpoints.priors.prior` does). A test checks every family against PyMC's own
prior draws.
"""

from __future__ import annotations

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
