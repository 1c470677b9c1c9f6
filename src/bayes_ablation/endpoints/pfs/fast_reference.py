"""The fast path's model as a PyMC graph (to validate the Laplace approximation by MCMC).

Exactly the model :mod:`bayes_ablation.workflows.monitoring.fast` approximates, on sufficient statistics
D, E of shape (site, arm, interval):

    log L = Σ_saj D_saj (α_j + β a + u_s) − E_saj exp(α_j + β a + u_s)
    α_j ~ N(m_α, s_α²),  β ~ N(m_β, s_β²),  u_s = σ z_s,  z_s ~ N(0, 1),  σ ~ the spec's
    ``sigma_site`` prior

(the Poisson-trick kernel, exact for the PWE likelihood; written as a ``pm.Potential``, since
no pointwise log-likelihood is needed here). ``events``/``exposure`` are ``pm.Data`` of fixed
shape, so one compiled model serves every data set (``with_data``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.endpoints.priors import prior
from bayes_ablation.spec.plan import PriorSpec


def fast_reference_terms(events: np.ndarray, exposure: np.ndarray, *, baseline_mu: float,
                         baseline_sd: float, log_hr_mu: float, log_hr_sd: float,
                         sigma_site: PriorSpec | None) -> Any:
    """Inside an open model: the data, α, β, site effects and the trial's log-likelihood
    potential; returns α (interval,) for models that add terms."""
    d = pm.Data("events", events, dims=("site", "arm", "interval"))
    e = pm.Data("exposure", exposure, dims=("site", "arm", "interval"))
    alpha = pm.Normal("alpha", baseline_mu, baseline_sd, dims="interval")
    beta = pm.Normal("log_hr", log_hr_mu, log_hr_sd, dims="treatment")
    eta = alpha[None, None, :] + beta[0] * pt.as_tensor(np.array([0.0, 1.0]))[None, :, None]
    if sigma_site is not None:
        sigma = prior("sigma_site", sigma_site)
        z = pm.Normal("z_site", 0.0, 1.0, dims="site")
        u = pm.Deterministic("u_site", sigma * z, dims="site")
        eta = eta + u[:, None, None]
    pm.Potential("loglik", pt.sum(d * eta - e * pt.exp(eta)))
    return alpha


def fast_reference_coords(events: np.ndarray) -> dict[str, Any]:
    n_sites, _, n_int = events.shape
    return {"site": np.arange(n_sites), "arm": [0, 1], "interval": np.arange(n_int),
            "treatment": ["experimental"]}


def build_fast_reference(events: np.ndarray, exposure: np.ndarray, *, baseline_mu: float,
                         baseline_sd: float, log_hr_mu: float, log_hr_sd: float,
                         sigma_site: PriorSpec | None) -> pm.Model:
    """PyMC model of the fast path for one data set (arrays (S, 2, J))."""
    with pm.Model(coords=fast_reference_coords(events)) as model:
        fast_reference_terms(events, exposure, baseline_mu=baseline_mu,
                             baseline_sd=baseline_sd, log_hr_mu=log_hr_mu,
                             log_hr_sd=log_hr_sd, sigma_site=sigma_site)
    return model
