"""Lesion-level local recurrence (LR): interval-censored cause-specific hazards, lesions nested
in patients nested in sites, death as a competing event.

LR of lesion j of patient i at site s (Weibull, time t in months since the ablation,
t_ref = ``time_ref_months``):

    H_LR,ij(t) = exp(α + k (log t − log t_ref) + η_ij)                 (cumulative hazard)
    η_ij = β_arm(i) + x_ij γ + v_i + u_s [+ w_s,arm(i)]
    v_i = σ_patient^(1−w_i) z_i,  z_i ~ N(0, σ_patient^(2 w_i))   (patient frailty, dim patient)
    u_s = σ_site^(1−w_s) z_s,  z_s ~ N(0, σ_site^(2 w_s))    (site intercepts, dim site)

The weights w_s, w_i ∈ [0, 1] (``parameterisation``: ``auto`` by default, from crude per-site
and per-patient observed/expected LR counts; ``non_centred`` w = 0; ``centred`` w = 1) change
only the sampler's geometry, never the prior (see :mod:`bayes_ablation.endpoints.hierarchy`);
so v_i ~ N(0, σ_patient²) for every w.

α = log H_LR(t_ref) of the reference arm for a lesion with x = 0 (numeric covariates at their
mean, categorical ones at their reference level), v = u = 0. LR is seen only at scans: the
lesion contributes  log P(L < T ≤ U) = log(S(L) − S(U))  when it recurred between its last
negative scan L and its first positive scan U, and  log S(L)  when no LR was seen by L. The
difference is evaluated stably as

    log(S(L) − S(U)) = −H(L) + log1mexp(−ΔH),
    log ΔH = log(H(U) − H(L)) = log λ + k log U + log(−expm1(k (log L − log U))),

which stays accurate for narrow intervals (no cancellation in U^k − L^k) and for L = 0.

Piecewise-exponential alternative (``lr_pwe``): H_LR,ij(t) = e^η_ij Σ_j λ_j E_j(t) with
E_j(t) the time spent in baseline interval j up to t; ΔH = e^η Σ_j λ_j (E_j(U) − E_j(L)) is
computed from exposure differences, so it stays exact for narrow intervals.

Death (per patient, cause-specific, right-censored at the last contact):

    log H_D,i(t) = α_D + k_D (log t − log t_ref) + β_D,arm(i).

The LR hazard is cause-specific: death censors LR. The joint likelihood factorises into the LR
block and the death block because the latent LR and death times are conditionally independent
given the covariates and effects (death is modelled without frailty and without LR history:
a working assumption, reported with the estimands). Both blocks are ``pm.CustomDist`` with a
``random`` (latent, uncensored times) so that pointwise log-likelihoods (``lr`` per lesion,
``death`` per patient) support LOO and posterior predictive draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.data.lesions import LesionTable
from bayes_ablation.endpoints.hierarchy import frailty_centring, scaled_normal
from bayes_ablation.endpoints.pfs.model import (
    linear_predictor,
    nelson_aalen_counts,
    site_centring_data,
    weibull_logp,
    weibull_random,
)
from bayes_ablation.endpoints.priors import prior
from bayes_ablation.endpoints.subgroups import subgroup_columns, subgroup_data
from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.survival.piecewise import (
    DEFAULT_CUTS_MONTHS,
    exposure,
    interval_labels,
    invert_cumhaz,
)


def log_interval_prob(lower: Any, upper_safe: Any, interval: Any, log_lam: Any, k: Any) -> Any:
    """Weibull log P(L < T ≤ U) (``interval`` = 1) or log P(T > L) (``interval`` = 0) for
    S(t) = exp(−λ t^k), log λ = ``log_lam``.

    ``upper_safe`` must be > ``lower`` on every row (rows without an interval may hold any such
    value): both branches of every ``switch`` stay finite so gradients never see NaN.
    """
    positive = pt.gt(lower, 0.0)
    log_u = pt.log(upper_safe)
    log_l = pt.switch(positive, pt.log(pt.switch(positive, lower, 1.0)), log_u - 1.0)
    cumhaz_l = pt.switch(positive, pt.exp(log_lam + k * log_l), 0.0)
    shrink = pt.switch(positive, pt.log(-pt.expm1(k * (log_l - log_u))), 0.0)
    log_delta = log_lam + k * log_u + shrink
    return -cumhaz_l + pt.switch(pt.gt(interval, 0.5), pt.log1mexp(-pt.exp(log_delta)), 0.0)


def _lr_logp(value: Any, log_lam: Any, k: Any, upper_safe: Any, interval: Any) -> Any:
    return log_interval_prob(value, upper_safe, interval, log_lam, k)


def _lr_random(log_lam: Any, k: Any, upper_safe: Any, interval: Any,
               rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
    """Latent (uncensored, death-free) LR times T = (E / λ)^(1/k)."""
    rng = rng if rng is not None else np.random.default_rng()
    return (rng.exponential(size=size) / np.exp(log_lam)) ** (1.0 / k)


def _death_logp(value: Any, log_lam: Any, k: Any, died: Any) -> Any:
    return weibull_logp(value, log_lam, k, died)


def safe_upper(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper with +inf replaced by a value > lower, interval indicator 0/1)."""
    interval = np.isfinite(upper)
    return np.where(interval, upper, lower + 1.0), interval.astype(float)


