"""The report section "Confounding" of a cohort analysis (``[analysis] design = "cohort"``):
propensity model and overlap, covariate balance, positivity warnings, weighted estimates next
to the g-computation ones, and the sensitivity analysis for an unmeasured confounder.

Reads ``summary_entries["confounding"]``, ``tables["confounding_*"]`` and
``details["confounding"]`` (figure data) of an
:class:`~bayes_ablation.results.contract.AnalysisResult`; None for a randomised analysis.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.endpoints.confounding.weighting import OUTCOME_METHOD
from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import Block, FigureSpec, Section, Table, Text

#: |SMD| above which a covariate counts as imbalanced
SMD_THRESHOLD = 0.1


def _p(text: str, muted: bool = False) -> Text:
    return Text(f"<p{' class=\"muted\"' if muted else ''}>{text}</p>")


def _h(text: str) -> Text:
    return Text(f"<h3>{html.escape(text)}</h3>")


def overlap_table(overlap: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for arm, q in overlap["by_arm"].items():
        rows.append({"arm": arm, "patients": q["patients"], "min": q["min"], "5%": q["q5"],
                     "median": q["median"], "95%": q["q95"], "max": q["max"],
                     f"share outside [{overlap['bounds'][0]:g}, {overlap['bounds'][1]:g}]":
                         f"{q['share_outside']:.1%}",
                     "overlap-weighted ESS": f"{q['overlap_weighted_ess']:.0f}"})
    return pd.DataFrame(rows)


def _signed(v: float, digits: int = 3) -> str:
    """``+0.123``; values that round to zero as ``0.000`` (no ``-0.000``)."""
    return f"{0.0:.{digits}f}" if abs(v) < 0.5 * 10**-digits else f"{v:+.{digits}f}"


def balance_frame(balance: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "covariate": balance["covariate"],
        "mean (treatment)": balance["mean_treated"],
        "mean (reference)": balance["mean_reference"],
        "SMD unweighted": balance["smd_unweighted"].map(_signed),
        "SMD overlap-weighted": balance["smd_overlap_weighted"].map(_signed),
    })


def comparison_frame(table: pd.DataFrame, ref: str, level: str) -> pd.DataFrame:
    """One row per estimand (and comparison, month), one column per method: median and
    interval (S(t) differences in percentage points, RMST differences in months)."""
    def fmt(v: float, q: str) -> str:
        return f"{v:+.1f}" if q == "rmst_difference" else f"{100 * v:+.1f}"
    several = table["treatment"].nunique() > 1
    rows: dict[tuple, dict[str, str]] = {}
    for _, r in table.iterrows():
        key = (r["treatment"], r["estimand"], r["quantity"],
               None if pd.isna(r["time"]) else float(r["time"]))
        row = rows.setdefault(key, {
            **({"comparison": f"{r['treatment']} vs {ref}"} if several else {}),
            "estimand": r["estimand"],
            "quantity": ("RMST difference (months)" if r["quantity"] == "rmst_difference"
                         else "S(t) difference (points)"),
            "month": "" if pd.isna(r["time"]) else f"{r['time']:g}"})
        method = "g-computation" if r["method"] == OUTCOME_METHOD else "weighted KM"
        if r.get("population") and r["method"] == OUTCOME_METHOD:
            method += f" ({r['population']})"
        row[f"{method}: median ({level})"] = (
            f"{fmt(r['median'], r['quantity'])} ({fmt(r['lower'], r['quantity'])} to "
            f"{fmt(r['upper'], r['quantity'])})")
    return pd.DataFrame(list(rows.values())).fillna("")


def sensitivity_frame(sens: dict[str, Any], level: str) -> pd.DataFrame:
    rows = []
    for treatment, s in sens.items():
        u, a, e = s["hr_unadjusted"], s["hr_adjusted"], s["e_value"]
        rows.append({"comparison": treatment, "quantity": "HR (conditional), as fitted",
                     "median": f"{u['median']:.2f}",
                     level: f"{u['lower']:.2f} to {u['upper']:.2f}", "P(HR<1)": ""})
        rows.append({"comparison": treatment,
                     "quantity": "HR adjusted for U (bias parameters from their priors)",
                     "median": f"{a['median']:.2f}",
                     level: f"{a['lower']:.2f} to {a['upper']:.2f}",
                     "P(HR<1)": f"{a['p_below_1']:.3f}"})
        rows.append({"comparison": treatment, "quantity": "E-value (point / interval limit)",
                     "median": f"{e['e_value']:.2f}", level: f"{e['e_value_interval']:.2f}",
                     "P(HR<1)": ""})
    return pd.DataFrame(rows)


def confounding_section(result: AnalysisResult) -> Section | None:
    """The "Confounding" section, or None when the analysis has no confounding entry."""
    entry = result.summary_entries.get("confounding")
    if not entry or "propensity" not in entry:
        return None
    figures = result.details.get("confounding", {})
    spec = result.spec
    ref = spec.reference_arm
    level = f"{spec.estimands.interval_prob:.0%} interval"
    several = len(entry["propensity"]) > 1
    blocks: list[Block] = [_p(
        "Treatment was not randomised: patients' characteristics may drive both the choice of "
        "arm and the outcome. The diagnostics below check whether the arms are comparable on "
        "the measured covariates (overlap, balance, positivity), compare the outcome model's "
        "g-computation with a model-free propensity-weighted estimate of the same estimands, "
        "and ask how strong an <em>unmeasured</em> confounder would have to be to explain the "
        "effect away.")]
    for treatment, prop in entry["propensity"].items():
        suffix = f"_{treatment}" if several else ""
        fig = figures.get(treatment, {})
        if several:
            blocks.append(Text(f"<h3>{html.escape(treatment)} vs {html.escape(str(ref))}</h3>"))
        blocks.append(_h("Propensity model and overlap"))
        blocks.append(_p(f"Propensity e(x) = P({html.escape(treatment)} | covariates, site): "
                         f"{html.escape(prop['method'])}. {prop['patients']} patients.",
                         muted=True))
        ov = entry["overlap"][treatment]
        blocks.append(Table(overlap_table(ov), digits=3))
        if "propensity" in fig:
            blocks.append(FigureSpec(f"propensity_overlap{suffix}", "propensity_overlap", {
                "propensity": fig["propensity"], "bounds": tuple(ov["bounds"])}))
        blocks.append(_h("Covariate balance"))
        bal = result.tables.get("confounding_balance")
        if bal is not None and (bal["treatment"] == treatment).any():
            bal = bal[bal["treatment"] == treatment]
            worst = bal.loc[bal["kind"] == "covariate", "smd_overlap_weighted"].abs().max()
            blocks.append(_p(
                "Standardised mean differences (treatment − reference, over the unweighted "
                "pooled sd); overlap weights (treatment 1 − e, reference e) balance the "
                "propensity model's covariates exactly at its fit"
                + (f" (largest |SMD| after weighting {worst:.1e})" if np.isfinite(worst)
                   else "") + f"; |SMD| &gt; {SMD_THRESHOLD:g} is the usual mark of imbalance. "
                "Sites enter the propensity model with shrunken intercepts, so they are "
                "balanced only approximately.", muted=True))
            blocks.append(Table(balance_frame(bal), digits=3))
            blocks.append(FigureSpec(f"love_plot{suffix}", "love_plot", {
                "balance": bal, "threshold": SMD_THRESHOLD}))
        warnings = [w for w in entry["positivity_warnings"] if w["treatment"] == treatment]
        blocks.append(_h("Positivity"))
        if warnings:
            items = "".join(f"<li>{html.escape(w['message'])}</li>" for w in warnings)
            blocks.append(Text(
                "<p><b>Covariate patterns without overlap</b>: the model's estimates for "
                "these patients are extrapolations across arms, not comparisons.</p>"
                f"<ul>{items}</ul>"))
        else:
            blocks.append(_p("No covariate pattern (each level, each pair of levels, the "
                             "range of each continuous covariate) of five or more patients "
                             "is confined to one arm."))
    compared = result.tables.get("confounding_estimates_side_by_side")
    if compared is not None and len(compared):
        blocks.append(_h("Outcome model vs propensity weighting"))
        has_gcomp = bool((compared["method"] == OUTCOME_METHOD).any())
        blocks.append(_p(
            "Propensity-weighted Kaplan–Meier contrasts (ATE: inverse-probability weights; "
            "ATT: treated 1, reference e/(1 − e); ATO: overlap weights, the population where "
            "the arms overlap) with Bayesian-bootstrap intervals (propensity model refitted in "
            "every replicate)"
            + (", next to the outcome model's g-computation of the same estimand. A "
               "difference between the two shows how much the answer rests on the outcome "
               "model." if has_gcomp else
               ". The outcome model's g-computation estimates (ATE/ATT rows of the estimand "
               "table) were not available to compare.")
            + " Differences are treatment − reference; S(t) in percentage points.",
            muted=True))
        if not several:
            blocks.append(_p(f"{html.escape(next(iter(entry['propensity'])))} vs "
                             f"{html.escape(str(ref))}:"))
        blocks.append(Table(comparison_frame(compared, str(ref), level)))
        blocks.append(FigureSpec("estimate_comparison", "estimate_comparison",
                                 {"table": compared}))
    sens = entry.get("sensitivity") or {}
    if sens:
        first = next(iter(sens.values()))
        e = first["e_value"]
        blocks.append(_h("Sensitivity to an unmeasured confounder"))
        blocks.append(_p(
            "A binary unmeasured confounder U with prevalence p1 in the treatment arm and p0 in "
            "the reference arm and log hazard ratio γ on the outcome biases the log HR by "
            "log[(1 + p1(e^γ − 1)) / (1 + p0(e^γ − 1))]. Each posterior draw of the conditional "
            "log HR is corrected by one draw of the bias parameters from their priors ("
            + html.escape(first["priors"]["description"]) + "). The E-value (VanderWeele &amp; "
            "Ding 2017) is the risk-ratio association U would need with both treatment and "
            "outcome to move the estimate (the interval limit) to 1; the outcome is "
            + ("common" if e["common_outcome"] else "rare")
            + (f" ({e['event_share']:.0%} of patients with an event)" if e.get("event_share")
               is not None else " (assumed: the conservative choice)")
            + ", so the HR was converted "
            "to a risk ratio " + ("by RR = (1 − 0.5^√HR)/(1 − 0.5^√(1/HR))."
                                  if e["common_outcome"] else "as RR ≈ HR."), muted=True))
        blocks.append(Table(sensitivity_frame(sens, level)))
        for treatment, fig in figures.items():
            if "grid" in fig:
                suffix = f"_{treatment}" if several else ""
                blocks.append(FigureSpec(f"bias_contour{suffix}", "bias_contour", {
                    "grid": fig["grid"], "hr_unadjusted": fig["hr_unadjusted"],
                    "interval_prob": spec.estimands.interval_prob}))
        blocks.append(_p("The full grid is in <code>confounding_sensitivity_grid.csv</code>; "
                         "every number above is in <code>summary.json</code> under "
                         "<code>confounding</code>.", muted=True))
    return Section("Confounding", tuple(blocks))
