"""Report of a patient-level (PFS) analysis: survival curves against Kaplan–Meier, posterior
predictive checks, interval hazards of piecewise models."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import FigureSpec, Report, Section, register_report, section
from bayes_ablation.results.sections.analysis import (
    analysis_report,
    hr_figure,
    posterior_figures,
    trace_figure,
)
from bayes_ablation.results.sections.confounding import confounding_section
from bayes_ablation.results.sections.subgroups import subgroups_section


def estimands_note(result: AnalysisResult) -> str:
    return ("Hazard ratio &lt; 1 and survival difference &gt; 0 favour the treatment arm over "
            f"the reference arm ({html.escape(str(result.spec.reference_arm))}). \"average "
            "site\": site effect 0; \"new site\": integrated over the between-site "
            "distribution.")


def survival_figures(result: AnalysisResult) -> list[FigureSpec]:
    """Model survival over the observed Kaplan–Meier curves, and the KM predictive checks."""
    from bayes_ablation.endpoints.pfs.estimands import survival_at

    prob = result.spec.estimands.interval_prob
    figures = []
    if "arm" in result.checks:
        by_arm = result.checks["arm"]
        grid = by_arm["time"].values
        curves = survival_at(result.idata, result.spec, np.maximum(grid, 1e-6), "average")
        figures.append(FigureSpec("km_posterior", "km_with_posterior", {
            "observed": by_arm, "curves": curves, "interval_prob": prob}))
        figures.append(FigureSpec("ppc_arm", "ppc_km", {"ppc": by_arm,
                                                        "ncols": len(by_arm["group"])}))
    if "site_arm" in result.checks:
        figures.append(FigureSpec("ppc_sites", "ppc_km", {
            "ppc": result.checks["site_arm"],
            "title": "Posterior predictive check by site | arm"}))
    return figures


def interval_figures(result: AnalysisResult) -> list[FigureSpec]:
    """Hazard (and HR, when time-varying) per interval of a piecewise-exponential fit."""
    if "hazard" not in result.estimands or result.idata is None \
            or "interval_start" not in result.idata.constant_data:
        return []
    prob = result.spec.estimands.interval_prob
    start = np.asarray(result.idata.constant_data["interval_start"].values, float)
    end = float(np.max(result.idata.constant_data["time_months"].values))
    figures = [FigureSpec("hazard_by_interval", "interval_hazards", {
        "hazard": result.estimands["hazard"], "interval_start": start, "end_time": end,
        "interval_prob": prob})]
    if "hr_interval" in result.estimands:
        figures.append(FigureSpec("hr_by_interval", "interval_hr", {
            "hr_interval": result.estimands["hr_interval"], "hr": result.estimands["hr"],
            "interval_start": start, "end_time": end, "interval_prob": prob}))
    return figures


def km_check_section(result: AnalysisResult) -> Section | None:
    """Observed KM inside the predictive band, and P(replicated events ≥ observed)."""
    rows = []
    for level, ds in result.checks.items():
        if "coverage" not in ds:
            continue
        for g in ds["group"].values:
            rows.append({"level": level, "group": str(g),
                         "observed KM inside band": float(ds["coverage"].sel(group=g)),
                         "P(rep events ≥ obs)": float(ds["events_p_value"].sel(group=g))})
    return section("Posterior predictive checks", pd.DataFrame(rows)) if rows else None


@register_report("pfs")
def pfs_report(result: AnalysisResult) -> Report:
    from bayes_ablation.results.sections.borrowing import borrowing_section

    km = km_check_section(result)
    borrowed = borrowing_section(result)
    figures = (survival_figures(result) + posterior_figures(result) + interval_figures(result)
               + hr_figure(result) + trace_figure(result))
    confounding = confounding_section(result)
    sub = subgroups_section(result)
    return analysis_report(result, estimands_note_html=estimands_note(result),
                           figures=figures, checks=[km] if km else [],
                           sections=[s for s in (sub, confounding, borrowed) if s])
