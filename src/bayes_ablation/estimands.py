"""Posterior estimands: pure functions of posterior draws (xarray in, xarray out).

Conventions. Arms are compared "treatment vs reference": a hazard ratio < 1 and a survival
difference > 0 favour the treatment arm. Two site targets:

* ``average``: a site with random effect u = 0 (the conditional, "typical site" effect);
* ``new``: a new site drawn from the site distribution, S_new(t) = E_u[S(t | u)] with
  u ~ N(0, σ²_arm), σ²_arm = σ²_site (+ σ²_site_arm for treatment arms), integrated by
  Gauss–Hermite quadrature per posterior draw (deterministic, no Monte Carlo noise).

With covariates, survival curves are *standardised* over the analysed patients' covariate mix
(S̄_a(t) = mean_i S(t | arm a, x_i)), so survival, RMST and median are marginal quantities.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.spec import AnalysisSpec

SITE_TARGETS = ("average", "new")
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(24)

#: model family -> function(posterior, times, spec) giving log H (chain, draw, arm, time)
#: at an average site and covariates x = 0. Model modules register theirs here.
LOG_CUMHAZ: dict[str, Callable[[xr.Dataset, np.ndarray, AnalysisSpec], xr.DataArray]] = {}


def register_log_cumhaz(family: str) -> Callable:
    def deco(fn: Callable) -> Callable:
        LOG_CUMHAZ[family] = fn
        return fn
    return deco


def log_hr_full(post: xr.Dataset, arms: Sequence[str]) -> xr.DataArray:
    """log HR per arm (0 for the reference arm), dims (chain, draw, arm)."""
    zero = xr.zeros_like(post["log_hr"].isel(treatment=0, drop=True)).expand_dims(arm=[arms[0]])
    rest = post["log_hr"].rename(treatment="arm")
    return xr.concat([zero, rest], dim="arm").assign_coords(arm=list(arms))


@register_log_cumhaz("weibull")
def weibull_log_cumhaz(post: xr.Dataset, times: np.ndarray, spec: AnalysisSpec) -> xr.DataArray:
    """log H_a(t) = α + k (log t − log t_ref) + β_a."""
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    time = xr.DataArray(np.asarray(times, float), dims="time", coords={"time": times})
    arms = _arms(post)
    return (post["log_cumhaz_ref"] + post["weibull_shape"] * (np.log(time) - np.log(t_ref))
            + log_hr_full(post, arms)).transpose("chain", "draw", "arm", "time")


def _arms(post: xr.Dataset) -> list[str]:
    """Arm labels, reference first, as stored by ``analysis.fit`` in the posterior's attrs."""
    arms = post.attrs.get("arms")
    if arms is None:
        raise KeyError("posterior attrs need 'arms' (reference first); set by analysis.fit")
    return json.loads(arms) if isinstance(arms, str) else list(arms)


def site_sd_by_arm(post: xr.Dataset, arms: Sequence[str]) -> xr.DataArray:
    """sd of the site effect on each arm's log hazard, dims (chain, draw, arm)."""
    sigma = post["sigma_site"] if "sigma_site" in post else xr.zeros_like(post["log_hr"].isel(
        treatment=0, drop=True))
    var = xr.concat([sigma**2] * len(arms), dim="arm").assign_coords(arm=list(arms))
    if "sigma_site_arm" in post:
        extra = xr.DataArray([0.0] + [1.0] * (len(arms) - 1), dims="arm",
                             coords={"arm": list(arms)})
        var = var + extra * post["sigma_site_arm"] ** 2
    return np.sqrt(var)


def covariate_offsets(post: xr.Dataset, x: np.ndarray | None) -> xr.DataArray:
    """x_i γ per posterior draw, over unique covariate patterns, dims (chain, draw, pattern);
    attribute ``weights`` holds each pattern's share of patients."""
    if x is None or x.size == 0 or "beta_covariates" not in post:
        out = xr.zeros_like(post["log_hr"].isel(treatment=0, drop=True)).expand_dims(pattern=1)
        out.attrs["weights"] = np.ones(1)
        return out
    patterns, counts = np.unique(np.asarray(x, float), axis=0, return_counts=True)
    xp = xr.DataArray(patterns, dims=("pattern", "covariate"))
    beta = post["beta_covariates"]
    out = xr.dot(xp, beta.assign_coords(covariate=np.arange(beta.sizes["covariate"]))
                 .drop_vars("covariate"), dim="covariate")
    out.attrs["weights"] = counts / counts.sum()
    return out.transpose("chain", "draw", "pattern")


