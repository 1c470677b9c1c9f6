"""The confounding diagnostics of one cohort analysis, per treatment arm against the
reference: propensity model, overlap, balance, positivity warnings, weighted companion
estimates next to g-computation, and the sensitivity analysis of the conditional log HR.

Returned as ``summary.json`` entries (``confounding``), bundle tables and the figure data of
the report section.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.data.schema import PatientTable
from bayes_ablation.endpoints.confounding.propensity import (
    OVERLAP_BOUNDS,
    SITE_SD,
    balance_table,
    comparison_design,
    fit_propensity,
    overlap_summary,
    positivity_warnings,
)
from bayes_ablation.endpoints.confounding.sensitivity import (
    COMMON_OUTCOME,
    BiasPriors,
    e_value_hr,
    probabilistic_bias,
    sensitivity_grid,
)
from bayes_ablation.endpoints.confounding.weighting import side_by_side, weighted_contrasts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfoundingAnalysis:
    """``summary``: the ``summary.json["confounding"]`` entry; ``tables``: bundle CSVs by
    name; ``figures``: per treatment, the arrays the report's figures draw."""

    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict(orient="records")]


def _interval(v: np.ndarray, prob: float) -> dict[str, float]:
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    return {"median": float(np.median(v)), "lower": float(np.quantile(v, lo)),
            "upper": float(np.quantile(v, hi))}


def sensitivity_summary(log_hr_draws: np.ndarray, event_share: float | None, *,
                        priors: BiasPriors, interval_prob: float, seed: int
                        ) -> tuple[dict[str, Any], pd.DataFrame]:
    """(summary entry, grid table) of one treatment's conditional log HR draws;
    ``event_share`` decides the E-value's HR → RR conversion (None: unknown, the common-
    outcome conversion, which gives the smaller E-value)."""
    obs = np.asarray(log_hr_draws, float).ravel()
    adjusted = probabilistic_bias(obs, priors, seed=seed)
    hr = _interval(np.exp(obs), interval_prob)
    common = event_share is None or bool(event_share > COMMON_OUTCOME)
    grid = sensitivity_grid(obs, interval_prob=interval_prob)
    return {
        "priors": priors.to_dict(),
        "hr_unadjusted": hr,
        "hr_adjusted": {**_interval(np.exp(adjusted), interval_prob),
                        "p_below_1": float(np.mean(adjusted < 0))},
        "log_hr_adjusted": {**_interval(adjusted, interval_prob),
                            "mean": float(adjusted.mean()), "sd": float(adjusted.std(ddof=1))},
        "e_value": {**e_value_hr(hr["median"], hr["lower"], hr["upper"], common=common),
                    "event_share": None if event_share is None else float(event_share)},
        "grid": {"mean_prevalence": 0.5, "rows": len(grid),
                 "table": "confounding_sensitivity_grid.csv"},
    }, grid


