"""Posterior estimands: pure functions of posterior draws (xarray in, xarray out).

Conventions. Arms are compared "treatment vs reference": a hazard ratio < 1 and a survival
difference > 0 favour the treatment arm. Two site targets:

* ``average``: a site with random effect u = 0 (the conditional, "typical site" effect);
* ``new``: a new site drawn from the site distribution, S_new(t) = E_u[S(t | u)] with
  u ~ N(0, σ²_arm), σ²_arm = σ²_site (+ σ²_site_arm for treatment arms), integrated by
  Gauss–Hermite quadrature per posterior draw (deterministic, no Monte Carlo noise; the
  number of nodes follows each draw's σ so the error stays ≤ 1e-9, see
  :mod:`bayes_ablation.survival.kernels`).

RMST is integrated by Gauss–Legendre quadrature after t = τ v² (which smooths the t^k
behaviour of S near 0); the median is found on a log-spaced grid by interpolating
log(−log S) linearly in log t (exact for a Weibull curve at an average site).

With covariates, survival curves are *standardised* over the analysed patients' covariate mix
(S̄_a(t) = mean_i S(t | arm a, x_i)), so survival, RMST and median are marginal quantities.
With many covariate patterns (continuous covariates) the mean over patients is taken on a
binned lattice (|ΔS| ≤ 1.93e-6, :func:`bayes_ablation.survival.kernels.standardised_survival`),
so its cost does not grow with the number of patients.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

#: Gauss–Legendre nodes for RMST (t = τ v²); relative error < 1e-7 for Weibull shapes ≥ 0.5
RMST_NODES = 48
#: log-spaced grid points for the median (log(−log S) interpolated in log t)
MEDIAN_GRID_POINTS = 64


def log_hr_full(post: xr.Dataset, arms: Sequence[str]) -> xr.DataArray:
    """log HR per arm (0 for the reference arm), dims (chain, draw, arm)."""
    zero = xr.zeros_like(post["log_hr"].isel(treatment=0, drop=True)).expand_dims(arm=[arms[0]])
    rest = post["log_hr"].rename(treatment="arm")
    return xr.concat([zero, rest], dim="arm").assign_coords(arm=list(arms))




def arms_of(post: xr.Dataset) -> list[str]:
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
                    site_sd: xr.DataArray | None, binned_from: int | None = None
                    ) -> xr.DataArray:
    """Standardised survival S(t) per arm from log H (chain, draw, arm, time).

    ``site_sd`` None → average site; otherwise integrate over u ~ N(0, site_sd²).
    ``offsets`` may carry an ``arm`` dim (arm-specific offsets, e.g. treatment-by-subgroup
    interactions): each arm is then standardised over its own offsets. ``binned_from``: see
    :func:`~bayes_ablation.survival.kernels.standardised_survival`.
    """
    return survival_curves_by_sd(log_cumhaz, offsets, [site_sd], binned_from)[0]


def survival_curves_by_sd(log_cumhaz: xr.DataArray, offsets: xr.DataArray,
                          site_sds: Sequence[xr.DataArray | None],
                          binned_from: int | None = None) -> list[xr.DataArray]:
    """:func:`survival_curves` for each site sd of ``site_sds`` (e.g. None for an average site
    and σ_site for a new one), over one covariate mix computed once
    (:func:`~bayes_ablation.survival.kernels.standardised_survival_by_sd`)."""
    from bayes_ablation.survival.kernels import BIN_MIN_PATTERNS, standardised_survival_by_sd

    if "arm" in offsets.dims:
        per_arm = []
        for arm in log_cumhaz["arm"].values:
            off = offsets.sel(arm=arm, drop=True)
            off.attrs["weights"] = offsets.attrs["weights"]
            per_arm.append(survival_curves_by_sd(
                log_cumhaz.sel(arm=[arm]), off,
                [None if sd is None else sd.sel(arm=[arm]) for sd in site_sds], binned_from))
        return [xr.concat([curves[i] for curves in per_arm], dim="arm")
                for i in range(len(site_sds))]

    weights = np.asarray(offsets.attrs["weights"], float)
    log_cumhaz = log_cumhaz.transpose("chain", "draw", "arm", "time")
    lh = np.ascontiguousarray(log_cumhaz.values, dtype=float)
    n_chain, n_draw, n_arm, n_time = lh.shape
    off = offsets.transpose("chain", "draw", "pattern").values.reshape(n_chain * n_draw, -1)
    sds = [np.zeros((n_chain * n_draw, n_arm)) if sd is None else
           sd.transpose("chain", "draw", "arm").values.reshape(n_chain * n_draw, n_arm)
           for sd in site_sds]
    outs = standardised_survival_by_sd(lh.reshape(n_chain * n_draw, n_arm, n_time),
                                       np.ascontiguousarray(off, dtype=float), weights, sds,
                                       binned_from=BIN_MIN_PATTERNS if binned_from is None
                                       else binned_from)
    return [xr.DataArray(out.reshape(lh.shape), dims=log_cumhaz.dims,
                         coords=log_cumhaz.coords, name="survival") for out in outs]


def bayesian_bootstrap_weights(n_draws: int, members: np.ndarray, seed: int) -> np.ndarray:
    """Dirichlet(1, …, 1) weights over the units where ``members`` is True, one vector per
    posterior draw (draws, units; 0 for non-members), from normalised Exp(1) variates.

    Rubin's Bayesian bootstrap: the posterior of the covariate distribution under a
    non-informative Dirichlet-process limit, so g-computed estimands carry the uncertainty of
    the sample's covariate mix as well as that of the outcome model."""
    members = np.asarray(members, bool)
    rng = np.random.default_rng(seed)
    g = np.zeros((n_draws, members.size))
    g[:, members] = rng.standard_exponential((n_draws, int(members.sum())))
    return g / g.sum(axis=1, keepdims=True)


