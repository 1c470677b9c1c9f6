"""Effect modification: treatment-by-subgroup effects with hierarchical shrinkage.

For the spec's pre-specified subgroups g = 1 … G (``[analysis] subgroups``, binary 0/1
columns z_ig of the analysed units: patients for PFS, lesions for LR), centred at their mean
z̄_g over those units, the linear predictor of unit i in arm a(i) gains

    Σ_g γ_g (z_ig − z̄_g)                  main (prognostic) effect of each subgroup variable
  + Σ_g δ_g,a(i) (z_ig − z̄_g)             treatment-by-subgroup interaction (δ_g,ref = 0)

    γ_g ~ prior ``beta_subgroup``,   δ_g,a = τ_sub ζ_g,a,  ζ_g,a ~ N(0, 1)   (non-centred),
    τ_sub ~ prior ``sigma_subgroup``.

The interactions share one sd τ_sub, so they are shrunk towards 0 together (partial pooling
across subgroups, not one unpenalised interaction each); τ_sub → 0 collapses every subgroup
HR to the overall HR. The log HR of treatment a in level ℓ ∈ {0, 1} of subgroup g, the other
subgroup variables at their mean, is

    log HR_a(g = ℓ) = β_a + δ_g,a (ℓ − z̄_g),      so   δ_g,a = log HR_a(g = 1) − log HR_a(g = 0),

and β_a (``log_hr``) stays the effect at the analysed units' average subgroup mix. "The
effect differs" in subgroup g is reported as P(|δ_g,a| > log 1.25) (the HR of one level is more
than 25% above or below that of the other) and P(δ_g,a < 0) (the treatment does better in
level 1 than in level 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.errors import BayesAblationError

#: the HR ratio between a subgroup's levels that counts as "the effect differs"
DIFFERENCE_HR_RATIO = 1.25


def subgroup_design(spec: Any, table: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(z: units × G indicators 0/1, subgroup names, z̄: their means) of a validated patient
    or lesion table; raises when the table was validated without the spec's subgroups."""
    names = list(getattr(spec, "subgroups", ()))
    have = tuple(getattr(table, "subgroups", ()))
    missing = [g for g in names if g not in have]
    if missing:
        raise BayesAblationError(
            f"the spec {getattr(spec, 'name', '')!r} names subgroups {missing} that the data "
            f"table {getattr(table, 'source', '')!r} was not validated with; read the data "
            "with the spec (read_patients(path, spec) / read_lr_data(..., spec))")
    if not names:
        return np.zeros((len(table.frame), 0)), [], np.zeros(0)
    z = table.frame[names].to_numpy(dtype=float)
    return z, names, z.mean(axis=0)


def subgroup_data(spec: Any, table: Any, dim: str) -> tuple[Any, Any] | None:
    """``pm.Data`` ``subgroup_indicator`` (dims ``dim``, ``subgroup``) and ``subgroup_mean``
    (inside a model context with a ``subgroup`` coordinate), or None without subgroups."""
    import pymc as pm

    z, names, mean = subgroup_design(spec, table)
    if not names:
        return None
    return (pm.Data("subgroup_indicator", z, dims=(dim, "subgroup")),
            pm.Data("subgroup_mean", mean, dims="subgroup"))


def subgroup_terms(spec: Any, indicator: Any, mean: Any, arm_idx: Any) -> Any:
    """Σ_g γ_g (z_g − z̄_g) + Σ_g δ_g,arm (z_g − z̄_g) per unit (inside a model context);
    creates ``beta_subgroup``, ``sigma_subgroup``, ``z_subgroup`` and ``delta_subgroup``."""
    import pymc as pm
    import pytensor.tensor as pt

    from bayes_ablation.endpoints.priors import prior

    centred = indicator - mean[None, :]
    beta = prior("beta_subgroup", spec.priors["beta_subgroup"], dims="subgroup")
    tau = prior("sigma_subgroup", spec.priors["sigma_subgroup"])
    zeta = pm.Normal("z_subgroup", 0.0, 1.0, dims=("subgroup", "treatment"))
    delta = pm.Deterministic("delta_subgroup", tau * zeta, dims=("subgroup", "treatment"))
    delta_full = pt.concatenate([pt.zeros((delta.shape[0], 1)), delta], axis=1)  # (G, arm)
    return pt.dot(centred, beta) + pt.sum(centred * delta_full.T[arm_idx], axis=1)


