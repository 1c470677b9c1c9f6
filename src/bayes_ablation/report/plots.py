"""Figures (matplotlib, Agg backend). Each function takes data and returns a ``Figure``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator

COLORS = ("#1f5aa6", "#c2452d", "#2e8b57", "#8a4fbf", "#d08c00", "#555555")


def color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def margins(fig: Figure, left: float, bottom: float, right: float = 0.2, top: float = 0.4,
            wspace: float | None = None, hspace: float | None = None) -> None:
    """Fixed margins in inches (instead of ``tight_layout``, which renders every text once
    more to measure it: ~40% of the report's rendering time)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, bottom=bottom / h, right=1 - right / w, top=1 - top / h,
                        wspace=wspace, hspace=hspace)


def _label_inches(labels: Sequence[str], fontsize: float = 10.0) -> float:
    """Rough width of the longest tick label (DejaVu Sans: ~0.6 em per character)."""
    return max((len(s) for s in labels), default=1) * 0.6 * fontsize / 72.0


def km_with_posterior(observed: xr.Dataset, curves: xr.DataArray, interval_prob: float = 0.95,
                      title: str = "Kaplan–Meier and posterior survival (average site)"
                      ) -> Figure:
    """Observed KM per arm (steps) over the posterior median and band of S_arm(t).

    ``observed``: a ``km_ppc`` Dataset (uses ``observed``); ``curves``: draws (chain, draw, arm,
    time) of model survival.
    """
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    fig, ax = plt.subplots(figsize=(7, 4.5))
    t = curves["time"].values
    for i, arm in enumerate(curves["arm"].values):
        c = curves.sel(arm=arm).stack(s=("chain", "draw")).values
        q = np.quantile(c, [lo, 0.5, hi], axis=-1)
        ax.fill_between(t, q[0], q[2], color=color(i), alpha=0.2, lw=0)
        ax.plot(t, q[1], color=color(i), lw=1.5, label=f"{arm}: posterior median")
        if arm in observed["group"].values:
            ax.step(observed["time"].values, observed["observed"].sel(group=arm).values,
                    where="post", color=color(i), lw=1.2, ls="--", label=f"{arm}: Kaplan–Meier")
    ax.set_xlabel("time (months)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    margins(fig, left=0.75, bottom=0.6, top=0.4)
    return fig


def ppc_km(ppc: xr.Dataset, title: str = "Posterior predictive check: Kaplan–Meier",
           ncols: int = 4) -> Figure:
    """Observed KM over the posterior predictive KM band, one panel per group."""
    groups = list(ppc["group"].values)
    n = len(groups)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows + 0.9), squeeze=False,
                             sharex=True, sharey=True)
    t = ppc["time"].values
    for k, g in enumerate(groups):
        ax = axes[k // ncols][k % ncols]
        sel = ppc.sel(group=g)
        ax.fill_between(t, sel["lower"], sel["upper"], color=color(0), alpha=0.25, lw=0,
                        step="post", label="predictive band")
        ax.step(t, sel["median"], where="post", color=color(0), lw=1, label="predictive median")
        ax.step(t, sel["observed"], where="post", color="black", lw=1.3, label="observed KM")
        ax.set_title(f"{g}  (in band {float(sel['coverage']):.0%})", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    # few fixed ticks on the shared axes: each tick is several artists in every panel
    axes[0][0].yaxis.set_major_locator(FixedLocator([0.0, 0.5, 1.0]))
    axes[0][0].xaxis.set_major_locator(MaxNLocator(4))
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.supxlabel("time (months)")
    fig.supylabel("survival")
    fig.suptitle(title)
    margins(fig, left=0.8, bottom=0.65, top=0.75, wspace=0.08, hspace=0.3)
    return fig


def forest(draws: xr.DataArray, dim: str, title: str, xlabel: str,
           interval_prob: float = 0.95, reference: float = 0.0) -> Figure:
    """Posterior mean and central interval of each element along ``dim``."""
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    stacked = draws.stack(s=("chain", "draw")).transpose(dim, "s")
    labels = [str(v) for v in draws[dim].values]
    values = stacked.values
    q = np.quantile(values, [lo, 0.5, hi], axis=1)
    mean = values.mean(axis=1)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(labels) + 1.2))
    y = np.arange(len(labels))[::-1]
    ax.hlines(y, q[0], q[2], color=color(0), lw=2)
    ax.plot(mean, y, "o", color=color(0), ms=5)
    ax.axvline(reference, color="grey", ls=":", lw=1)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    margins(fig, left=_label_inches(labels) + 0.3, bottom=0.6, top=0.4)
    return fig


