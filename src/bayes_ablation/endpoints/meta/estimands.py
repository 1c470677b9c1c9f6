"""Meta-analysis estimands: pure functions of posterior draws (or of the exact posterior).

Log-HR scale: μ (pooled effect), τ (between-study sd), θ_i (shrunken study effects, dim
``study``), θ_new (the effect in a new study). HR scale: ``hr_mu`` = e^μ, ``hr_theta``,
``hr_theta_new``. HR < 1 favours the experimental arm. HR-scale rows of the tables give median
and interval only (the posterior mean of e^θ_new is infinite under heavy-tailed τ priors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.survival import estimands as est

#: the scalar summaries checked against the exact posterior (quantity, statistic)
EXACT_CHECKS = (("mu", "mean"), ("mu", "sd"), ("mu", "q2.5"), ("mu", "q97.5"),
                ("tau", "median"), ("theta_new", "mean"), ("theta_new", "q2.5"),
                ("theta_new", "q97.5"))


def meta_estimands(idata: Any) -> xr.Dataset:
    """Draws (chain, draw[, study]) of μ, τ, θ, θ_new and their HR-scale versions."""
    post = idata.posterior.to_dataset() if hasattr(idata.posterior, "to_dataset") \
        else idata.posterior
    out = {name: post[name] for name in ("mu", "tau", "theta", "theta_new")}
    out["hr_mu"] = np.exp(post["mu"])
    out["hr_theta"] = np.exp(post["theta"])
    out["hr_theta_new"] = np.exp(post["theta_new"])
    return xr.Dataset(out)


def summarise(estimands: xr.Dataset, interval_prob: float = 0.95) -> pd.DataFrame:
    """One row per scalar estimand (see :func:`bayes_ablation.survival.estimands.summarise`);
    HR-scale rows keep median and interval only."""
    table = est.summarise(estimands, interval_prob)
    hr_rows = table["estimand"].str.startswith("hr_")
    table.loc[hr_rows, ["mean", "sd"]] = np.nan
    if "study" not in table.columns:
        table["study"] = None
    return table


def probabilities(estimands: xr.Dataset, thresholds: Sequence[float]) -> dict[str, float]:
    """P(HR < c) for the pooled effect and for a new study, keyed like the exact posterior's."""
    out = {}
    for c in thresholds:
        out[f"P(HR<{c:g}) [pooled mu]"] = float((estimands["hr_mu"] < c).mean())
        out[f"P(HR<{c:g}) [new study]"] = float((estimands["hr_theta_new"] < c).mean())
    return out


def mcmc_statistic(idata: Any, name: str, statistic: str) -> tuple[float, float]:
    """A posterior statistic of a scalar variable and its Monte Carlo standard error (ArviZ).

    ``name`` is a variable or ``var[study]``; ``statistic``: 'mean', 'sd', 'median' or 'qX'
    (X in percent, e.g. 'q2.5').
    """
    import arviz as az

    if "[" in name:
        base, study = name[:-1].split("[", 1)
        da = idata.posterior[base].sel(study=study)
    else:
        da = idata.posterior[name]
    values = da.values.ravel()
    if statistic == "mean":
        value, method, prob = float(values.mean()), "mean", None
    elif statistic == "sd":
        value, method, prob = float(values.std(ddof=1)), "sd", None
    elif statistic == "median":
        value, method, prob = float(np.quantile(values, 0.5)), "median", None
    elif statistic.startswith("q"):
        prob = float(statistic[1:]) / 100
        value, method = float(np.quantile(values, prob)), "quantile"
    else:
        raise ValueError(f"unknown statistic {statistic!r}")
    mcse = az.mcse(da, method=method, prob=prob)
    return value, float(np.asarray(mcse).ravel()[0])


def compare_with_exact(idata: Any, exact_table: pd.DataFrame,
                       checks: Sequence[tuple[str, str]] = EXACT_CHECKS) -> pd.DataFrame:
    """MCMC vs exact posterior: each statistic, its MCSE and the gap in MCSE units."""
    rows = []
    for name, statistic in checks:
        row = exact_table[exact_table["label"] == name]
        if row.empty or statistic not in row.columns:
            continue
        exact = float(row[statistic].iloc[0])
        value, mcse = mcmc_statistic(idata, name, statistic)
        rows.append({"quantity": name, "statistic": statistic, "mcmc": value, "exact": exact,
                     "mcse": mcse, "gap_in_mcse": abs(value - exact) / mcse if mcse > 0
                     else float("inf")})
    return pd.DataFrame(rows)