def confounding_analysis(patients: PatientTable, *, log_hr: xr.DataArray | None,
                         gcomp: pd.DataFrame | None, times_months: Sequence[float],
                         tau_months: float, interval_prob: float = 0.95, seed: int = 0,
                         n_boot: int = 1000, priors: BiasPriors | None = None,
                         site_sd: float = SITE_SD, min_pattern_patients: int = 5,
                         companion: bool = True) -> ConfoundingAnalysis:
    """Every diagnostic for each treatment arm against the reference arm.

    ``log_hr``: posterior draws of the conditional log HR (dims chain, draw, treatment), or
    None to skip the sensitivity analysis; ``gcomp``: an estimand table whose ATE/ATT rows
    (labels like ``ATE survival_difference[<arm>, t=<t>]``) are shown next to the weighted
    estimates (None or no such rows: the weighted estimates alone). ``companion`` False
    (for endpoints other than the patient table's ``time_months``/``event``, i.e. not PFS)
    skips the weighted Kaplan–Meier estimates, and the E-value, not knowing how common the
    outcome is, uses the common-outcome HR → RR conversion.
    """
    priors = priors or BiasPriors()
    propensity: dict[str, Any] = {}
    overlap: dict[str, Any] = {}
    balance: list[pd.DataFrame] = []
    warnings: list[dict[str, Any]] = []
    weighted: list[pd.DataFrame] = []
    sensitivity: dict[str, Any] = {}
    grids: list[pd.DataFrame] = []
    figures: dict[str, dict[str, Any]] = {}
    for k, treatment in enumerate(patients.treatments):
        design = comparison_design(patients, treatment)
        fit = fit_propensity(design, site_sd=site_sd)
        if not fit.converged:
            logger.warning("propensity model for %s did not converge", treatment)
        propensity[treatment] = {"method": fit.method, "intercept": fit.intercept,
                                 "coefficients": fit.coefficients,
                                 "site_intercepts": fit.site_intercepts,
                                 "separation": fit.separation, "converged": fit.converged,
                                 "patients": design.n}
        overlap[treatment] = overlap_summary(fit)
        bal = balance_table(fit)
        balance.append(bal)
        found = positivity_warnings(design, patients.covariates,
                                    min_patients=min_pattern_patients)
        warnings += [w.to_dict() for w in found]
        share = overlap[treatment]["share_outside"]
        if share > 0:
            warnings.append({"treatment": treatment, "pattern": "propensity",
                             "arm_without_patients": None,
                             "patients": overlap[treatment]["patients_outside"],
                             "share": share,
                             "message": f"{overlap[treatment]['patients_outside']} of "
                                        f"{design.n} patients ({share:.1%}) have a propensity "
                                        f"outside [{OVERLAP_BOUNDS[0]:g}, {OVERLAP_BOUNDS[1]:g}]"})
        if companion:
            weighted.append(weighted_contrasts(fit, times_months, tau_months, n_boot=n_boot,
                                               seed=seed + k, interval_prob=interval_prob,
                                               site_sd=site_sd))
        fig: dict[str, Any] = {
            "propensity": {design.treatment: fit.propensity[design.treated == 1],
                           design.reference: fit.propensity[design.treated == 0]},
            "balance": bal}
        if log_hr is not None and "treatment" in log_hr.dims \
                and treatment in log_hr["treatment"].values:
            draws = log_hr.sel(treatment=treatment).values
            entry, grid = sensitivity_summary(
                draws, float(design.event.mean()) if companion else None, priors=priors,
                interval_prob=interval_prob, seed=seed + 1000 + k)
            sensitivity[treatment] = entry
            grids.append(grid.assign(treatment=treatment))
            fig["grid"] = grid
            fig["hr_unadjusted"] = entry["hr_unadjusted"]
        figures[treatment] = fig
    tables = {"confounding_balance": pd.concat(balance, ignore_index=True)}
    if weighted:
        tables["confounding_weighted_estimates"] = pd.concat(weighted, ignore_index=True)
        tables["confounding_estimates_side_by_side"] = side_by_side(
            tables["confounding_weighted_estimates"], gcomp)
    if grids:
        tables["confounding_sensitivity_grid"] = pd.concat(grids, ignore_index=True)
    summary = {
        "propensity": propensity,
        "overlap": overlap,
        "balance": _records(tables["confounding_balance"]),
        "positivity_warnings": warnings,
        "weighted_estimates": _records(tables.get("confounding_weighted_estimates",
                                                  pd.DataFrame())),
        "side_by_side": _records(tables.get("confounding_estimates_side_by_side",
                                            pd.DataFrame())),
        "sensitivity": sensitivity,
    }
    return ConfoundingAnalysis(summary=summary, tables=tables, figures=figures)


def merge_entries(entries: Mapping[str, Any], analysis: ConfoundingAnalysis) -> dict[str, Any]:
    """``summary_entries`` with ``confounding`` added (an existing ``confounding`` entry,
    e.g. the causal estimands', is kept and extended)."""
    out = dict(entries)
    out["confounding"] = {**dict(out.get("confounding", {})), **analysis.summary}
    return out
