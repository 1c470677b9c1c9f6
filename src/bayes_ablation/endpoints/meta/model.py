"""Random-effects meta-analysis of log hazard ratios (endpoint ``meta``).

``normal_normal`` — aggregate data only. For studies i = 1..K with reported log HR y_i and
standard error s_i (treated as known):

    y_i ~ N(θ_i, s_i²),   θ_i = μ + τ z_i,   z_i ~ N(0, 1)          (non-centred θ_i ~ N(μ, τ²))
    θ_new = μ + τ z_new,  z_new ~ N(0, 1)                           (the effect in a new study)

with priors on μ (pooled log HR) and τ (between-study sd) from the spec (an equivalent
``marginal`` parameterisation is an option, see :func:`build_normal_normal_model`).

``weibull_ipd_ad`` — the same hierarchy where some studies enter with individual patient data
(IPD). Each IPD trial j has its own Weibull PH baseline (α_j = log H₀ⱼ(t_ref), shape k_j; trial
baselines are never pooled) and site effects nested in the trial (site labels ``trial:site``):

    log H_p(t) = α_j + k_j (log t − log t_ref) + θ_j · treated_p + u_site(p)

so every trial effect, IPD or aggregate, is a draw θ ~ N(μ, τ²) of one distribution.
Option ``ipd_effects = "centred"`` gives IPD trials a centred θ_j (see :func:`study_effects`);
the default is non-centred like the aggregate studies, which in our runs sampled large IPD
trials without divergences where the centred form had some (bench/meta_ipd_two_stage.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.data.studies import StudyTable
from bayes_ablation.endpoints.pfs.model import custom_logp, linear_predictor, weibull_random
from bayes_ablation.endpoints.priors import prior
from bayes_ablation.spec.plan import AnalysisSpec


def hyperparameters(spec: AnalysisSpec) -> tuple[Any, Any]:
    """μ (pooled log HR) and τ (between-study sd) from the spec's priors, and θ_new."""
    mu = prior("mu", spec.priors["mu"])
    tau = prior("tau", spec.priors["tau"])
    z_new = pm.Normal("z_new", 0.0, 1.0)
    pm.Deterministic("theta_new", mu + tau * z_new)
    return mu, tau


def study_effects(mu: Any, tau: Any, centred: np.ndarray | None = None) -> Any:
    """θ (dim ``study``) drawn from N(μ, τ²); returns θ.

    Non-centred (θ_i = μ + τ z_i) for every study, except those flagged in ``centred``, which
    get θ_i ~ N(μ, τ²) directly (dim ``centred_study``): for a study whose own data pin θ_i
    down far more tightly than τ does — a large IPD trial — the non-centred form makes z_i,
    μ and τ strongly dependent, and NUTS then needs tiny steps.
    """
    if centred is None or not centred.any():
        z = pm.Normal("z", 0.0, 1.0, dims="study")
        theta = mu + tau * z
    else:   # coords 'noncentred_study' and 'centred_study' list the two groups in order
        theta = pt.zeros(centred.size)
        if (~centred).any():
            z = pm.Normal("z", 0.0, 1.0, dims="noncentred_study")
            theta = pt.set_subtensor(theta[np.flatnonzero(~centred)], mu + tau * z)
        direct = pm.Normal("theta_centred", mu, tau, dims="centred_study")
        theta = pt.set_subtensor(theta[np.flatnonzero(centred)], direct)
    return pm.Deterministic("theta", theta, dims="study")


def build_normal_normal_model(spec: AnalysisSpec, studies: StudyTable) -> pm.Model:
    """The normal–normal random-effects model for aggregate data (see module docstring).

    ``parameterisation = "marginal"`` (model option) samples the same posterior in the form
    y_i ~ N(μ, s_i² + τ²) with θ_i = B_i μ + (1 − B_i) y_i + s_i τ (s_i² + τ²)^(−½) ε_i,
    B_i = s_i²/(s_i² + τ²), ε_i ~ N(0, 1): θ_i given (μ, τ, y) is exactly that normal, so
    NUTS sees the two-dimensional (μ, τ) posterior and independent ε — no funnel, which helps
    heavy-tailed τ priors with few studies.
    """
    if studies.has_ipd:
        raise ValueError("normal_normal takes aggregate estimates only; "
                         "use weibull_ipd_ad for studies with patient data")
    marginal = spec.model_options.get("parameterisation", "non_centred") == "marginal"
    with pm.Model(coords={"study": list(studies.studies)}) as model:
        y = pm.Data("y_data", studies.y, dims="study")
        se = pm.Data("se", studies.se, dims="study")
        mu, tau = hyperparameters(spec)
        if not marginal:
            theta = study_effects(mu, tau)
            pm.Normal("y", mu=theta, sigma=se, observed=y, dims="study")
        else:
            total = se**2 + tau**2
            pm.Normal("y", mu=mu, sigma=pt.sqrt(total), observed=y, dims="study")
            eps = pm.Normal("eps", 0.0, 1.0, dims="study")
            shrink = se**2 / total
            pm.Deterministic("theta", shrink * mu + (1 - shrink) * y
                             + se * tau / pt.sqrt(total) * eps, dims="study")
    return model


