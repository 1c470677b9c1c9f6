"""Simulate non-randomised (confounded) multi-site cohorts with known causal truth.

Patients of colorectal liver metastases treated by ablation, chemotherapy timed by clinical
choice. Per patient i at site s(i), five baseline covariates (the confounders)::

    n_lesions      1 + Poisson(λ_lesions), at most 8            (numeric)
    max_size_cm    log-normal, median ``size_median_cm``         (numeric)
    cea_high       CEA > 5 ng/mL, Bernoulli(p_cea)               (binary 0/1)
    node_status    primary N+ "positive" / N0 "negative"         (categorical, reference negative)
    presentation   "synchronous" / "metachronous"                (categorical, reference metachronous)

Treatment (the non-reference arm, e.g. perioperative chemotherapy) is chosen with
logit P(treated) = a_s + x_i α (``treatment_effects``; sites differ in practice, a_s ~
N(logit p_treated, σ_practice²)). The outcome is Weibull proportional hazards
h_i(t) = λ₀ k t^{k−1} exp(β·treated_i + x_i γ + u_s(i)), u_s ~ N(0, σ_site²): worse covariates
make treatment *and* progression more likely, so the unadjusted comparison is biased.

Truth (``SimulatedCohort.truth``), in the models' parameterisation (numeric covariates
centred, categoricals dummy-coded against the first sorted level): the conditional
``log_hr`` β, ``beta_covariates`` γ, ``u_site``, and the **sample-average** causal effects
computed exactly from the true model over the simulated patients,

    SATE(t) = mean_i [S(t | 1, x_i, u_s(i)) − S(t | 0, x_i, u_s(i))],
    SATT(t) = the same mean over the treated patients,

with S(t | a, x, u) = exp(−λ₀ t^k e^{βa + xγ + u}), and the RMST differences to τ (exact
quadrature of the same curves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: covariate → log-HR effect on progression (per unit; per level vs the reference level)
OUTCOME_EFFECTS: dict[str, float] = {"n_lesions": 0.15, "max_size_cm": 0.25, "cea_high": 0.40,
                                     "node_status": 0.45, "presentation": 0.20}
#: covariate → log-odds effect on receiving the treatment arm
TREATMENT_EFFECTS: dict[str, float] = {"n_lesions": 0.35, "max_size_cm": 0.45, "cea_high": 0.80,
                                       "node_status": 0.70, "presentation": 0.40}
COHORT_COVARIATES = ("n_lesions", "max_size_cm", "cea_high", "node_status", "presentation")


@dataclass(frozen=True)
class SimulatedCohort:
    """A simulated cohort: the patient table, latent details and the causal truth."""

    frame: pd.DataFrame
    details: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)


def simulate_cohort(
    n_patients: int = 668,
    n_sites: int = 6,
    log_hr: float = -0.25,
    *,
    seed: int = 1,
    arms: Sequence[str] = ("postoperative", "perioperative"),
    weibull_shape: float = 1.2,
    median_ref_months: float = 16.0,
    sigma_site: float = 0.25,
    sigma_practice: float = 0.4,
    p_treated: float = 0.45,
    outcome_effects: Mapping[str, float] | None = None,
    treatment_effects: Mapping[str, float] | None = None,
    accrual_months: float = 48.0,
    followup_months: float = 12.0,
    dropout_per_month: float = 0.004,
    time_ref_months: float = 12.0,
    truth_times_months: Sequence[float] = (12.0, 24.0, 36.0),
    rmst_tau_months: float = 36.0,
) -> SimulatedCohort:
    """Simulate one confounded cohort (module docstring); same arguments and seed give the
    same table. ``outcome_effects`` / ``treatment_effects`` override the defaults per covariate
    (0 removes confounding through that covariate)."""
    if n_patients < 4 or n_sites < 1:
        raise ValueError("need at least 4 patients and 1 site")
    arms = tuple(arms)
    if len(arms) != 2:
        raise ValueError("a cohort has two strategies: arms = (reference, treatment)")
    gamma = {**OUTCOME_EFFECTS, **dict(outcome_effects or {})}
    alpha = {**TREATMENT_EFFECTS, **dict(treatment_effects or {})}
    rng = np.random.default_rng(seed)

    site_idx = np.sort(rng.choice(n_sites, size=n_patients))
    site_idx[:n_sites] = np.arange(min(n_sites, n_patients))
    site_idx = np.sort(site_idx)
    n_lesions = np.minimum(1 + rng.poisson(1.1, n_patients), 8).astype(float)
    max_size = np.round(np.exp(rng.normal(np.log(2.4), 0.35, n_patients)), 1).clip(0.5, 6.0)
    cea_high = rng.binomial(1, 0.4, n_patients).astype(float)
    node_pos = rng.binomial(1, 0.55, n_patients).astype(float)
    synchronous = rng.binomial(1, 0.5, n_patients).astype(float)
    # model parameterisation: numeric centred at the sample mean, dummies 0/1
    design = {"n_lesions": n_lesions - n_lesions.mean(), "max_size_cm": max_size - max_size.mean(),
              "cea_high": cea_high, "node_status": node_pos, "presentation": synchronous}

    practice = rng.normal(np.log(p_treated / (1 - p_treated)), sigma_practice, n_sites)
    # p_treated is the treated share at the cohort's average covariates
    logit = practice[site_idx] + sum(alpha[c] * (design[c] - design[c].mean())
                                     for c in COHORT_COVARIATES)
    propensity = 1.0 / (1.0 + np.exp(-logit))
    treated = rng.binomial(1, propensity).astype(np.int64)

    u_site = rng.normal(0.0, sigma_site, n_sites) if sigma_site > 0 else np.zeros(n_sites)
    offset = u_site[site_idx] + sum(gamma[c] * design[c] for c in COHORT_COVARIATES)
    eta = offset + log_hr * treated
    k = weibull_shape
    lam0 = np.log(2.0) / median_ref_months**k
    event_time = (rng.exponential(size=n_patients) / (lam0 * np.exp(eta))) ** (1.0 / k)
    entry = rng.uniform(0.0, accrual_months, n_patients)
    admin = accrual_months + followup_months - entry
    dropout = (rng.exponential(1.0 / dropout_per_month, n_patients)
               if dropout_per_month > 0 else np.full(n_patients, np.inf))
    censor = np.minimum(admin, dropout)
    time = np.maximum(np.round(np.minimum(event_time, censor), 4), 1e-4)
    event = (event_time <= censor).astype(np.int64)

    width = len(str(n_patients))
    frame = pd.DataFrame({
        "patient_id": [f"P{i + 1:0{width}d}" for i in range(n_patients)],
        "site": [f"S{s + 1:02d}" for s in site_idx],
        "arm": [arms[a] for a in treated],
        "time_months": time,
        "event": event,
        "n_lesions": n_lesions.astype(int),
        "max_size_cm": max_size,
        "cea_high": cea_high.astype(int),
        "node_status": np.where(node_pos == 1, "positive", "negative"),
        "presentation": np.where(synchronous == 1, "synchronous", "metachronous"),
    })
    details = pd.DataFrame({"patient_id": frame["patient_id"], "propensity": propensity,
                            "eta": eta, "event_time_months": event_time,
                            "censor_time_months": censor})

    def surv(t: np.ndarray, a: int) -> np.ndarray:  # (patient, time)
        return np.exp(-lam0 * np.asarray(t, float)[None, :] ** k
                      * np.exp(offset + log_hr * a)[:, None])

    times = np.asarray(truth_times_months, float)
    v, w = np.polynomial.legendre.leggauss(64)     # RMST: t = τ v², v on [0, 1]
    v = 0.5 * (v + 1.0)
    nodes, weights = rmst_tau_months * v**2, rmst_tau_months * v * w
    diff_t = surv(times, 1) - surv(times, 0)
    diff_rmst = (surv(nodes, 1) - surv(nodes, 0)) @ weights
    is_treated = treated == 1
    truth: dict[str, Any] = {
        "log_hr": float(log_hr),
        "weibull_shape": float(k),
        "log_cumhaz_ref": float(np.log(lam0) + k * np.log(time_ref_months)),
        "time_ref_months": float(time_ref_months),
        "sigma_site": float(sigma_site),
        "u_site": u_site.tolist(),
        "covariate_names": ["n_lesions", "max_size_cm", "cea_high", "node_status[positive]",
                            "presentation[synchronous]"],
        "beta_covariates": [float(gamma[c]) for c in COHORT_COVARIATES],
        "treatment_log_odds": {c: float(alpha[c]) for c in COHORT_COVARIATES},
        "times_months": times.tolist(),
        "rmst_tau_months": float(rmst_tau_months),
        "sate_survival_difference": diff_t.mean(axis=0).tolist(),
        "satt_survival_difference": diff_t[is_treated].mean(axis=0).tolist(),
        "sate_rmst_difference": float(diff_rmst.mean()),
        "satt_rmst_difference": float(diff_rmst[is_treated].mean()),
        "share_treated": float(is_treated.mean()),
        "propensity_range": [float(propensity.min()), float(propensity.max())],
    }
    return SimulatedCohort(frame=frame, details=details, truth=truth)
