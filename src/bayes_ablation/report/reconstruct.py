"""Overlay figure of a reconstruction: digitised points vs the reconstructed KM step curve."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.figure import Figure

from bayes_ablation.data.reconstruct import Reconstruction, kaplan_meier
from bayes_ablation.report.plots import color, margins, subplots


def reconstruction_overlay(rec: Reconstruction, arm: str) -> Figure:
    """Digitised points and the KM of the reconstructed IPD; numbers at risk (published /
    reconstructed) printed under the axis."""
    fig, ax = subplots(figsize=(7, 5))
    t, s = kaplan_meier(rec.ipd["time_months"].to_numpy(), rec.ipd["event"].to_numpy())
    t_end = float(rec.ipd["time_months"].max())
    ax.step(np.append(t, t_end), np.append(s, s[-1]), where="post", color=color(0), lw=1.4,
            label="reconstructed IPD: Kaplan–Meier")
    ax.plot(rec.curve["time_months"], rec.curve["survival"], "o", ms=3, color=color(1),
            label="digitised points")
    ax.set_xlabel("time (months)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    a = rec.accuracy
    ax.set_title(f"{arm}: reconstructed vs digitised (max |ΔS| "
                 f"{a['max_abs_diff_survival']:.3f})")
    ax.legend(loc="upper right", frameon=False)
    for row in a["at_risk"]:
        ax.annotate(f"{row['published']}\n{row['reconstructed']}", (row["time_months"], 0),
                    xycoords=("data", "axes fraction"), xytext=(0, -42),
                    textcoords="offset points", ha="center", va="top", fontsize=8)
    ax.annotate("at risk: published\nreconstructed", (0, 0), xycoords="axes fraction",
                xytext=(-8, -42), textcoords="offset points", ha="right", va="top", fontsize=8)
    margins(fig, left=1.4, bottom=1.3)
    return fig