def subgroup_columns(spec: Any) -> list[str]:
    """The spec's subgroup names (empty without subgroups)."""
    return list(getattr(spec, "subgroups", ()))


# ------------------------------------------------------------------------ NumPy over draws

def subgroup_eta(post: xr.Dataset, indicator: Any, mean: Any, arm: np.ndarray) -> Any:
    """The subgroup part of η (sample, unit) from draws stacked on ``sample``; 0 without
    subgroups. ``indicator`` (unit, subgroup), ``mean`` (subgroup), ``arm`` codes per unit."""
    if "delta_subgroup" not in post or indicator is None:
        return 0.0
    centred = np.asarray(indicator, float) - np.asarray(mean, float)[None, :]
    beta = post["beta_subgroup"].transpose("sample", "subgroup").values
    delta = post["delta_subgroup"].transpose("sample", "subgroup", "treatment").values
    out = beta @ centred.T
    arm = np.asarray(arm, int)
    for a in range(1, delta.shape[2] + 1):
        members = arm == a
        if members.any():
            out[:, members] += delta[:, :, a - 1] @ centred[members].T
    return out


def cdata_subgroups(cdata: Any, prefix: str = "") -> tuple[Any, Any]:
    """(indicator, mean) from a fit's constant data (None, None without subgroups)."""
    name = f"{prefix}subgroup_indicator"
    if name not in cdata or "subgroup_mean" not in cdata:
        return None, None
    return np.asarray(cdata[name].values, float), np.asarray(cdata["subgroup_mean"].values, float)


def arm_offsets(post: xr.Dataset, x: np.ndarray | None, indicator: np.ndarray,
                mean: np.ndarray, arms: Sequence[str], max_patterns: int | None = None
                ) -> xr.DataArray:
    """Per-arm linear-predictor offsets x_i γ + (z_i − z̄) γ_sub + (z_i − z̄) δ_arm over the
    units' distinct (x, z) patterns, dims (chain, draw, arm, pattern); attribute ``weights``
    holds each pattern's share of units. With more than ``max_patterns`` patterns, units are
    grouped into ``max_patterns`` equal-size groups ordered by their posterior-mean arm-free
    offset, each represented by its mean (x, z), as the covariate-only standardisation does."""
    x = np.zeros((len(indicator), 0)) if x is None else np.asarray(x, float).reshape(
        len(indicator), -1)
    centred = np.asarray(indicator, float) - np.asarray(mean, float)[None, :]
    design = np.concatenate([x, centred], axis=1)
    patterns, counts = np.unique(design, axis=0, return_counts=True)
    n_x = x.shape[1]
    has_beta = n_x > 0 and "beta_covariates" in post
    if max_patterns is not None and len(patterns) > max_patterns:
        coef = np.concatenate([post["beta_covariates"].mean(("chain", "draw")).values
                               if has_beta else np.zeros(n_x),
                               post["beta_subgroup"].mean(("chain", "draw")).values])
        order = np.argsort(design @ coef, kind="stable")
        groups = np.array_split(order, max_patterns)
        patterns = np.array([design[g].mean(axis=0) for g in groups])
        counts = np.array([len(g) for g in groups])
    xp = xr.DataArray(patterns[:, :n_x], dims=("pattern", "covariate"))
    zp = xr.DataArray(patterns[:, n_x:], dims=("pattern", "subgroup"))
    beta_sub = post["beta_subgroup"].drop_vars("subgroup", errors="ignore")
    base = xr.dot(zp, beta_sub, dim="subgroup")
    if has_beta:
        beta = post["beta_covariates"].drop_vars("covariate", errors="ignore")
        base = base + xr.dot(xp, beta, dim="covariate")
    delta = post["delta_subgroup"].drop_vars("subgroup", errors="ignore")
    per_treatment = xr.dot(zp, delta, dim="subgroup").rename(treatment="arm")
    zero = xr.zeros_like(per_treatment.isel(arm=0, drop=True)).expand_dims(arm=[arms[0]])
    interaction = xr.concat([zero, per_treatment.drop_vars("arm")
                             .assign_coords(arm=list(arms[1:]))], dim="arm")
    out = (base + interaction).transpose("chain", "draw", "arm", "pattern")
    out = out.assign_coords(arm=list(arms))
    out.attrs["weights"] = counts / counts.sum()
    return out


