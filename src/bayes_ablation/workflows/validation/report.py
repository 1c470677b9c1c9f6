"""Reports of validation studies (SBC and coverage), as sections the HTML writer renders.

Registered report kinds: ``sbc`` (builder of ``(study, summary)``) and ``coverage`` (of
``(study, table, problems, levels)``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayes_ablation.report.html import render_report
from bayes_ablation.report.validation import VALIDATION_DPI
from bayes_ablation.results.sections import (
    Banner,
    FigureSpec,
    Report,
    Section,
    register_report,
    section,
)

if TYPE_CHECKING:
    from bayes_ablation.workflows.validation.runner import Study
    from bayes_ablation.workflows.validation.sbc import SBCSummary


def provenance_table(prov: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"item": k, "value": str(v)} for k, v in prov.items()
            if k not in ("versions", "sampler_settings", "design", "truth")]
    rows += [{"item": f"sampler: {k}", "value": str(v)}
             for k, v in prov.get("sampler_settings", {}).items()]
    rows += [{"item": f"design: {k}", "value": str(v)} for k, v in prov.get("design", {}).items()]
    rows += [{"item": f"version: {k}", "value": str(v)}
             for k, v in prov.get("versions", {}).items()]
    return pd.DataFrame(rows)


def problems_section(problems: Mapping[str, Any]) -> Section:
    counts = pd.DataFrame([
        {"": "simulations", "count": problems["simulations"]},
        {"": "fits with posterior draws", "count": problems["fits_with_draws"]},
        {"": "failed (error, no draws)", "count": problems["errors"]},
        {"": "flagged fits (ranks kept)", "count": problems["flagged"]},
        *[{"": f"  flag: {k}", "count": v} for k, v in problems["by_flag"].items()],
        {"": "divergent transitions, all fits", "count": problems["total_divergences"]},
        {"": "fits on the PyMC fallback sampler", "count": problems["sampler_fallbacks"]},
    ])
    errors = pd.DataFrame(problems["error_list"][:50])
    return section("Fit problems", counts,
                   "<p>Failed simulations (first 50):</p>" if len(errors) else None,
                   errors if len(errors) else None)


def _subset(title: str, tests: pd.DataFrame, cols: list[str]) -> Section:
    return section(title, tests[cols] if len(tests) and tests["n"].max() > 0 else "<p>none</p>")


def settings_line(study: Study) -> str:
    prov = study.provenance
    s = prov["sampler_settings"]
    return (f"<p>spec <code>{html.escape(str(prov['spec_path']))}</code> · SHA-256 "
            f"<code>{prov['spec_sha256'][:16]}…</code> · {prov['n_simulations']} simulations · "
            f"seed {prov['seed']} · {s['backend']} {s['chains']} chains × {s['draws']} draws "
            f"(+{s['tune']} tuning) · created {prov['created_utc']}</p>")


@register_report("sbc")
def sbc_sections(obj: tuple[Study, SBCSummary]) -> Report:
    """The report of an SBC study: method, uniformity tests, fit problems, coverage, figures."""
    study, summary = obj
    cols = ["parameter", "n", "chi2", "chi2_df", "chi2_p", "ecdf_p", "ecdf_max_abs_diff",
            "mean_rank_fraction", "rejected"]
    cov_cols = [c for c in summary.coverage.columns if c.startswith("coverage_") or
                c in ("parameter", "n")]
    method = f"""<p>For each simulation: parameters drawn from the spec's priors, a trial
