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
    arm_labels,
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


def at_risk_by_arm(result: AnalysisResult, t_max: float | None = None) -> dict | None:
    """Numbers at risk per arm (patients with time ≥ t) at the KM plot's ticks, from the
    patient data kept in the posterior file; None when the fit kept none."""
    from bayes_ablation.survival.predictive import numbers_at_risk, risk_times

    idata = result.idata
    if idata is None or "constant_data" not in idata.children:
        return None
    cdata = idata.constant_data
    if "time_months" not in cdata or "arm_idx" not in cdata:
        return None
    time = np.asarray(cdata["time_months"].values, float)
    arms = arm_labels(result)
    labels = np.asarray(arms)[np.asarray(cdata["arm_idx"].values, int)]
    times = risk_times(float(t_max if t_max is not None else time.max()))
    return {"times": [float(t) for t in times], "label": "Number at risk",
            "counts": numbers_at_risk(time, labels, arms, times)}


def survival_figures(result: AnalysisResult) -> list[FigureSpec]:
    """Model survival over the observed Kaplan–Meier curves (numbers at risk per arm under
    the axis), and the KM predictive checks: by arm, and by site as a dot plot of in-band
    coverage plus one small panel per site."""
    from bayes_ablation.endpoints.pfs.estimands import survival_at

    prob = result.spec.estimands.interval_prob
    figures = []
    if "arm" in result.checks:
        by_arm = result.checks["arm"]
        grid = by_arm["time"].values
        curves = survival_at(result.idata, result.spec, np.maximum(grid, 1e-6), "average")
        risk = at_risk_by_arm(result, float(grid.max()))
        figures.append(FigureSpec("km_posterior", "km_with_posterior", {
            "observed": by_arm, "curves": curves, "interval_prob": prob, "at_risk": risk},
            title="Progression-free survival by arm: Kaplan–Meier and model",
            alt="Kaplan–Meier curves of progression-free survival per arm (dashed steps) over "
                f"the model's posterior median and {prob:.0%} band for an average site, with "
                "the number of patients at risk per arm under the time axis."))
        figures.append(FigureSpec("ppc_arm", "ppc_km", {
            "ppc": by_arm, "ncols": len(by_arm["group"]),
            "title": "Posterior predictive check of the Kaplan–Meier curve, by arm"},
            title="Posterior predictive check by arm",
            alt="Per arm, the observed Kaplan–Meier curve over the band of Kaplan–Meier curves "
                "of data replicated from the posterior."))
    if "site_arm" in result.checks:
        by_site = result.checks["site_arm"]
        figures.append(FigureSpec("ppc_site_coverage", "ppc_coverage", {"ppc": by_site},
                                  title="Posterior predictive check by site: summary",
                                  alt="Dot plot per site and arm of the share of the observed "
                                      "Kaplan–Meier curve inside the posterior predictive band, "
                                      "and of P(replicated events ≥ observed)."))
        figures.append(FigureSpec("ppc_sites", "ppc_km_sites", {"ppc": by_site},
                                  title="Posterior predictive check by site: curves",
                                  alt="One panel per site: each arm's observed Kaplan–Meier "
                                      "curve over its posterior predictive band; the panel "
                                      "title gives the share inside the band per arm."))
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
        "interval_prob": prob}, title="Hazard per interval by arm",
        alt="Step plot of the posterior hazard per interval and arm (median and band).")]
    if "hr_interval" in result.estimands:
        figures.append(FigureSpec("hr_by_interval", "interval_hr", {
            "hr_interval": result.estimands["hr_interval"], "hr": result.estimands["hr"],
            "interval_start": start, "end_time": end, "interval_prob": prob},
            title="Time-varying hazard ratio per interval",
            alt="Step plot of the hazard ratio per interval (median and band, log scale) with "
                "the overall hazard ratio dashed."))
    return figures


def km_check_table(result: AnalysisResult) -> pd.DataFrame:
    """Per arm, and per site and arm: the share of the observed KM inside the predictive
    band and P(replicated events ≥ observed)."""
    rows = []
    for level, ds in result.checks.items():
        if "coverage" not in ds:
            continue
        for g in ds["group"].values:
            site, _, arm = str(g).rpartition(" | ") if " | " in str(g) else ("all sites", "",
                                                                               str(g))
            rows.append({"check": "by arm" if level == "arm" else f"by {level.replace('_', ' × ')}",
                         "site": site, "arm": arm,
                         "observed KM inside band": f"{float(ds['coverage'].sel(group=g)):.0%}",
                         "P(rep events ≥ obs)": float(ds["events_p_value"].sel(group=g))})
    return pd.DataFrame(rows)


def km_check_section(result: AnalysisResult, figures: list[FigureSpec] | None = None
                     ) -> Section | None:
    """Observed KM inside the band, and P(replicated events ≥ observed), with the
    predictive-check figures."""
    table = km_check_table(result)
    if not len(table) and not figures:
        return None
    return section("Posterior predictive checks",
                   "<p class=\"muted\">Data sets replicated from the posterior, analysed as the "
                   "observed one: the observed Kaplan–Meier curve should lie inside the band "
                   "of the replicated curves most of the time, and P(replicated events ≥ "
                   "observed) should not be extreme (&lt; 0.025 or &gt; 0.975).</p>",
                   *(figures or []), table if len(table) else None)


@register_report("pfs")
def pfs_report(result: AnalysisResult) -> Report:
    from bayes_ablation.results.sections.borrowing import borrowing_section

    survival = survival_figures(result)
    ppc = [f for f in survival if f.name.startswith("ppc_")]
    km = km_check_section(result, ppc)
    borrowed = borrowing_section(result)
    figures = ([f for f in survival if f not in ppc] + posterior_figures(result)
               + interval_figures(result) + hr_figure(result) + trace_figure(result))
    confounding = confounding_section(result)
    sub = subgroups_section(result)
    return analysis_report(result, estimands_note_html=estimands_note(result),
                           figures=figures, checks=[km] if km else [],
                           sections=[s for s in (sub, confounding, borrowed) if s])