def hr_posterior(hr: xr.DataArray, thresholds: Sequence[float],
                 probabilities: Mapping[str, float]) -> Figure:
    """Posterior density (histogram) of each treatment's HR with decision thresholds marked."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, treatment in enumerate(hr["treatment"].values):
        v = hr.sel(treatment=treatment).values.ravel()
        ax.hist(v, bins=60, density=True, color=color(i + 1), alpha=0.5, label=str(treatment))
    for c in thresholds:
        ax.axvline(c, color="black", ls="--", lw=1)
        text = ", ".join(f"{p:.3f}" for k, p in probabilities.items() if k.startswith(f"P(HR<{c:g})"))
        ax.annotate(f"P(HR<{c:g}) = {text}", (c, ax.get_ylim()[1] * 0.95), rotation=90,
                    fontsize=8, ha="right", va="top")
    ax.set_xlabel("hazard ratio (treatment vs reference)")
    ax.set_ylabel("posterior density")
    ax.set_title("Posterior of the hazard ratio")
    ax.legend(frameon=False, fontsize=8)
    margins(fig, left=0.75, bottom=0.6, top=0.4)
    return fig


def traces(post: xr.Dataset, names: Sequence[str]) -> Figure:
    """Trace plots (draw order, one line per chain) of scalar parameters."""
    series = []
    for name in names:
        if name not in post:
            continue
        da = post[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if extra:
            for v in da[extra[0]].values:
                series.append((f"{name}[{v}]", da.sel({extra[0]: v})))
        else:
            series.append((name, da))
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 1.5 * len(series) + 0.5),
                             squeeze=False, sharex=True)
    for ax, (label, da) in zip(axes[:, 0], series, strict=True):
        for c in range(da.sizes["chain"]):
            ax.plot(da.isel(chain=c).values, lw=0.4, alpha=0.8, color=color(c))
        ax.set_ylabel(label, fontsize=8)
    axes[-1, 0].set_xlabel("draw")
    fig.suptitle("Traces")
    margins(fig, left=0.95, bottom=0.55, top=0.45, hspace=0.12)
    return fig


def _interval_steps(start: np.ndarray, end_time: float, values: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Step-plot coordinates of per-interval values over [0, end_time] (last interval
    drawn up to ``end_time``)."""
    edges = np.concatenate([start, [max(end_time, start[-1] * 1.1 if start[-1] > 0 else 1.0)]])
    return edges, np.concatenate([values, values[-1:]])