simulated by the model's data-generating process (design below), the model fitted with the
package's sampler, and the rank of each true value among L = {summary.rank_draws} posterior
draws thinned evenly from all draws. Calibrated inference gives uniform ranks on 0 … L. Tests
per parameter: χ² on binned ranks and the simultaneous-band ECDF test (Säilynoja, Bürkner &amp;
Vehtari 2022). A parameter is rejected when either p-value is below {summary.threshold:.4f} (5%
family-wise, Bonferroni over {len(study.key_parameters)} parameters × 2 tests). Fits with
divergences, high R-hat or bulk ESS below L are flagged and kept: flags are functions of the
draws, and dropping flagged fits would break the exchangeability of truth and draws that makes
ranks uniform.</p>"""
    figures = (FigureSpec("rank_histograms", "sbc_rank_histograms",
                          {"ranks": summary.ranks, "max_rank": summary.rank_draws}),
               FigureSpec("ecdf_difference", "sbc_ecdf_differences", {"curves": summary.ecdf}),
               FigureSpec("zscore_contraction", "zscore_contraction",
                          {"records": study.records, "parameters": study.key_parameters}))
    sections = (
        section("Method", method),
        section("Uniformity tests (all fits with draws)", summary.tests[cols]),
        section("Diagnostic: uniformity within unflagged and within flagged fits",
                "<p class=\"muted\">Flags are functions of the draws, so these subsets need not "
                "be uniform even for an exact sampler; a clearly non-uniform flagged subset "
                "points at the sampler.</p>"),
        _subset("Unflagged fits", summary.tests_unflagged, cols[:-1]),
        _subset("Flagged fits", summary.tests_flagged, cols[:-1]),
        problems_section(summary.problems),
        section("Coverage of central posterior intervals, averaged over the prior",
                "<p class=\"muted\">Implied by calibration: nominal up to Monte Carlo "
                "error.</p>", summary.coverage[cov_cols] if len(summary.coverage) else None),
        Section("Figures", figures),
        section("Provenance", provenance_table(study.provenance)),
    )
    return Report(title=f"Simulation-based calibration: {study.spec.name}",
                  intro_html=settings_line(study), banner=Banner(summary.passed, html.escape(
                      summary.verdict)), sections=sections, dpi=VALIDATION_DPI)


@register_report("coverage")
def coverage_sections(obj: tuple[Study, pd.DataFrame, Mapping[str, Any], Sequence[float]]
                      ) -> Report:
    """The report of a fixed-truth coverage study: method, coverage/bias/RMSE, problems."""
    study, table, problems, levels = obj
    truth = study.provenance.get("truth") or {}
    truth_text = ", ".join(f"{k} = {v:g}" for k, v in truth.items())
    bad = problems["errors"] > 0
    banner = Banner(not bad, f"{problems['fits_with_draws']} of {problems['simulations']} fits "
                             f"produced draws; {problems['flagged']} flagged; "
                             f"{problems['errors']} failed.")
    method = f"""<p>Each simulation draws a trial from the model's data-generating process at
the fixed truth {html.escape(truth_text)} (site effects redrawn in every trial; design below)
and fits it. Coverage of central posterior intervals with Monte Carlo standard errors
sqrt(c(1 − c)/R); bias and RMSE of the posterior mean with MCSEs (Morris, White &amp; Crowther
2019). Bayesian intervals need not cover at the nominal rate at a fixed truth: with informative
priors they over-cover near the prior's centre and under-cover far from it.</p>"""
    figures = ((FigureSpec("coverage", "coverage", {"table": table, "levels": list(levels)}),)
               if len(table) else ())
    sections = (
        section("Method", method),
        section("Coverage, bias and RMSE", table if len(table) else "<p>no fits</p>"),
        problems_section(problems),
        Section("Figures", figures),
        section("Provenance", provenance_table(study.provenance)),
    )
    return Report(title=f"Frequentist coverage: {study.spec.name}",
                  intro_html=settings_line(study), banner=banner, sections=sections,
                  dpi=VALIDATION_DPI)


def sbc_report(study: Study, summary: SBCSummary) -> tuple[str, dict[str, bytes]]:
    """HTML page and figures (PNG bytes) of an SBC study."""
    return render_report(sbc_sections((study, summary)))


def coverage_report(study: Study, table: pd.DataFrame, problems: Mapping[str, Any],
                    levels: Sequence[float]) -> tuple[str, dict[str, bytes]]:
    """HTML page and figures (PNG bytes) of a fixed-truth coverage study."""
    return render_report(coverage_sections((study, table, problems, levels)))