# ------------------------------------------------------------------------------ estimands

def subgroup_estimands(post: xr.Dataset, cdata: Any) -> dict[str, xr.DataArray]:
    """Subgroup estimands (empty without subgroups):

    * ``hr_subgroup`` (subgroup_level, treatment): HR in each level of each subgroup, the other
      subgroup variables at their mean — exp(β_a + δ_g,a (ℓ − z̄_g)); levels labelled
      ``"<subgroup>=1"`` and ``"<subgroup>=0"``;
    * ``delta_subgroup`` (subgroup, treatment): log HR(level 1) − log HR(level 0);
    * ``hr_ratio_subgroup``: exp(δ), the HR of level 1 over the HR of level 0;
    * ``sigma_subgroup``: τ_sub, the sd of the interactions (how much effects differ).
    """
    if "delta_subgroup" not in post:
        return {}
    _, mean = cdata_subgroups(cdata, "")
    if mean is None:
        _, mean = cdata_subgroups(cdata, "cell_")
    names = [str(g) for g in post["delta_subgroup"]["subgroup"].values]
    delta = post["delta_subgroup"]
    zbar = xr.DataArray(np.asarray(mean, float), dims="subgroup",
                        coords={"subgroup": delta["subgroup"].values})
    levels = []
    for level in (1, 0):
        log_hr = post["log_hr"] + delta * (level - zbar)
        levels.append(log_hr.assign_coords(subgroup=[f"{g}={level}" for g in names])
                      .rename(subgroup="subgroup_level"))
    hr = np.exp(xr.concat(levels, dim="subgroup_level"))
    order = [f"{g}={level}" for g in names for level in (1, 0)]
    return {
        "hr_subgroup": hr.sel(subgroup_level=order).transpose(
            "chain", "draw", "subgroup_level", "treatment").rename("hr_subgroup"),
        "delta_subgroup": delta.rename("delta_subgroup"),
        "hr_ratio_subgroup": np.exp(delta).rename("hr_ratio_subgroup"),
        "sigma_subgroup": post["sigma_subgroup"],
    }


def subgroup_probabilities(estimands: xr.Dataset,
                           ratio: float = DIFFERENCE_HR_RATIO) -> dict[str, float]:
    """Per treatment and subgroup: ``P(|delta|>log(1.25)) [treatment, subgroup]`` (the effect
    differs between the subgroup's levels by more than the ratio) and ``P(delta<0) [...]``
    (the treatment does better in level 1); empty without subgroups."""
    if "delta_subgroup" not in estimands:
        return {}
    delta = estimands["delta_subgroup"]
    big = (np.abs(delta) > np.log(ratio)).mean(("chain", "draw"))
    below = (delta < 0).mean(("chain", "draw"))
    out = {}
    for treatment in delta["treatment"].values:
        for g in delta["subgroup"].values:
            key = f"{treatment}, {g}"
            out[f"P(|delta|>log({ratio:g})) [{key}]"] = float(big.sel(treatment=treatment,
                                                                      subgroup=g))
            out[f"P(delta<0) [{key}]"] = float(below.sel(treatment=treatment, subgroup=g))
    return out


