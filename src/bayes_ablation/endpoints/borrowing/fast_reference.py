"""The fast path's borrowing model as a PyMC graph (to validate its Laplace approximation by
MCMC; :mod:`bayes_ablation.workflows.monitoring.fast`, ``FastBorrowing``).

The model of :mod:`bayes_ablation.endpoints.pfs.fast_reference` plus external control
patients' PWE sufficient statistics (D_ext,j, E_ext,j):

    log L_ext = a0 Σ_j D_ext,j (α_j + δ) − E_ext,j exp(α_j + δ)

with δ = 0 and a0 = 1 (``full``), δ = 0 and a fixed a0 (``power``), or a0 = 1 and
δ ~ N(0, 1/τ), τ ~ the spec's ``[borrowing.precision]`` prior (``commensurate``; δ
non-centred). ``pm.Data`` of fixed shape, so one compiled model serves every data set.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.endpoints.pfs.fast_reference import fast_reference_coords, fast_reference_terms
from bayes_ablation.endpoints.priors import prior
from bayes_ablation.spec.plan import PriorSpec


def build_fast_borrowing_reference(events: np.ndarray, exposure: np.ndarray,
                                   external_events: np.ndarray,
                                   external_exposure: np.ndarray, *, method: str,
                                   baseline_mu: float, baseline_sd: float, log_hr_mu: float,
                                   log_hr_sd: float, sigma_site: PriorSpec | None,
                                   a0: float = 1.0,
                                   precision: PriorSpec | None = None) -> pm.Model:
    """PyMC model of the fast path with borrowing for one data set ((S, 2, J) and (J,))."""
    with pm.Model(coords=fast_reference_coords(events)) as model:
        alpha = fast_reference_terms(events, exposure, baseline_mu=baseline_mu,
                                     baseline_sd=baseline_sd, log_hr_mu=log_hr_mu,
                                     log_hr_sd=log_hr_sd, sigma_site=sigma_site)
        dx = pm.Data("external_events", external_events, dims="interval")
        ex = pm.Data("external_exposure", external_exposure, dims="interval")
        eta_x = alpha
        weight = 1.0
        if method == "commensurate":
            tau = prior("commensurate_precision", precision)
            z_d = pm.Normal("z_external_offset", 0.0, 1.0)
            eta_x = alpha + pm.Deterministic("external_offset", z_d / pt.sqrt(tau))
        elif method == "power":
            weight = a0
        elif method != "full":
            raise ValueError(f"no fast reference for borrowing method {method!r}")
        pm.Potential("external_loglik", weight * pt.sum(dx * eta_x - ex * pt.exp(eta_x)))
    return model
