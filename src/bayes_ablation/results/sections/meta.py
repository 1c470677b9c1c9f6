"""Report of a meta-analysis: forest plot, heterogeneity-prior sensitivity, MCMC vs exact
posterior, one-stage vs two-stage pooling, warnings.

The meta composer (:func:`bayes_ablation.workflows.meta.fit_meta`) puts the pooling facts in
``result.details["meta"]``: ``method``, ``studies`` (one row per study as pooled),
``sensitivity`` and ``sensitivity_densities``/``sensitivity_source``, ``comparison``,
``exact_table``, ``exact_densities``, ``stage1``, ``warnings`` and ``exact_notes``.
"""

from __future__ import annotations

import html

import pandas as pd

from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import (
    FigureSpec,
    Report,
    Section,
    Table,
    register_report,
    section,
)
from bayes_ablation.results.sections.analysis import (
    analysis_report,
    headline_box,
    hr_figure,
    prior_posterior_figure,
    probability_words,
    trace_figure,
)

HR_NOTE = ("HR &lt; 1 favours the experimental arm of each study's comparison. "
           "<b>mu</b>: pooled (mean) log HR; <b>tau</b>: between-study sd of the log HR; "
           "<b>theta[study]</b>: a study's true effect, shrunk towards mu; <b>theta_new</b>: the "
           "effect in a new, exchangeable study (the prediction). <code>hr_*</code> rows are the "
           "same on the HR scale (median and interval). Intervals are central {p:.0%} posterior "
           "intervals. Posterior computed by {method}.")


def interval_columns(table: pd.DataFrame) -> tuple[str, str]:
    q = [c for c in table.columns if c.startswith("q")]
    return q[0], q[1]


def row_of(table: pd.DataFrame, label: str) -> pd.Series:
    return table[table["label"] == label].iloc[0]


def sensitivity_section(table: pd.DataFrame, source: str, two_stage: bool) -> Section:
    view = pd.DataFrame({
        "τ prior": table["tau prior"],
        "prior": table["prior"],
        "τ median [interval]": [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                                zip(table["tau median"], table["tau lower"],
                                    table["tau upper"], strict=True)],
        "pooled HR": [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                      zip(table["pooled HR median"], table["pooled HR lower"],
                          table["pooled HR upper"], strict=True)],
        "new-study HR": [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                         zip(table["new-study HR median"], table["new-study HR lower"],
                             table["new-study HR upper"], strict=True)],
    })
    for col in table.columns:
        if col.startswith("P("):
            view[col] = table[col].map(lambda v: f"{v:.3f}")
    view["rationale"] = table["rationale"]
    note = ("The pooled HR and, more, the prediction for a new study depend on the "
            "heterogeneity prior when there are few studies. Each row is the exact posterior "
            f"(quadrature) under one τ prior, from {html.escape(source)}; the first row is the "
            "spec's own prior.")
    if two_stage:
        note += (" Studies with patient data enter this table through their stage-1 estimate "
                 "(two-stage approach), so the first row approximates the one-stage fit above.")
    return section("Heterogeneity prior sensitivity", f"<p class='muted'>{note}</p>", view)


def comparison_section(comparison: pd.DataFrame) -> Section:
    worst = float(comparison["gap_in_mcse"].max()) if len(comparison) else float("nan")
    verdict = ("agree" if worst <= 3 else "DISAGREE") + f" (largest gap {worst:.2f} MCSE)"
    return section("MCMC vs exact posterior",
                   "<p class='muted'>The same posterior computed two independent ways: NUTS "
                   "draws vs exact quadrature. Gaps are in Monte Carlo standard errors (ArviZ "
                   f"<code>mcse</code>); within 3 is agreement. Here they {verdict}.</p>",
                   Table(comparison, digits=4))


def two_stage_section(table: pd.DataFrame, exact_table: pd.DataFrame, stage1: dict
                      ) -> Section:
    lo_c, hi_c = interval_columns(table)
    rows = []
    for label in ["mu", "tau", "theta_new", *[f"theta[{s}]" for s in stage1]]:
        if (table["label"] == label).any() and (exact_table["label"] == label).any():
            a, b = row_of(table, label), row_of(exact_table, label)
            rows.append({"quantity": label,
                         "one-stage (joint) median [interval]":
                             f"{a['median']:.3f} [{a[lo_c]:.3f}, {a[hi_c]:.3f}]",
                         "two-stage median [interval]":
                             f"{b['median']:.3f} [{b[lo_c]:.3f}, {b[hi_c]:.3f}]"})
    est = ", ".join(f"{k}: log HR {v['log_hr']:.3f} (SE {v['se']:.3f}, {v['method']})"
                    for k, v in stage1.items())
    return section("One-stage vs two-stage",
                   "<p class='muted'>One-stage: patient data and published estimates in one "
                   "model (MCMC). Two-stage: each IPD trial first reduced to its own log HR and "
                   f"SE (stage 1: {html.escape(est)}), then pooled exactly. They agree when the "
                   "IPD trials are large (normal likelihood for θ); differences show where the "
                   "patient-level likelihood is not normal.</p>", pd.DataFrame(rows))


