"""Turn :class:`~bayes_ablation.spec.plan.PriorSpec` data into PyMC random variables."""

from __future__ import annotations

from typing import Any

import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.spec.plan import PriorSpec


def prior(name: str, spec: PriorSpec, dims: str | tuple[str, ...] | None = None) -> Any:
    """A PyMC random variable ``name`` with the spec's family and parameters.

    ``lognormal_variance`` is a prior on the *variance*: it creates ``{name}_sq`` ~ LogNormal and
    returns the deterministic ``name`` = sqrt({name}_sq) (e.g. Turner et al.'s τ² priors).
    """
    p = spec.params
    match spec.family:
        case "normal":
            return pm.Normal(name, mu=p["mu"], sigma=p["sigma"], dims=dims)
        case "studentt":
            return pm.StudentT(name, nu=p["nu"], mu=p["mu"], sigma=p["sigma"], dims=dims)
        case "halfnormal":
            return pm.HalfNormal(name, sigma=p["sigma"], dims=dims)
        case "halfcauchy":
            return pm.HalfCauchy(name, beta=p["beta"], dims=dims)
        case "halfstudentt":
            return pm.HalfStudentT(name, nu=p["nu"], sigma=p["sigma"], dims=dims)
        case "lognormal":
            return pm.LogNormal(name, mu=p["mu"], sigma=p["sigma"], dims=dims)
        case "exponential":
            return pm.Exponential(name, lam=p["lam"], dims=dims)
        case "gamma":
            return pm.Gamma(name, alpha=p["alpha"], beta=p["beta"], dims=dims)
        case "uniform":
            return pm.Uniform(name, lower=p["lower"], upper=p["upper"], dims=dims)
        case "lognormal_variance":
            variance = pm.LogNormal(f"{name}_sq", mu=p["mu"], sigma=p["sigma"], dims=dims)
            return pm.Deterministic(name, pt.sqrt(variance), dims=dims)
    raise ValueError(f"unknown prior family {spec.family!r}")  # spec validation prevents this


#: prior families whose location parameter ``mu`` can be shifted (:func:`shifted_prior`)
LOCATION_FAMILIES = ("normal", "studentt")


def shifted_prior(name: str, spec: PriorSpec, shift: Any,
                  dims: str | tuple[str, ...] | None = None) -> Any:
    """A random variable a ~ the spec's location-family prior with location μ₀ + ``shift``.

    Sampling a and setting θ = a − shift gives θ exactly the spec's prior (a shift has unit
    Jacobian), also when ``shift`` depends on other parameters: a reparameterisation, not a
    prior change."""
    p = spec.params
    match spec.family:
        case "normal":
            return pm.Normal(name, mu=p["mu"] + shift, sigma=p["sigma"], dims=dims)
        case "studentt":
            return pm.StudentT(name, nu=p["nu"], mu=p["mu"] + shift, sigma=p["sigma"],
                               dims=dims)
    raise ValueError(f"prior family {spec.family!r} is not a location family")
