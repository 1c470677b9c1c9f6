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
                + (f", P(HR<1) {probability_words(p_lt_1)}" if p_lt_1 is not None else ""))
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


def probability_words(p: float) -> str:
    """'= 0.97', or '> 0.99' / '< 0.01' rather than a rounded certainty."""
    return "> 0.99" if p >= 0.995 else "< 0.01" if p < 0.005 else f"= {p:.2f}"


def headline_box(sentences: Sequence[str], note_html: str = "") -> Section | None:
    """The "Answer" box at the top of a report: one sentence per comparison (escaped) and a
    note naming the population; None without sentences."""
    if not sentences:
        return None
    items = "".join(f"<p class=\"headline\">{html.escape(s)}</p>" for s in sentences)
    note = f"<p class=\"muted\">{note_html}</p>" if note_html else ""
    return Section("Answer", (Text(items + note),))


_HEADLINE_NOTE = {
    "pfs": "Hazard ratio conditional on site (proportional hazards); PFS difference for an "
           "average site (site effect 0). HR &lt; 1 and a positive PFS difference favour the "
           "first-named arm.",
    "local_recurrence": "Local-recurrence hazard ratio conditional on patient frailty and site; "
                        "difference in the cumulative incidence of local recurrence (death "
                        "competing) standardised over the analysed lesions, frailty averaged, "
                        "at an average site. HR &lt; 1 and a negative difference favour the "
                        "first-named arm.",
}


def headline_section(result: AnalysisResult) -> Section | None:
    return headline_box(headline_sentences(result),
                        _HEADLINE_NOTE.get(str(result.spec.endpoint), ""))


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
    "death_hr": ("Hazard ratio of death (competing event)", "ratio"),
    "death_log_hr": ("Log hazard ratio of death (competing event)", "log scale"),
    "mu": ("Pooled log hazard ratio μ (mean of the study effects)", "log scale"),
    "hr_mu": ("Pooled hazard ratio e^μ", "ratio"),
    "theta": ("Study log hazard ratio θ (shrunk towards μ)", "log scale"),
    "hr_theta": ("Study hazard ratio e^θ (shrunk towards μ)", "ratio"),
    "theta_new": ("Log hazard ratio in a new study θ_new (prediction)", "log scale"),
    "hr_theta_new": ("Hazard ratio in a new study e^θ_new (prediction)", "ratio"),
    "tau": ("Between-study sd of the log hazard ratio τ", "log scale (sd)"),
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
                          for c in ("lesion_target", "population", "site_target")
                          if c in r and _present(r[c])]
            if population:
                item["population"] = "; ".join(population)
            if _present(r.get("study")):
                item["study"] = r["study"]
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


_UNIT_DIGITS = {"probability": 3, "ratio": 2, "log scale": 3, "log scale (sd)": 3, "months": 1,
                "per month": 4}


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


def arm_labels(result: AnalysisResult) -> list[str]:
    """The arms in the order of the data's ``arm_idx``: the reference arm, then the
    treatments (the posterior's ``treatment`` coordinate)."""
    post = posterior_dataset(result)
    treatments = [str(t) for t in post["treatment"].values] if "treatment" in post.coords \
        else []
    return [str(result.spec.reference_arm), *treatments]


def posterior_figures(result: AnalysisResult) -> list[FigureSpec]:
    """Site effects, HR posterior and traces: the figures any sampled survival fit has."""
    post = posterior_dataset(result)
    prob = result.spec.estimands.interval_prob
    figures = []
    if "u_site" in post:
        figures.append(FigureSpec("site_effects", "forest", {
            "draws": post["u_site"], "dim": "site",
            "title": "Site effects on the log hazard (u_site)",
            "xlabel": "log hazard ratio vs average site", "interval_prob": prob},
            title="Site effects: each site's hazard relative to the average site",
            alt="Forest plot of each site's effect on the log hazard (posterior mean and "
                f"{prob:.0%} interval); 0 is the average site."))
    if "v_site_arm" in post:
        v = post["v_site_arm"].stack(site_treatment=("site", "treatment"))
        labels = [f"{s} | {t}" for s, t in v["site_treatment"].values]
        v = v.drop_vars(["site_treatment", "site", "treatment"]).assign_coords(
            site_treatment=labels)
        figures.append(FigureSpec("site_arm_effects", "forest", {
            "draws": v, "dim": "site_treatment", "title": "Site × arm deviations of the log HR",
            "xlabel": "log HR deviation", "interval_prob": prob},
            title="Treatment effect by site: deviations of each site's log hazard ratio",
            alt="Forest plot of each site's deviation from the overall log hazard ratio."))
    return figures


