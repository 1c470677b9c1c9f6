"""Figures of a meta-analysis: forest plot, pooled and predicted HR by heterogeneity prior,
prior vs posterior of τ. Each takes data and returns a matplotlib ``Figure``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.results.sections.meta import interval_columns, row_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure



def forest_plot(studies: pd.DataFrame, table: pd.DataFrame, interval_prob: float = 0.95,
                title: str = "Forest plot: hazard ratio, experimental vs reference") -> Figure:
    """Each study's reported HR and interval (black square), its shrunken estimate θ_i (blue
    circle), the pooled HR e^μ (diamond) and the prediction interval for a new study (red)."""
    from bayes_ablation.report.plots import color, subplots

    lo_c, hi_c = interval_columns(table)
    k = len(studies)
    fig, (ax, ax_t) = subplots(1, 2, figsize=(10, 0.62 * k + 2.8), sharey=True,
                                   gridspec_kw={"width_ratios": [3, 2], "wspace": 0.02})
    y_pos = np.arange(k)[::-1] + 2.5
    texts = []
    for yv, (_, s) in zip(y_pos, studies.iterrows(), strict=True):
        ax.hlines(yv + 0.14, s["ci_low"], s["ci_high"], color="black", lw=1.4)
        ax.plot(s["hr"], yv + 0.14, "s", color="black", ms=6,
                label="reported HR (interval)" if yv == y_pos[0] else None)
        r = row_of(table, f"hr_theta[{s['study']}]")
        ax.hlines(yv - 0.14, r[lo_c], r[hi_c], color=color(0), lw=2)
        ax.plot(r["median"], yv - 0.14, "o", color=color(0), ms=5,
                label="shrunken study effect θ_i" if yv == y_pos[0] else None)
        level = s.get("ci_level", np.nan)
        lvl = f" ({100 * level:.4g}%)" if np.isfinite(level) and abs(level - 0.95) > 1e-9 \
            else ""
        if s.get("evidence") == "ipd_stage1":
            lvl += " IPD, stage 1"
        texts.append((yv, f"{s['hr']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]{lvl}",
                      f"{r['median']:.2f} [{r[lo_c]:.2f}, {r[hi_c]:.2f}]"))
    mu = row_of(table, "hr_mu")
    new = row_of(table, "hr_theta_new")
    ax.fill([mu[lo_c], mu["median"], mu[hi_c], mu["median"]], [1.3, 1.55, 1.3, 1.05],
            color=color(0), label="pooled HR e^μ")
    ax.hlines(0.45, new[lo_c], new[hi_c], color=color(1), lw=3, alpha=0.85,
              label="prediction interval (new study)")
    ax.plot(new["median"], 0.45, "|", color=color(1), ms=12, mew=2)
    texts.append((1.3, "", f"{mu['median']:.2f} [{mu[lo_c]:.2f}, {mu[hi_c]:.2f}]"))
    texts.append((0.45, "", f"{new['median']:.2f} [{new[lo_c]:.2f}, {new[hi_c]:.2f}]"))
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.axvline(mu["median"], color=color(0), ls="--", lw=0.8, alpha=0.6)
    ax.set_xscale("log")
    labels = [*list(studies["study"]), "pooled (μ)", "new study (θ_new)"]
    ax.set_yticks([*list(y_pos), 1.3, 0.45], labels)
    theta = table[table["estimand"] == "hr_theta"]
    lows = np.concatenate([studies["ci_low"], [mu[lo_c], new[lo_c]], theta[lo_c]])
    highs = np.concatenate([studies["ci_high"], [mu[hi_c], new[hi_c]], theta[hi_c]])
    x_lo, x_hi = float(np.min(lows)) / 1.15, float(np.max(highs)) * 1.15
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(-0.2, k + 2.6)
    ticks = [t for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20)
             if x_lo <= t <= x_hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("hazard ratio (log scale)\n← favours experimental | favours reference →")
    ax.grid(alpha=0.25, axis="x")
    ax_t.set_xlim(0, 1)
    ax_t.axis("off")
    ax_t.text(0.03, k + 2.1, "reported", fontsize=8.5, fontweight="bold")
    ax_t.text(0.60, k + 2.1, f"posterior {interval_prob:.0%}", fontsize=8.5,
              fontweight="bold", color=color(0))
    for yv, obs, post in texts:
        ax_t.text(0.03, yv, obs, fontsize=8.5, va="center")
        ax_t.text(0.60, yv, post, fontsize=8.5, va="center", color=color(0))
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, frameon=False, ncol=4,
               loc="lower center")
    fig.suptitle(title)
    fig.subplots_adjust(left=0.19, right=0.99, top=0.9, bottom=0.25 if k < 4 else 0.16)
    return fig


def sensitivity_plot(table: pd.DataFrame, densities: xr.Dataset | None,
                     interval_prob: float = 0.95) -> Figure:
    """Pooled and new-study HR (median, interval) under each τ prior, and τ's posteriors."""
    from bayes_ablation.report.plots import color, subplots

    n = len(table)
    ncols = 2 if densities is not None else 1
    fig, axes = subplots(1, ncols, figsize=(11 if ncols == 2 else 6.5, 0.55 * n + 1.8),
                             squeeze=False)
    ax = axes[0][0]
    y = np.arange(n)[::-1].astype(float)
    ax.hlines(y + 0.15, table["pooled HR lower"], table["pooled HR upper"], color=color(0),
              lw=2.5, label="pooled HR e^μ")
    ax.plot(table["pooled HR median"], y + 0.15, "D", color=color(0), ms=5)
    ax.hlines(y - 0.15, table["new-study HR lower"], table["new-study HR upper"],
              color=color(1), lw=2.5, label="new study e^θ_new")
    ax.plot(table["new-study HR median"], y - 0.15, "o", color=color(1), ms=5)
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    lo = min(table["pooled HR lower"].min(), table["new-study HR lower"].min()) / 1.1
    hi = max(table["pooled HR upper"].max(), table["new-study HR upper"].max()) * 1.1
    ticks = [t for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20)
             if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(y, [f"{a}\n{b}" for a, b in zip(table["tau prior"], table["prior"],
                                                  strict=True)], fontsize=7)
    ax.set_xlabel(f"hazard ratio (median, central {interval_prob:.0%} interval)")
    ax.set_title("Pooled and predicted HR by heterogeneity prior", fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc="best")
    ax.grid(alpha=0.25, axis="x")
    if densities is not None:
        ax2 = axes[0][1]
        tau = densities["tau"].values
        for i, label in enumerate(densities["prior"].values):
            ax2.plot(tau, densities["tau_posterior"].sel(prior=label).values,
                     color=color(i), lw=2 if i == 0 else 1.2,
                     ls="-" if i < 6 else "--", label=str(label))
        ax2.set_xlabel("τ (between-study sd of log HR)")
        ax2.set_ylabel("posterior density")
        ax2.set_title("Posterior of τ by heterogeneity prior", fontsize=10)
        ax2.legend(fontsize=7, frameon=False)
        ax2.grid(alpha=0.25)
        ax2.set_xlim(0, tau[-1])
    fig.tight_layout()
    return fig


def tau_plot(exact: xr.Dataset | None, tau_draws: np.ndarray | None) -> Figure:
    """Prior vs posterior of τ (exact), with the MCMC draws' histogram when there are draws."""
    from bayes_ablation.report.plots import color, subplots

    fig, ax = subplots(figsize=(6.5, 3.8))
    if tau_draws is not None:
        ax.hist(tau_draws, bins=80, density=True, color=color(2), alpha=0.35,
                label="MCMC draws")
    if exact is not None:
        ax.plot(exact["tau"], exact["tau_posterior"], color=color(0), lw=2,
                label="posterior (exact)")
        ax.plot(exact["tau"], exact["tau_prior"], color="black", ls="--", lw=1.2,
                label=f"prior {exact.attrs.get('tau_prior', '')}")
        ax.set_xlim(0, float(exact["tau"].max()))
    elif tau_draws is not None:
        ax.set_xlim(0, float(np.quantile(tau_draws, 0.995)))
    ax.set_xlabel("τ (between-study sd of log HR)")
    ax.set_ylabel("density")
    ax.set_title("Heterogeneity: prior vs posterior of τ")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ sections