def warnings_section(warnings: list[str]) -> Section:
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return section("Data and computation warnings", f"<ul>{items}</ul>")


def meta_headline(result: AnalysisResult) -> Section | None:
    """The answer in words: pooled HR and the HR predicted for a new study, each with its
    interval and P(HR<1), the number of studies and τ."""
    table, meta = result.estimand_table, result.details["meta"]
    if not {"hr_mu", "hr_theta_new", "tau"} <= set(table["label"]):
        return None
    lo_c, hi_c = interval_columns(table)
    level = f"{100 * result.spec.estimands.interval_prob:g}% CrI"
    k = len(meta["studies"])
    mu, new, tau = (row_of(table, x) for x in ("hr_mu", "hr_theta_new", "tau"))
    probs = result.probabilities

    def p_text(key: str) -> str:
        p = probs.get(key)
        return "" if p is None else f", P(HR<1) {probability_words(p)}"

    sentences = [
        f"Experimental vs reference, pooled over {k} {'study' if k == 1 else 'studies'}: "
        f"HR {mu['median']:.2f} ({level} {mu[lo_c]:.2f}–{mu[hi_c]:.2f})"
        + p_text("P(HR<1) [pooled mu]") + ".",
        f"In a new study: HR {new['median']:.2f} ({level} {new[lo_c]:.2f}–{new[hi_c]:.2f})"
        + p_text("P(HR<1) [new study]") + f"; between-study sd τ {tau['median']:.2f} "
        f"({level} {tau[lo_c]:.2f}–{tau[hi_c]:.2f}) on the log HR scale.",
    ]
    note = ("Pooled: the mean of the studies' true effects (random effects, e^μ). New study: "
            "the effect predicted for a further study exchangeable with these (e^θ_new); it "
            "includes the between-study spread.")
    if k <= 3:
        note += (f" <b>With {k} {'study' if k == 1 else 'studies'}, τ and hence both "
                 "intervals are driven by the τ prior</b> (see the sensitivity table).")
    return headline_box(sentences, note)


def meta_figures(result: AnalysisResult) -> list[FigureSpec]:
    """Forest plot and HR by heterogeneity prior (results)."""
    meta = result.details["meta"]
    interval = result.spec.estimands.interval_prob
    figures = [FigureSpec("forest", "meta_forest", {
        "studies": meta["studies"], "table": result.estimand_table, "interval_prob": interval},
        title="Forest plot: each study's hazard ratio, the pooled HR and a new study's",
        alt="Forest plot on a log hazard-ratio axis: each study's reported HR and interval, "
            "its shrunken estimate, the pooled HR (diamond) and the prediction interval for a "
            "new study, with the numbers in a column to the right.")]
    if meta["sensitivity"] is not None:
        figures.append(FigureSpec("heterogeneity_prior_sensitivity", "meta_sensitivity", {
            "table": meta["sensitivity"], "densities": meta["sensitivity_densities"],
            "interval_prob": interval},
            title="Sensitivity to the heterogeneity prior",
            alt="Pooled and new-study hazard ratios (median and interval) under each τ prior, "
                "and the posterior of τ under each prior."))
    return figures


def meta_prior_posterior(result: AnalysisResult) -> list[FigureSpec]:
    """Prior vs posterior of the pooled HR (μ) and of τ (exact, with MCMC draws)."""
    meta = result.details["meta"]
    exact = result.estimands if result.idata is None else meta.get("exact_densities")
    draws = result.idata.posterior["tau"].values.ravel() if result.idata is not None else None
    return [*prior_posterior_figure(result, exact, only=("mu",)),
            FigureSpec("tau_prior_posterior", "meta_tau", {"exact": exact,
                                                           "tau_draws": draws},
                       title="Between-study sd τ: prior and posterior",
                       alt="Prior density (dashed) and posterior of τ, the between-study sd "
                           "of the log hazard ratio.")]


@register_report("meta")
def meta_report(result: AnalysisResult) -> Report:
    meta = result.details["meta"]
    method = ("exact quadrature (no sampling)" if meta["method"] == "quadrature"
              else "MCMC (NUTS)")
    sections = []
    warnings = list(meta["warnings"]) + list(meta["exact_notes"])
    if meta["sensitivity"] is not None:
        sections.append(sensitivity_section(meta["sensitivity"], meta["sensitivity_source"],
                                            bool(meta["stage1"])))
    if meta["comparison"] is not None:
        sections.append(comparison_section(meta["comparison"]))
    if meta["stage1"] and meta["exact_table"] is not None:
        sections.append(two_stage_section(result.estimand_table, meta["exact_table"],
                                          meta["stage1"]))
    figures = meta_figures(result) + hr_figure(result) + trace_figure(result)
    return analysis_report(
        result, estimands_note_html=HR_NOTE.format(p=result.spec.estimands.interval_prob,
                                                   method=method),
        sections=sections, figures=figures, prior_posterior=meta_prior_posterior(result),
        headline=meta_headline(result),
        top_sections=[warnings_section(warnings)] if warnings else [])
