"""Local recurrence estimands with death as a competing event (pure functions of draws).

Per posterior draw, for arm a (reference arm first):

* **LR hazard ratio** exp(β_a): conditional on the patient frailty and the site (the model's
  parameter); HR < 1 favours the treatment arm. ``P(HR<c)`` per threshold.
* **Cumulative incidence of LR per lesion**, accounting for death (not 1 − KM):

      CIF_LR,a(t) = ∫₀ᵗ h_LR,a(s) S_LR,a(s) S_D,a(s) ds = ∫₀ᵗ S_D,a(s) dF_LR,a(s),

  F_LR = 1 − S_LR. On a time grid the increments of F_LR are exact and S_D is taken at the
  midpoint of each step (error O(step²); with no deaths, S_D ≡ 1 and CIF = 1 − S_LR exactly).
  Lower is better: a CIF difference (treatment − reference) < 0 favours the treatment arm.
* **Death-free survival** S_D,a(t) (the competing event's survival).

Two lesion targets (dim ``lesion_target``):

* ``reference``: the spec's reference lesion (``[model] reference_lesion``, e.g. 2 cm,
  margin ≥ 5 mm, MWA);
* ``standardised``: averaged over the covariates of all analysed lesions (both arms pooled:
  the g-formula under randomisation). More than ``max_patterns`` distinct covariate patterns
  are compressed to ``max_patterns`` equal-size groups of lesions ordered by their
  posterior-mean linear predictor x γ̄, each represented by its mean x (tested against the
  exact average).

Three populations (dim ``population``), differing in how the random effects enter:

* ``typical_patient``: v = 0, u = 0 — a patient of median frailty at an average site
  (conditional quantity);
* ``average_site``: integrated over the patient frailty v ~ N(0, σ²_patient) at an average
  site (u = 0): the population-averaged risk of a lesion in this trial's patients;
* ``new_site``: integrated over v and a new site's u ~ N(0, σ²_site [+ σ²_site_arm]).

With ``[analysis] design = "cohort"`` the causal estimands are added (:func:`cohort_cif`):
``ate_cif_lr`` (every analysed lesion under each arm, frailty integrated, each lesion at its own
site) and its difference, and ``att_cif_lr_difference`` (the lesions of the patients who
received the treatment), by g-computation with cluster Bayesian-bootstrap weights: Dirichlet(1,
…, 1) over the *patients*, one vector per posterior draw, each lesion carrying its patient's
weight (lesions of one patient are not independent). The LR hazard ratio is labelled
conditional.

Integration over v (+ u) is Gauss–Hermite per draw (order chosen per draw's sd for an error
≤ 1e-9, :mod:`bayes_ablation.survival.kernels`; was 16 nodes, off by up to 1e-3 at sd 2); the death hazard
carries no frailty, so the integral passes inside: CIF = ∫ S_D dE_v[F_LR]. The grid step is
``GRID_STEP_MONTHS`` (tested against closed forms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from bayes_ablation.endpoints.subgroups import subgroup_estimands
from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.survival.estimands import arms_of, contrast, log_hr_full, posterior_of, site_sd_by_arm
from bayes_ablation.survival.piecewise import DEFAULT_CUTS_MONTHS, exposure

POPULATIONS = ("typical_patient", "average_site", "new_site")
LESION_TARGETS = ("reference", "standardised")
GRID_STEP_MONTHS = 0.5
#: Gauss–Hermite nodes for the frailty (+ site) integral: max abs error 4e-5 on
#: E[exp(−c e^{σZ})] for σ ≤ 1.6, c ≤ 2 (24 nodes: 3e-5)
MAX_PATTERNS = 16


def time_grid(times: Sequence[float], step: float = GRID_STEP_MONTHS) -> np.ndarray:
    """0, step, 2·step, … up to max(times), with every report time included exactly."""
    t_max = float(np.max(times))
    grid = np.arange(0.0, t_max + step / 2, step)
    return np.unique(np.concatenate([grid, np.asarray(times, float)]))


def _time(times: np.ndarray) -> xr.DataArray:
    return xr.DataArray(np.asarray(times, float), dims="time", coords={"time": times})


def lr_log_cumhaz(post: xr.Dataset, times: np.ndarray, spec: AnalysisSpec) -> xr.DataArray:
    """log H_LR,a(t) for x = 0, v = u = 0 (dims chain, draw, arm, time; −inf at t = 0).

    ``lr_weibull``: α + k (log t − log t_ref) + β_a; ``lr_pwe``: log Σ_j λ_j E_j(t) + β_a.
    """
    arms_effect = log_hr_full(post, arms_of(post))
    if spec.model == "lr_pwe":
        cuts = spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS)
        e = xr.DataArray(exposure(np.asarray(times, float), cuts), dims=("time", "interval"),
                         coords={"time": np.asarray(times, float)})
        rates = np.exp(post["log_hazard_baseline"]).drop_vars("interval", errors="ignore")
        with np.errstate(divide="ignore"):
            base = np.log(xr.dot(e, rates, dim="interval"))
        return (base + arms_effect).transpose("chain", "draw", "arm", "time")
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    with np.errstate(divide="ignore"):
        log_t = np.log(_time(times))
    return (post["log_cumhaz_ref"] + post["weibull_shape"] * (log_t - np.log(t_ref))
            + arms_effect).transpose("chain", "draw", "arm", "time")


def death_survival(post: xr.Dataset, times: np.ndarray, spec: AnalysisSpec) -> xr.DataArray:
    """S_D,a(t) = exp(−exp(α_D + k_D (log t − log t_ref) + β_D,a))."""
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    arms = arms_of(post)
    zero = xr.zeros_like(post["death_log_hr"].isel(treatment=0, drop=True)).expand_dims(
        arm=[arms[0]])
    beta = xr.concat([zero, post["death_log_hr"].rename(treatment="arm")], dim="arm")
    beta = beta.assign_coords(arm=list(arms))
    with np.errstate(divide="ignore"):
        log_t = np.log(_time(times))
    log_h = (post["death_log_cumhaz_ref"] + post["death_weibull_shape"]
             * (log_t - np.log(t_ref)) + beta)
    return np.exp(-np.exp(log_h)).transpose("chain", "draw", "arm", "time").rename(
        "death_free_survival")


def cumulative_incidence(lr_survival: xr.DataArray, death_surv_mid: xr.DataArray
                         ) -> xr.DataArray:
    """CIF(t_m) = Σ_{k<m} S_D(mid_k) · (S_LR(t_k) − S_LR(t_{k+1})) on the grid of
    ``lr_survival`` (which starts at t = 0). ``death_surv_mid`` holds S_D at the grid's
    step midpoints (dim ``step``, one fewer than ``time``)."""
    s = lr_survival.transpose(..., "time").values
    d = death_surv_mid.transpose(..., "step").values
    increments = s[..., :-1] - s[..., 1:]
    cif = np.concatenate([np.zeros((*s.shape[:-1], 1)), np.cumsum(d * increments, axis=-1)],
                         axis=-1)
    return xr.DataArray(cif, dims=lr_survival.transpose(..., "time").dims,
                        coords=lr_survival.coords, name="cif_lr")


def lesion_mix_offsets(post: xr.Dataset, x: np.ndarray | None,
                       max_patterns: int = MAX_PATTERNS) -> xr.DataArray:
    """x γ per draw over the analysed lesions' covariate patterns (dims chain, draw, pattern);
    attribute ``weights`` = each pattern's share of lesions. Exact when there are at most
    ``max_patterns`` distinct patterns; otherwise lesions are grouped by their posterior-mean
    x γ̄ into ``max_patterns`` equal-size groups represented by their mean x."""
    if x is None or x.size == 0 or "beta_covariates" not in post:
        out = xr.zeros_like(post["log_hr"].isel(treatment=0, drop=True)).expand_dims(pattern=1)
        out.attrs["weights"] = np.ones(1)
        return out.transpose("chain", "draw", "pattern")
    x = np.asarray(x, float)
    patterns, counts = np.unique(x, axis=0, return_counts=True)
    if len(patterns) > max_patterns:
        gamma_bar = post["beta_covariates"].mean(("chain", "draw")).values
        order = np.argsort(x @ gamma_bar, kind="stable")
        groups = np.array_split(order, max_patterns)
        patterns = np.array([x[g].mean(axis=0) for g in groups])
        counts = np.array([len(g) for g in groups])
    return _offsets(post, patterns, counts / counts.sum())


def reference_offsets(post: xr.Dataset, x_ref: np.ndarray | None) -> xr.DataArray:
    """x_ref γ per draw for the reference lesion (one pattern, weight 1)."""
    if x_ref is None or np.size(x_ref) == 0 or "beta_covariates" not in post:
        return lesion_mix_offsets(post, None)
    return _offsets(post, np.atleast_2d(np.asarray(x_ref, float)), np.ones(1))


def _offsets(post: xr.Dataset, patterns: np.ndarray, weights: np.ndarray) -> xr.DataArray:
    beta = post["beta_covariates"]
    beta = beta.assign_coords(covariate=np.arange(beta.sizes["covariate"])).drop_vars(
        "covariate")
    xp = xr.DataArray(patterns, dims=("pattern", "covariate"))
    out = xr.dot(xp, beta, dim="covariate").transpose("chain", "draw", "pattern")
    out.attrs["weights"] = np.asarray(weights, float)
    return out


def random_effect_sd(post: xr.Dataset, population: str) -> xr.DataArray | None:
    """sd of the random part of a lesion's log LR hazard, dims (chain, draw, arm); None for
    ``typical_patient``."""
    arms = arms_of(post)
    if population == "typical_patient":
        return None
    sigma_p = post["sigma_patient"] if "sigma_patient" in post else 0.0
    var = xr.zeros_like(log_hr_full(post, arms)) + sigma_p ** 2
    if population == "new_site":
        var = var + site_sd_by_arm(post, arms) ** 2
    elif population != "average_site":
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")
    return np.sqrt(var).transpose("chain", "draw", "arm")


def mixture_survival(log_cumhaz: xr.DataArray, offsets: xr.DataArray,
                     sd: xr.DataArray | None) -> xr.DataArray:
    """S̄_a(t) = Σ_p w_p E_z[exp(−exp(log H_a(t) + o_p + sd_a z))], z ~ N(0, 1), per draw.

    ``log_cumhaz`` (chain, draw, arm, time); ``offsets`` (chain, draw, pattern) with attribute
    ``weights``, or (chain, draw, arm, pattern) for arm-specific offsets (treatment-by-
    subgroup interactions); ``sd`` (chain, draw, arm) or None (no random effect). The PFS
    models' compiled kernel (:func:`bayes_ablation.survival.estimands.survival_curves`):
    one pattern exactly (Gauss–Hermite order chosen per draw for an error ≤ 1e-9), several
    binned (|ΔS| ≤ 2e-6: the patient frailty's sd is often near 1, where the exact sum needs
    48–64 nodes per pattern)."""
    from bayes_ablation.survival.estimands import survival_curves

    return survival_curves(log_cumhaz, offsets, sd, binned_from=2)


def lr_cif(post: xr.Dataset, spec: AnalysisSpec, times: np.ndarray, offsets: xr.DataArray,
           population: str) -> xr.DataArray:
    """CIF_LR,a(t) at ``times`` (dims chain, draw, arm, time) for one lesion target (given by
    its ``offsets``) and one population."""
    grid = time_grid(times)
    log_h = lr_log_cumhaz(post, grid, spec)
    surv = mixture_survival(log_h, offsets, random_effect_sd(post, population))
    mid = 0.5 * (grid[:-1] + grid[1:])
    s_d = death_survival(post, mid, spec).rename(time="step")
    cif = cumulative_incidence(surv, s_d)
    return cif.sel(time=np.asarray(times, float))


def target_offsets(post: xr.Dataset, cdata: Any, max_patterns: int = MAX_PATTERNS
                   ) -> dict[str, xr.DataArray]:
    """Offsets of the two lesion targets: ``reference`` (the reference lesion) and
    ``standardised`` (the analysed lesions' mix). With subgroups they are per arm (dims chain,
    draw, arm, pattern): the reference lesion's subgroup levels (or their mean) and each
    lesion's own levels enter through the main effects and the treatment interactions."""
    x = np.asarray(cdata["x"].values) if "x" in cdata else None
    x_ref = np.asarray(cdata["x_reference"].values) if "x_reference" in cdata else None
    if "delta_subgroup" not in post:
        return {"reference": reference_offsets(post, x_ref),
                "standardised": lesion_mix_offsets(post, x, max_patterns)}
    from bayes_ablation.endpoints.subgroups import arm_offsets, cdata_subgroups

    arms = arms_of(post)
    indicator, mean = cdata_subgroups(cdata)
    z_ref = np.asarray(cdata["subgroup_reference"].values, float) + mean
    x_ref_row = None if x_ref is None else np.atleast_2d(np.asarray(x_ref, float))
    return {"reference": arm_offsets(post, x_ref_row, z_ref[None, :], mean, arms),
            "standardised": arm_offsets(post, x, indicator, mean, arms, max_patterns)}


