"""Posterior predictive simulation of per-patient event times (pure NumPy over draws).

Used by posterior predictive checks (``diagnostics``) and by predictive probabilities in
interim monitoring. Each model family names a simulator (``Family.simulate_event_times``)
``(posterior draws, constant data, spec, rng) -> event times (sample, patient)`` of *uncensored*
event times; censoring is applied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from bayes_ablation.endpoints.registry import family_part
from bayes_ablation.endpoints.subgroups import cdata_subgroups, subgroup_eta
from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.survival.predictive import censoring_times, thin

Simulator = Callable[[xr.Dataset, xr.Dataset, AnalysisSpec, np.random.Generator], np.ndarray]
def linear_predictor(post: xr.Dataset, cdata: xr.Dataset) -> np.ndarray:
    """η (sample, patient) = β_arm + u_site (+ v_site,arm) + x γ from thinned draws."""
    arm = np.asarray(cdata["arm_idx"].values, dtype=int)
    site = np.asarray(cdata["site_idx"].values, dtype=int)
    log_hr = post["log_hr"].transpose("sample", "treatment").values
    full = np.concatenate([np.zeros((log_hr.shape[0], 1)), log_hr], axis=1)
    eta = full[:, arm]
    if "u_site" in post:
        eta = eta + post["u_site"].transpose("sample", "site").values[:, site]
    if "v_site_arm" in post:
        v = post["v_site_arm"].transpose("sample", "site", "treatment").values
        v_full = np.concatenate([np.zeros((*v.shape[:2], 1)), v], axis=2)
        eta = eta + v_full[:, site, arm]
    if "beta_covariates" in post and "x" in cdata and cdata["x"].size:
        beta = post["beta_covariates"].transpose("sample", "covariate").values
        eta = eta + beta @ np.asarray(cdata["x"].values, float).T
    if "delta_subgroup" in post:  # subgroup main effects and treatment interactions
        eta = eta + subgroup_eta(post, *cdata_subgroups(cdata), arm)
    return eta


def weibull_event_times(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec,
                        rng: np.random.Generator) -> np.ndarray:
    """T = (E / λ_i)^(1/k), log λ_i = α − k log t_ref + η_i."""
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    k = post["weibull_shape"].values[:, None]
    log_lam = (post["log_cumhaz_ref"].values[:, None] - k * np.log(t_ref)
               + linear_predictor(post, cdata))
    return (rng.exponential(size=log_lam.shape) / np.exp(log_lam)) ** (1.0 / k)


def pwe_log_rates(post: xr.Dataset, n_arms: int) -> np.ndarray:
    """Per-arm baseline log rates (sample, arm, interval): log λ_j plus the time-varying
    deviation log HR_a,j − log HR_a (the common log HR is in the linear predictor)."""
    log_hazard = post["log_hazard"].transpose("sample", "interval").values
    out = np.repeat(log_hazard[:, None, :], n_arms, axis=1)
    if "log_hr_interval" in post:
        dev = (post["log_hr_interval"] - post["log_hr"]).transpose(
            "sample", "treatment", "interval").values
        out[:, 1:, :] += dev
    return out


def pwe_event_times(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec,
                    rng: np.random.Generator) -> np.ndarray:
    """Invert the piecewise-linear cumulative hazard: with E ~ Exp(1), find the interval m
    where C_m ≤ E e^{−η_i} < C_{m+1} (C = baseline cumulative hazard of the patient's arm at the
    interval starts), then T = b_m + (E e^{−η_i} − C_m) / rate_m."""
    start = np.asarray(cdata["interval_start"].values, float)
    arm = np.asarray(cdata["arm_idx"].values, dtype=int)
    eta = linear_predictor(post, cdata)                                      # (sample, patient)
    rate = np.exp(pwe_log_rates(post, int(arm.max()) + 1 if arm.size else 1))  # (s, arm, J)
    widths = np.diff(start)                                                  # J − 1 finite
    cum = np.concatenate([np.zeros((*rate.shape[:2], 1)),
                          np.cumsum(rate[..., :-1] * widths, axis=-1)], axis=-1)
    target = rng.exponential(size=eta.shape) * np.exp(-eta)
    out = np.empty_like(target)
    for a in np.unique(arm):
        members = np.flatnonzero(arm == a)
        t_a = target[:, members]                                             # (s, members)
        # interval of each draw: how many interval starts' C lie at or below the target, − 1
        m = np.sum(cum[:, a, None, :] <= t_a[..., None], axis=-1) - 1
        c_m = np.take_along_axis(cum[:, a, :], m, axis=-1)
        out[:, members] = start[m] + (t_a - c_m) / np.take_along_axis(rate[:, a, :], m, axis=-1)
    return out


def simulate_event_times(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec,
                         rng: np.random.Generator) -> np.ndarray:
    return family_part(spec.model, "simulate_event_times")(post, cdata, spec, rng)


def predictive_observed(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec,
                        time: np.ndarray, event: np.ndarray, n_draws: int = 100,
                        seed: int = 0) -> dict[str, Any]:
    """Replicated (time, event) under each patient's censoring, from ``n_draws`` draws."""
    rng = np.random.default_rng(seed)
    thinned = thin(post, n_draws, seed)
    t_new = simulate_event_times(thinned, cdata, spec, rng)
    c = censoring_times(time, event, t_new.shape[0], rng)
    return {"time": np.minimum(t_new, c), "event": (t_new <= c).astype(int)}
