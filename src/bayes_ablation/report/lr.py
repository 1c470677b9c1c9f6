"""Figures of the local recurrence (LR) analysis: cumulative incidence with death competing,
and the posterior predictive checks of LR counts and of the Turnbull NPMLE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bayes_ablation.endpoints.local_recurrence.checks import CHECK_TITLES
from bayes_ablation.report.plots import color, new_figure, subplots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

def cif_figure(panels: Mapping[str, xr.DataArray], death_free: xr.DataArray, grid: np.ndarray,
               interval_prob: float = 0.95, population: str = "average_site",
               under_surveillance: Mapping[str, Any] | None = None,
               followed: Mapping[str, Any] | None = None) -> Figure:
    """CIF of LR by arm over time (posterior median and band) for each panel (e.g. reference
    lesion, standardised lesion mix), with death-free survival: draws (chain, draw, arm, time)
    on ``grid`` (months). Under the CIF panels, the lesions under surveillance per arm
    (``under_surveillance``: ``{"times": [...], "counts": {arm: [...]}}``); under the
    death-free panel the patients still followed (``followed``, same form)."""
    from bayes_ablation.report.plots import risk_table

    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    ncols = len(panels) + 1
    tables = under_surveillance is not None
    n_rows = len(under_surveillance["counts"]) if tables else 0
    table_h = 0.24 * n_rows + 0.5 if tables else 0.0
    fig = new_figure(figsize=(13, 4.2 + table_h))
    gs = fig.add_gridspec(2 if tables else 1, ncols,
                          height_ratios=[3.4, table_h] if tables else [1])
    axes = [fig.add_subplot(gs[0, k]) for k in range(ncols)]
    for ax, (title, cif) in zip(axes[:-1], panels.items(), strict=True):
        _bands(ax, cif, grid, lo, hi)
        ax.set_title(f"CIF of LR: {title}", fontsize=10)
        ax.set_ylabel("cumulative incidence of LR (death competing)")
    _bands(axes[-1], death_free, grid, lo, hi)
    axes[-1].set_title("Death-free survival", fontsize=10)
    axes[-1].set_ylim(0, 1.02)
    for ax in axes:
        ax.set_xlabel("months since ablation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    if tables:
        for k, ax in enumerate(axes):
            table = followed if k == ncols - 1 else under_surveillance
            if table is None:
                continue
            axr = fig.add_subplot(gs[1, k], sharex=ax)
            risk_table(axr, table["times"], table["counts"], table.get("label", ""))
            ax.set_xticks(table["times"])
    fig.suptitle(f"Posterior medians and {interval_prob:.0%} bands "
                 f"({population.replace('_', ' ')})")
    if tables:
        fig.subplots_adjust(left=0.1, right=0.99, top=0.9, bottom=0.04, wspace=0.38,
                            hspace=0.45)
    else:
        fig.tight_layout()
    return fig


def _bands(ax: Any, curves: xr.DataArray, grid: np.ndarray, lo: float, hi: float) -> None:
    t0 = np.concatenate([[0.0], grid])
    start = 1.0 if curves.name == "death_free_survival" else 0.0
    for i, arm in enumerate(curves["arm"].values):
        c = curves.sel(arm=arm).stack(s=("chain", "draw")).transpose("time", "s").values
        q = np.quantile(c, [lo, 0.5, hi], axis=-1)
        q = np.concatenate([np.full((3, 1), start), q], axis=1)
        ax.fill_between(t0, q[0], q[2], color=color(i), alpha=0.2, lw=0)
        ax.plot(t0, q[1], color=color(i), lw=1.6, label=str(arm))


def counts_figure(checks: Mapping[str, xr.Dataset]) -> Figure:
    """Observed number of lesions with LR (black) against the posterior predictive band."""
    names = [n for n in CHECK_TITLES if n in checks]
    widths = [max(2, checks[n].sizes["group"]) for n in names]
    fig, axes = subplots(1, len(names), figsize=(3 + 0.55 * sum(widths), 3.8),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ds = checks[name]
        x = np.arange(ds.sizes["group"])
        ax.vlines(x, ds["lower"], ds["upper"], color=color(0), lw=6, alpha=0.35,
                  label="predictive band")
        ax.plot(x, ds["median"], "_", color=color(0), ms=14, label="predictive median")
        ax.plot(x, ds["observed"], "o", color="black", ms=5, label="observed")
        ax.set_xticks(x, [str(g) for g in ds["group"].values], rotation=30, ha="right",
                      fontsize=8)
        ax.set_title(CHECK_TITLES[name], fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("lesions with LR observed")
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle("Posterior predictive check: lesions with an observed local recurrence")
    fig.tight_layout()
    return fig


def incidence_check_figure(ds: xr.Dataset) -> Figure:
    """Turnbull NPMLE of the data (steps) against the band of the NPMLEs of replicated data."""
    groups = list(ds["group"].values)
    fig, axes = subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False,
                             sharey=True)
    t = ds["time"].values
    for i, (ax, g) in enumerate(zip(axes[0], groups, strict=True)):
        sel = ds.sel(group=g)
        ax.fill_between(t, sel["lower"], sel["upper"], color=color(i), alpha=0.25, lw=0,
                        label=f"replicated data ({ds.attrs.get('replicates', '')} sets)")
        ax.plot(t, sel["median"], color=color(i), lw=1.2, label="replicates' median")
        ax.step(t, sel["observed"], where="post", color="black", lw=1.3,
                label="observed data")
        ax.set_title(f"{g} (NPMLE in band {float(sel['inside']):.0%})", fontsize=9)
        ax.set_xlabel("months since ablation")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("P(LR by t), death as censoring")
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle("Turnbull NPMLE of LR by t: observed vs posterior predictive replicates")
    fig.tight_layout()
    return fig


