"""Subgroup forest plot: the HR in each level of each pre-specified subgroup, with the overall HR."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from bayes_ablation.report.plots import _label_inches, color, margins, subplots

#: candidate HR ticks of the log axis
TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)


def subgroup_forest(hr_subgroup: xr.DataArray, hr: xr.DataArray, interval_prob: float = 0.95,
                    p_differs: Mapping[str, float] | None = None,
                    title: str = "HR by subgroup (shrunk together), overall HR on top",
                    xlabel: str = "hazard ratio (treatment vs reference, log scale)") -> Figure:
    """One panel per treatment: posterior median and central interval of the HR in each
    subgroup level (``hr_subgroup``: chain, draw, subgroup_level, treatment), the overall HR
    (``hr``) on top with its interval shaded across the panel; ``p_differs`` (key
    ``"<treatment>, <subgroup>"``) is written beside each subgroup's level-1 row."""
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    treatments = [str(t) for t in hr_subgroup["treatment"].values]
    levels = [str(v) for v in hr_subgroup["subgroup_level"].values]
    labels = ["overall", *levels]
    fig, axes = subplots(1, len(treatments), figsize=(5.4 * len(treatments) + 1.8,
                                                          0.34 * len(labels) + 1.4),
                             squeeze=False, sharey=True)
    y = np.arange(len(labels))[::-1]
    for k, treatment in enumerate(treatments):
        ax = axes[0][k]
        overall = hr.sel(treatment=treatment).values.ravel()
        q_all = np.quantile(overall, [lo, 0.5, hi])
        ax.axvspan(q_all[0], q_all[2], color="grey", alpha=0.15, lw=0)
        ax.axvline(q_all[1], color="grey", lw=1)
        ax.axvline(1.0, color="black", ls=":", lw=1)
        ax.hlines(y[0], q_all[0], q_all[2], color="black", lw=2.5)
        ax.plot(q_all[1], y[0], "D", color="black", ms=6)
        draws = hr_subgroup.sel(treatment=treatment).stack(s=("chain", "draw")).transpose(
            "subgroup_level", "s").values
        q = np.quantile(draws, [lo, 0.5, hi], axis=1)
        groups = [lv.rsplit("=", 1)[0] for lv in levels]
        order = list(dict.fromkeys(groups))
        for i, lv in enumerate(levels):
            c = color(order.index(groups[i]))
            filled = lv.endswith("=1")
            ax.hlines(y[i + 1], q[0, i], q[2, i], color=c, lw=2)
            ax.plot(q[1, i], y[i + 1], "o", color=c, ms=5, mfc=c if filled else "white")
            if filled and p_differs is not None:
                p = p_differs.get(f"{treatment}, {groups[i]}")
                if p is not None:
                    ax.annotate(f"P(differs) {p:.2f}", (1.0, y[i + 1] - 0.5),
                                xycoords=("axes fraction", "data"), ha="right", va="center",
                                fontsize=7, color=c)
        ax.set_xscale("log")
        left, right = ax.get_xlim()
        ax.xaxis.set_major_locator(FixedLocator([t for t in TICKS if left <= t <= right]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y, labels)
        ax.set_title(f"{treatment} vs reference", fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=11)
    margins(fig, left=_label_inches(labels) + 0.3, bottom=0.65, top=0.6, wspace=0.08)
    return fig
