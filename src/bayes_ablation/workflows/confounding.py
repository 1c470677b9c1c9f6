"""Cohort (non-randomised) analyses: the confounding diagnostics added to a fit's result.

:func:`with_confounding` is called by :func:`bayes_ablation.workflows.fit.fit` when the spec's
``[analysis] design = "cohort"``; a randomised analysis never reaches it. It adds
``summary.json["confounding"]`` (propensity model, overlap, balance, positivity warnings,
weighted companion estimates beside the g-computation ones, sensitivity analysis), the
bundle tables ``confounding_*.csv`` and the figure data of the report's "Confounding" section.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from bayes_ablation.data.schema import PatientTable
from bayes_ablation.endpoints.confounding.analysis import confounding_analysis, merge_entries
from bayes_ablation.endpoints.confounding.sensitivity import BiasPriors
from bayes_ablation.workflows.result import Result

#: share of patients with propensity outside the overlap bounds that the banner reports
BANNER_SHARE_OUTSIDE = 0.05
#: Bayesian-bootstrap replicates of the weighted companion estimates
N_BOOT = 1000


def positivity_records(warnings: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Positivity warnings as ``summary.json["warnings"]`` records (file, rows, value,
    message), the form the report's data-warnings banner lists."""
    out = []
    for w in warnings:
        if w["pattern"] == "propensity" and w.get("share", 1.0) < BANNER_SHARE_OUTSIDE:
            continue          # a few extreme propensities: in the section, not the banner
        message = (f"positivity: {w['message']} — the comparison there rests on the model's "
                   "extrapolation across arms")
        out.append({"file": source, "column": None, "rows": list(w.get("rows") or []),
                    "n_rows": len(w.get("rows") or []), "value": w["pattern"],
                    "message": message, "text": f"{source}: {message}"})
    return out


def with_confounding(result: Result, patients: PatientTable, *, n_boot: int = N_BOOT,
                     priors: BiasPriors | None = None) -> Result:
    """``result`` with the confounding diagnostics of ``patients`` (the analysed table):
    the g-computation estimates shown beside the weighted ones are the result's ATE/ATT
    rows; the sensitivity analysis adjusts the posterior of the conditional ``log_hr``."""
    started = time.perf_counter()
    spec = result.spec
    est = spec.estimands
    log_hr = result.estimands["log_hr"] if "log_hr" in result.estimands else None
    analysis = confounding_analysis(
        patients, log_hr=log_hr, gcomp=result.estimand_table, times_months=est.times_months,
        tau_months=est.rmst_tau_months, interval_prob=est.interval_prob,
        seed=spec.sampler.seed, n_boot=n_boot, priors=priors,
        companion=spec.endpoint == "pfs")
    analysis.summary["seconds"] = time.perf_counter() - started
    entries = merge_entries(result.summary_entries, analysis)
    # positivity violations are shown with the data warnings, before the results
    entries["warnings"] = [*entries.get("warnings", []), *positivity_records(
        analysis.summary["positivity_warnings"], patients.source)]
    return dataclasses.replace(
        result, summary_entries=entries,
        tables={**dict(result.tables), **analysis.tables},
        details={**dict(result.details), "confounding": analysis.figures})
