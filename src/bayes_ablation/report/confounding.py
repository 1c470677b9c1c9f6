"""Figures of the "Confounding" section: propensity overlap, Love plot, weighted vs
g-computation estimates, and the bias-parameter contour of the adjusted hazard ratio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bayes_ablation.report.plots import Line2D, _label_inches, color, margins, subplots


def propensity_overlap(propensity: Mapping[str, np.ndarray],
                       bounds: Sequence[float] = (0.05, 0.95),
                       title: str = "Propensity score by arm") -> Figure:
    """Mirrored histograms of the propensity (P(treatment arm | covariates, site)): the
    first arm above the axis, the second below; the overlap bounds dashed."""
    fig, ax = subplots(figsize=(7, 3.8))
    bins = np.linspace(0, 1, 41)
    for i, (arm, e) in enumerate(propensity.items()):
        counts, edges = np.histogram(np.asarray(e, float), bins=bins)
        sign = 1 if i == 0 else -1
        ax.bar(edges[:-1], sign * counts, width=np.diff(edges), align="edge", color=color(i),
               alpha=0.7, label=f"{arm} (n = {len(e)})", lw=0)
    for b in bounds:
        ax.axvline(b, color="black", ls="--", lw=0.8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_yticks(ax.get_yticks(), [f"{abs(int(v))}" for v in ax.get_yticks()])
    ax.set_xlim(0, 1)
    ax.set_xlabel("propensity score e(x) = P(treatment arm | covariates, site)")
    ax.set_ylabel("patients")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    margins(fig, left=0.7, bottom=0.6, top=0.4)
    return fig


def love_plot(balance: pd.DataFrame, threshold: float = 0.1,
              title: str = "Covariate balance (Love plot)") -> Figure:
    """|SMD| per covariate, unweighted (open) and overlap-weighted (filled), with the
    conventional 0.1 threshold."""
    names = list(balance["covariate"].astype(str))
    y = np.arange(len(names))[::-1]
    fig, ax = subplots(figsize=(6.5, 0.32 * len(names) + 1.3))
    ax.plot(np.abs(balance["smd_unweighted"]), y, "o", mfc="none", color=color(1),
            label="unweighted")
    ax.plot(np.abs(balance["smd_overlap_weighted"]), y, "o", color=color(0),
            label="overlap-weighted")
    for yi, a, b in zip(y, np.abs(balance["smd_unweighted"]),
                        np.abs(balance["smd_overlap_weighted"]), strict=True):
        ax.plot([a, b], [yi, yi], color="grey", lw=0.6)
    ax.axvline(threshold, color="black", ls="--", lw=0.8)
    ax.set_yticks(y, names)
    ax.set_xlabel("|standardised mean difference|")
    ax.set_xlim(left=0)
    ax.set_title(title, pad=22)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(frameon=False, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              ncol=2)
    margins(fig, left=_label_inches(names) + 0.3, bottom=0.6, top=0.7)
    return fig


def estimate_comparison(table: pd.DataFrame,
                        title: str = "Outcome model vs propensity weighting") -> Figure:
    """Median and interval of each estimand by method (rows: estimand × time), so that a
    disagreement between the g-computation and the weighted estimate is visible."""
    table = table.copy()
    several = table["treatment"].nunique() > 1
    table["row"] = [("" if not several else f"{a}: ") + f"{e} {q.replace('_difference', ' diff')}"
                    + ("" if pd.isna(t) else f", t={t:g}")
                    for a, e, q, t in zip(table["treatment"], table["estimand"],
                                          table["quantity"], table["time"], strict=True)]
    rows = list(dict.fromkeys(table["row"]))
    methods = list(dict.fromkeys(table["method"]))
    quantities = list(dict.fromkeys(table["quantity"]))
    per_panel = {q: list(dict.fromkeys(table.loc[table["quantity"] == q, "row"]))
                 for q in quantities}
    fig, axes = subplots(len(quantities), 1, squeeze=False,
                             figsize=(7.5, 0.3 * len(rows) + 0.9 * len(quantities) + 0.9),
                             gridspec_kw={"height_ratios": [len(per_panel[q]) + 0.8
                                                            for q in quantities]})
    for ax, quantity in zip(axes[:, 0], quantities, strict=True):
        y0 = {r: i for i, r in enumerate(per_panel[quantity][::-1])}
        for m, method in enumerate(methods):
            sub = table[(table["method"] == method) & (table["quantity"] == quantity)]
            y = np.array([y0[r] for r in sub["row"]], float) + (
                (0.15 if m == 0 else -0.15) if len(methods) > 1 else 0.0)
            ax.hlines(y, sub["lower"], sub["upper"], color=color(m), lw=2)
            ax.plot(sub["median"], y, "o", color=color(m), ms=4,
                    label=method if ax is axes[0, 0] else None)
        ax.axvline(0, color="grey", ls=":", lw=1)
        ax.set_yticks(list(y0.values()), list(y0.keys()))
        ax.set_ylim(-0.6, len(y0) - 0.4)
        ax.set_xlabel("RMST difference (months)" if quantity == "rmst_difference"
                      else "S(t) difference (probability)")
        ax.grid(alpha=0.3, axis="x")
    h = fig.get_size_inches()[1]
    fig.suptitle(title, y=1 - 0.08 / h, fontsize=10, va="top")
    fig.legend(frameon=False, fontsize=8, loc="upper center", ncol=len(methods),
               bbox_to_anchor=(0.5, 1 - 0.32 / h))
    margins(fig, left=_label_inches(rows) + 0.3, bottom=0.55, top=0.75, hspace=0.45)
    return fig


def bias_contour(grid: pd.DataFrame, hr_unadjusted: Mapping[str, float],
                 interval_prob: float = 0.95,
                 title: str = "Adjusted HR under an unmeasured binary confounder U") -> Figure:
    """Posterior median of the adjusted HR over (U's HR on the outcome, p₁ − p₀); solid line:
    where the median reaches 1; dashed: where the credible interval reaches 1."""
    hr_u = np.unique(grid["hr_u"])
    dp = np.unique(grid["prevalence_difference"])
    shape = (hr_u.size, dp.size)
    g = grid.sort_values(["hr_u", "prevalence_difference"])
    med = g["hr_adjusted_median"].to_numpy().reshape(shape)
    favours = hr_unadjusted["median"] < 1
    limit = g["hr_adjusted_upper" if favours else "hr_adjusted_lower"].to_numpy().reshape(shape)
    fig, ax = subplots(figsize=(6.8, 5))
    half = max(abs(np.log(med.min())), abs(np.log(med.max())), 0.05)
    levels = np.exp(np.linspace(-half, half, 15))        # log-symmetric: white at HR = 1
    cs = ax.contourf(dp, hr_u, med, levels=levels, cmap="RdBu_r")
    cb = fig.colorbar(cs, ax=ax)
    cb.set_label("adjusted HR (posterior median)")
    cb.set_ticks(levels[::2], labels=[f"{v:.2f}" for v in levels[::2]])
    handles = []
    if med.min() < 1 < med.max():
        ax.contour(dp, hr_u, med, levels=[1.0], colors="black", linewidths=1.5)
        handles.append(Line2D([], [], color="black", lw=1.5, label="median HR = 1"))
    if limit.min() < 1 < limit.max():
        ax.contour(dp, hr_u, limit, levels=[1.0], colors="black", linewidths=1.2,
                   linestyles="--")
        handles.append(Line2D([], [], color="black", lw=1.2, ls="--",
                                  label=f"{interval_prob:.0%} CrI reaches 1"))
    ax.plot([0], [1], "k+", ms=10)
    ax.set_yscale("log")
    ax.set_yticks([0.25, 0.5, 1, 2, 4], ["0.25", "0.5", "1", "2", "4"])
    ax.minorticks_off()
    ax.set_xlabel("prevalence difference of U, p1 − p0 (treatment − reference)")
    ax.set_ylabel("HR of U on the outcome (e^γ)")
    ax.set_title(f"{title}\nobserved HR {hr_unadjusted['median']:.2f} "
                 f"({interval_prob:.0%} CrI {hr_unadjusted['lower']:.2f}–"
                 f"{hr_unadjusted['upper']:.2f}); mean prevalence 0.5", fontsize=9)
    if handles:
        ax.legend(handles=handles, frameon=True, fontsize=8, loc="lower left")
    margins(fig, left=0.75, bottom=0.6, top=0.6, right=1.2)
    return fig