def interval_hazards(hazard: xr.DataArray, interval_start: np.ndarray, end_time: float,
                     interval_prob: float = 0.95) -> Figure:
    """Posterior hazard per interval by arm (median and central band), a step function.

    ``hazard``: draws (chain, draw, arm, interval), events per person-month.
    """
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, arm in enumerate(hazard["arm"].values):
        v = hazard.sel(arm=arm).stack(s=("chain", "draw")).transpose("interval", "s").values
        q = np.quantile(v, [lo, 0.5, hi], axis=1)
        edges, mid = _interval_steps(interval_start, end_time, q[1])
        _, low = _interval_steps(interval_start, end_time, q[0])
        _, up = _interval_steps(interval_start, end_time, q[2])
        ax.fill_between(edges, low, up, step="post", color=color(i), alpha=0.2, lw=0)
        ax.step(edges, mid, where="post", color=color(i), lw=1.6, label=f"{arm}")
    for c in interval_start[1:]:
        ax.axvline(c, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("time (months); dotted: interval cut points")
    ax.set_ylabel("hazard (events per person-month)")
    ax.set_title(f"Posterior hazard per interval by arm (average site; median, "
                 f"{interval_prob:.0%} band)")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def interval_hr(hr_interval: xr.DataArray, hr: xr.DataArray, interval_start: np.ndarray,
                end_time: float, interval_prob: float = 0.95) -> Figure:
    """Per-interval hazard ratio (time-varying effect) with the overall HR, log scale."""
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, treatment in enumerate(hr_interval["treatment"].values):
        v = hr_interval.sel(treatment=treatment).stack(s=("chain", "draw")).transpose(
            "interval", "s").values
        q = np.quantile(v, [lo, 0.5, hi], axis=1)
        edges, mid = _interval_steps(interval_start, end_time, q[1])
        _, low = _interval_steps(interval_start, end_time, q[0])
        _, up = _interval_steps(interval_start, end_time, q[2])
        ax.fill_between(edges, low, up, step="post", color=color(i + 1), alpha=0.2, lw=0)
        ax.step(edges, mid, where="post", color=color(i + 1), lw=1.6,
                label=f"{treatment}: per-interval HR")
        overall = float(hr.sel(treatment=treatment).median())
        ax.axhline(overall, color=color(i + 1), ls="--", lw=1,
                   label=f"{treatment}: overall HR {overall:.2f}")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("time (months)")
    ax.set_ylabel("hazard ratio vs reference (log scale)")
    ax.set_title("Time-varying treatment effect (HR < 1 favours treatment)")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


#: figure kind (as named by a report's FigureSpec) -> "module:function" drawing it from data
PLOTTERS: dict[str, str] = {
    "km_with_posterior": "bayes_ablation.report.plots:km_with_posterior",
    "ppc_km": "bayes_ablation.report.plots:ppc_km",
    "forest": "bayes_ablation.report.plots:forest",
    "hr_posterior": "bayes_ablation.report.plots:hr_posterior",
    "traces": "bayes_ablation.report.plots:traces",
    "interval_hazards": "bayes_ablation.report.plots:interval_hazards",
    "interval_hr": "bayes_ablation.report.plots:interval_hr",
    "lr_cif": "bayes_ablation.report.lr:cif_figure",
    "lr_counts": "bayes_ablation.report.lr:counts_figure",
    "lr_incidence_check": "bayes_ablation.report.lr:incidence_check_figure",
    "subgroup_forest": "bayes_ablation.report.subgroups:subgroup_forest",
    "meta_forest": "bayes_ablation.report.meta:forest_plot",
    "meta_sensitivity": "bayes_ablation.report.meta:sensitivity_plot",
    "meta_tau": "bayes_ablation.report.meta:tau_plot",
    "monitor_trajectory": "bayes_ablation.report.monitoring:trajectory_figure",
    "oc": "bayes_ablation.report.monitoring:oc_figure",
    "sbc_rank_histograms": "bayes_ablation.report.validation:rank_histograms",
    "sbc_ecdf_differences": "bayes_ablation.report.validation:ecdf_differences",
    "zscore_contraction": "bayes_ablation.report.validation:zscore_contraction",
    "coverage": "bayes_ablation.report.validation:coverage_plot",
    "propensity_overlap": "bayes_ablation.report.confounding:propensity_overlap",
    "love_plot": "bayes_ablation.report.confounding:love_plot",
    "estimate_comparison": "bayes_ablation.report.confounding:estimate_comparison",
    "bias_contour": "bayes_ablation.report.confounding:bias_contour",
    "borrowing_side_by_side": "bayes_ablation.report.borrowing:side_by_side",
}


def plotter(kind: str) -> Callable[..., Figure]:
    """The function drawing figures of ``kind`` (see :data:`PLOTTERS`)."""
    if kind not in PLOTTERS:
        raise KeyError(f"no plotter for figure kind {kind!r} (known: {', '.join(PLOTTERS)})")
    module, _, name = PLOTTERS[kind].partition(":")
    return getattr(import_module(module), name)


def save(fig: Figure, path: str) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
