"""Report of the lesion-level local recurrence (LR) analysis: model and estimands explained,
CIF curves with death competing, LR-count and Turnbull predictive checks, data warnings."""

from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.endpoints.local_recurrence.checks import CHECK_TITLES
from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import FigureSpec, Report, Section, register_report, section
from bayes_ablation.results.sections.analysis import (
    analysis_report,
    arm_labels,
    hr_figure,
    posterior_dataset,
    posterior_figures,
    trace_figure,
)
from bayes_ablation.results.sections.confounding import confounding_section
from bayes_ablation.results.sections.subgroups import subgroups_section
from bayes_ablation.survival.piecewise import DEFAULT_CUTS_MONTHS

#: the competing-event and frailty quantities traced besides the standard ones
EXTRA_TRACES = ("log_hazard_baseline", "sigma_patient", "death_log_hr", "death_log_cumhaz_ref",
                "death_weibull_shape")


def check_table(checks: Mapping[str, xr.Dataset]) -> pd.DataFrame:
    rows = []
    for name in CHECK_TITLES:
        if name not in checks:
            continue
        ds = checks[name]
        for g in ds["group"].values:
            sel = ds.sel(group=g)
            rows.append({"check": CHECK_TITLES[name], "group": str(g),
                         "lesions": int(sel["lesions"]), "observed LR": int(sel["observed"]),
                         "predictive median": float(sel["median"]),
                         "predictive band": f"{float(sel['lower']):.0f}–{float(sel['upper']):.0f}",
                         "P(rep ≥ obs)": float(sel["p_rep_ge_obs"])})
    return pd.DataFrame(rows)


_EXPLAIN = """
<p><b>Endpoint.</b> Local recurrence (LR) of each ablated lesion, seen only at scans: LR
happened between the last negative and the first positive scan (interval-censored); a lesion
without a positive scan is right-censored at its last negative scan. Death is a competing
event: a patient who dies can no longer recur.</p>
<p><b>Model.</b> Cause-specific {baseline} hazard of LR per lesion with the arm, the lesion
covariates ({covs}), a patient frailty (shared by a patient's lesions) and site intercepts, both
non-centred; a cause-specific Weibull hazard of death per patient with an arm effect. Working
assumption: given the covariates the death hazard does not depend on the lesion's LR (death is
modelled from the whole follow-up).</p>
<p><b>Estimands.</b> <code>hr</code>: LR hazard ratio treatment vs reference, conditional on
patient frailty and site (HR &lt; 1 favours the treatment arm). <code>cif_lr</code>: cumulative
incidence of LR per lesion accounting for competing death,
CIF(t) = ∫<sub>0</sub><sup>t</sup> h<sub>LR</sub>(s) S<sub>LR</sub>(s) S<sub>D</sub>(s) ds —
not 1 − Kaplan–Meier. <code>cif_lr_difference</code> = treatment − reference (&lt; 0 favours the
treatment arm). Lesion targets: <i>reference</i> = the pre-specified reference lesion
({ref}); <i>standardised</i> = averaged over the covariates of all analysed lesions (both arms
pooled). Populations: <i>typical_patient</i> = frailty 0 at an average site (conditional);
<i>average_site</i> = averaged over patient frailty at an average site (population-averaged);
<i>new_site</i> = averaged over patient frailty and a new site. <code>death_free_survival</code>:
S<sub>D</sub>(t) of the competing event.</p>
"""


def reference_lesion(result: AnalysisResult) -> dict:
    return result.spec.model_options.get("reference_lesion", {"size_cm": 2.0, "margin_mm": 10.0})


def model_section(result: AnalysisResult) -> Section:
    spec = result.spec
    cuts = spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS)
    baseline = ("piecewise-exponential (cuts " + ", ".join(f"{c:g}" for c in cuts) + " months)"
                if spec.model == "lr_pwe" else "Weibull")
    ref = reference_lesion(result)
    return section("Local recurrence: model and estimands", _EXPLAIN.format(
        baseline=baseline, covs=html.escape(", ".join(spec.covariates) or "none"),
        ref=html.escape(", ".join(f"{k} = {v}" for k, v in ref.items()))))


def checks_section(result: AnalysisResult, figures: list[FigureSpec] | None = None
                   ) -> Section | None:
    checks = result.checks
    table = check_table(checks)
    if not len(table):
        return None
    after = None
    if "lr_cumulative_incidence" in checks:
        inside = checks["lr_cumulative_incidence"]["inside"]
        after = ("<p>Turnbull NPMLE of the data (death and end of scans as censoring) inside "
                 "the band of the same estimator on the replicated data: " + ", ".join(
                     f"{g}: {float(v):.0%}" for g, v in zip(
                         inside["group"].values, inside.values, strict=True)) + ".</p>")
    return section(
        "Posterior predictive checks: local recurrence",
        "<p class='muted'>Each replicated data set redraws every lesion's LR time from one "
        "posterior draw (its own patient frailty, site and covariates) and observes it through "
        "the patient's scans (the scans the data reveal, with the protocol's visits filling the "
        "gaps) up to the patient's last scan. Extreme P(rep ≥ obs) (&lt; 0.025 or &gt; 0.975) "
        "flags misfit.</p>", *(figures or []), table, after)


