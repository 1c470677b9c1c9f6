"""Progression-free survival models (per patient, right-censored).

Weibull proportional hazards, time t in months, t_ref = ``time_ref_months``:

    log H_i(t) = α + k (log t − log t_ref) + η_i            (cumulative hazard)
    log h_i(t) = log H_i(t) + log k − log t
               = log λ₀ + log k + (k−1) log t + η_i,   log λ₀ = α − k log t_ref
    η_i = β_arm(i) + x_i γ + u_site(i) [+ v_site(i),arm(i)]

α = log H₀(t_ref) is the log cumulative hazard of the reference arm at an average site at
t_ref; centring time at t_ref decorrelates α and k. With event indicator d_i the censored
log-likelihood is  Σ d_i log h_i(t_i) − H_i(t_i), written out by hand (exact gradients, and
~5× cheaper than ``pm.Censored``; the two agree to 1e-8, see tests).

Piecewise exponential (PWE), intervals I_j = (b_j, b_{j+1}], j = 0 … J−1 (see
:mod:`bayes_ablation.data.aggregate`):

    log h_i(t) = log λ_j + η_i + δ_arm(i),j              for t ∈ I_j
    log λ_j   = μ + (w_j − w̄),   w_0 = 0,  w_j = Σ_{k<j} ε_k,  ε_k ~ N(0, σ_λ²)
    δ_a,j     = w^a_j − w̄^a,  w^a built from steps ~ N(0, σ_δ²)  (time-varying HR only;
                                                         δ = 0 for the reference arm)

μ (``log_hazard_mean``) is the mean over intervals of the log baseline hazard per month;
the Gaussian random walk (step sd σ_λ = ``sigma_log_hazard_rw``) smooths
adjacent intervals towards each other and, centred on its mean, leaves μ as the level. With a
time-varying HR, log HR_a,j = β_a + δ_a,j: the per-interval deviations follow a centred random
walk (step sd σ_δ = ``sigma_log_hr_rw``), so β_a (``log_hr``) stays the overall effect — the
unweighted mean of the per-interval log HRs (≈ event-weighted with quantile cut points, which
put about equally many events in each interval). σ_δ → 0 recovers proportional hazards.

Parameterisation (``parameterisation`` option; the prior is identical in all three): the
random-walk steps, site effects and per-interval log-HR steps are written u = σ^(1−w) ũ,
ũ ~ N(0, σ^w). ``non_centred`` (w = 0) suits effects the data barely inform (small trials);
``centred`` (w = 1) suits effects the data pin down (with 10^6 patients the non-centred
posterior is a thin curved ridge ũ = u/σ and NUTS needs ever smaller steps); ``auto`` (default)
sets w = σ̂²/(σ̂² + s²) per effect from crude estimates on the cells (s² ≈ 1/events,
σ̂² by moments; :func:`pwe_centring`), the optimal weight of Papaspiliopoulos, Roberts &
Sköld (2007). With a low-rank mass matrix this keeps the number of gradient evaluations per
draw flat from 10^3 to 10^6 patients (bench/pwe_scaling.py).

Anchored levels (also geometry only). μ is the mean over *all* intervals, but the data may
inform only some of them (a high hazard puts every event in the first intervals): then the
data pin log λ_j = μ + (w_j − w̄) for the early j, and μ has to move with the walk of the
uninformed late intervals (a ridge μ ≈ c − σ_λ f(z) that curves with σ_λ, and NUTS diverges
on it). The sampler therefore draws the *anchor* a = μ + Σ_j π_j (w_j − w̄) with
a ~ prior of μ shifted by Σ_j π_j (w_j − w̄), π_j ∝ events in interval j (``auto``; uniform
π, hence a = μ, otherwise), and sets μ = a − Σ_j π_j (w_j − w̄): a shift by a function of the
other parameters has unit Jacobian, so μ keeps exactly its prior (normal / Student-t priors;
others are drawn directly). Likewise the log HR β_a is drawn through the anchor
β_a + Σ_j π^δ_a,j δ_a,j with π^δ ∝ the information 1/(1/D_ref,j + 1/D_a,j) on the interval's
log HR. ``log_hazard_mean`` and ``log_hr`` remain in the posterior as deterministics.

The likelihood is evaluated on the aggregated cells c (site × arm × interval × covariate
pattern) with events D_c and exposure E_c:

    log L = Σ_c D_c (log λ_j + η_c) − exp(log λ_j + η_c) E_c

which equals the per-patient likelihood Σ_i d_i log h_i(t_i) − H_i(t_i) exactly (the Poisson
log-pmf minus its parameter-free constant), so the fit costs O(cells), not O(patients). The
per-patient data are kept in the model as ``pm.Data`` outside the likelihood: posterior
predictive checks, per-patient pointwise log-likelihoods (LOO) and covariate standardisation
use them exactly as for the Weibull model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.data.aggregate import (
    aggregate,
    cell_design,
    check_cuts,
    interval_labels,
    quantile_cuts,
)
from bayes_ablation.data.schema import PatientTable
from bayes_ablation.endpoints.hierarchy import (
    moment_centring,
    scaled_normal,
    site_centring,
    site_effects,
)
from bayes_ablation.endpoints.priors import LOCATION_FAMILIES, prior, shifted_prior
from bayes_ablation.endpoints.subgroups import subgroup_columns, subgroup_data, subgroup_terms
from bayes_ablation.spec.plan import AnalysisSpec


def weibull_logp(time: Any, log_lam: Any, k: Any, event: Any) -> Any:
    """Right-censored Weibull log density: d (log k + (k−1) log t + log λ) − λ t^k."""
    log_t = pt.log(time)
    return event * (pt.log(k) + (k - 1.0) * log_t + log_lam) - pt.exp(k * log_t + log_lam)


def weibull_random(log_lam: Any, k: Any, event: Any, rng: np.random.Generator | None = None,
                   size: Any = None) -> np.ndarray:
    """Uncensored event times: T = (E / λ)^(1/k), E ~ Exp(1)."""
    rng = rng if rng is not None else np.random.default_rng()
    return (rng.exponential(size=size) / np.exp(log_lam)) ** (1.0 / k)


def patient_coords(patients: PatientTable, covariate_names: list[str],
                   subgroups: list[str] | None = None) -> dict[str, Any]:
    coords = {
        "arm": list(patients.arms),
        "treatment": list(patients.treatments),
        "site": list(patients.sites),
        "patient": patients.frame["patient_id"].tolist(),
        "covariate": covariate_names,
    }
    if subgroups:
        coords["subgroup"] = list(subgroups)
    return coords


def linear_predictor(spec: AnalysisSpec, arm_idx: Any, site_idx: Any, x: Any,
                     n_covariates: int, centring: tuple[Any, Any] | None = None,
                     treatment_effect: Any = None, subgroups: tuple[Any, Any] | None = None
                     ) -> Any:
    """η = β_arm + x γ + site effects; creates ``log_hr``, ``hr`` and ``beta_covariates``.

    ``subgroups``: (indicator, mean) data of the spec's subgroups: adds their main effects and
    treatment interactions (:func:`~bayes_ablation.endpoints.subgroups.subgroup_terms`).

    ``centring``: site-effect parameterisation weights (see ``hierarchy.site_effects``).
    ``treatment_effect`` (per patient, 0 on the reference arm) replaces β_arm when the effect
    comes from elsewhere, e.g. a trial's θ_j in a meta-analysis (then no ``log_hr`` is made).
    """
    if treatment_effect is None:
        log_hr = prior("log_hr", spec.priors["log_hr"], dims="treatment")
        pm.Deterministic("hr", pt.exp(log_hr), dims="treatment")
        treatment_effect = pt.concatenate([pt.zeros(1), log_hr])[arm_idx]
    eta = treatment_effect + site_effects(spec, site_idx, arm_idx, centring=centring)
    if n_covariates:
        beta = prior("beta_covariates", spec.priors["beta_covariates"], dims="covariate")
        eta = eta + pt.dot(x, beta)
    if subgroups is not None:
        eta = eta + subgroup_terms(spec, *subgroups, arm_idx)
    return eta


def nelson_aalen_counts(time: np.ndarray, event: np.ndarray, arm_idx: np.ndarray,
                       site_idx: np.ndarray, n_sites: int, n_arms: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Observed events O_sa and expected events E_sa = Σ_i Ĥ_arm(i)(t_i) per (site, arm), Ĥ_a
    the Nelson–Aalen cumulative hazard of arm a pooled over sites (Σ_s E_sa = Σ_s O_sa)."""
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    expected_i = np.zeros(time.size)
    for a in range(n_arms):
        rows = np.flatnonzero(arm_idx == a)
        if rows.size == 0:
            continue
        t = time[rows]
        order = np.argsort(t, kind="stable")
        unique, first = np.unique(t[order], return_index=True)
        deaths = np.add.reduceat(event[rows][order], first)
        cumhaz = np.cumsum(deaths / (rows.size - first))
        expected_i[rows] = cumhaz[np.searchsorted(unique, t, side="right") - 1]
    observed = np.zeros((n_sites, n_arms))
    expected = np.zeros((n_sites, n_arms))
    np.add.at(observed, (site_idx, arm_idx), event)
    np.add.at(expected, (site_idx, arm_idx), expected_i)
    return observed, expected