def ipd_design(studies: StudyTable) -> dict[str, Any]:
    """Stacked patient data of the IPD trials with trial, arm (0 = reference) and nested site
    indices; site and patient labels are prefixed with the trial name."""
    names = list(studies.ipd)
    frames = []
    for j, name in enumerate(names):
        patients = studies.ipd[name]
        f = patients.frame
        frames.append(pd.DataFrame({
            "trial_idx": j,
            "study": name,
            "patient": name + ":" + f["patient_id"].astype(str),
            "site": name + ":" + f["site"].astype(str),
            "arm_idx": patients.arm_idx,
            "time": f["time_months"].to_numpy(float),
            "event": f["event"].to_numpy(float),
        }))
    data = pd.concat(frames, ignore_index=True)
    sites = list(pd.unique(data["site"]))
    return {
        "trials": names,
        "frame": data,
        "sites": sites,
        "site_idx": pd.Categorical(data["site"], categories=sites).codes.astype(np.int64),
        "study_idx": np.array([studies.studies.index(s) for s in data["study"]], np.int64),
    }


def build_weibull_ipd_ad_model(spec: AnalysisSpec, studies: StudyTable) -> pm.Model:
    """One-stage IPD + aggregate-data model (see module docstring)."""
    if not studies.has_ipd:
        raise ValueError("weibull_ipd_ad needs at least one study with patient data")
    design = ipd_design(studies)
    agg = studies.aggregate
    agg_idx = np.array([studies.studies.index(s) for s in agg["study"]], np.int64)
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    centred = np.array([s in studies.ipd for s in studies.studies]) \
        if spec.model_options.get("ipd_effects", "non_centred") == "centred" \
        else np.zeros(studies.n_studies, bool)
    coords = {"study": list(studies.studies), "ipd_study": design["trials"],
              "centred_study": [s for s, c in zip(studies.studies, centred, strict=True) if c],
              "noncentred_study": [s for s, c in zip(studies.studies, centred, strict=True)
                                   if not c],
              "aggregate_study": list(agg["study"]), "site": design["sites"],
              "treatment": ["experimental"], "patient": list(design["frame"]["patient"])}
    frame = design["frame"]
    with pm.Model(coords=coords) as model:
        mu, tau = hyperparameters(spec)
        theta = study_effects(mu, tau, centred)
        if len(agg):
            y = pm.Data("y_data", agg["log_hr"].to_numpy(float), dims="aggregate_study")
            se = pm.Data("se", agg["se"].to_numpy(float), dims="aggregate_study")
            pm.Normal("y", mu=theta[agg_idx], sigma=se, observed=y, dims="aggregate_study")

        trial_idx = pm.Data("trial_idx", frame["trial_idx"].to_numpy(np.int64), dims="patient")
        study_idx = pm.Data("study_idx", design["study_idx"], dims="patient")
        arm_idx = pm.Data("arm_idx", frame["arm_idx"].to_numpy(np.int64), dims="patient")
        # a pm.Data the logp does not use cannot be swapped by nutpie's with_data
        site_idx = pm.Data("site_idx", design["site_idx"], dims="patient") \
            if spec.hierarchy.site_intercepts else design["site_idx"]
        event = pm.Data("event", frame["event"].to_numpy(float), dims="patient")
        time = pm.Data("time_months", frame["time"].to_numpy(float), dims="patient")

        alpha = prior("log_cumhaz_ref", spec.priors["log_cumhaz_ref"], dims="ipd_study")
        k = prior("weibull_shape", spec.priors["weibull_shape"], dims="ipd_study")
        effect = theta[study_idx] * pt.cast(arm_idx, "float64")
        eta = linear_predictor(spec, arm_idx, site_idx, None, 0, treatment_effect=effect)
        k_p = k[trial_idx]
        log_lam = alpha[trial_idx] - k_p * np.log(t_ref) + eta
        pm.CustomDist("y_ipd", log_lam, k_p, event, logp=custom_logp, random=weibull_random,
                      observed=time, dims="patient")
    return model
