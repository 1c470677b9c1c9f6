"""Sections every analysis report shares: header and gate banner, data, priors, posterior
probabilities, estimands, posterior figures, convergence diagnostics and provenance."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import (
    Banner,
    FigureSpec,
    Report,
    Section,
    Table,
    Text,
    section,
)

#: posterior quantities drawn as trace plots when the model has them
TRACE_NAMES = ("log_hr", "weibull_shape", "log_cumhaz_ref", "log_hazard_mean",
               "sigma_log_hazard_rw", "sigma_log_hr_rw", "sigma_site", "sigma_site_arm", "mu",
               "tau")


def priors_table(spec: Any) -> pd.DataFrame:
    return pd.DataFrame([{"parameter": name, "prior": p.describe(), "rationale": p.rationale}
                         for name, p in spec.priors.items()])


def banner(result: AnalysisResult) -> Banner:
    d = result.diagnostics
    if d is None:
        return Banner(True, "No sampling: the posterior was computed deterministically (exact "
                            "quadrature), so there is no Monte Carlo error and no convergence "
                            "gate.")
    if d.passed:
        return Banner(True, f"Convergence gate passed: max R-hat {d.rhat_max:.3f}, min bulk ESS "
                            f"{d.ess_bulk_min:.0f}, min tail ESS {d.ess_tail_min:.0f}, "
                            f"{d.divergences} divergences, min E-BFMI {d.ebfmi_min:.2f}.")
    items = "".join(f"<li>{html.escape(f)}</li>" for f in d.failures)
    return Banner(False, "CONVERGENCE GATE FAILED — do not use these results for decisions."
                         f"<ul>{items}</ul>")


#: the population the headline reports, per endpoint's difference estimand
_HEADLINE_DIFF = {
    "survival_difference": ({"site_target": "average"}, "PFS", "an average site", 100, "points"),
    "cif_lr_difference": ({"lesion_target": "standardised", "population": "average_site"},
                          "cumulative incidence of local recurrence", "the analysed lesions "
                          "(standardised), frailty averaged, at an average site", 100, "points"),
    # design = "cohort": the causal contrasts (a cohort's table has these instead of, or
    # beside, the ones above; the first found per treatment is reported)
    "ate_survival_difference": ({}, "PFS", "all analysed patients (ATE by g-computation)", 100,
                                "points"),
    "ate_cif_lr_difference": ({}, "cumulative incidence of local recurrence", "all analysed "
                              "lesions (ATE by g-computation), frailty averaged", 100, "points"),
}


def headline_sentences(result: AnalysisResult) -> list[str]:
    """The primary answer in words: per treatment arm vs the reference, the HR with its
    credible interval and P(HR<1), and the difference at the middle estimand time, with the
    population named. Numbers only from the estimand table and the probabilities."""
    table, spec = result.estimand_table, result.spec
    if table is None or "estimand" not in table.columns or not (table["estimand"] == "hr").any():
        return []
    lo, hi = [c for c in table.columns if c.startswith("q")][:2]
    level = f"{100 * spec.estimands.interval_prob:g}%"
    times = list(spec.estimands.times_months)
    t_mid = times[len(times) // 2] if times else None
    out = []
    for _, hr in table[table["estimand"] == "hr"].iterrows():
        trt = hr.get("treatment")
        p_lt_1 = result.probabilities.get(f"P(HR<1) [{trt}]")
        hr_word = "local-recurrence HR" if spec.endpoint == "local_recurrence" else "HR"
        if spec.design == "cohort":
            hr_word = f"conditional {hr_word} (given covariates and site)"
        text = (f"{str(trt).capitalize()} vs {spec.reference_arm}: {hr_word} {hr['median']:.2f} "
                f"({level} CrI {hr[lo]:.2f}–{hr[hi]:.2f})"
                + (f", P(HR<1) {_probability(p_lt_1)}" if p_lt_1 is not None else ""))
        diffs = dict(_HEADLINE_DIFF)
        if spec.design == "cohort":  # the causal contrast only
            diffs = {k: v for k, v in diffs.items() if k.startswith("ate_")}
        for name, (where, what, population, scale, unit) in diffs.items():
            rows = table[(table["estimand"] == name) & (table["treatment"] == trt)]
            if "time" in rows.columns and t_mid is not None:
                rows = rows[rows["time"] == t_mid]
            for col, value in where.items():
                if col in rows.columns:
                    rows = rows[rows[col] == value]
            if len(rows) == 1:
                r = rows.iloc[0]
                text += (f"; {t_mid:g}-month {what} {scale * r['median']:+.1f} {unit} "
                         f"({level} CrI {scale * r[lo]:+.1f} to {scale * r[hi]:+.1f}), "
                         f"for {population}")
        out.append(text + ".")
    return out


def _probability(p: float) -> str:
    """'= 0.97', or '> 0.99' / '< 0.01' rather than a rounded certainty."""
    return "> 0.99" if p >= 0.995 else "< 0.01" if p < 0.005 else f"= {p:.2f}"


def headline_section(result: AnalysisResult) -> Section | None:
    sentences = headline_sentences(result)
    if not sentences:
        return None
    items = "".join(f"<p class=\"headline\">{html.escape(s)}</p>" for s in sentences)
    return Section("Answer", (Text(items),))


def data_warnings(result: AnalysisResult) -> list[dict[str, Any]]:
    """``summary.json["warnings"]``: the input tables' warnings (value and location apart)."""
    return list(result.summary_entries.get("warnings", []))