def lr_coords(lesions: LesionTable, covariate_names: list[str]) -> dict[str, Any]:
    patients = lesions.patients
    return {
        "arm": list(patients.arms),
        "treatment": list(patients.treatments),
        "site": list(patients.sites),
        "patient": patients.frame["patient_id"].tolist(),
        "lesion": (lesions.frame["patient_id"] + "/" + lesions.frame["lesion_id"]).tolist(),
        "covariate": covariate_names,
    }


def _coords(spec: AnalysisSpec, lesions: LesionTable, covariate_names: list[str]
            ) -> dict[str, Any]:
    names = subgroup_columns(spec)
    return lr_coords(lesions, covariate_names) | ({"subgroup": names} if names else {})


def lesion_counts(lesions: LesionTable) -> tuple[np.ndarray, np.ndarray]:
    """Crude observed / expected LR events per (site, arm) for the centring weights: Nelson–
    Aalen per arm on the lesions, a recurred lesion's time taken at the midpoint of its
    interval (L, U], a censored one's at its last negative scan L."""
    patients = lesions.patients
    recurred = np.isfinite(lesions.upper)
    time = np.where(recurred, 0.5 * (lesions.lower + np.where(recurred, lesions.upper, 0.0)),
                    lesions.lower)
    return nelson_aalen_counts(time, recurred.astype(float), lesions.arm_idx, lesions.site_idx,
                               len(patients.sites), len(patients.arms))


def patient_counts(lesions: LesionTable) -> tuple[np.ndarray, np.ndarray]:
    """Crude observed / expected LR events per patient (as :func:`lesion_counts`, summed over
    each patient's lesions)."""
    patients = lesions.patients
    recurred = np.isfinite(lesions.upper)
    time = np.where(recurred, 0.5 * (lesions.lower + np.where(recurred, lesions.upper, 0.0)),
                    lesions.lower)
    observed, expected = nelson_aalen_counts(time, recurred.astype(float), lesions.arm_idx,
                                             lesions.patient_idx, patients.n_patients,
                                             len(patients.arms))
    return observed.sum(axis=1), expected.sum(axis=1)


def patient_centring_weights(spec: AnalysisSpec, lesions: LesionTable) -> np.ndarray:
    """Centring weights w_i of the patient frailties for the spec's ``parameterisation``:
    ``auto`` (default) from crude per-patient counts
    (:func:`~bayes_ablation.endpoints.hierarchy.frailty_centring`), ``non_centred`` 0,
    ``centred`` 1. The prior of v_i is N(0, σ_patient²) for any w (geometry only)."""
    mode = spec.model_options.get("parameterisation", "auto")
    if mode == "auto":
        return frailty_centring(*patient_counts(lesions))
    return np.full(lesions.patients.n_patients, 1.0 if mode == "centred" else 0.0)