def survival_curves(log_cumhaz: xr.DataArray, offsets: xr.DataArray,
                    site_sd: xr.DataArray | None) -> xr.DataArray:
    """Standardised survival S(t) per arm from log H (chain, draw, arm, time).

    ``site_sd`` None → average site; otherwise integrate over u ~ N(0, site_sd²).
    """
    weights = offsets.attrs["weights"]
    log_cumhaz = log_cumhaz.transpose("chain", "draw", "arm", "time")
    lh = log_cumhaz.values
    off = offsets.transpose("chain", "draw", "pattern").values
    if site_sd is None:
        nodes = np.zeros(1)
        w = np.ones(1)
        sd = np.zeros(lh.shape[:3])
    else:
        nodes = np.sqrt(2.0) * _GH_NODES
        w = _GH_WEIGHTS / np.sqrt(np.pi)
        sd = site_sd.transpose("chain", "draw", "arm").values
    out = np.zeros_like(lh)
    for p, wp in enumerate(weights):
        for j, node in enumerate(nodes):
            shift = off[:, :, p, None, None] + (sd * node)[..., None]
            out += wp * w[j] * np.exp(-np.exp(lh + shift))
    return xr.DataArray(out, dims=log_cumhaz.dims, coords=log_cumhaz.coords, name="survival")


def rmst(survival: xr.DataArray, tau: float) -> xr.DataArray:
    """Restricted mean survival time ∫₀^τ S(t) dt by the trapezoid rule on the curve's grid
    (the grid must start at 0 or above, end at τ; S(0) = 1 is prepended when needed)."""
    t = survival["time"].values
    if t[-1] < tau - 1e-9:
        raise ValueError(f"survival grid ends at {t[-1]} < tau {tau}")
    keep = t <= tau + 1e-9
    s = survival.isel(time=np.flatnonzero(keep))
    tt = t[keep]
    if tt[0] > 0:
        one = xr.ones_like(s.isel(time=0)).expand_dims(time=[0.0])
        s = xr.concat([one, s], dim="time")
        tt = np.concatenate([[0.0], tt])
    return xr.DataArray(np.trapezoid(s.values, tt, axis=s.get_axis_num("time")),
                        dims=[d for d in s.dims if d != "time"],
                        coords={k: v for k, v in s.coords.items() if "time" not in v.dims},
                        name="rmst")


def median_time(survival: xr.DataArray) -> xr.DataArray:
    """First time S(t) ≤ 0.5, linearly interpolated on the grid; +inf if never reached."""
    s = survival.transpose(..., "time")
    t = s["time"].values
    vals = s.values
    below = vals <= 0.5
    first = np.argmax(below, axis=-1)
    reached = below.any(axis=-1)
    idx = np.clip(first, 1, len(t) - 1)
    s1 = np.take_along_axis(vals, idx[..., None] - 1, -1)[..., 0]
    s2 = np.take_along_axis(vals, idx[..., None], -1)[..., 0]
    t1, t2 = t[idx - 1], t[idx]
    frac = np.where(s1 > s2, (s1 - 0.5) / np.where(s1 > s2, s1 - s2, 1.0), 0.0)
    med = np.where(first == 0, t[0], t1 + frac * (t2 - t1))
    med = np.where(reached, med, np.inf)
    return xr.DataArray(med, dims=s.dims[:-1],
                        coords={k: v for k, v in s.coords.items() if "time" not in v.dims},
                        name="median")


def contrast(values: xr.DataArray, arms: Sequence[str]) -> xr.DataArray:
    """treatment − reference along ``arm``, returned with dim ``treatment``."""
    ref = values.sel(arm=arms[0], drop=True)
    diff = values.sel(arm=list(arms[1:])) - ref
    return diff.rename(arm="treatment")


def prob_below(values: xr.DataArray, thresholds: Sequence[float]) -> xr.DataArray:
    """Posterior probability P(value < c) per threshold c (reduces chain and draw)."""
    c = xr.DataArray(np.asarray(thresholds, float), dims="threshold",
                     coords={"threshold": list(thresholds)})
    return (values < c).mean(("chain", "draw"))


def _posterior(idata: Any) -> xr.Dataset:
    return idata.posterior.to_dataset() if hasattr(idata.posterior, "to_dataset") \
        else idata.posterior


def survival_at(idata: Any, spec: AnalysisSpec, times: np.ndarray,
                site_target: str = "average") -> xr.DataArray:
    """Posterior draws of S_arm(t) (chain, draw, arm, time), standardised over covariates,
    for an ``average`` or a ``new`` site."""
    post = _posterior(idata)
    x = None
    if "constant_data" in idata.children and "x" in idata.constant_data:
        x = np.asarray(idata.constant_data["x"].values)
    site_sd = None if site_target == "average" else site_sd_by_arm(post, _arms(post))
    log_cumhaz = LOG_CUMHAZ[spec.model](post, np.asarray(times, float), spec)
    return survival_curves(log_cumhaz, covariate_offsets(post, x), site_sd)