def unit_offsets(post: xr.Dataset, x: np.ndarray | None, site: np.ndarray,
                 arms: Sequence[str]) -> tuple[xr.DataArray, np.ndarray]:
    """x_i γ + u_s(i) (+ v_s(i),a with site × arm slopes) per draw, arm and distinct
    (covariates, site) pattern of the units i (dims chain, draw, arm, pattern), and each unit's
    pattern. Reads ``beta_covariates``, ``u_site``, ``v_site_arm`` where the posterior has them."""
    site = np.asarray(site, np.int64)
    x = np.zeros((site.size, 0)) if x is None else np.asarray(x, float).reshape(site.size, -1)
    keys, pattern = np.unique(np.column_stack([x, site]), axis=0, return_inverse=True)
    pattern = np.asarray(pattern).reshape(-1)
    xp, sp = keys[:, :-1], keys[:, -1].astype(np.int64)
    base = xr.zeros_like(post["log_hr"].isel(treatment=0, drop=True))
    off = base.expand_dims(pattern=len(keys)).copy()
    if xp.shape[1] and "beta_covariates" in post:
        beta = post["beta_covariates"]
        beta = beta.assign_coords(covariate=np.arange(beta.sizes["covariate"])).drop_vars(
            "covariate")
        off = off + xr.dot(xr.DataArray(xp, dims=("pattern", "covariate")), beta,
                           dim="covariate")
    at_site = xr.DataArray(sp, dims="pattern")
    if "u_site" in post:
        off = off + post["u_site"].drop_vars("site", errors="ignore").isel(site=at_site)
    by_arm = [off]
    for b in range(1, len(arms)):
        if "v_site_arm" in post:
            v = post["v_site_arm"].isel(treatment=b - 1, drop=True).drop_vars(
                "site", errors="ignore")
            by_arm.append(off + v.isel(site=at_site))
        else:
            by_arm.append(off)
    out = xr.concat(by_arm, dim="arm").assign_coords(arm=list(arms))
    return out.transpose("chain", "draw", "arm", "pattern"), pattern