def subgroup_table(estimands: xr.Dataset, counts: pd.DataFrame | None = None,
                   interval_prob: float = 0.95, ratio: float = DIFFERENCE_HR_RATIO
                   ) -> pd.DataFrame:
    """One row per treatment × subgroup: the HR in each level (median and CrI), the HR ratio
    exp(δ), P(|δ| > log ratio), P(δ < 0) and, when given, the units per level (``counts``:
    index subgroup, columns ``n_level_1``, ``n_level_0``, ...)."""
    if "delta_subgroup" not in estimands:
        return pd.DataFrame()
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    hr = estimands["hr_subgroup"]
    ratio_draws = estimands["hr_ratio_subgroup"]
    probs = subgroup_probabilities(estimands, ratio)

    def summary(da: xr.DataArray) -> tuple[float, float, float]:
        v = da.values.ravel()
        return float(np.median(v)), float(np.quantile(v, lo)), float(np.quantile(v, hi))

    rows = []
    for treatment in ratio_draws["treatment"].values:
        for g in ratio_draws["subgroup"].values:
            row: dict[str, Any] = {"treatment": str(treatment), "subgroup": str(g)}
            for level in (1, 0):
                m, a, b = summary(hr.sel(treatment=treatment, subgroup_level=f"{g}={level}"))
                row.update({f"hr_level_{level}": m, f"hr_level_{level}_lower": a,
                            f"hr_level_{level}_upper": b})
            m, a, b = summary(ratio_draws.sel(treatment=treatment, subgroup=g))
            row.update({"hr_ratio": m, "hr_ratio_lower": a, "hr_ratio_upper": b})
            key = f"{treatment}, {g}"
            row[f"p_differs_by_{ratio:g}x"] = probs[f"P(|delta|>log({ratio:g})) [{key}]"]
            row["p_delta_below_0"] = probs[f"P(delta<0) [{key}]"]
            if counts is not None and str(g) in counts.index:
                row.update({k: int(v) for k, v in counts.loc[str(g)].items()})
            rows.append(row)
    return pd.DataFrame(rows)


def subgroup_counts(table: Any) -> pd.DataFrame:
    """Units and events (PFS: progression or death; LR: recurrence seen) per level of each
    subgroup of a validated patient or lesion table."""
    event = table.observed if hasattr(table, "observed") else getattr(table, "event", None)
    rows = {}
    for g in getattr(table, "subgroups", ()):
        z = table.frame[g].to_numpy(float)
        row = {"n_level_1": int((z == 1).sum()), "n_level_0": int((z == 0).sum())}
        if event is not None:
            e = np.asarray(event, float)
            row.update({"events_level_1": int(e[z == 1].sum()),
                        "events_level_0": int(e[z == 0].sum())})
        rows[g] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def summary_entry(estimands: xr.Dataset, spec: Any, counts: pd.DataFrame | None = None
                  ) -> dict[str, Any]:
    """``summary.json["subgroups"]``: the model, the threshold and one record per treatment ×
    subgroup (:func:`subgroup_table`)."""
    table = subgroup_table(estimands, counts, spec.estimands.interval_prob)
    return {"subgroups": {
        "model": "log HR_a(g = l) = log_hr_a + delta_g,a (l - mean_g); delta_g,a = "
                 "sigma_subgroup * z, z ~ N(0, 1) (hierarchical shrinkage across subgroups); "
                 "each subgroup variable also has a main effect beta_subgroup",
        "difference_hr_ratio": DIFFERENCE_HR_RATIO,
        "interval_prob": spec.estimands.interval_prob,
        "by_subgroup": table.to_dict(orient="records"),
    }}
