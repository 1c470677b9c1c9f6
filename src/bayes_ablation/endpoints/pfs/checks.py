"""Posterior predictive checks of a PFS fit: replicated event times under each patient's
censoring, KM bands by arm and by site × arm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.survival.ppc import km_ppc


def survival_ppc(idata: xr.DataTree, spec: AnalysisSpec, arm_labels: np.ndarray,
                 site_labels: np.ndarray, n_draws: int = 100, seed: int = 0,
                 arm_order: list[str] | None = None) -> dict[str, xr.Dataset]:
    """Posterior predictive KM checks per arm and per site × arm.

    Reads the per-patient data (``time_months``, ``event``, ``arm_idx``, ``site_idx``, ``x``)
    from ``constant_data``; aggregated models keep them there too, outside their likelihood.
    """
    from bayes_ablation.endpoints.pfs.predictive import predictive_observed

    time = np.asarray(idata.constant_data["time_months"].values, float)
    event = np.asarray(idata.constant_data["event"].values, int)
    rep = predictive_observed(idata.posterior.to_dataset(), idata.constant_data.to_dataset(),
                              spec, time, event, n_draws=n_draws, seed=seed)
    grid = np.linspace(0.0, float(time.max()), 120)
    by_arm = km_ppc(time, event, arm_labels, rep["time"], rep["event"], grid,
                    spec.estimands.interval_prob)
    site_arm = np.array([f"{s} | {a}" for s, a in zip(site_labels, arm_labels, strict=True)])
    arms = list(pd.unique(arm_labels)) if arm_order is None else list(arm_order)
    order = [f"{s} | {a}" for s in sorted(set(site_labels)) for a in arms
             if f"{s} | {a}" in set(site_arm)]
    by_arm = by_arm.sel(group=[a for a in arms if a in by_arm["group"].values])
    by_site = km_ppc(time, event, site_arm, rep["time"], rep["event"], grid,
                     spec.estimands.interval_prob, order=order)
    return {"arm": by_arm, "site_arm": by_site}