def _lesion_block(spec: AnalysisSpec, lesions: LesionTable) -> dict[str, Any]:
    """Data containers and η_ij = β_arm + x γ + u_site [+ w_site,arm] + v_patient (inside a
    model context). Returns the named pieces the baselines need."""
    patients = lesions.patients
    x, names, _ = lesions.design_matrix()
    upper_safe, interval = safe_upper(lesions.lower, lesions.upper)
    patient_idx = pm.Data("lesion_patient_idx", lesions.patient_idx, dims="lesion")
    arm_idx = pm.Data("lesion_arm_idx", lesions.arm_idx, dims="lesion")
    site_idx = pm.Data("lesion_site_idx", lesions.site_idx, dims="lesion")
    x_data = pm.Data("x", x, dims=("lesion", "covariate"))
    pm.Data("x_reference", reference_design(spec, lesions), dims="covariate")
    centring = site_centring_data(spec, *lesion_counts(lesions))
    subgroups = subgroup_data(spec, lesions, "lesion")
    if subgroups is not None:
        pm.Data("subgroup_reference", reference_subgroups(spec, lesions), dims="subgroup")
    eta = linear_predictor(spec, arm_idx, site_idx, x_data, len(names), centring=centring,
                           subgroups=subgroups)
    if bool(spec.model_options.get("patient_frailty", True)):
        sigma_patient = prior("sigma_patient", spec.priors["sigma_patient"])
        w_patient = pm.Data("centring_patient", patient_centring_weights(spec, lesions),
                            dims="patient")
        v_patient = scaled_normal("z_patient", sigma_patient, "patient", w_patient)
        eta = eta + v_patient[patient_idx]
    return {"eta": eta, "upper_safe": upper_safe,
            "interval": pm.Data("lr_interval", interval, dims="lesion"),
            "lower": pm.Data("lr_lower", lesions.lower, dims="lesion"), "patients": patients}


def _death_block(spec: AnalysisSpec, patients: Any) -> None:
    """Per-patient Weibull death hazard with an arm effect (right-censored at last contact)."""
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    p_arm = pm.Data("arm_idx", patients.arm_idx, dims="patient")
    died = pm.Data("died", patients.event.astype(float), dims="patient")
    followup = pm.Data("followup_months", patients.time, dims="patient")
    alpha_d = prior("death_log_cumhaz_ref", spec.priors["death_log_cumhaz_ref"])
    k_d = prior("death_weibull_shape", spec.priors["death_weibull_shape"])
    log_hr_d = prior("death_log_hr", spec.priors["death_log_hr"], dims="treatment")
    pm.Deterministic("death_hr", pt.exp(log_hr_d), dims="treatment")
    log_lam_d = alpha_d - k_d * np.log(t_ref) + pt.concatenate([pt.zeros(1), log_hr_d])[p_arm]
    pm.CustomDist("death", log_lam_d, k_d, died, logp=_death_logp, random=weibull_random,
                  observed=followup, dims="patient")


def build_lr_weibull_model(spec: AnalysisSpec, lesions: LesionTable) -> pm.Model:
    """Hierarchical interval-censored Weibull LR model with a Weibull death block."""
    x_names = lesions.design_matrix()[1]
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    with pm.Model(coords=_coords(spec, lesions, x_names)) as model:
        b = _lesion_block(spec, lesions)
        upper_data = pm.Data("lr_upper_safe", b["upper_safe"], dims="lesion")
        alpha = prior("log_cumhaz_ref", spec.priors["log_cumhaz_ref"])
        k = prior("weibull_shape", spec.priors["weibull_shape"])
        log_lam = alpha - k * np.log(t_ref) + b["eta"]
        pm.CustomDist("lr", log_lam, k, upper_data, b["interval"], logp=_lr_logp,
                      random=_lr_random, observed=b["lower"], dims="lesion")
        _death_block(spec, b["patients"])
    return model


# ------------------------------------------------------------------ piecewise-exponential

def _pwe_logp(value: Any, eta: Any, cum_l: Any, log_dcum: Any, interval: Any,
              *rates: Any) -> Any:
    """log P(L < T ≤ U) = −H(L) + log1mexp(−ΔH), H(L) = e^η Σ_j E_j(L) λ_j,
    log ΔH = η + log Σ_j (E_j(U) − E_j(L)) λ_j (exposure differences: no cancellation)."""
    log_dh = eta + log_dcum
    return -pt.exp(eta) * cum_l + pt.switch(pt.gt(interval, 0.5),
                                            pt.log1mexp(-pt.exp(log_dh)), 0.0)