def with_warnings(b: Banner, result: AnalysisResult) -> Banner:
    """The banner, followed by one line per data warning (value and location apart)."""
    warnings = data_warnings(result)
    if not warnings:
        return b
    items = "".join(
        f"<li><b>{html.escape(str(w.get('value')))}</b> — {html.escape(str(w.get('message')))} "
        f"<span class=\"muted\">({html.escape(_where(w))})</span></li>" for w in warnings)
    return Banner(b.ok, f"{b.html}<p><b>Data warnings ({len(warnings)})</b>: the analysis ran; "
                        f"read these before the results.</p><ul>{items}</ul>")


def _where(w: dict[str, Any]) -> str:
    rows = list(w.get("rows") or [])
    shown = ", ".join(map(str, rows[:12])) + (f", … ({len(rows)} rows)" if len(rows) > 12 else "")
    parts = [str(w.get("file"))]
    if w.get("column"):
        parts.append(f"column {w['column']}")
    if rows:
        parts.append(f"row{'s' if len(rows) > 1 else ''} {shown}")
    return ", ".join(parts)


def warnings_section(result: AnalysisResult) -> Section | None:
    warnings = data_warnings(result)
    if not warnings:
        return None
    frame = pd.DataFrame([{"value": w.get("value"), "what it means": w.get("message"),
                           "file": w.get("file"), "column": w.get("column") or "",
                           "rows": _where({"rows": w.get("rows")}).split(", ", 1)[-1]
                           if w.get("rows") else ""} for w in warnings])
    return section("Data warnings", frame)


def intro(result: AnalysisResult) -> str:
    spec, prov = result.spec, result.provenance
    return (f"<p>{html.escape(spec.description)}</p>\n"
            f"<p class=\"muted\">spec <code>{html.escape(str(prov.get('spec_path')))}</code> ·\n"
            f"SHA-256 <code>{prov.get('spec_sha256', '')[:16]}…</code> · data\n"
            f"<code>{html.escape(str(prov.get('data_source')))}</code> · SHA-256\n"
            f"<code>{str(prov.get('data_sha256', ''))[:16]}…</code> · created "
            f"{prov.get('created_utc')}</p>")


def probabilities_table(result: AnalysisResult) -> pd.DataFrame:
    return pd.DataFrame([{"quantity": k, "posterior probability": v}
                         for k, v in result.probabilities.items()])


