"""Figures of validation studies: SBC rank histograms and ECDF differences, z-score against
contraction, interval coverage with Monte Carlo error bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_ablation.report.plots import color, subplots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayes_ablation.inference.uniformity import EcdfTest


#: figure resolution of validation reports (lower than analysis reports: validation bundles are
#: committed to the repository, and their report embeds every figure a second time)
VALIDATION_DPI = 80


def _grid(n: int, width: float = 3.4, height: float = 2.7) -> tuple[Figure, np.ndarray]:
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def rank_histograms(ranks: Mapping[str, np.ndarray], max_rank: int,
                    band_prob: float = 0.99) -> Figure:
    """Binned SBC ranks per parameter, with the pointwise ``band_prob`` binomial band of a bin
    count under uniformity (Talts et al. 2018)."""
    from bayes_ablation.inference.uniformity import binned_counts, histogram_band, n_bins

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
        ax.bar(edges, counts, width=width, align="edge", color=color(i), alpha=0.8,
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
        ax.plot(z, np.concatenate([[0.0], c.ecdf_diff, [0.0]]), color=color(i), lw=1.3)
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
        ax.scatter(contraction[~flagged], z[~flagged], s=8, color=color(i), alpha=0.6)
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
    fig, ax = subplots(figsize=(7, 0.55 * n * len(levels) + 1.2))
    y = 0
    labels, ticks = [], []
    for i, level in enumerate(levels):
        for _, row in table.iterrows():
            c, se = row[f"coverage_{level:g}"], row[f"coverage_{level:g}_mcse"]
            ax.errorbar(c, y, xerr=2 * se, fmt="o", color=color(i), ms=4, capsize=2,
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
