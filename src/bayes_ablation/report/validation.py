"""Figures and self-contained HTML for validation studies (SBC and coverage)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_ablation.report.html import CSS, _table, figure_png
from bayes_ablation.report.plots import _color, plt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayes_ablation.validation.runner import Study
    from bayes_ablation.validation.sbc import SBCSummary
    from bayes_ablation.validation.uniformity import EcdfTest


#: figure resolution of validation reports (lower than analysis reports: validation bundles are
#: committed to the repository, and their report embeds every figure a second time)
VALIDATION_DPI = 80


def _grid(n: int, width: float = 3.4, height: float = 2.7) -> tuple[Figure, np.ndarray]:
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def rank_histograms(ranks: Mapping[str, np.ndarray], max_rank: int,
                    band_prob: float = 0.99) -> Figure:
    """Binned SBC ranks per parameter, with the pointwise ``band_prob`` binomial band of a bin
    count under uniformity (Talts et al. 2018)."""
    from bayes_ablation.validation.uniformity import binned_counts, histogram_band, n_bins

    fig, axes = _grid(len(ranks))
    for i, (ax, (name, r)) in enumerate(zip(axes, ranks.items(), strict=False)):
        bins = n_bins(r.size, max_rank)
        counts = binned_counts(r, max_rank, bins)
        lo, hi = histogram_band(r.size, bins, band_prob)
        width = (max_rank + 1) / bins
        edges = np.arange(bins) * width
        ax.axhspan(lo, hi, color="#999999", alpha=0.25, lw=0,
                   label=f"{band_prob:.0%} band (uniform)")
        ax.axhline(r.size / bins, color="#666666", lw=0.8)
        ax.bar(edges, counts, width=width, align="edge", color=_color(i), alpha=0.8,
               edgecolor="white")
        ax.set_title(name, fontsize=10)
        ax.set_xlim(0, max_rank + 1)
        ax.set_xlabel(f"rank (0 … {max_rank})", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("SBC rank histograms", fontsize=11)
    fig.tight_layout()
    return fig


def ecdf_differences(curves: Mapping[str, EcdfTest]) -> Figure:
    """ECDF(u) − u of the fractional ranks with the simultaneous band (Säilynoja et al. 2022)."""
    fig, axes = _grid(len(curves))
    for i, (ax, (name, c)) in enumerate(zip(axes, curves.items(), strict=False)):
        z = np.concatenate([[0.0], c.z, [1.0]])
        pad = np.concatenate([[0.0], c.lower, [0.0]]), np.concatenate([[0.0], c.upper, [0.0]])
        ax.fill_between(z, pad[0], pad[1], color="#999999", alpha=0.3, lw=0,
                        label=f"{c.band_prob:.0%} simultaneous band")
        ax.plot(z, np.concatenate([[0.0], c.ecdf_diff, [0.0]]), color=_color(i), lw=1.3)
        ax.axhline(0, color="#666666", lw=0.6)
        ax.set_title(f"{name}   (p = {c.p_value:.3f})", fontsize=10)
        ax.set_xlabel("fractional rank", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("ECDF − uniform CDF", fontsize=8)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("SBC ECDF difference", fontsize=11)
    fig.tight_layout()
    return fig


def zscore_contraction(records: Sequence[Mapping[str, Any]], parameters: Sequence[str]
                       ) -> Figure:
    """Posterior z-score (mean − truth)/sd against posterior contraction 1 − sd²/prior var
    (Schad, Betancourt & Vasishth 2021); the prior variance is that of the true values."""
    ok = [r for r in records if r.get("status") == "ok"]
    fig, axes = _grid(len(parameters))
    for i, (ax, name) in enumerate(zip(axes, parameters, strict=False)):
        truth = np.array([r["params"][name]["truth"] for r in ok])
        mean = np.array([r["params"][name]["mean"] for r in ok])
        sd = np.array([r["params"][name]["sd"] for r in ok])
        flagged = np.array([bool(r.get("flags")) for r in ok], dtype=bool)
        prior_var = np.var(truth, ddof=1) if truth.size > 1 else np.nan
        contraction = 1 - sd**2 / prior_var
        z = (mean - truth) / sd
        ax.scatter(contraction[~flagged], z[~flagged], s=8, color=_color(i), alpha=0.6)
        if flagged.any():
            ax.scatter(contraction[flagged], z[flagged], s=14, marker="x", color="#d9534f",
                       label="flagged fit")
            ax.legend(fontsize=7)
        ax.axhline(0, color="#666666", lw=0.6)
        for s in (-2, 2):
            ax.axhline(s, color="#999999", lw=0.6, ls="--")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("posterior contraction", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("posterior z-score", fontsize=8)
    fig.suptitle("Posterior z-score vs contraction", fontsize=11)
    fig.tight_layout()
    return fig


def coverage_plot(table: pd.DataFrame, levels: Sequence[float]) -> Figure:
    """Coverage of central intervals per parameter with ±2 MCSE bars; nominal as a tick."""
    n = len(table)
    fig, ax = plt.subplots(figsize=(7, 0.55 * n * len(levels) + 1.2))
    y = 0
    labels, ticks = [], []
    for i, level in enumerate(levels):
        for _, row in table.iterrows():
            c, se = row[f"coverage_{level:g}"], row[f"coverage_{level:g}_mcse"]
            ax.errorbar(c, y, xerr=2 * se, fmt="o", color=_color(i), ms=4, capsize=2,
                        label=f"{level:.0%} interval" if _ == 0 else None)
            ax.plot([level, level], [y - 0.35, y + 0.35], color="#333333", lw=1.2)
            labels.append(f"{row['parameter']} ({level:.0%})")
            ticks.append(y)
            y += 1
        y += 0.5
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(max(0.0, min(levels) - 0.3), 1.0)
    ax.set_xlabel("coverage (±2 Monte Carlo SE); black tick: nominal", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- HTML

def _figures_html(pngs: Mapping[str, bytes]) -> str:
    return "".join(f"<h3>{html.escape(name.replace('_', ' '))}</h3><img alt='{html.escape(name)}' "
                   f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                   for name, png in pngs.items())


def _provenance_table(prov: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"item": k, "value": str(v)} for k, v in prov.items()
            if k not in ("versions", "sampler_settings", "design", "truth")]
    rows += [{"item": f"sampler: {k}", "value": str(v)}
             for k, v in prov.get("sampler_settings", {}).items()]
    rows += [{"item": f"design: {k}", "value": str(v)} for k, v in prov.get("design", {}).items()]
    rows += [{"item": f"version: {k}", "value": str(v)}
             for k, v in prov.get("versions", {}).items()]
    return pd.DataFrame(rows)


def _problems_html(problems: Mapping[str, Any]) -> str:
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
    return _table(counts) + (("<p>Failed simulations (first 50):</p>" + _table(errors))
                             if len(errors) else "")


def _subset_table(tests: pd.DataFrame, cols: list[str]) -> str:
    return _table(tests[cols]) if len(tests) and tests["n"].max() > 0 else "<p>none</p>"


def _page(title: str, subtitle: str, banner: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(title)}</h1><p>{subtitle}</p>{banner}{body}</body></html>"""