def compute_estimands(idata: Any, spec: AnalysisSpec) -> xr.Dataset:
    """Every estimand the spec asks for, as posterior draws (dims chain, draw, …)."""
    post = _posterior(idata)
    arms = _arms(post)
    est = spec.estimands
    max_time = float(np.max(idata.observed_data["y"].values)) if "observed_data" in \
        idata.children and "y" in idata.observed_data else est.rmst_tau_months
    report_times = np.asarray(est.times_months, float)
    grid_rmst = np.linspace(0.0, est.rmst_tau_months, 241)[1:]
    grid_median = np.geomspace(0.05, max(10 * max_time, 2 * est.rmst_tau_months, 120.0), 400)

    out: dict[str, xr.DataArray] = {
        "log_hr": post["log_hr"],
        "hr": np.exp(post["log_hr"]),
    }
    per_site: dict[str, dict[str, xr.DataArray]] = {"survival": {}, "rmst": {}, "median": {}}
    for target in SITE_TARGETS:
        per_site["survival"][target] = survival_at(idata, spec, report_times, target)
        curve = survival_at(idata, spec, grid_rmst, target)
        per_site["rmst"][target] = rmst(curve, est.rmst_tau_months)
        per_site["median"][target] = median_time(survival_at(idata, spec, grid_median, target))
    for name, by_target in per_site.items():
        stacked = xr.concat([by_target[t] for t in SITE_TARGETS], dim="site_target")
        out[name] = stacked.assign_coords(site_target=list(SITE_TARGETS))
    out["survival_difference"] = contrast(out["survival"], arms)
    out["rmst_difference"] = contrast(out["rmst"], arms)
    ds = xr.Dataset(out)
    ds["time"].attrs["units"] = "months"
    ds.attrs["rmst_tau_months"] = est.rmst_tau_months
    ds.attrs["hr_thresholds"] = list(est.hr_thresholds)
    return ds


def probabilities(estimands: xr.Dataset) -> dict[str, float]:
    """P(HR < c) for each treatment and threshold, keyed 'P(HR<c) [treatment]'."""
    probs = prob_below(estimands["hr"], estimands.attrs["hr_thresholds"])
    out = {}
    for treatment in probs["treatment"].values:
        for c in probs["threshold"].values:
            out[f"P(HR<{c:g}) [{treatment}]"] = float(probs.sel(treatment=treatment,
                                                                threshold=c))
    return out


def summarise(estimands: xr.Dataset, interval_prob: float = 0.95) -> pd.DataFrame:
    """One row per scalar estimand: mean, sd, median and the central interval's quantiles."""
    lo_q, hi_q = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    rows = []
    for name, da in estimands.data_vars.items():
        other = [d for d in da.dims if d not in ("chain", "draw")]
        stacked = da.stack(sample=("chain", "draw")).transpose(*other, "sample") if other \
            else da.stack(sample=("chain", "draw"))
        values = stacked.values.reshape(-1, stacked.sizes["sample"])
        index = (pd.MultiIndex.from_product([da[d].values for d in other], names=other)
                 if other else [()])
        for labels, v in zip(index, values, strict=True):
            labels = labels if isinstance(labels, tuple) else (labels,)
            keys = dict(zip(other, labels, strict=True))
            finite = v[np.isfinite(v)]
            row = {"estimand": name, **{k: _plain(x) for k, x in keys.items()},
                   "mean": float(np.mean(v)) if finite.size == v.size else float("nan"),
                   "sd": float(np.std(v, ddof=1)) if finite.size == v.size else float("nan"),
                   "median": float(np.quantile(v, 0.5)),
                   f"q{100 * lo_q:g}": float(np.quantile(v, lo_q)),
                   f"q{100 * hi_q:g}": float(np.quantile(v, hi_q)),
                   "p_finite": float(finite.size / v.size)}
            rows.append(row)
    frame = pd.DataFrame(rows)
    key_cols = [c for c in ("estimand", "treatment", "arm", "site_target", "time", "study")
                if c in frame.columns]
    frame.insert(0, "label", frame.apply(lambda r: _label(r, key_cols), axis=1))
    return frame


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _label(row: pd.Series, cols: list[str]) -> str:
    parts = []
    for c in cols[1:]:
        v = row.get(c)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        parts.append(f"t={v:g}" if c == "time" else f"{v}" if c != "site_target"
                     else f"{v} site")
    return f"{row['estimand']}[{', '.join(parts)}]" if parts else str(row["estimand"])
