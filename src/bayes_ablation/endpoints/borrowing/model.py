"""The Weibull PFS graph with borrowed evidence (``[borrowing]``; see
:mod:`bayes_ablation.spec.borrowing`).

Internal patients: the Weibull PH model of :mod:`bayes_ablation.endpoints.pfs.model`
(α = ``log_cumhaz_ref``, k, β, site effects, covariates). External control patients j
(reference arm, no site effect; same k and covariate effects γ):

    log λ_j = α_ext − k log t_ref + x_j γ,     ℓ_ext = Σ_j d_j log h_j(t_j) − H_j(t_j)

* ``full``: α_ext = α, ℓ_ext added (pooling the external controls with the internal ones);
* ``power``: α_ext = α, a0 · ℓ_ext added (fixed a0, ``pm.Potential``);
* ``commensurate``: α_ext = α + δ, δ | τ ~ N(0, 1/τ), τ ~ the spec's ``[borrowing.precision]``
  prior, ℓ_ext added (Hobbs et al. 2011: the internal and external baselines are commensurate
  with precision τ; τ → ∞ is ``full``, τ → 0 is ``none``). The sampler sees δ with τ
  integrated out (a scale mixture of normals, :mod:`~bayes_ablation.endpoints.borrowing.
  precision`: the (τ, δ) funnel diverged in most SBC fits); τ is drawn given δ after sampling
  (:func:`~bayes_ablation.endpoints.borrowing.precision.complete_posterior`);
* ``map``: no external likelihood; the MAP mixture replaces the spec's prior of the target
  (``log_cumhaz_ref`` or ``log_hr``, a ``pm.NormalMixture``);
* ``none``: exactly the Weibull model of the internal patients.

The external term is a ``pm.Potential``, so the model has no cached numba kernel: the
Weibull kernel's plan refuses models with potentials or a ``[borrowing]`` method other than
``none`` (nutpie then compiles the PyMC graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.data.schema import PatientTable
from bayes_ablation.endpoints.borrowing.map_prior import MapPrior
from bayes_ablation.endpoints.borrowing.precision import quadrature
from bayes_ablation.endpoints.pfs.model import (
    build_weibull_model,
    custom_logp,
    linear_predictor,
    nelson_aalen_counts,
    patient_coords,
    site_centring_data,
    weibull_logp,
    weibull_random,
)
from bayes_ablation.endpoints.priors import prior
from bayes_ablation.spec.plan import AnalysisSpec


@dataclass(frozen=True)
class BorrowingData:
    """Model data of a borrowing analysis: internal patients, external controls, MAP prior."""

    patients: PatientTable
    external: PatientTable | None = None
    map_prior: MapPrior | None = None

    #: marks model data of a borrowing analysis
    is_borrowing = True

    @property
    def model_builder(self) -> Any:
        """The builder :func:`bayes_ablation.endpoints.build.build_model` hands these data to."""
        return build_borrowing_model


def _mixture(name: str, mix: Any, dims: str | None = None) -> Any:
    return pm.NormalMixture(name, w=np.asarray(mix.w), mu=np.asarray(mix.m),
                            sigma=np.asarray(mix.s), dims=dims)


def build_borrowing_model(spec: AnalysisSpec, data: BorrowingData) -> pm.Model:
    """The Weibull PH model with the spec's borrowing (module docstring)."""
    b = spec.borrowing
    method = b.method if b is not None else "none"
    if method == "none":
        return build_weibull_model(spec, data.patients)
    patients = data.patients
    x, covariate_names, _ = patients.design_matrix()
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    counts = nelson_aalen_counts(patients.time, patients.event, patients.arm_idx,
                                 patients.site_idx, len(patients.sites), len(patients.arms))
    coords = patient_coords(patients, covariate_names)
    ext = data.external
    if method in ("full", "power", "commensurate"):
        if ext is None:
            raise ValueError(f"[borrowing] method {method!r} needs external control patients")
        coords["external_patient"] = ext.frame["patient_id"].tolist()
    with pm.Model(coords=coords) as model:
        arm_idx = pm.Data("arm_idx", patients.arm_idx, dims="patient")
        site_idx = pm.Data("site_idx", patients.site_idx, dims="patient")
        event = pm.Data("event", patients.event.astype(float), dims="patient")
        time = pm.Data("time_months", patients.time, dims="patient")
        x_data = pm.Data("x", x, dims=("patient", "covariate"))
        centring = site_centring_data(spec, *counts)

        map_target = b.target if method == "map" else None
        if map_target == "log_cumhaz_ref":
            alpha = _mixture("log_cumhaz_ref", data.map_prior.robust)
        else:
            alpha = prior("log_cumhaz_ref", spec.priors["log_cumhaz_ref"])
        k = prior("weibull_shape", spec.priors["weibull_shape"])
        pm.Deterministic("log_lambda0", alpha - k * np.log(t_ref))
        treatment_effect = None
        if map_target == "log_hr":
            log_hr = _mixture("log_hr", data.map_prior.robust, dims="treatment")
            pm.Deterministic("hr", pt.exp(log_hr), dims="treatment")
            treatment_effect = pt.concatenate([pt.zeros(1), log_hr])[arm_idx]
        eta = linear_predictor(spec, arm_idx, site_idx, x_data, len(covariate_names),
                               centring=centring, treatment_effect=treatment_effect)
        log_lam = alpha - k * np.log(t_ref) + eta
        pm.CustomDist("y", log_lam, k, event, logp=custom_logp, random=weibull_random,
                      observed=time, dims="patient")

        if ext is not None and method != "map":
            x_ext, _, _ = ext.design_matrix()
            e_time = pm.Data("external_time_months", ext.time, dims="external_patient")
            e_event = pm.Data("external_event", ext.event.astype(float),
                              dims="external_patient")
            alpha_ext = alpha
            if method == "commensurate":  # τ integrated out (precision.py), drawn afterwards
                quad = quadrature(b.precision)
                offset = pm.NormalMixture("external_offset", w=quad.weights,
                                          mu=np.zeros(quad.weights.size), sigma=quad.offset_sd)
                alpha_ext = pm.Deterministic("log_cumhaz_ref_external", alpha + offset)
            eta_ext = 0.0
            if covariate_names:
                x_e = pm.Data("external_x", x_ext, dims=("external_patient", "covariate"))
                eta_ext = pt.dot(x_e, model["beta_covariates"])
            log_lam_ext = alpha_ext - k * np.log(t_ref) + eta_ext
            a0 = b.a0 if method == "power" else 1.0
            pm.Potential("external_loglik",
                         a0 * pt.sum(weibull_logp(e_time, log_lam_ext, k, e_event)))
    return model