def _settings_line(study: Study) -> str:
    prov = study.provenance
    s = prov["sampler_settings"]
    return (f"spec <code>{html.escape(str(prov['spec_path']))}</code> · SHA-256 "
            f"<code>{prov['spec_sha256'][:16]}…</code> · {prov['n_simulations']} simulations · "
            f"seed {prov['seed']} · {s['backend']} {s['chains']} chains × {s['draws']} draws "
            f"(+{s['tune']} tuning) · created {prov['created_utc']}")


def sbc_report(study: Study, summary: SBCSummary) -> tuple[str, dict[str, bytes]]:
    """Figures and the HTML page of an SBC study."""
    figs = {"rank_histograms": rank_histograms(summary.ranks, summary.rank_draws),
            "ecdf_difference": ecdf_differences(summary.ecdf),
            "zscore_contraction": zscore_contraction(study.records, study.key_parameters)}
    pngs = {name: figure_png(fig, VALIDATION_DPI) for name, fig in figs.items()}
    css = "pass" if summary.passed else "fail"
    banner = f"<div class='banner {css}'>{html.escape(summary.verdict)}</div>"
    cols = ["parameter", "n", "chi2", "chi2_df", "chi2_p", "ecdf_p", "ecdf_max_abs_diff",
            "mean_rank_fraction", "rejected"]
    cov_cols = [c for c in summary.coverage.columns if c.startswith("coverage_") or
                c in ("parameter", "n")]
    body = f"""
<h2>Method</h2>
<p>For each simulation: parameters drawn from the spec's priors, a trial simulated by the
model's data-generating process (design below), the model fitted with the package's sampler,
and the rank of each true value among L = {summary.rank_draws} posterior draws thinned evenly
from all draws. Calibrated inference gives uniform ranks on 0 … L. Tests per parameter: χ² on
binned ranks and the simultaneous-band ECDF test (Säilynoja, Bürkner &amp; Vehtari 2022). A
parameter is rejected when either p-value is below {summary.threshold:.4f} (5% family-wise,
Bonferroni over {len(study.key_parameters)} parameters × 2 tests). Fits with divergences, high
R-hat or bulk ESS below L are flagged and kept: flags are functions of the draws, and dropping
flagged fits would break the exchangeability of truth and draws that makes ranks uniform.</p>
<h2>Uniformity tests (all fits with draws)</h2>{_table(summary.tests[cols])}
<h2>Diagnostic: uniformity within unflagged and within flagged fits</h2>
<p class="muted">Flags are functions of the draws, so these subsets need not be uniform even
for an exact sampler; a clearly non-uniform flagged subset points at the sampler.</p>
<h3>unflagged fits</h3>{_subset_table(summary.tests_unflagged, cols[:-1])}
<h3>flagged fits</h3>{_subset_table(summary.tests_flagged, cols[:-1])}
<h2>Fit problems</h2>{_problems_html(summary.problems)}
<h2>Coverage of central posterior intervals, averaged over the prior</h2>
<p class="muted">Implied by calibration: nominal up to Monte Carlo error.</p>
{_table(summary.coverage[cov_cols]) if len(summary.coverage) else ''}
<h2>Figures</h2>{_figures_html(pngs)}
<h2>Provenance</h2>{_table(_provenance_table(study.provenance))}"""
    title = f"Simulation-based calibration: {study.spec.name}"
    return _page(title, _settings_line(study), banner, body), pngs


