"""Posterior predictive simulation of per-patient event times (pure NumPy over draws).

Used by posterior predictive checks (``diagnostics``) and by predictive probabilities in
interim monitoring. Each model family registers a simulator
``(posterior draws, constant data, spec, rng) -> event times (sample, patient)`` of *uncensored*
event times; censoring is applied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from bayes_ablation.spec import AnalysisSpec

Simulator = Callable[[xr.Dataset, xr.Dataset, AnalysisSpec, np.random.Generator], np.ndarray]
SIMULATORS: dict[str, Simulator] = {}


def register_simulator(family: str) -> Callable[[Simulator], Simulator]:
    def deco(fn: Simulator) -> Simulator:
        SIMULATORS[family] = fn
        return fn
    return deco


def thin(post: xr.Dataset, n_draws: int, seed: int) -> xr.Dataset:
    """``n_draws`` posterior draws chosen at random (without replacement), dim ``sample``."""
    stacked = post.stack(sample=("chain", "draw"))
    n = stacked.sizes["sample"]
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(n_draws, n), replace=False))
    return stacked.isel(sample=idx).drop_vars(["sample", "chain", "draw"]).assign_coords(
        sample=np.arange(len(idx)))


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
    return eta


@register_simulator("weibull")
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


@register_simulator("piecewise_exponential")
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
    for s in range(target.shape[0]):
        for a in np.unique(arm):
            members = arm == a
            m = np.searchsorted(cum[s, a], target[s, members], side="right") - 1
            out[s, members] = start[m] + (target[s, members] - cum[s, a, m]) / rate[s, a, m]
    return out


def simulate_event_times(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec,
                         rng: np.random.Generator) -> np.ndarray:
    if spec.model not in SIMULATORS:
        raise KeyError(f"no posterior predictive simulator for model family {spec.model!r}")
    return SIMULATORS[spec.model](post, cdata, spec, rng)


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate at 0 and every distinct time: (times, survival).

    The same table as ``lifelines.KaplanMeierFitter().fit(time, event).survival_function_``
    (tested), without importing lifelines on the fit path.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, int)
    grid = np.unique(np.concatenate([[0.0], time]))
    at_or_after = time.size - np.searchsorted(np.sort(time), grid, side="left")
    deaths = np.bincount(np.searchsorted(grid, time[event == 1]), minlength=grid.size)
    factors = np.where(at_or_after > 0, 1.0 - deaths / np.maximum(at_or_after, 1), 1.0)
    return grid, np.cumprod(factors)


def censoring_times(time: np.ndarray, event: np.ndarray, n_samples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Each patient's censoring time, (sample, patient).

    Censored patients: their observed time. Patients with an event: a draw from the
    reverse Kaplan–Meier censoring distribution conditional on C > t_i (their censoring time
    was not observed); +inf where the censoring distribution has no mass beyond t_i.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, int)
    out = np.repeat(time[None, :], n_samples, axis=0)
    events = np.flatnonzero(event == 1)
    if events.size == 0:
        return out
    grid, surv = kaplan_meier(time, 1 - event)
    for i in events:
        s_t = np.interp(time[i], grid, surv, left=1.0)
        if s_t <= 0:
            out[:, i] = np.inf
            continue
        u = rng.uniform(size=n_samples) * s_t  # target S_C(c) = u, with u < S_C(t_i)
        pos = np.searchsorted(-surv, -u, side="left")  # first grid point where surv <= u
        out[:, i] = np.where(pos < grid.size, grid[np.minimum(pos, grid.size - 1)], np.inf)
        out[:, i] = np.maximum(out[:, i], time[i])
    return out


def predictive_observed(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec,
                        time: np.ndarray, event: np.ndarray, n_draws: int = 100,
                        seed: int = 0) -> dict[str, Any]:
    """Replicated (time, event) under each patient's censoring, from ``n_draws`` draws."""
    rng = np.random.default_rng(seed)
    thinned = thin(post, n_draws, seed)
    t_new = simulate_event_times(thinned, cdata, spec, rng)
    c = censoring_times(time, event, t_new.shape[0], rng)
    return {"time": np.minimum(t_new, c), "event": (t_new <= c).astype(int)}
