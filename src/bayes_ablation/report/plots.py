"""Figures (matplotlib, Agg canvas). Each function takes data and returns a ``Figure``.

Figures are made with matplotlib's object-oriented API (:func:`new_figure`, :func:`subplots`),
not through ``pyplot``: no global figure registry to close figures in, and no ``pyplot``
import (~0.2 s of every report-writing command)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator

COLORS = ("#1f5aa6", "#c2452d", "#2e8b57", "#8a4fbf", "#d08c00", "#555555")


def new_figure(**figure_kw: Any) -> Figure:
    """A figure on an Agg canvas (``pyplot.figure`` without pyplot; same rcParams, same
    pixels)."""
    fig = Figure(**figure_kw)
    FigureCanvasAgg(fig)
    return fig


#: the keywords of ``pyplot.subplots`` that go to ``Figure.subplots`` (the rest: the figure's)
_SUBPLOTS_KEYWORDS = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios",
                      "subplot_kw", "gridspec_kw")


def subplots(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """``pyplot.subplots`` without pyplot: (figure, axes)."""
    grid = {k: kw.pop(k) for k in _SUBPLOTS_KEYWORDS if k in kw}
    fig = new_figure(**kw)
    return fig, fig.subplots(nrows, ncols, **grid)


def close_figure(fig: Figure) -> None:
    """Release ``fig``: only a figure that ``pyplot`` made is registered anywhere."""
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)


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


def with_risk_table(n_rows: int, width: float = 7.0, height: float = 4.5
                    ) -> tuple[Figure, Any, Any]:
    """A figure with a main axis and, under it, a strip for a numbers-at-risk table of
    ``n_rows`` rows sharing its time axis: (figure, main axis, table axis)."""
    table_h = 0.24 * n_rows + 0.45
    fig = new_figure(figsize=(width, height + table_h))
    gs = fig.add_gridspec(2, 1, height_ratios=[height - 1.0, table_h])
    ax = fig.add_subplot(gs[0])
    axr = fig.add_subplot(gs[1], sharex=ax)
    return fig, ax, axr


def risk_table(axr: Any, times: Sequence[float], counts: Mapping[str, Sequence[int]],
               label: str = "Number at risk") -> None:
    """Numbers at risk (one row per group, coloured as its curve) at ``times``, drawn on
    ``axr`` (an axis sharing the curve's time axis)."""
    n = len(counts)
    for i, row in enumerate(counts.values()):
        for t, v in zip(times, row, strict=True):
            axr.text(t, n - 1 - i, f"{v:d}", ha="center", va="center", fontsize=8.5,
                     color=color(i))
    axr.set_ylim(-0.6, n - 0.4)
    axr.set_yticks(range(n)[::-1], [str(g) for g in counts])
    for i, tick in enumerate(axr.get_yticklabels()):
        tick.set_color(color(i))
        tick.set_fontsize(8.5)
    axr.tick_params(axis="both", length=0, labelbottom=False)
    for spine in axr.spines.values():
        spine.set_visible(False)
    axr.set_title(label, loc="left", fontsize=9, fontweight="bold")


def km_with_posterior(observed: xr.Dataset, curves: xr.DataArray, interval_prob: float = 0.95,
                      title: str = "Kaplan–Meier and posterior survival (average site)",
                      at_risk: Mapping[str, Any] | None = None) -> Figure:
    """Observed KM per arm (steps) over the posterior median and band of S_arm(t), with the
    numbers at risk per arm under the time axis.

    ``observed``: a ``km_ppc`` Dataset (uses ``observed``); ``curves``: draws (chain, draw, arm,
    time) of model survival; ``at_risk``: ``{"times": [...], "counts": {arm: [...]}}``.
    """
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    arms = [str(a) for a in curves["arm"].values]
    if at_risk:
        fig, ax, axr = with_risk_table(len(at_risk["counts"]))
    else:
        fig, ax = subplots(figsize=(7, 4.5))
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
    ax.set_ylabel("progression-free survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    if at_risk:
        counts = {a: at_risk["counts"][a] for a in arms if a in at_risk["counts"]}
        risk_table(axr, at_risk["times"], counts, at_risk.get("label", "Number at risk"))
        ax.set_xticks(at_risk["times"])
        margins(fig, left=max(0.75, _label_inches(arms, 8.5) + 0.25), bottom=0.15, top=0.4,
                hspace=0.42)
    else:
        margins(fig, left=0.75, bottom=0.6, top=0.4)
    return fig


def km_observed(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                at_risk: Mapping[str, Any] | None = None,
                title: str = "Kaplan–Meier estimate by arm",
                ylabel: str = "progression-free survival probability") -> Figure:
    """Kaplan–Meier steps per arm ({arm: (times, survival)}) with the numbers at risk per
    arm under the time axis (``at_risk``: ``{"times": [...], "counts": {arm: [...]}}``)."""
    arms = list(curves)
    if at_risk:
        fig, ax, axr = with_risk_table(len(arms))
    else:
        fig, ax = subplots(figsize=(7, 4.5))
    for i, (arm, (t, s)) in enumerate(curves.items()):
        ax.step(t, s, where="post", color=color(i), lw=1.6, label=str(arm))
    ax.set_xlabel("months since randomisation")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8.5, frameon=False, loc="lower left")
    ax.grid(alpha=0.3)
    if at_risk:
        risk_table(axr, at_risk["times"], {a: at_risk["counts"][a] for a in arms},
                   at_risk.get("label", "Number at risk"))
        ax.set_xticks(at_risk["times"])
        t_end = max(at_risk["times"][-1], max(float(t[-1]) for t, _ in curves.values()))
        ax.set_xlim(-0.02 * t_end, t_end * 1.03)
        margins(fig, left=max(0.75, _label_inches(arms, 8.5) + 0.25), bottom=0.15, top=0.4,
                hspace=0.42)
    else:
        margins(fig, left=0.75, bottom=0.6, top=0.4)
    return fig


def ppc_km(ppc: xr.Dataset, title: str = "Posterior predictive check: Kaplan–Meier",
           ncols: int = 4) -> Figure:
    """Observed KM over the posterior predictive KM band, one panel per group."""
    groups = list(ppc["group"].values)
    n = len(groups)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows + 0.9), squeeze=False,
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