def coverage_report(study: Study, table: pd.DataFrame, problems: Mapping[str, Any],
                    levels: Sequence[float]) -> tuple[str, dict[str, bytes]]:
    """Figures and the HTML page of a fixed-truth coverage study."""
    pngs = {"coverage": figure_png(coverage_plot(table, levels), VALIDATION_DPI)} if len(table) else {}
    truth = study.provenance.get("truth") or {}
    truth_text = ", ".join(f"{k} = {v:g}" for k, v in truth.items())
    bad = problems["errors"] > 0
    banner = (f"<div class='banner {'fail' if bad else 'pass'}'>{problems['fits_with_draws']} of "
              f"{problems['simulations']} fits produced draws; {problems['flagged']} flagged; "
              f"{problems['errors']} failed.</div>")
    body = f"""
<h2>Method</h2>
<p>Each simulation draws a trial from the model's data-generating process at the fixed truth
{html.escape(truth_text)} (site effects redrawn in every trial; design below) and fits it.
Coverage of central posterior intervals with Monte Carlo standard errors
sqrt(c(1 − c)/R); bias and RMSE of the posterior mean with MCSEs (Morris, White &amp; Crowther
2019). Bayesian intervals need not cover at the nominal rate at a fixed truth: with informative
priors they over-cover near the prior's centre and under-cover far from it.</p>
<h2>Coverage, bias and RMSE</h2>{_table(table) if len(table) else '<p>no fits</p>'}
<h2>Fit problems</h2>{_problems_html(problems)}
<h2>Figures</h2>{_figures_html(pngs)}
<h2>Provenance</h2>{_table(_provenance_table(study.provenance))}"""
    title = f"Frequentist coverage: {study.spec.name}"
    return _page(title, _settings_line(study), banner, body), pngs