def surveillance_tables(result: AnalysisResult, t_max: float) -> tuple[dict | None,
                                                                       dict | None]:
    """Under the CIF curves: per arm, the lesions still under surveillance at t (known free
    of LR up to a scan at or after t: last negative scan ≥ t); under death-free survival,
    the patients still followed (follow-up ≥ t)."""
    from bayes_ablation.survival.predictive import numbers_at_risk, risk_times

    cdata = result.idata.constant_data
    if "lr_lower" not in cdata or "lesion_arm_idx" not in cdata:
        return None, None
    arms = arm_labels(result)
    times = risk_times(t_max)
    arm_of = np.asarray(arms)
    lesions = {"times": [float(t) for t in times], "label": "Lesions under surveillance",
               "counts": numbers_at_risk(np.asarray(cdata["lr_lower"].values, float),
                                         arm_of[np.asarray(cdata["lesion_arm_idx"].values, int)],
                                         arms, times)}
    patients = None
    if "followup_months" in cdata and "arm_idx" in cdata:
        patients = {"times": lesions["times"], "label": "Patients followed",
                    "counts": numbers_at_risk(np.asarray(cdata["followup_months"].values, float),
                                              arm_of[np.asarray(cdata["arm_idx"].values, int)],
                                              arms, times)}
    return lesions, patients


def lr_figures(result: AnalysisResult, population: str = "average_site") -> list[FigureSpec]:
    """CIF curves (reference lesion, standardised lesion mix, death-free survival), lesion
    covariate effects, frailty and death traces, and the LR predictive checks."""
    from bayes_ablation.endpoints.local_recurrence import estimands as elr

    post = posterior_dataset(result)
    cdata = result.idata.constant_data
    spec = result.spec
    prob = spec.estimands.interval_prob
    t_max = max(spec.estimands.times_months)
    grid = np.linspace(0.0, t_max, int(t_max) + 1)[1:]
    targets = elr.target_offsets(post, cdata)
    offsets = {"reference lesion": targets["reference"],
               "observed lesion mix (standardised)": targets["standardised"]}
    panels: dict[str, xr.DataArray] = {}
    for title, off in offsets.items():
        same = [t for t in panels if elr.same_offsets(offsets[t], off)]
        # no lesion covariates: the reference lesion is the standardised one (one CIF)
        panels[title] = panels[same[0]] if same else elr.lr_cif(post, spec, grid, off,
                                                                 population)
    lesions, patients = surveillance_tables(result, t_max)
    figures = [FigureSpec("cif_lr", "lr_cif", {
        "panels": panels, "death_free": elr.death_survival(post, grid, spec), "grid": grid,
        "interval_prob": prob, "population": population, "under_surveillance": lesions,
        "followed": patients},
        title="Cumulative incidence of local recurrence by arm (death competing)",
        alt="Cumulative incidence of local recurrence per arm over months since ablation "
            f"(posterior median and {prob:.0%} band) for the reference lesion and for the "
            "observed lesion mix, and death-free survival; under each panel the number of "
            "lesions under surveillance (or patients followed) per arm.")]
    if "beta_covariates" in post:
        figures.append(FigureSpec("lesion_covariate_effects", "forest", {
            "draws": post["beta_covariates"], "dim": "covariate",
            "title": "Lesion covariate effects on the log LR hazard",
            "xlabel": "log hazard ratio", "interval_prob": prob},
            title="Lesion covariate effects on the local-recurrence hazard",
            alt="Forest plot of the lesion covariates' effects on the log hazard of local "
                "recurrence."))
    extra = [n for n in EXTRA_TRACES if n in post]
    if extra:
        figures.append(FigureSpec("traces_frailty_death", "traces", {
            "post": post, "names": extra,
            "title": "Trace plots: frailty and competing-death parameters"},
            title="Trace plots of the frailty and competing-death parameters",
            alt="Trace plots (one colour per chain) of " + ", ".join(extra) + "."))
    if any(n in result.checks for n in CHECK_TITLES):
        figures.append(FigureSpec("ppc_lr_counts", "lr_counts",
                                  {"checks": dict(result.checks)},
                                  title="Posterior predictive check: lesions with local "
                                        "recurrence",
                                  alt="Observed number of lesions with a local recurrence "
                                      "(dots) against the posterior predictive band, per "
                                      "group."))
    if "lr_cumulative_incidence" in result.checks:
        figures.append(FigureSpec("lr_cumulative_incidence_check", "lr_incidence_check",
                                  {"ds": result.checks["lr_cumulative_incidence"]},
                                  title="Posterior predictive check: Turnbull estimate of "
                                        "local recurrence",
                                  alt="Turnbull estimate of local recurrence by time per arm "
                                      "(steps) against the band of the same estimator on "
                                      "replicated data."))
    return figures


@register_report("local_recurrence")
def lr_report(result: AnalysisResult) -> Report:
    note = ("LR hazard ratio &lt; 1 and CIF difference &lt; 0 favour the treatment arm over "
            f"the reference arm ({html.escape(str(result.spec.reference_arm))}); the HR is "
            "conditional on patient frailty and site. Lesion targets and populations are "
            "explained under “Local recurrence: model and estimands” below.")
    lr = lr_figures(result)
    ppc = [f for f in lr if f.name in ("ppc_lr_counts", "lr_cumulative_incidence_check")]
    checks = checks_section(result, ppc)
    sections = [s for s in (model_section(result), subgroups_section(result),
                            confounding_section(result)) if s is not None]
    figures = (posterior_figures(result) + hr_figure(result) + trace_figure(result)
               + [f for f in lr if f not in ppc])
    if checks is None:
        figures += ppc
    return analysis_report(result, estimands_note_html=note, sections=sections,
                           figures=figures, checks=[checks] if checks else [])
