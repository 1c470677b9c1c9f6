"""PFS estimands from posterior draws: log H_a(t) of each family (Weibull:
log H = α + k (log t − log t_ref) + β_a; piecewise exponential: log Σ_j λ_j e^{β_a,j} e_j(t)),
S(t), RMST, median and their differences for an average and a new site, HRs, P(HR < c).

With ``[analysis] design = "cohort"`` (treatment chosen by clinicians) the causal estimands
are added, by g-computation over the analysed patients (:func:`cohort_estimands`):

* **ATE** (average treatment effect in the analysed population): S̄_a(t) = Σ_i w_i
  S(t | a, x_i, u_s(i)) for every arm a, all patients i, Bayesian-bootstrap weights w ~
  Dirichlet(1, …, 1) drawn afresh for every posterior draw (the covariate distribution's own
  uncertainty); differences, RMST and median of S̄_a.
* **ATT** (effect in the treated): the same over the patients who received treatment b only
  (S̄ under b vs under the reference arm, both averaged over b's patients).

Each patient keeps the effect of their own site (u_s, and v_s,a with site × arm slopes): the
estimands refer to this cohort's sites. The hazard ratio stays a *conditional* effect (given
covariates and site), labelled so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from bayes_ablation.endpoints.registry import family, family_part
from bayes_ablation.endpoints.subgroups import (
    arm_offsets,
    cdata_subgroups,
    subgroup_estimands,
    subgroup_probabilities,
)
from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.survival.estimands import (
    MEDIAN_GRID_POINTS,
    arms_of,
    contrast,
    covariate_offsets,
    log_hr_full,
    median_time,
    posterior_of,
    prob_below,
    rmst_nodes,
    rmst_quadrature,
    site_sd_by_arm,
    survival_curves_by_sd,
)

SITE_TARGETS = ("average", "new")


def weibull_log_cumhaz(post: xr.Dataset, times: np.ndarray, spec: AnalysisSpec) -> xr.DataArray:
    """log H_a(t) = α + k (log t − log t_ref) + β_a."""
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    time = xr.DataArray(np.asarray(times, float), dims="time", coords={"time": times})
    arms = arms_of(post)
    return (post["log_cumhaz_ref"] + post["weibull_shape"] * (np.log(time) - np.log(t_ref))
            + log_hr_full(post, arms)).transpose("chain", "draw", "arm", "time")


def pwe_cuts(post: xr.Dataset) -> np.ndarray:
    """Interior cut points of a piecewise-exponential fit (``analysis.fit`` stores them in the
    posterior's attrs, since quantile cut points depend on the data)."""
    cuts = post.attrs.get("cuts_months")
    if cuts is None:
        raise KeyError("posterior attrs need 'cuts_months'; set by analysis.fit")
    return np.asarray(json.loads(cuts) if isinstance(cuts, str) else cuts, float)


def pwe_log_rate(post: xr.Dataset) -> xr.DataArray:
    """log hazard per arm and interval at an average site, x = 0, dims (chain, draw, arm,
    interval): log λ_j + log HR_a,j (per-interval log HR when time-varying)."""
    arms = arms_of(post)
    if "log_hr_interval" in post:
        zero = xr.zeros_like(post["log_hr_interval"].isel(treatment=0, drop=True))
        lhr = xr.concat([zero.expand_dims(arm=[arms[0]]),
                         post["log_hr_interval"].rename(treatment="arm")], dim="arm")
        lhr = lhr.assign_coords(arm=list(arms))
    else:
        lhr = log_hr_full(post, arms)
    return (post["log_hazard"] + lhr).transpose("chain", "draw", "arm", "interval")


def pwe_log_cumhaz(post: xr.Dataset, times: np.ndarray, spec: AnalysisSpec) -> xr.DataArray:
    """log H_a(t) = log Σ_j exp(log λ_j + log HR_a,j) e_j(t), e_j(t) = time spent in I_j by t."""
    from bayes_ablation.data.aggregate import exposure_matrix

    times = np.asarray(times, float)
    exposure = exposure_matrix(times, pwe_cuts(post))                      # (time, interval)
    log_rate = pwe_log_rate(post)
    cumhaz = np.einsum("cdaj,tj->cdat", np.exp(log_rate.values), exposure)
    return xr.DataArray(np.log(cumhaz), dims=("chain", "draw", "arm", "time"),
                        coords={"chain": log_rate["chain"], "draw": log_rate["draw"],
                                "arm": log_rate["arm"], "time": times})




def pwe_extra_estimands(post: xr.Dataset, spec: AnalysisSpec) -> dict[str, xr.DataArray]:
    """Hazard per interval by arm (average site, x = 0), and per-interval HRs when the
    treatment effect is time-varying."""
    out = {"hazard": np.exp(pwe_log_rate(post)).rename("hazard")}
    if "log_hr_interval" in post:
        out["hr_interval"] = np.exp(post["log_hr_interval"]).rename("hr_interval")
    return out




def survival_at(idata: Any, spec: AnalysisSpec, times: np.ndarray,
                site_target: str = "average") -> xr.DataArray:
    """Posterior draws of S_arm(t) (chain, draw, arm, time), standardised over covariates,
    for an ``average`` or a ``new`` site."""
    return survival_at_sites(idata, spec, times, (site_target,))[site_target]


def survival_at_sites(idata: Any, spec: AnalysisSpec, times: np.ndarray,
                      site_targets: Sequence[str] = SITE_TARGETS) -> dict[str, xr.DataArray]:
    """:func:`survival_at` for each of ``site_targets``, the covariate mix computed once."""
    post = posterior_of(idata)
    x = None
    if "constant_data" in idata.children and "x" in idata.constant_data:
        x = np.asarray(idata.constant_data["x"].values)
    sds = [None if target == "average" else site_sd_by_arm(post, arms_of(post))
           for target in site_targets]
    log_cumhaz = family_part(spec.model, "log_cumhaz")(post, np.asarray(times, float), spec)
    offsets = covariate_offsets(post, x)
    if "delta_subgroup" in post:  # subgroup interactions: each arm over its own offsets
        indicator, mean = cdata_subgroups(idata.constant_data)
        offsets = arm_offsets(post, x, indicator, mean, arms_of(post))
    curves = survival_curves_by_sd(log_cumhaz, offsets, sds)
    return dict(zip(site_targets, curves, strict=True))


def site_target_estimands(idata: Any, spec: AnalysisSpec, all_times: np.ndarray,
                          sizes: tuple[int, int], rmst_weights: np.ndarray
                          ) -> dict[str, xr.DataArray]:
    """S(t), RMST and median per arm standardised over the covariate mix, and their
    differences, for an average and a new site (the randomised design's estimands)."""
    arms = arms_of(posterior_of(idata))
    n_report, n_rmst = sizes
    report_times = all_times[:n_report]
    rmst_times = all_times[n_report:n_report + n_rmst]
    grid_median = all_times[n_report + n_rmst:]
    out: dict[str, xr.DataArray] = {}
    per_site: dict[str, dict[str, xr.DataArray]] = {"survival": {}, "rmst": {}, "median": {}}
    # one evaluation of both targets on all times (the curves are the expensive part)
    by_target = survival_at_sites(idata, spec, all_times, SITE_TARGETS)
    for target in SITE_TARGETS:
        curves = by_target[target].drop_vars("time")
        per_site["survival"][target] = curves.isel(time=slice(0, n_report)).assign_coords(
            time=report_times)
        rmst_curve = curves.isel(time=slice(n_report, n_report + n_rmst)).assign_coords(
            time=rmst_times)
        per_site["rmst"][target] = rmst_quadrature(rmst_curve, rmst_weights)
        median_curve = curves.isel(time=slice(n_report + n_rmst, None)).assign_coords(
            time=grid_median)
        per_site["median"][target] = median_time(median_curve, scale="cloglog")
    for name, by_target in per_site.items():
        stacked = xr.concat([by_target[t] for t in SITE_TARGETS], dim="site_target")
        out[name] = stacked.assign_coords(site_target=list(SITE_TARGETS))
    out["survival_difference"] = contrast(out["survival"], arms)
    out["rmst_difference"] = contrast(out["rmst"], arms)
    return out


def compute_estimands(idata: Any, spec: AnalysisSpec) -> xr.Dataset:
    """Every estimand the spec asks for, as posterior draws (dims chain, draw, …)."""
    post = posterior_of(idata)
    est = spec.estimands
    max_time = float(np.max(idata.constant_data["time_months"].values)) if "constant_data" in \
        idata.children and "time_months" in idata.constant_data else est.rmst_tau_months
    report_times = np.asarray(est.times_months, float)
    rmst_times, rmst_weights = rmst_nodes(est.rmst_tau_months)
    grid_median = np.geomspace(0.05, max(10 * max_time, 2 * est.rmst_tau_months, 120.0),
                               MEDIAN_GRID_POINTS)
    n_report, n_rmst = report_times.size, rmst_times.size
    all_times = np.concatenate([report_times, rmst_times, grid_median])

    out: dict[str, xr.DataArray] = {
        "log_hr": post["log_hr"],
        "hr": np.exp(post["log_hr"]),
    }
    if spec.design == "cohort":
        # the causal estimands replace the site-target standardisations (in a cohort those
        # would be g-computations at u = 0 without the covariate distribution's uncertainty)
        out.update(cohort_estimands(idata, spec, all_times, (n_report, n_rmst), rmst_weights))
        for name in ("log_hr", "hr"):
            out[name] = out[name].copy()
            out[name].attrs["label_name"] = f"conditional {name}"
    else:
        out.update(site_target_estimands(idata, spec, all_times, (n_report, n_rmst),
                                         rmst_weights))
    extra = family(spec.model).extra_estimands
    if extra is not None:
        out.update(extra(post, spec))
    out.update(subgroup_estimands(post, idata.constant_data))
    ds = xr.Dataset(out)
    ds["time"].attrs["units"] = "months"
    ds.attrs["rmst_tau_months"] = est.rmst_tau_months
    ds.attrs["hr_thresholds"] = list(est.hr_thresholds)
    return ds


#: words of the causal estimands (summary.json ``estimand_notes``)
CAUSAL_NOTES = {
    "ATE": "average treatment effect over the analysed patients: every arm's survival "
           "g-computed over all patients' covariates and sites, Bayesian-bootstrap "
           "(Dirichlet(1,…,1)) weights per posterior draw",
    "ATT": "average treatment effect in the treated: survival under the treatment and under "
           "the reference arm, g-computed over the patients who received the treatment",
    "hr": "conditional hazard ratio (given covariates and site), not a marginal effect",
}


def cohort_estimands(idata: Any, spec: AnalysisSpec, all_times: np.ndarray,
                     sizes: tuple[int, int], rmst_weights: np.ndarray
                     ) -> dict[str, xr.DataArray]:
    """ATE and ATT of S(t), RMST and median (and their differences) by g-computation with
    Bayesian-bootstrap weights (module docstring). ``all_times`` = report times, RMST nodes,
    median grid (``sizes`` = counts of the first two), as in :func:`compute_estimands`."""
    from bayes_ablation.survival.estimands import (
        bayesian_bootstrap_weights,
        g_computation_survival,
        unit_offsets,
    )

    post = posterior_of(idata)
    arms = arms_of(post)
    n_report, n_rmst = sizes
    report_times = all_times[:n_report]
    rmst_times = all_times[n_report:n_report + n_rmst]
    grid_median = all_times[n_report + n_rmst:]
    log_cumhaz = family_part(spec.model, "log_cumhaz")(post, all_times, spec).drop_vars("time")
    cdata = idata.constant_data
    site = np.asarray(cdata["site_idx"].values, np.int64)
    x = np.asarray(cdata["x"].values, float) if "x" in cdata else None
    offsets, pattern = unit_offsets(post, x, site, arms)
    arm_idx = np.asarray(cdata["arm_idx"].values, np.int64)
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    seed = int(spec.sampler.seed)

    def summaries(curves: xr.DataArray) -> dict[str, xr.DataArray]:
        rmst_curve = curves.isel(time=slice(n_report, n_report + n_rmst)).assign_coords(
            time=rmst_times)
        return {
            "survival": curves.isel(time=slice(0, n_report)).assign_coords(time=report_times),
            "rmst": rmst_quadrature(rmst_curve, rmst_weights),
            "median": median_time(curves.isel(time=slice(n_report + n_rmst, None))
                                  .assign_coords(time=grid_median), scale="cloglog"),
        }

    out: dict[str, xr.DataArray] = {}
    ate_w = bayesian_bootstrap_weights(n_draws, np.ones(arm_idx.size, bool), seed + 1_000_003)
    ate = summaries(g_computation_survival(log_cumhaz, offsets, pattern, ate_w))
    for name, value in ate.items():
        out[f"ate_{name}"] = value
        out[f"ate_{name}_difference"] = contrast(value, arms)
    att: dict[str, list[xr.DataArray]] = {"survival": [], "rmst": [], "median": []}
    for b in range(1, len(arms)):
        w = bayesian_bootstrap_weights(n_draws, arm_idx == b, seed + 1_000_003 + b)
        curves = g_computation_survival(log_cumhaz.isel(arm=[0, b]),
                                        offsets.isel(arm=[0, b]), pattern, w)
        for name, value in summaries(curves).items():
            att[name].append(contrast(value, [arms[0], arms[b]]))
    for name, values in att.items():
        out[f"att_{name}_difference"] = xr.concat(values, dim="treatment")
    for name, value in out.items():
        kind, _, rest = name.partition("_")
        value.attrs["label_name"] = f"{kind.upper()} {rest}"
        value.attrs["causal"] = CAUSAL_NOTES[kind.upper()]
    return out


def probabilities(estimands: xr.Dataset) -> dict[str, float]:
    """P(HR < c) for each treatment and threshold, keyed 'P(HR<c) [treatment]'."""
    probs = prob_below(estimands["hr"], estimands.attrs["hr_thresholds"])
    out = {}
    for treatment in probs["treatment"].values:
        for c in probs["threshold"].values:
            out[f"P(HR<{c:g}) [{treatment}]"] = float(probs.sel(treatment=treatment,
                                                                threshold=c))
    out.update(subgroup_probabilities(estimands))
    return out