#: estimand → (what it is, in words; its unit). Machine labels stay in estimands.csv.
ESTIMAND_INFO: dict[str, tuple[str, str]] = {
    "log_hr": ("Log hazard ratio (conditional on site)", "log scale"),
    "hr": ("Hazard ratio (conditional on site)", "ratio"),
    "survival": ("Progression-free survival probability S(t)", "probability"),
    "survival_difference": ("Difference in PFS probability (treatment − reference)",
                            "probability"),
    "rmst": ("Restricted mean PFS time", "months"),
    "rmst_difference": ("Difference in restricted mean PFS time", "months"),
    "median": ("Median PFS", "months"),
    "hazard": ("Hazard per interval", "per month"),
    "hr_interval": ("Hazard ratio per interval", "ratio"),
    "cif_lr": ("Cumulative incidence of local recurrence per lesion (death competing)",
               "probability"),
    "cif_lr_difference": ("Difference in LR cumulative incidence (treatment − reference)",
                          "probability"),
    "death_free_survival": ("Death-free survival", "probability"),
    "hr_subgroup": ("Hazard ratio in each subgroup level (other subgroups at their mean)",
                    "ratio"),
    "delta_subgroup": ("Log HR difference between subgroup levels (1 − 0)", "log scale"),
    "hr_ratio_subgroup": ("Ratio of the subgroup levels' hazard ratios (1 vs 0)", "ratio"),
    "sigma_subgroup": ("SD of the treatment-by-subgroup interactions (τ_sub)", "log scale"),
    # design = "cohort": causal estimands by g-computation (Bayesian bootstrap)
    "ate_survival": ("ATE: PFS probability S(t) if every analysed patient had this arm",
                     "probability"),
    "ate_survival_difference": ("ATE: difference in PFS probability (treatment − reference), "
                                "all analysed patients", "probability"),
    "ate_rmst": ("ATE: restricted mean PFS time if every analysed patient had this arm",
                 "months"),
    "ate_rmst_difference": ("ATE: difference in restricted mean PFS time, all analysed "
                            "patients", "months"),
    "ate_median": ("ATE: median PFS if every analysed patient had this arm", "months"),
    "ate_median_difference": ("ATE: difference in median PFS, all analysed patients", "months"),
    "att_survival_difference": ("ATT: difference in PFS probability among the treated",
                                "probability"),
    "att_rmst_difference": ("ATT: difference in restricted mean PFS time among the treated",
                            "months"),
    "att_median_difference": ("ATT: difference in median PFS among the treated", "months"),
    "ate_cif_lr": ("ATE: LR cumulative incidence per lesion (death competing) if every analysed "
                   "lesion had this arm", "probability"),
    "ate_cif_lr_difference": ("ATE: difference in LR cumulative incidence per lesion, all "
                              "analysed lesions", "probability"),
    "att_cif_lr_difference": ("ATT: difference in LR cumulative incidence per lesion, lesions "
                              "of the treated", "probability"),
}
_POPULATION_WORDS = {"average": "average site", "new": "new site",
                     "typical_patient": "typical patient (frailty 0, average site)",
                     "average_site": "frailty averaged, average site",
                     "new_site": "frailty averaged, new site",
                     "reference": "reference lesion", "standardised": "analysed lesions (standardised)"}


def grouped_estimands(result: AnalysisResult) -> list[tuple[str, pd.DataFrame]]:
    """The estimand table grouped by estimand, in words: one (heading, table) per estimand,
    columns comparison/arm, population, time, median, interval and unit."""
    table, ref = result.estimand_table, result.spec.reference_arm
    lo, hi = [c for c in table.columns if c.startswith("q")][:2]
    level = f"{100 * result.spec.estimands.interval_prob:g}% CrI"
    groups = []
    for name, rows in table.groupby("estimand", sort=False):
        what, unit = ESTIMAND_INFO.get(str(name), (str(name), ""))
        if result.spec.endpoint == "local_recurrence" and name in ("hr", "log_hr"):
            what = what.replace("Log hazard", "Log local-recurrence hazard").replace(
                "Hazard ratio", "Local-recurrence hazard ratio").replace(
                "(conditional on site)", "(conditional on patient frailty and site)")
        if result.spec.design == "cohort" and name in ("hr", "log_hr"):
            what = what.replace("(conditional on", "(conditional on covariates,").replace(
                "covariates, site)", "covariates and site)")
        shown = []
        for _, r in rows.iterrows():
            item: dict[str, Any] = {}
            if _present(r.get("treatment")):
                item["comparison"] = f"{r['treatment']} vs {ref}"
            if _present(r.get("arm")):
                item["arm"] = r["arm"]
            for col in ("subgroup_level", "subgroup"):
                if _present(r.get(col)):
                    item["subgroup"] = r[col]
            population = [_POPULATION_WORDS.get(str(r[c]), str(r[c]))
                          for c in ("lesion_target", "population", "site_target", "study")
                          if c in r and _present(r[c])]
            if population:
                item["population"] = "; ".join(population)
            if _present(r.get("time")):
                item["month"] = f"{r['time']:g}"
            if _present(r.get("interval")):
                item["interval (months)"] = r["interval"]
            digits = _UNIT_DIGITS.get(unit, 3)
            item["median"] = f"{r['median']:.{digits}f}"
            item[level] = f"{r[lo]:.{digits}f} to {r[hi]:.{digits}f}"
            item["unit"] = unit
            shown.append(item)
        groups.append((what, pd.DataFrame(shown)))
    return groups