def centring_weights(spec: AnalysisSpec, observed: np.ndarray, expected: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The site-effect weights (w_site, w_site_arm) the spec's ``parameterisation`` asks for:
    ``auto`` (default) from crude per-site counts (:func:`~bayes_ablation.endpoints.hierarchy.
    site_centring`), ``non_centred`` all 0, ``centred`` all 1."""
    mode = spec.model_options.get("parameterisation", "auto")
    if mode == "auto":
        return site_centring(observed, expected)
    fill = 1.0 if mode == "centred" else 0.0
    n_sites, n_arms = np.shape(observed)
    return np.full(n_sites, fill), np.full((n_sites, n_arms - 1), fill)


def site_centring_data(spec: AnalysisSpec, observed: np.ndarray, expected: np.ndarray
                       ) -> tuple[Any, Any] | None:
    """``pm.Data`` ``centring_site`` / ``centring_site_arm`` (inside a model context) for the
    spec's site effects, or None without a hierarchy."""
    if not spec.hierarchy.site_intercepts:
        return None
    w_site, w_site_arm = centring_weights(spec, observed, expected)
    site = pm.Data("centring_site", w_site, dims="site")
    slope = (pm.Data("centring_site_arm", w_site_arm, dims=("site", "treatment"))
             if spec.hierarchy.site_arm_slopes else None)
    return site, slope


def build_weibull_model(spec: AnalysisSpec, patients: PatientTable) -> pm.Model:
    """Hierarchical Weibull PH model for the patient table (see module docstring).

    Site effects are partially centred by the data (``parameterisation``, default ``auto``;
    :func:`centring_weights` on Nelson–Aalen observed/expected counts): the prior is the same
    for every weight, only the sampler's geometry changes (large sites sample centred)."""
    x, covariate_names, _ = patients.design_matrix()
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    counts = nelson_aalen_counts(patients.time, patients.event, patients.arm_idx,
                                 patients.site_idx, len(patients.sites), len(patients.arms))
    coords = patient_coords(patients, covariate_names, subgroup_columns(spec))
    with pm.Model(coords=coords) as model:
        arm_idx = pm.Data("arm_idx", patients.arm_idx, dims="patient")
        site_idx = pm.Data("site_idx", patients.site_idx, dims="patient")
        event = pm.Data("event", patients.event.astype(float), dims="patient")
        time = pm.Data("time_months", patients.time, dims="patient")
        x_data = pm.Data("x", x, dims=("patient", "covariate"))
        centring = site_centring_data(spec, *counts)
        subgroups = subgroup_data(spec, patients, "patient")

        alpha = prior("log_cumhaz_ref", spec.priors["log_cumhaz_ref"])
        k = prior("weibull_shape", spec.priors["weibull_shape"])
        pm.Deterministic("log_lambda0", alpha - k * np.log(t_ref))
        eta = linear_predictor(spec, arm_idx, site_idx, x_data, len(covariate_names),
                               centring=centring, subgroups=subgroups)
        log_lam = alpha - k * np.log(t_ref) + eta
        pm.CustomDist("y", log_lam, k, event, logp=custom_logp, random=weibull_random,
                      observed=time, dims="patient")
    return model


def custom_logp(value: Any, log_lam: Any, k: Any, event: Any) -> Any:
    return weibull_logp(value, log_lam, k, event)


def build_weibull_censored_reference(spec: AnalysisSpec, patients: PatientTable) -> pm.Model:
    """The same model written with ``pm.Censored`` (slow; used only to check the fast one)."""
    x, covariate_names, _ = patients.design_matrix()
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    counts = nelson_aalen_counts(patients.time, patients.event, patients.arm_idx,
                                 patients.site_idx, len(patients.sites), len(patients.arms))
    with pm.Model(coords=patient_coords(patients, covariate_names)) as model:
        centring = site_centring_data(spec, *counts)
        alpha = prior("log_cumhaz_ref", spec.priors["log_cumhaz_ref"])
        k = prior("weibull_shape", spec.priors["weibull_shape"])
        eta = linear_predictor(spec, patients.arm_idx, patients.site_idx, x,
                               len(covariate_names), centring=centring)
        log_lam = alpha - k * np.log(t_ref) + eta
        upper = np.where(patients.event == 1, np.inf, patients.time)
        pm.Censored("y", pm.Weibull.dist(alpha=k, beta=pt.exp(-log_lam / k)), lower=None,
                    upper=upper, observed=patients.time, dims="patient")
    return model


# --------------------------------------------------------------------------------------------
# piecewise exponential on sufficient statistics


def pwe_cuts(spec: AnalysisSpec, patients: PatientTable) -> np.ndarray:
    """The spec's interior cut points: ``cuts_months`` as given, or ``cuts = {method =
    "quantiles", count = N}`` → N − 1 cut points at quantiles of the observed event times."""
    options = spec.model_options
    if options.get("cuts_months") is not None:
        return check_cuts(options["cuts_months"])
    return quantile_cuts(patients, int(options["cuts"]["count"]))


def centred_random_walk(steps: Any) -> Any:
    """w − mean(w) with w_0 = 0, w_j = Σ_{k<j} steps_k along the last axis (J−1 → J)."""
    walk = pt.concatenate([pt.zeros((*steps.shape[:-1], 1)), pt.cumsum(steps, axis=-1)], axis=-1)
    return walk - walk.mean(axis=-1, keepdims=True)


def pwe_centring(cells: Any, n_sites: int, n_arms: int, n_intervals: int
                 ) -> dict[str, np.ndarray]:
    """Data-adaptive partial centring weights (see :func:`~bayes_ablation.endpoints.hierarchy.
    scaled_normal`) from crude per-block estimates on the cells: the optimal weight of a
    normal random effect is w = σ²/(σ² + s²) (Papaspiliopoulos, Roberts & Sköld 2007) with s²
    the sampling variance of its data; here s² ≈ 1/events. Small trials get non-centred
    effects (w → 0), very large ones centred (w → 1); the prior is the same either way."""
    ev = np.zeros((n_sites, n_arms, n_intervals))
    ex = np.zeros((n_sites, n_arms, n_intervals))
    idx = (cells["site_idx"].to_numpy(), cells["arm_idx"].to_numpy(),
           cells["interval_idx"].to_numpy())
    np.add.at(ev, idx, cells["events"].to_numpy(float))
    np.add.at(ex, idx, cells["exposure_months"].to_numpy(float))
    half = 0.5                                                     # continuity correction
    # baseline random walk: crude log rate per interval (all arms), its increments
    e_j, x_j = ev.sum((0, 1)) + half, ex.sum((0, 1)) + half
    r = np.log(e_j / x_j)
    w_hazard = moment_centring(np.diff(r), 1 / e_j[:-1] + 1 / e_j[1:])
    # per-interval log HR increments, per treatment
    e_aj, x_aj = ev.sum(0) + half, ex.sum(0) + half               # (arm, interval)
    lhr = np.log(e_aj[1:] / x_aj[1:]) - np.log(e_aj[:1] / x_aj[:1])
    v = 1 / e_aj[1:] + 1 / e_aj[:1]
    w_hr = np.stack([moment_centring(np.diff(lhr[a]), v[a, :-1] + v[a, 1:])
                     for a in range(n_arms - 1)]) if n_arms > 1 else np.zeros((0, n_intervals - 1))
    # sites: log observed/expected under arm × interval rates
    rate = e_aj / x_aj
    w_site, w_site_arm = site_centring(ev.sum(-1), (ex * rate[None]).sum(-1))
    anchor = e_j / e_j.sum()
    anchor_hr = 1 / v / (1 / v).sum(-1, keepdims=True)
    return {"log_hazard": w_hazard, "log_hr": w_hr, "site": w_site, "site_arm": w_site_arm,
            "anchor": anchor, "anchor_hr": anchor_hr}


def pwe_cell_logp(value: Any, log_rate: Any, log_exposure: Any) -> Any:
    """Cell log-likelihood D log μ/E − μ with μ = exp(log_rate + log E): the Poisson log-pmf
    without its parameter-free terms, i.e. the sum of the cell's per-patient log-likelihoods."""
    return value * log_rate - pt.exp(log_rate + log_exposure)


def pwe_cell_random(log_rate: Any, log_exposure: Any, rng: np.random.Generator | None = None,
                    size: Any = None) -> np.ndarray:
    """Replicated event counts per cell: D ~ Poisson(E λ e^η)."""
    rng = rng if rng is not None else np.random.default_rng()
    return rng.poisson(np.exp(log_rate + log_exposure), size=size).astype(float)


def build_pwe_model(spec: AnalysisSpec, patients: PatientTable, *,
                    cuts_months: Any = None, cells: Any = None) -> pm.Model:
    """Hierarchical piecewise-exponential PH model on aggregated cells (module docstring).

    ``cuts_months``/``cells`` may be passed when already computed (e.g. timing the aggregation
    separately); by default they come from the spec and :func:`~bayes_ablation.data.aggregate.
    aggregate`.
    """
    cuts = pwe_cuts(spec, patients) if cuts_months is None else check_cuts(cuts_months)
    if cuts.size < 1:
        raise ValueError("the piecewise-exponential model needs at least one cut point")
    if cells is None:
        cells = aggregate(patients, cuts)
    x_patients, covariate_names, _ = patients.design_matrix()
    x_cells, _ = cell_design(cells, patients)
    coords = patient_coords(patients, covariate_names, subgroup_columns(spec)) | {
        "interval": interval_labels(cuts),
        "cut": [f"{c:g}" for c in cuts],
        "cell": np.arange(len(cells)),
    }
    time_varying = bool(spec.model_options.get("time_varying_hr", False))
    n_int = len(cuts) + 1
    mode = spec.model_options.get("parameterisation", "auto")
    if mode == "auto":
        w = pwe_centring(cells, len(patients.sites), len(patients.arms), n_int)
    else:
        fill = 1.0 if mode == "centred" else 0.0
        n_t = len(patients.arms) - 1
        w = {"log_hazard": np.full(n_int - 1, fill), "log_hr": np.full((n_t, n_int - 1), fill),
             "site": np.full(len(patients.sites), fill),
             "site_arm": np.full((len(patients.sites), n_t), fill),
             "anchor": np.full(n_int, 1.0 / n_int),
             "anchor_hr": np.full((n_t, n_int), 1.0 / n_int)}
    with pm.Model(coords=coords) as model:
        # per-patient data (outside the likelihood; see module docstring)
        pm.Data("arm_idx", patients.arm_idx, dims="patient")
        pm.Data("site_idx", patients.site_idx, dims="patient")
        pm.Data("event", patients.event.astype(float), dims="patient")
        pm.Data("time_months", patients.time, dims="patient")
        pm.Data("x", x_patients, dims=("patient", "covariate"))
        pm.Data("interval_start", np.concatenate([[0.0], cuts]), dims="interval")
        cell_subgroups = None
        if subgroup_columns(spec):
            subgroup_data(spec, patients, "patient")     # per patient (PPC, LOO, estimands)
            cell_subgroups = (
                pm.Data("cell_subgroup_indicator", cells[subgroup_columns(spec)].to_numpy(float),
                        dims=("cell", "subgroup")),
                model["subgroup_mean"])
        # sufficient statistics
        cell_arm = pm.Data("cell_arm_idx", cells["arm_idx"].to_numpy(), dims="cell")
        cell_site = pm.Data("cell_site_idx", cells["site_idx"].to_numpy(), dims="cell")
        cell_interval = pm.Data("cell_interval_idx", cells["interval_idx"].to_numpy(), dims="cell")
        cell_x = pm.Data("cell_x", x_cells, dims=("cell", "covariate"))
        log_exposure = pm.Data("cell_log_exposure", np.log(cells["exposure_months"].to_numpy()),
                               dims="cell")
        events = pm.Data("cell_events", cells["events"].to_numpy(dtype=float), dims="cell")

        # parameterisation weights (data: swapped in with the data by a cached compiled model)
        w_hazard = pm.Data("centring_log_hazard", w["log_hazard"], dims="cut")
        w_site = pm.Data("centring_site", w["site"], dims="site")
        w_site_arm = pm.Data("centring_site_arm", w["site_arm"], dims=("site", "treatment"))
        w_hr = pm.Data("centring_log_hr", w["log_hr"], dims=("treatment", "cut"))
        w_anchor = pm.Data("anchor_log_hazard", w["anchor"], dims="interval")
        sigma_rw = prior("sigma_log_hazard_rw", spec.priors["sigma_log_hazard_rw"])
        steps = scaled_normal("z_log_hazard", sigma_rw, "cut", w_hazard)
        walk = centred_random_walk(steps)
        level_prior = spec.priors["log_hazard_mean"]
        if level_prior.family in LOCATION_FAMILIES:
            shift = pt.sum(w_anchor * walk)
            anchor = shifted_prior("log_hazard_anchor", level_prior, shift)
            level = pm.Deterministic("log_hazard_mean", anchor - shift)
        else:
            level = prior("log_hazard_mean", level_prior)
        log_hazard = pm.Deterministic("log_hazard", level + walk, dims="interval")
        treatment_effect = deviation_full = None
        if time_varying:
            w_anchor_hr = pm.Data("anchor_log_hr", w["anchor_hr"], dims=("treatment", "interval"))
            sigma_hr = prior("sigma_log_hr_rw", spec.priors["sigma_log_hr_rw"])
            steps_hr = scaled_normal("z_log_hr", sigma_hr, ("treatment", "cut"), w_hr)
            deviation = centred_random_walk(steps_hr)
            hr_prior = spec.priors["log_hr"]
            if hr_prior.family in LOCATION_FAMILIES:
                shift_hr = pt.sum(w_anchor_hr * deviation, axis=-1)
                anchor_hr = shifted_prior("log_hr_anchor", hr_prior, shift_hr, dims="treatment")
                log_hr = pm.Deterministic("log_hr", anchor_hr - shift_hr, dims="treatment")
                pm.Deterministic("hr", pt.exp(log_hr), dims="treatment")
                treatment_effect = pt.concatenate([pt.zeros(1), log_hr])[cell_arm]
            deviation_full = pt.concatenate([pt.zeros((1, len(cuts) + 1)), deviation], axis=0)
        eta = linear_predictor(spec, cell_arm, cell_site, cell_x, len(covariate_names),
                               centring=(w_site, w_site_arm), treatment_effect=treatment_effect,
                               subgroups=cell_subgroups)
        if time_varying:
            log_hr_interval = pm.Deterministic(
                "log_hr_interval", model["log_hr"][:, None] + deviation,
                dims=("treatment", "interval"))
            pm.Deterministic("hr_interval", pt.exp(log_hr_interval), dims=("treatment", "interval"))
            eta = eta + deviation_full[cell_arm, cell_interval]
        log_rate = log_hazard[cell_interval] + eta
        pm.CustomDist("events", log_rate, log_exposure, logp=pwe_cell_logp,
                      random=pwe_cell_random, observed=events, dims="cell")
    return model