def cohort_cif(idata: Any, post: xr.Dataset, spec: AnalysisSpec, times: np.ndarray
               ) -> dict[str, xr.DataArray]:
    """ATE and ATT of the per-lesion CIF of LR with death competing (module docstring):
    CIF̄_a(t) = Σ_k S_D,a(mid_k) · (F̄_a(t_k+1) − F̄_a(t_k)), F̄_a = 1 − Σ_j w_j
    E_v[S_LR(t | a, x_j, u_s(j), v)] (the death hazard has no covariates, so the mixture
    passes inside the CIF integral)."""
    from bayes_ablation.survival.estimands import (
        bayesian_bootstrap_weights,
        g_computation_survival,
        unit_offsets,
    )

    arms = arms_of(post)
    cdata = idata.constant_data
    patient_of = np.asarray(cdata["lesion_patient_idx"].values, np.int64)
    site = np.asarray(cdata["lesion_site_idx"].values, np.int64)
    x = np.asarray(cdata["x"].values, float) if "x" in cdata else None
    patient_arm = np.asarray(cdata["arm_idx"].values, np.int64)
    offsets, pattern = unit_offsets(post, x, site, arms)
    grid = time_grid(times)
    log_h = lr_log_cumhaz(post, grid, spec)
    sd = random_effect_sd(post, "average_site")
    mid = 0.5 * (grid[:-1] + grid[1:])
    s_d = death_survival(post, mid, spec).rename(time="step")
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    seed = int(spec.sampler.seed)

    def lesion_weights(members: np.ndarray, offset: int) -> np.ndarray:
        w = bayesian_bootstrap_weights(n_draws, members, seed + 1_000_003 + offset)[:, patient_of]
        return w / w.sum(axis=1, keepdims=True)

    def cif(arm_sel: list[int], weights: np.ndarray) -> xr.DataArray:
        surv = g_computation_survival(log_h.isel(arm=arm_sel), offsets.isel(arm=arm_sel),
                                      pattern, weights, sd.isel(arm=arm_sel))
        return cumulative_incidence(surv, s_d.isel(arm=arm_sel)).sel(
            time=np.asarray(times, float))

    everyone = np.ones(patient_arm.size, bool)
    ate = cif(list(range(len(arms))), lesion_weights(everyone, 0))
    out = {"ate_cif_lr": ate, "ate_cif_lr_difference": contrast(ate, arms)}
    att = []
    for b in range(1, len(arms)):
        with_lesions = patient_arm == b
        values = cif([0, b], lesion_weights(with_lesions, b))
        att.append(contrast(values, [arms[0], arms[b]]))
    out["att_cif_lr_difference"] = xr.concat(att, dim="treatment")
    notes = {"ATE": "all analysed lesions under each arm (frailty integrated, own sites); "
                    "cluster Bayesian bootstrap over patients",
             "ATT": "the lesions of the patients who received the treatment"}
    for name, value in out.items():
        kind, _, rest = name.partition("_")
        value.attrs["label_name"] = f"{kind.upper()} {rest}"
        value.attrs["causal"] = notes[kind.upper()]
    return out