def g_computation_survival(log_cumhaz: xr.DataArray, offsets: xr.DataArray,
                           pattern: np.ndarray, unit_weights: np.ndarray,
                           sd: xr.DataArray | None = None) -> xr.DataArray:
    """S̄_a(t) = Σ_i w_di E_z[S(t | a, x_i, u_s(i), sd_a z)] per draw d: every arm's survival
    averaged over the analysed units with the draw's weights (g-computation of the
    counterfactual curves), z ~ N(0, 1) a remaining random effect (e.g. the patient frailty;
    none when ``sd`` is None).

    ``log_cumhaz`` (chain, draw, arm, time) at x = 0, u = 0; ``offsets`` (chain, draw, arm,
    pattern): log-hazard shift of each distinct unit pattern (covariates and site) under each
    arm; ``pattern`` (unit,) the pattern of each unit; ``unit_weights`` (chain·draw, unit);
    ``sd`` (chain, draw, arm). With many patterns the mixture is tabulated on the lattice of
    step :data:`~bayes_ablation.survival.kernels.CAUSAL_BIN_STEP` (|ΔS| ≤ 3.1e-5).
    """
    from bayes_ablation.survival.kernels import CAUSAL_BIN_STEP, standardised_survival

    lh_da = log_cumhaz.transpose("chain", "draw", "arm", "time")
    lh = np.ascontiguousarray(lh_da.values, dtype=float)
    n_chain, n_draw, n_arm, n_time = lh.shape
    n_pat = offsets.sizes["pattern"]
    order = np.argsort(pattern, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(pattern[order]) != 0])
    weights = np.zeros((n_chain * n_draw, n_pat))
    weights[:, pattern[order][starts]] = np.add.reduceat(unit_weights[:, order], starts, axis=1)
    off = offsets.transpose("chain", "draw", "arm", "pattern").values.reshape(
        n_chain * n_draw, n_arm, n_pat)
    flat = lh.reshape(n_chain * n_draw, n_arm, n_time)
    sdv = (np.zeros((n_chain * n_draw, n_arm)) if sd is None else np.ascontiguousarray(
        sd.transpose("chain", "draw", "arm").values.reshape(n_chain * n_draw, n_arm), float))
    same = bool(np.all(off == off[:, :1]))
    if same:  # no site × arm slopes: one mixture for every arm
        out = standardised_survival(flat, np.ascontiguousarray(off[:, 0]), weights, sdv,
                                    step=CAUSAL_BIN_STEP)
    else:
        out = np.concatenate([standardised_survival(
            np.ascontiguousarray(flat[:, a: a + 1]), np.ascontiguousarray(off[:, a]), weights,
            np.ascontiguousarray(sdv[:, a: a + 1]), step=CAUSAL_BIN_STEP)
            for a in range(n_arm)], axis=1)
    return xr.DataArray(out.reshape(lh.shape), dims=lh_da.dims, coords=lh_da.coords,
                        name="survival")


def rmst_nodes(tau: float, n: int = RMST_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Times and weights with ∫₀^τ S(t) dt ≈ Σ w_i S(t_i): Gauss–Legendre in v, t = τ v²."""
    v, w = np.polynomial.legendre.leggauss(n)
    v = 0.5 * (v + 1.0)
    return tau * v**2, tau * v * w  # dt = 2 τ v dv, and dv = w / 2 on [0, 1]


def rmst_quadrature(survival: xr.DataArray, weights: np.ndarray) -> xr.DataArray:
    """RMST from S on the :func:`rmst_nodes` times (weights from the same call)."""
    return xr.dot(survival, xr.DataArray(weights, dims="time",
                                         coords={"time": survival["time"].values}),
                  dim="time").rename("rmst")


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


def median_time(survival: xr.DataArray, scale: str = "linear") -> xr.DataArray:
    """First time S(t) ≤ 0.5, interpolated on the grid; +inf if never reached.

    ``scale='linear'`` interpolates S linearly in t; ``'cloglog'`` interpolates
    log(−log S) linearly in log t (needs times > 0; exact for Weibull curves).
    """
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
    med = t1 + frac * (t2 - t1)
    if scale == "cloglog":
        with np.errstate(divide="ignore", invalid="ignore"):
            c1, c2 = np.log(-np.log(s1)), np.log(-np.log(s2))
            c_half = np.log(np.log(2.0))
            frac_c = (c_half - c1) / (c2 - c1)
            med_c = np.exp(np.log(t1) + frac_c * (np.log(t2) - np.log(t1)))
        ok = np.isfinite(med_c) & (frac_c >= 0) & (frac_c <= 1) & (t1 > 0)
        med = np.where(ok, med_c, med)
    elif scale != "linear":
        raise ValueError(f"scale must be 'linear' or 'cloglog', got {scale!r}")
    med = np.where(first == 0, t[0], med)
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


def posterior_of(idata: Any) -> xr.Dataset:
    return idata.posterior.to_dataset() if hasattr(idata.posterior, "to_dataset") \
        else idata.posterior


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
    names = {name: str(da.attrs.get("label_name", name))
             for name, da in estimands.data_vars.items()}
    key_cols = [c for c in ("estimand", "treatment", "arm", "lesion_target", "population",
                            "site_target", "time", "interval", "study", "subgroup",
                            "subgroup_level") if c in frame.columns]
    frame.insert(0, "label", frame.apply(lambda r: _label(r, key_cols, names), axis=1))
    return frame


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _label(row: pd.Series, cols: list[str], names: dict[Any, str] | None = None) -> str:
    """``name[keys]``; ``name`` is the variable's ``label_name`` attribute when it has one
    (e.g. "ATE survival_difference", "conditional hr")."""
    name = (names or {}).get(row["estimand"], str(row["estimand"]))
    parts = []
    for c in cols[1:]:
        v = row.get(c)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        parts.append(f"t={v:g}" if c == "time" else f"t in {v}" if c == "interval"
                     else f"{v} site" if c == "site_target" else f"{v}")
    return f"{name}[{', '.join(parts)}]" if parts else name
