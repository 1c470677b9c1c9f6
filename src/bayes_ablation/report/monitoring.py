"""Figures of interim monitoring: the trajectory of P(HR < 1) and PPoS over the looks, and
the operating characteristics of a design."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayes_ablation.spec.design import Design


def _rule_threshold(design: Design, kind: str, quantity_is_ppos: bool) -> list[float]:
    return [r.threshold for r in design.rules if r.kind == kind
            and (r.quantity == "PPoS") == quantity_is_ppos]


def trajectory_figure(looks: Sequence[Any], design: Design) -> Figure:
    """P(HR < 1) and PPoS (± 2 MC SE) at each look, with the rules' thresholds; ``looks``:
    the ledger's look records (``cut_date``, ``look``, ``p_hr_lt_1``, ``ppos``, ``ppos_mcse``,
    ``decision``)."""
    from bayes_ablation.report.plots import color, subplots

    dates = [pd.Timestamp(r.cut_date) for r in looks]
    fig, axes = subplots(2, 1, figsize=(7.5, 6), sharex=True)
    ax = axes[0]
    ax.plot(dates, [r.p_hr_lt_1 for r in looks], "o-", color=color(0), label="P(HR < 1)")
    for t in _rule_threshold(design, "efficacy", False):
        ax.axhline(t, color=color(2), ls="--", lw=1, label=f"efficacy threshold {t:g}")
    for t in _rule_threshold(design, "success", False):
        ax.axhline(t, color="grey", ls=":", lw=1, label=f"final success threshold {t:g}")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("posterior probability")
    ax.set_title("Posterior probability that the experimental arm is better")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    ax = axes[1]
    with_ppos = [(d, r) for d, r in zip(dates, looks, strict=True) if r.ppos is not None]
    if with_ppos:
        d, recs = zip(*with_ppos, strict=True)
        ax.errorbar(d, [r.ppos for r in recs], yerr=[2 * (r.ppos_mcse or 0) for r in recs],
                    fmt="s-", color=color(1), capsize=3, label="PPoS ± 2 MC SE")
    for t in _rule_threshold(design, "futility", True):
        ax.axhline(t, color=color(1), ls="--", lw=1, label=f"futility threshold {t:g}")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("predictive probability")
    ax.set_title("Predictive probability of success at the final analysis")
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    ax.grid(alpha=0.3)
    for r, date in zip(looks, dates, strict=True):
        axes[0].annotate(f"look {r.look}\n{r.decision}", (date, r.p_hr_lt_1),
                         textcoords="offset points", xytext=(0, -26), ha="center", fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def oc_figure(summaries: dict[str, Any], n_looks: int) -> Figure:
    """Per scenario: cumulative probability of stopping for efficacy (or success at the final
    analysis) and for futility by analysis, and P(efficacy declared) (error bars: ± 2 MC SE)."""
    from bayes_ablation.report.plots import color, subplots

    fig, axes = subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, n_looks + 2)
    labels = [f"look {k}" for k in range(1, n_looks + 1)] + ["final"]
    for i, (name, s) in enumerate(summaries.items()):
        n = s["n_trials"]
        eff = np.cumsum([s["stop_efficacy"][k]["p"] for k in range(n_looks)]
                        + [s["final_success"]["p"]])
        fut = np.cumsum([s["stop_futility"][k]["p"] for k in range(n_looks)] + [0.0])
        axes[0].errorbar(x, eff, yerr=2 * np.sqrt(eff * (1 - eff) / n), fmt="o-",
                         color=color(i), capsize=3, label=f"{name}: efficacy / success")
        axes[0].errorbar(x, fut, yerr=2 * np.sqrt(fut * (1 - fut) / n), fmt="s--",
                         color=color(i), alpha=0.7, capsize=3, label=f"{name}: futility")
        axes[1].bar(i, s["reject"]["p"], yerr=2 * s["reject"]["mcse"], color=color(i),
                    capsize=4)
        axes[1].annotate(f"{s['reject']['p']:.3f} ± {s['reject']['mcse']:.3f}",
                         (i + 0.42, s["reject"]["p"]), ha="right", va="bottom",
                         xytext=(0, 3), textcoords="offset points", fontsize=9)
    axes[0].set_xticks(x, labels)
    axes[0].set_ylabel("cumulative probability")
    axes[0].set_title("Stopping by analysis")
    axes[0].legend(fontsize=7, frameon=False)
    axes[0].grid(alpha=0.3)
    axes[1].set_xticks(range(len(summaries)), list(summaries))
    axes[1].set_ylabel("P(efficacy declared)")
    axes[1].set_title("Type I error (null) / power")
    axes[1].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