def _pwe_random_factory(cuts: Any) -> Any:
    def random(eta: Any, cum_l: Any, log_dcum: Any, interval: Any, *rates: Any,
               rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
        """Latent LR times: H₀(T) = E e^{−η}, E ~ Exp(1)."""
        rng = rng if rng is not None else np.random.default_rng()
        h = rng.exponential(size=size) / np.exp(eta)
        return invert_cumhaz(h, np.asarray(rates, float).ravel(), cuts)
    return random


def build_lr_pwe_model(spec: AnalysisSpec, lesions: LesionTable) -> pm.Model:
    """Interval-censored LR model with a piecewise-exponential baseline hazard:
    h_LR,ij(t) = λ_j(t) exp(η_ij), log λ_j ~ prior ``log_hazard_baseline`` per interval (dim
    ``interval``, cuts ``cuts_months``); the rest as the Weibull model."""
    cuts = tuple(spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS))
    x_names = lesions.design_matrix()[1]
    coords = {**_coords(spec, lesions, x_names), "interval": interval_labels(cuts)}
    with pm.Model(coords=coords) as model:
        b = _lesion_block(spec, lesions)
        e_lower = exposure(lesions.lower, cuts)
        e_lower_data = pm.Data("lr_exposure_lower", e_lower, dims=("lesion", "interval"))
        d_exp = pm.Data("lr_exposure_between", exposure(b["upper_safe"], cuts) - e_lower,
                        dims=("lesion", "interval"))
        log_rates = prior("log_hazard_baseline", spec.priors["log_hazard_baseline"],
                          dims="interval")
        rates = pt.exp(log_rates)
        cum_l = pt.dot(e_lower_data, rates)
        log_dcum = pt.log(pt.dot(d_exp, rates))
        pm.CustomDist("lr", b["eta"], cum_l, log_dcum, b["interval"],
                      *[rates[j] for j in range(len(cuts) + 1)], logp=_pwe_logp,
                      random=_pwe_random_factory(cuts), observed=b["lower"], dims="lesion")
        _death_block(spec, b["patients"])
    return model


def reference_subgroups(spec: AnalysisSpec, lesions: LesionTable) -> np.ndarray:
    """z_ref − z̄ of the reference lesion (``[model] reference_lesion``): a subgroup it names
    (0/1; ``margin_lt_5mm`` also through ``margin_mm``) at that level, any other at its mean
    (centred value 0), like the covariates of :func:`reference_design`."""
    from bayes_ablation.data.lesions import MARGIN_THRESHOLD_MM
    from bayes_ablation.errors import SpecError

    ref = dict(spec.model_options.get("reference_lesion", {}))
    names = subgroup_columns(spec)
    mean = lesions.frame[names].to_numpy(float).mean(axis=0)
    out = np.zeros(len(names))
    for j, g in enumerate(names):
        value = ref.get(g)
        if value is None and g == "margin_lt_5mm" and isinstance(ref.get("margin_mm"),
                                                                 int | float):
            value = float(ref["margin_mm"] < MARGIN_THRESHOLD_MM)
        if value is None:
            continue
        if isinstance(value, bool) or value not in (0, 1):
            raise SpecError(spec.source_path, [f"[model] reference_lesion {g} must be 0 or 1 "
                                               f"(a subgroup indicator), got {value!r}"])
        out[j] = float(value) - mean[j]
    return out


def reference_design(spec: AnalysisSpec, lesions: LesionTable) -> np.ndarray:
    """Covariate vector of the spec's reference lesion (``[model] reference_lesion``), coded
    like :meth:`LesionTable.design_matrix`. A covariate the reference lesion does not name is
    set to x = 0 (its mean, or its reference level)."""
    from bayes_ablation.data.lesions import design_row

    return design_row(lesions, dict(spec.model_options.get("reference_lesion", {})),
                      source=spec.source_path)