def trace_figure(result: AnalysisResult) -> list[FigureSpec]:
    post = posterior_dataset(result)
    names = [n for n in TRACE_NAMES if n in post]
    return [FigureSpec("traces", "traces", {"post": post, "names": names},
                       title="Trace plots of the main parameters",
                       alt="Trace plots (draw number against value, one colour per chain) of "
                           + ", ".join(names) + ".")] if names else []


def hr_figure(result: AnalysisResult) -> list[FigureSpec]:
    if "hr" not in result.estimands:
        return []
    return [FigureSpec("hr_posterior", "hr_posterior", {
        "hr": result.estimands["hr"], "thresholds": result.spec.estimands.hr_thresholds,
        "probabilities": dict(result.probabilities)},
        title="Posterior distribution of the hazard ratio",
        alt="Histogram of the posterior draws of the hazard ratio with the decision "
            "thresholds " + ", ".join(f"{c:g}" for c in result.spec.estimands.hr_thresholds)
            + " marked.")]


#: prior-vs-posterior panels: treatment effects (log HR scale) and random-effect sds
_EFFECTS = {"log_hr": "HR", "mu": "Pooled hazard ratio e^μ"}
_SD_WORDS = {"sigma_site": "Between-site sd of the log hazard",
             "sigma_site_arm": "Between-site sd of the log hazard ratio",
             "sigma_patient": "Patient frailty sd", "tau": "Between-study sd τ",
             "sigma_log_hazard_rw": "Random-walk sd of the log baseline hazard",
             "sigma_log_hr_rw": "Random-walk sd of the log hazard ratio"}
#: prior draws per panel (fixed seed: the figure is reproducible)
PRIOR_DRAWS = 40_000