_UNIT_DIGITS = {"probability": 3, "ratio": 2, "log scale": 3, "months": 1, "per month": 4}


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v)) and v != ""


def estimands_section(result: AnalysisResult, note_html: str) -> Section:
    blocks: list[Any] = [Text(
        f"<p class=\"muted\">{note_html} Intervals are central "
        f"{result.spec.estimands.interval_prob:.0%} posterior credible intervals (CrI); times "
        "in months. Machine-readable labels are in <code>estimands.csv</code> and "
        "<code>summary.json</code>.</p>")]
    for heading, frame in grouped_estimands(result):
        blocks += [Text(f"<h3>{html.escape(heading)}</h3>"), Table(frame, digits=3)]
    return Section("Estimands", tuple(blocks))


def provenance_table(prov: Any) -> pd.DataFrame:
    versions = prov.get("versions", {})
    return pd.DataFrame([
        {"item": k, "value": str(v)} for k, v in prov.items()
        if k not in ("versions", "timings_seconds", "sampler_settings")
    ] + [{"item": f"time: {k}", "value": f"{v:.2f} s" if isinstance(v, float) else str(v)}
         for k, v in prov.get("timings_seconds", {}).items()]
      + [{"item": f"version: {k}", "value": v} for k, v in versions.items()])


def posterior_dataset(result: AnalysisResult) -> xr.Dataset:
    return result.idata.posterior.to_dataset() if result.idata is not None else xr.Dataset()


def posterior_figures(result: AnalysisResult) -> list[FigureSpec]:
    """Site effects, HR posterior and traces: the figures any sampled survival fit has."""
    post = posterior_dataset(result)
    prob = result.spec.estimands.interval_prob
    figures = []
    if "u_site" in post:
        figures.append(FigureSpec("site_effects", "forest", {
            "draws": post["u_site"], "dim": "site",
            "title": "Site effects on the log hazard (u_site)",
            "xlabel": "log hazard ratio vs average site", "interval_prob": prob}))
    if "v_site_arm" in post:
        v = post["v_site_arm"].stack(site_treatment=("site", "treatment"))
        labels = [f"{s} | {t}" for s, t in v["site_treatment"].values]
        v = v.drop_vars(["site_treatment", "site", "treatment"]).assign_coords(
            site_treatment=labels)
        figures.append(FigureSpec("site_arm_effects", "forest", {
            "draws": v, "dim": "site_treatment", "title": "Site × arm deviations of the log HR",
            "xlabel": "log HR deviation", "interval_prob": prob}))
    return figures


def trace_figure(result: AnalysisResult) -> list[FigureSpec]:
    post = posterior_dataset(result)
    names = [n for n in TRACE_NAMES if n in post]
    return [FigureSpec("traces", "traces", {"post": post, "names": names})] if names else []


def hr_figure(result: AnalysisResult) -> list[FigureSpec]:
    if "hr" not in result.estimands:
        return []
    return [FigureSpec("hr_posterior", "hr_posterior", {
        "hr": result.estimands["hr"], "thresholds": result.spec.estimands.hr_thresholds,
        "probabilities": dict(result.probabilities)})]


def analysis_report(result: AnalysisResult, *, estimands_note_html: str,
                    sections: Sequence[Section] = (), figures: Sequence[FigureSpec] = (),
                    checks: Sequence[Section] = ()) -> Report:
    """The report of an analysis: the shared sections around the endpoint's own
    ``sections`` (after the estimands), ``figures`` and posterior predictive ``checks``."""
    d = result.diagnostics
    body = [
        *([h] if (h := headline_section(result)) is not None else []),
        *([w] if (w := warnings_section(result)) is not None else []),
        section("Data", _indexed(result.data_summary)),
        section("Pre-specified priors", priors_table(result.spec)),
        section("Posterior probabilities", probabilities_table(result)),
        estimands_section(result, estimands_note_html),
        *sections,
        Section("Figures", tuple(figures)),
        *checks,
    ]
    if d is not None and d.table is not None:
        body.append(section("Convergence diagnostics", d.table))
    body.append(section("Provenance", provenance_table(result.provenance)))
    return Report(title=result.spec.name, intro_html=intro(result),
                  banner=with_warnings(banner(result), result),
                  sections=tuple(body))


def _indexed(frame: pd.DataFrame) -> Any:
    return Table(frame, index=True)
