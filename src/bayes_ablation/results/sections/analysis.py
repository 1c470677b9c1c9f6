"""Sections every analysis report shares: header and gate banner, data, priors, posterior
probabilities, estimands, posterior figures, convergence diagnostics and provenance."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd
import xarray as xr

from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import Banner, FigureSpec, Report, Section, section

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


def estimands_section(result: AnalysisResult, note_html: str) -> Section:
    table = result.estimand_table
    q_cols = [c for c in table.columns if c.startswith("q")]
    return section("Estimands",
                   f"<p class=\"muted\">{note_html} Intervals are central "
                   f"{result.spec.estimands.interval_prob:.0%} posterior intervals; times in "
                   "months.</p>",
                   table[["label", "mean", "sd", "median", *q_cols]])


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
    from bayes_ablation.results.sections import Table

    return Table(frame, index=True)