def same_offsets(a: xr.DataArray, b: xr.DataArray) -> bool:
    """Whether two lesion targets have the same offsets and pattern weights (same CIF)."""
    return (a.dims == b.dims and a.shape == b.shape
            and np.array_equal(np.asarray(a.attrs["weights"]), np.asarray(b.attrs["weights"]))
            and np.array_equal(a.values, b.values))


def compute_lr_estimands(idata: Any, spec: AnalysisSpec, max_patterns: int = MAX_PATTERNS) -> xr.Dataset:
    """Every LR estimand of the spec, as posterior draws (see module docstring)."""
    post = posterior_of(idata)
    arms = arms_of(post)
    times = np.asarray(spec.estimands.times_months, float)
    cdata = idata.constant_data if "constant_data" in idata.children else {}
    offsets = target_offsets(post, cdata, max_patterns)
    by_target: list[xr.DataArray] = []
    for target in LESION_TARGETS:
        same = [i for i, done in enumerate(LESION_TARGETS[:len(by_target)])
                if same_offsets(offsets[done], offsets[target])]
        if same:  # e.g. no lesion covariates: the reference lesion is the standardised one
            by_target.append(by_target[same[0]])
            continue
        by_pop = [lr_cif(post, spec, times, offsets[target], pop) for pop in POPULATIONS]
        by_target.append(xr.concat(by_pop, dim="population").assign_coords(
            population=list(POPULATIONS)))
    cif = xr.concat(by_target, dim="lesion_target").assign_coords(
        lesion_target=list(LESION_TARGETS))
    cif = cif.transpose("chain", "draw", "lesion_target", "population", "arm", "time")
    out = {
        "log_hr": post["log_hr"],
        "hr": np.exp(post["log_hr"]),
        "cif_lr": cif,
        "cif_lr_difference": contrast(cif, arms),
        "death_free_survival": death_survival(post, times, spec),
        "death_hr": np.exp(post["death_log_hr"]),
        **subgroup_estimands(post, cdata),
    }
    if spec.design == "cohort":
        out.update(cohort_cif(idata, post, spec, times))
        for name in ("log_hr", "hr"):
            out[name] = out[name].copy()
            out[name].attrs["label_name"] = f"conditional {name}"
    ds = xr.Dataset(out)
    ds["time"].attrs["units"] = "months"
    ds.attrs["hr_thresholds"] = list(spec.estimands.hr_thresholds)
    ds.attrs["hr_meaning"] = "LR hazard ratio conditional on patient frailty and site"
    return ds


def lr_probabilities(estimands: xr.Dataset) -> dict[str, float]:
    """P(HR < c) of the LR hazard ratio per treatment and threshold (keys as
    :func:`estimands.probabilities`), and P(CIF difference < 0) (treatment lowers
    the LR incidence) for the standardised lesion, population-averaged at an average site."""
    from bayes_ablation.survival.estimands import prob_below

    probs = prob_below(estimands["hr"], estimands.attrs["hr_thresholds"])
    out = {}
    for treatment in probs["treatment"].values:
        for c in probs["threshold"].values:
            out[f"P(HR<{c:g}) [{treatment}]"] = float(
                probs.sel(treatment=treatment, threshold=c))
    diff = estimands["cif_lr_difference"].sel(lesion_target="standardised",
                                              population="average_site")
    for treatment in diff["treatment"].values:
        for t in diff["time"].values:
            p = float((diff.sel(treatment=treatment, time=t) < 0).mean())
            out[f"P(CIF_LR difference<0) [{treatment}, t={t:g}]"] = p
    from bayes_ablation.endpoints.subgroups import subgroup_probabilities

    out.update(subgroup_probabilities(estimands))
    return out
