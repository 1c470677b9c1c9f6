"""Convergence diagnostics (through ArviZ), the pass/fail gate, and posterior predictive checks.

Gate (thresholds from the spec): max R-hat ≤ rhat_max, min bulk and tail ESS ≥ their minima,
divergences ≤ max_divergences, min E-BFMI over chains ≥ ebfmi_min. Checked over every posterior
variable (parameters and deterministics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.spec import AnalysisSpec, DiagnosticsSpec


@dataclass
class ConvergenceReport:
    """Convergence summary of one fit; ``table`` has one row per scalar parameter."""

    passed: bool
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    mcse_mean_max: float
    divergences: int
    ebfmi_min: float
    n_draws: int
    failures: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("table")
        return d


def _flat(tree: Any) -> dict[str, np.ndarray]:
    """Variables of an ArviZ result (DataTree or Dataset) as flat arrays."""
    ds = tree.to_dataset() if hasattr(tree, "to_dataset") else tree
    if "posterior" in getattr(tree, "children", {}):
        ds = tree["posterior"].to_dataset()
    return {name: np.atleast_1d(np.asarray(da.values, float)).ravel()
            for name, da in ds.data_vars.items()}


def parameter_table(idata: xr.DataTree, var_names: list[str] | None = None) -> pd.DataFrame:
    """Per scalar parameter: mean, sd, R-hat, bulk/tail ESS and MCSE of the mean (ArviZ)."""
    import arviz as az

    post = idata.posterior.to_dataset()
    names = var_names or [v for v in post.data_vars if post[v].ndim >= 2]
    summary = az.summary(idata, var_names=names, ci_prob=0.95)
    return pd.DataFrame(summary)


def convergence(idata: xr.DataTree, thresholds: DiagnosticsSpec) -> ConvergenceReport:
    """Run R-hat, ESS, MCSE, divergence and E-BFMI checks and apply the gate."""
    import arviz as az

    post = idata.posterior.to_dataset()
    names = [v for v in post.data_vars
             if np.all(np.isfinite(post[v].values)) and post[v].std() > 0]
    rhat = _flat(az.rhat(idata, var_names=names))
    ess_bulk = _flat(az.ess(idata, var_names=names, method="bulk"))
    ess_tail = _flat(az.ess(idata, var_names=names, method="tail"))
    mcse = _flat(az.mcse(idata, var_names=names, method="mean"))
    n_chains = post.sizes["chain"]

    def extreme(d: dict[str, np.ndarray], fn: Any) -> float:
        values = np.concatenate([v for v in d.values()]) if d else np.array([np.nan])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    divergences = int(idata.sample_stats["diverging"].sum()) \
        if "diverging" in idata.sample_stats else 0
    try:
        ebfmi = np.asarray(_flat(az.bfmi(idata))["energy"]) if "energy" in \
            idata.sample_stats else np.array([np.nan])
    except Exception:
        ebfmi = np.array([np.nan])
    report = ConvergenceReport(
        passed=True,
        rhat_max=extreme(rhat, np.max) if n_chains > 1 else float("nan"),
        ess_bulk_min=extreme(ess_bulk, np.min),
        ess_tail_min=extreme(ess_tail, np.min),
        mcse_mean_max=extreme(mcse, np.max),
        divergences=divergences,
        ebfmi_min=float(np.nanmin(ebfmi)) if np.isfinite(ebfmi).any() else float("nan"),
        n_draws=int(post.sizes["chain"] * post.sizes["draw"]),
    )
    t = thresholds
    if n_chains < 2:
        report.failures.append("R-hat needs at least 2 chains")
    elif not report.rhat_max <= t.rhat_max:
        report.failures.append(f"max R-hat {report.rhat_max:.3f} > {t.rhat_max}")
    if not report.ess_bulk_min >= t.ess_bulk_min:
        report.failures.append(f"min bulk ESS {report.ess_bulk_min:.0f} < {t.ess_bulk_min:g}")
    if not report.ess_tail_min >= t.ess_tail_min:
        report.failures.append(f"min tail ESS {report.ess_tail_min:.0f} < {t.ess_tail_min:g}")
    if report.divergences > t.max_divergences:
        report.failures.append(f"{report.divergences} divergent transitions "
                               f"(allowed {t.max_divergences})")
    if not report.ebfmi_min >= t.ebfmi_min:
        report.failures.append(f"min E-BFMI {report.ebfmi_min:.2f} < {t.ebfmi_min}")
    report.passed = not report.failures
    rows = []
    for name in rhat:
        for i in range(rhat[name].size):
            rows.append({"parameter": name if rhat[name].size == 1 else f"{name}[{i}]",
                         "r_hat": rhat[name][i], "ess_bulk": ess_bulk[name][i],
                         "ess_tail": ess_tail[name][i], "mcse_mean": mcse[name][i]})
    report.table = pd.DataFrame(rows)
    return report


# --------------------------------------------------------------------------------------------
# Kaplan–Meier based posterior predictive checks

def km_on_grid(time: np.ndarray, event: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kaplan–Meier estimate evaluated at ``grid`` (right-continuous step function).

    Matches ``lifelines.KaplanMeierFitter`` (tested); written out so thousands of predictive
    replicates can be summarised quickly.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, int)
    if time.size == 0:
        return np.full(grid.shape, np.nan)
    uniq, inverse = np.unique(time, return_inverse=True)
    deaths = np.bincount(inverse, weights=event, minlength=uniq.size)
    leaving = np.bincount(inverse, minlength=uniq.size)
    at_risk = time.size - np.concatenate([[0], np.cumsum(leaving)[:-1]])
    factors = np.where(deaths > 0, 1.0 - deaths / at_risk, 1.0)
    surv = np.cumprod(factors)
    pos = np.searchsorted(uniq, grid, side="right") - 1
    return np.where(pos >= 0, surv[np.maximum(pos, 0)], 1.0)


def km_ppc(observed_time: np.ndarray, observed_event: np.ndarray, groups: np.ndarray,
           replicated_time: np.ndarray, replicated_event: np.ndarray, grid: np.ndarray,
           interval_prob: float = 0.95, order: list[str] | None = None) -> xr.Dataset:
    """Observed KM and the posterior predictive KM band per group on ``grid``.

    Returns a Dataset with ``observed`` (group, time), ``lower``/``median``/``upper``
    (group, time), ``coverage`` (group): the share of grid points where the observed curve
    lies inside the band, and ``events_p_value`` (group): P(replicated events ≥ observed).
    """
    labels = order if order is not None else list(pd.unique(groups))
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    obs, low, mid, up, cover, pval = [], [], [], [], [], []
    for g in labels:
        mask = groups == g
        o = km_on_grid(observed_time[mask], observed_event[mask], grid)
        reps = np.stack([km_on_grid(t[mask], e[mask], grid)
                         for t, e in zip(replicated_time, replicated_event, strict=True)])
        q = np.quantile(reps, [lo, 0.5, hi], axis=0)
        obs.append(o)
        low.append(q[0])
        mid.append(q[1])
        up.append(q[2])
        cover.append(float(np.mean((o >= q[0] - 1e-12) & (o <= q[2] + 1e-12))))
        n_obs = observed_event[mask].sum()
        pval.append(float(np.mean(replicated_event[:, mask].sum(axis=1) >= n_obs)))
    coords = {"group": labels, "time": grid}
    return xr.Dataset({
        "observed": (("group", "time"), np.array(obs)),
        "lower": (("group", "time"), np.array(low)),
        "median": (("group", "time"), np.array(mid)),
        "upper": (("group", "time"), np.array(up)),
        "coverage": (("group",), np.array(cover)),
        "events_p_value": (("group",), np.array(pval)),
    }, coords=coords, attrs={"interval_prob": interval_prob})


def survival_ppc(idata: xr.DataTree, spec: AnalysisSpec, arm_labels: np.ndarray,
                 site_labels: np.ndarray, n_draws: int = 100, seed: int = 0,
                 arm_order: list[str] | None = None) -> dict[str, xr.Dataset]:
    """Posterior predictive KM checks per arm and per site × arm.

    Reads the per-patient data (``time_months``, ``event``, ``arm_idx``, ``site_idx``, ``x``)
    from ``constant_data``; aggregated models keep them there too, outside their likelihood.
    """
    from bayes_ablation.predictive import predictive_observed

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