def _site_and_arm(group: str) -> tuple[str, str]:
    site, _, arm = str(group).partition(" | ")
    return site, arm


def ppc_km_sites(ppc: xr.Dataset, ncols: int = 4,
                 title: str = "Posterior predictive check of the Kaplan–Meier curve, by site"
                 ) -> Figure:
    """Small multiples, one panel per site (at most ``ncols`` a row): each arm's observed KM
    (solid) over its posterior predictive band, the panel titled with the site and the share
    of the observed curve inside each arm's band. Groups are named ``"site | arm"``."""
    groups = [str(g) for g in ppc["group"].values]
    sites = list(dict.fromkeys(_site_and_arm(g)[0] for g in groups))
    arms = list(dict.fromkeys(_site_and_arm(g)[1] for g in groups))
    n = len(sites)
    ncols = max(1, min(ncols, 4, n))
    nrows = -(-n // ncols)
    fig, axes = subplots(nrows, ncols, figsize=(2.6 * ncols + 0.9, 2.4 * nrows + 1.4),
                             squeeze=False, sharex=True, sharey=True)
    t = ppc["time"].values
    for k, site in enumerate(sites):
        ax = axes[k // ncols][k % ncols]
        inband = []
        for i, arm in enumerate(arms):
            g = f"{site} | {arm}" if arm else site
            if g not in groups:
                continue
            sel = ppc.sel(group=g)
            ax.fill_between(t, sel["lower"], sel["upper"], color=color(i), alpha=0.18, lw=0,
                            step="post")
            ax.step(t, sel["observed"], where="post", color=color(i), lw=1.4)
            inband.append(f"{float(sel['coverage']):.0%}")
        ax.set_title(f"Site {site}: in band {' / '.join(inband)}", fontsize=11)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10)
    axes[0][0].yaxis.set_major_locator(FixedLocator([0.0, 0.5, 1.0]))
    axes[0][0].xaxis.set_major_locator(MaxNLocator(4))
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    from matplotlib.patches import Patch

    handles = [Patch(color=color(i), alpha=0.35, label=f"{arm}: predictive band")
               for i, arm in enumerate(arms)]
    handles += [Line2D([], [], color=color(i), lw=1.4, label=f"{arm}: observed KM")
                for i, arm in enumerate(arms)]
    fig.legend(handles=handles, loc="lower center", ncol=min(2, len(handles)), fontsize=10,
               frameon=False)
    fig.supxlabel("time (months)", y=0.6 / fig.get_size_inches()[1] + 0.02, fontsize=11)
    fig.supylabel("progression-free survival", fontsize=11)
    fig.suptitle(title + ("\n(in band: share of the observed curve inside the predictive "
                          "band, " + " / ".join(arms) + ")" if arms[0] else ""), fontsize=12)
    margins(fig, left=0.8, bottom=1.25, top=0.8, wspace=0.08, hspace=0.4)
    return fig


def ppc_coverage(ppc: xr.Dataset, title: str = "Observed Kaplan–Meier inside the posterior "
                 "predictive band, by site") -> Figure:
    """Dot plot: per site (rows) and arm (colour), the share of the observed KM curve inside
    the predictive band, with P(replicated events ≥ observed) beside it."""
    groups = [str(g) for g in ppc["group"].values]
    sites = list(dict.fromkeys(_site_and_arm(g)[0] for g in groups))
    arms = list(dict.fromkeys(_site_and_arm(g)[1] for g in groups))
    fig, (ax, axp) = subplots(1, 2, figsize=(9, 0.32 * len(sites) + 1.6), sharey=True,
                                  gridspec_kw={"width_ratios": [3, 2], "wspace": 0.06})
    y = np.arange(len(sites))[::-1]
    offsets = np.linspace(-0.15, 0.15, len(arms)) if len(arms) > 1 else [0.0]
    for i, arm in enumerate(arms):
        names = [f"{s} | {arm}" if arm else s for s in sites]
        keep = [k for k, g in enumerate(names) if g in groups]
        cov = [100 * float(ppc["coverage"].sel(group=names[k])) for k in keep]
        pv = [float(ppc["events_p_value"].sel(group=names[k])) for k in keep]
        ax.plot(cov, y[keep] + offsets[i], "o", color=color(i), ms=6, label=arm or "observed")
        axp.plot(pv, y[keep] + offsets[i], "s", color=color(i), ms=5)
    ax.axvline(100 * float(ppc.attrs.get("interval_prob", 0.95)), color="grey", ls=":", lw=1)
    ax.set_yticks(y, [f"Site {s}" for s in sites], fontsize=9)
    low = min(50.0, 10 * np.floor(100 * float(ppc["coverage"].min()) / 10) - 5)
    ax.set_xlim(max(low, -2.0), 102)
    ax.set_xlabel("observed KM inside the band (% of the time grid)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8.5, frameon=False, loc="lower left")
    axp.axvspan(0, 0.025, color=color(1), alpha=0.12, lw=0)
    axp.axvspan(0.975, 1, color=color(1), alpha=0.12, lw=0)
    axp.set_xlim(0, 1)
    axp.set_xlabel("P(replicated events ≥ observed)")
    axp.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=11)
    margins(fig, left=_label_inches([f"Site {s}" for s in sites], 9) + 0.3, bottom=0.6,
            top=0.45)
    return fig


def prior_posterior(panels: Sequence[Mapping[str, Any]], interval_prob: float = 0.95,
                    title: str = "Prior and posterior") -> Figure:
    """One panel per parameter: the prior (grey line, from prior draws) and the posterior
    (filled: a histogram of draws, or an exact density on a grid). ``scale="hr"`` panels
    hold log hazard ratios and are labelled as hazard ratios on a log axis.

    Each panel: ``title``, ``prior_label``, ``scale`` ("hr" or "sd"), ``prior`` (draws),
    and ``posterior`` (draws) or ``grid`` + ``density`` (exact posterior of the same
    quantity).
    """
    n = len(panels)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = subplots(nrows, ncols, figsize=(4.3 * ncols, 3.1 * nrows + 0.5),
                             squeeze=False)
    for k, p in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        post = None if p.get("posterior") is None else np.asarray(p["posterior"], float)
        prior = np.asarray(p["prior"], float)
        if post is not None:
            lo, hi = np.quantile(post, [0.0005, 0.9995])
        else:
            cdf = np.cumsum(p["density"]) / np.sum(p["density"])
            lo, hi = np.interp([0.0005, 0.9995], cdf, p["grid"])
        plo, phi = np.quantile(prior, [0.01, 0.99])
        lo, hi = min(lo, plo), max(hi, phi)
        if p.get("scale") == "sd":
            lo = 0.0
        bins = np.linspace(lo, hi, 61)
        if post is not None:
            ax.hist(post, bins=bins, density=True, color=color(0), alpha=0.45,
                    label="posterior")
        else:
            ax.fill_between(p["grid"], p["density"], color=color(0), alpha=0.45, lw=0,
                            label="posterior (exact)")
        # the prior's density on the same bins (as a share of all prior draws)
        counts, edges = np.histogram(prior, bins=bins)
        dens = counts / (prior.size * np.diff(edges))
        ax.step(edges[:-1], dens, where="post", color="black", lw=1.2, label="prior")
        if p.get("scale") == "hr":
            ax.axvline(0.0, color="grey", ls=":", lw=1)
            ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)
                     if lo <= np.log(t) <= hi]
            ax.set_xticks(np.log(ticks), [f"{t:g}" for t in ticks])
            ax.set_xlabel("hazard ratio (log scale)")
        else:
            ax.set_xlabel("standard deviation")
        ax.set_xlim(lo, hi)
        ax.set_yticks([])
        ax.set_title(p["title"], fontsize=10)
        ax.text(0.98, 0.96, f"prior {p.get('prior_label', '')}", transform=ax.transAxes,
                ha="right", va="top", fontsize=7.5, color="#444")
        ax.legend(fontsize=8, frameon=False, loc="center right")
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(title, fontsize=11)
    margins(fig, left=0.3, bottom=0.6, top=0.55, wspace=0.12, hspace=0.55)
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
    fig, ax = subplots(figsize=(6, 0.35 * len(labels) + 1.2))
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
    fig, ax = subplots(figsize=(6.5, 4))
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


def traces(post: xr.Dataset, names: Sequence[str],
           title: str = "Trace plots: draws in sampling order, one colour per chain"
           ) -> Figure:
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
    fig, axes = subplots(len(series), 1, figsize=(7, 1.5 * len(series) + 0.5),
                             squeeze=False, sharex=True)
    for ax, (label, da) in zip(axes[:, 0], series, strict=True):
        for c in range(da.sizes["chain"]):
            ax.plot(da.isel(chain=c).values, lw=0.4, alpha=0.8, color=color(c),
                    rasterized=True)
        ax.set_ylabel(label, fontsize=8)
    axes[-1, 0].set_xlabel("draw")
    fig.suptitle(title, fontsize=10)
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
    fig, ax = subplots(figsize=(7, 4.5))
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
    fig, ax = subplots(figsize=(7, 4.2))
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
    "km_observed": "bayes_ablation.report.plots:km_observed",
    "ppc_km_sites": "bayes_ablation.report.plots:ppc_km_sites",
    "ppc_coverage": "bayes_ablation.report.plots:ppc_coverage",
    "prior_posterior": "bayes_ablation.report.plots:prior_posterior",
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
    close_figure(fig)