def prior_posterior_panels(result: AnalysisResult, exact: xr.Dataset | None = None,
                           only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """For the treatment effect (``log_hr`` or ``mu``) and each random-effect sd with a
    pre-specified prior: prior draws and posterior draws (or, for ``mu`` with no draws, the
    exact posterior density from ``exact``)."""
    from bayes_ablation.endpoints.prior_draws import draw_prior

    post = posterior_dataset(result)
    spec = result.spec
    rng = np.random.default_rng(20261207)
    panels = []
    for name, prior in spec.priors.items():
        if only is not None and name not in only:
            continue
        if name not in _EFFECTS and name not in _SD_WORDS \
                and not (name.startswith("sigma_") and "death" not in name):
            continue
        scale = "hr" if name in _EFFECTS else "sd"
        words = _EFFECTS.get(name) or _SD_WORDS.get(name, name)
        if result.spec.endpoint == "local_recurrence" and name == "log_hr":
            words = "LR hazard ratio"
        base = {"prior_label": prior.describe(), "scale": scale,
                "prior": draw_prior(prior, rng, PRIOR_DRAWS)}
        if name in post:
            da = post[name]
            extra = [d for d in da.dims if d not in ("chain", "draw")]
            if len(extra) > 1:
                continue
            values = [(None, da)] if not extra else \
                [(v, da.sel({extra[0]: v})) for v in da[extra[0]].values]
            for v, d in values:
                title = words if v is None else f"{words} [{v}]"
                if name == "log_hr" and v is not None:
                    title = f"{words}: {v} vs {spec.reference_arm}"
                panels.append({**base, "title": title, "posterior": d.values.ravel()})
        elif exact is not None and f"{name}_posterior" in exact:
            grid_dim = "log_hr" if name == "mu" else name
            panels.append({**base, "title": words, "posterior": None,
                           "grid": exact[grid_dim].values,
                           "density": exact[f"{name}_posterior"].values})
    return panels


def prior_posterior_figure(result: AnalysisResult, exact: xr.Dataset | None = None,
                           only: Sequence[str] | None = None) -> list[FigureSpec]:
    panels = prior_posterior_panels(result, exact, only)
    if not panels:
        return []
    names = ", ".join(p["title"] for p in panels)
    return [FigureSpec("prior_posterior", "prior_posterior", {
        "panels": panels, "title": "Pre-specified prior (line) and posterior (filled)"},
        title="Prior and posterior: the treatment effect and the random-effect sds",
        alt=f"Prior density (line) and posterior (filled) of: {names}. Where the two "
            "coincide the data say little and the prior drives the result.")]


def diagnostics_by_parameter(table: pd.DataFrame) -> pd.DataFrame:
    """The convergence table with one row per parameter: a vector parameter (``z_patient[0]``,
    ``z_patient[1]``, …) becomes one row with its number of elements, its worst R-hat and
    MCSE and its smallest effective sample sizes (shown as integers: counts of draws)."""
    if "parameter" not in table.columns:
        return table
    base = table["parameter"].astype(str).str.replace(r"\[.*\]$", "", regex=True)
    agg = {c: ("min" if str(c).startswith("ess") else "max") for c in table.columns
           if c != "parameter" and pd.api.types.is_numeric_dtype(table[c])}
    out = table.groupby(base, sort=False).agg(agg)
    sizes = base.value_counts()
    out.insert(0, "elements", [int(sizes[b]) for b in out.index])
    out = out.reset_index(names="parameter")
    for col in out.columns:
        if str(col).startswith("ess") and out[col].notna().all():
            out[col] = out[col].round().astype(int)
    return out.rename(columns={"r_hat": "R-hat (worst)", "ess_bulk": "bulk ESS (smallest)",
                               "ess_tail": "tail ESS (smallest)",
                               "mcse_mean": "MCSE of the mean (largest)"})


def diagnostics_section(result: AnalysisResult, figures: Sequence[FigureSpec] = ()
                        ) -> Section | None:
    """Sampler diagnostics after the results: the convergence table and the trace plots."""
    d = result.diagnostics
    table = d.table if d is not None else None
    if table is None and not figures:
        return None
    if table is not None:
        table = diagnostics_by_parameter(table)
    return section("Diagnostics",
                   "<p class=\"muted\">How well the sampler explored the posterior: R-hat near 1, "
                   "effective sample sizes (ESS) in the hundreds or more and no divergences; "
                   "trace plots should look like stationary noise with the chains "
                   "overlapping. The convergence gate above summarises these. Vector "
                   "parameters are one row each (their worst element); "
                   "<code>arviz.summary</code> of <code>posterior.nc</code> gives every "
                   "element.</p>",
                   table, *figures)


def analysis_report(result: AnalysisResult, *, estimands_note_html: str,
                    sections: Sequence[Section] = (), figures: Sequence[FigureSpec] = (),
                    checks: Sequence[Section] = (),
                    diagnostics: Sequence[FigureSpec] = (),
                    prior_posterior: Sequence[FigureSpec] | None = None,
                    headline: Section | None = None,
                    top_sections: Sequence[Section] = ()) -> Report:
    """The report of an analysis: the answer first, then the shared sections around the
    endpoint's own ``sections`` (after the estimands), its result ``figures``, the prior vs
    posterior figure, the posterior predictive ``checks`` and, last before provenance, the
    diagnostics (convergence table and trace plots: figures of kind ``traces`` among
    ``figures`` are moved there, with ``diagnostics``). ``top_sections`` follow the answer
    (e.g. warnings the reader must see before the numbers)."""
    traces = [f for f in figures if f.kind == "traces"]
    results = [f for f in figures if f.kind != "traces"]
    pp = prior_posterior_figure(result) if prior_posterior is None else list(prior_posterior)
    head = headline if headline is not None else headline_section(result)
    body = [
        *([head] if head is not None else []),
        *([w] if (w := warnings_section(result)) is not None else []),
        *top_sections,
        section("Data", _indexed(result.data_summary)),
        section("Pre-specified priors", priors_table(result.spec)),
        section("Posterior probabilities", probabilities_table(result)),
        estimands_section(result, estimands_note_html),
        *sections,
        Section("Figures", tuple(results)),
        *([Section("Prior and posterior", (Text(
            "<p class=\"muted\">Each pre-specified prior against its posterior: where they "
            "coincide the data say little and the prior decides; a posterior far narrower "
            "than its prior is driven by the data.</p>"), *pp))] if pp else []),
        *checks,
    ]
    if (diag := diagnostics_section(result, [*traces, *diagnostics])) is not None:
        body.append(diag)
    body.append(section("Provenance", provenance_table(result.provenance)))
    return Report(title=result.spec.name, intro_html=intro(result),
                  banner=with_warnings(banner(result), result),
                  sections=tuple(body))


def _indexed(frame: pd.DataFrame) -> Any:
    return Table(frame, index=True)
