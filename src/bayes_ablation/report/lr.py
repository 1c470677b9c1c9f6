"""Report pieces of the local recurrence (LR) analysis: figures, sections, summary entries.

:func:`lr_report_extras` returns the ``Result.extras`` the generic report and bundle use
(``figures``, ``sections``, ``summary``) plus ``headline_labels`` for the CLI.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.models.piecewise import DEFAULT_CUTS_MONTHS
from bayes_ablation.report.plots import _color, forest, plt, traces

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayes_ablation.analysis import Result
    from bayes_ablation.data.lesions import LesionTable

_CHECK_TITLES = {"lr_count_arm": "by arm", "lr_count_site": "by site",
                 "lr_count_size": "by lesion size"}


def cif_figure(result: Result, population: str = "average_site") -> Figure:
    """CIF of LR by arm over time (posterior median and band), reference lesion and
    standardised lesion mix, with death-free survival."""
    from bayes_ablation import estimands_lr as elr

    post = result.idata.posterior.to_dataset()
    cdata = result.idata.constant_data
    spec = result.spec
    t_max = max(spec.estimands.times_months)
    grid = np.linspace(0.0, t_max, int(t_max) + 1)[1:]
    x = np.asarray(cdata["x"].values) if "x" in cdata else None
    x_ref = np.asarray(cdata["x_reference"].values) if "x_reference" in cdata else None
    panels = {"reference lesion": elr.reference_offsets(post, x_ref),
              "observed lesion mix (standardised)": elr.lesion_mix_offsets(post, x)}
    prob = spec.estimands.interval_prob
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (title, offsets) in zip(axes[:2], panels.items(), strict=True):
        cif = elr.lr_cif(post, spec, grid, offsets, population)
        _bands(ax, cif, grid, lo, hi)
        ax.set_title(f"CIF of LR: {title}", fontsize=10)
        ax.set_ylabel("cumulative incidence of LR (death competing)")
    surv = elr.death_survival(post, grid, spec)
    _bands(axes[2], surv, grid, lo, hi)
    axes[2].set_title("Death-free survival", fontsize=10)
    axes[2].set_ylim(0, 1.02)
    for ax in axes:
        ax.set_xlabel("months since ablation")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f"Posterior medians and {prob:.0%} bands ({population.replace('_', ' ')})")
    fig.tight_layout()
    return fig


def _bands(ax: Any, curves: xr.DataArray, grid: np.ndarray, lo: float, hi: float) -> None:
    t0 = np.concatenate([[0.0], grid])
    start = 1.0 if curves.name == "death_free_survival" else 0.0
    for i, arm in enumerate(curves["arm"].values):
        c = curves.sel(arm=arm).stack(s=("chain", "draw")).transpose("time", "s").values
        q = np.quantile(c, [lo, 0.5, hi], axis=-1)
        q = np.concatenate([np.full((3, 1), start), q], axis=1)
        ax.fill_between(t0, q[0], q[2], color=_color(i), alpha=0.2, lw=0)
        ax.plot(t0, q[1], color=_color(i), lw=1.6, label=str(arm))


def counts_figure(checks: dict[str, xr.Dataset]) -> Figure:
    """Observed number of lesions with LR (black) against the posterior predictive band."""
    names = [n for n in _CHECK_TITLES if n in checks]
    widths = [max(2, checks[n].sizes["group"]) for n in names]
    fig, axes = plt.subplots(1, len(names), figsize=(3 + 0.55 * sum(widths), 3.8),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ds = checks[name]
        x = np.arange(ds.sizes["group"])
        ax.vlines(x, ds["lower"], ds["upper"], color=_color(0), lw=6, alpha=0.35,
                  label="predictive band")
        ax.plot(x, ds["median"], "_", color=_color(0), ms=14, label="predictive median")
        ax.plot(x, ds["observed"], "o", color="black", ms=5, label="observed")
        ax.set_xticks(x, [str(g) for g in ds["group"].values], rotation=30, ha="right",
                      fontsize=8)
        ax.set_title(_CHECK_TITLES[name], fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("lesions with LR observed")
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle("Posterior predictive check: lesions with an observed local recurrence")
    fig.tight_layout()
    return fig


def incidence_check_figure(ds: xr.Dataset) -> Figure:
    """Turnbull NPMLE of the data (steps) against the band of the NPMLEs of replicated data."""
    groups = list(ds["group"].values)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False,
                             sharey=True)
    t = ds["time"].values
    for i, (ax, g) in enumerate(zip(axes[0], groups, strict=True)):
        sel = ds.sel(group=g)
        ax.fill_between(t, sel["lower"], sel["upper"], color=_color(i), alpha=0.25, lw=0,
                        label=f"replicated data ({ds.attrs.get('replicates', '')} sets)")
        ax.plot(t, sel["median"], color=_color(i), lw=1.2, label="replicates' median")
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


def _check_table(checks: dict[str, xr.Dataset]) -> pd.DataFrame:
    rows = []
    for name in _CHECK_TITLES:
        if name not in checks:
            continue
        ds = checks[name]
        for g in ds["group"].values:
            sel = ds.sel(group=g)
            rows.append({"check": _CHECK_TITLES[name], "group": str(g),
                         "lesions": int(sel["lesions"]), "observed LR": int(sel["observed"]),
                         "predictive median": float(sel["median"]),
                         "predictive band": f"{float(sel['lower']):.0f}–{float(sel['upper']):.0f}",
                         "P(rep ≥ obs)": float(sel["p_rep_ge_obs"])})
    return pd.DataFrame(rows)


_EXPLAIN = """
<p><b>Endpoint.</b> Local recurrence (LR) of each ablated lesion, seen only at scans: LR
happened between the last negative and the first positive scan (interval-censored); a lesion
without a positive scan is right-censored at its last negative scan. Death is a competing
event: a patient who dies can no longer recur.</p>
<p><b>Model.</b> Cause-specific {baseline} hazard of LR per lesion with the arm, the lesion
covariates ({covs}), a patient frailty (shared by a patient's lesions) and site intercepts, both
non-centred; a cause-specific Weibull hazard of death per patient with an arm effect. Working
assumption: given the covariates the death hazard does not depend on the lesion's LR (death is
modelled from the whole follow-up).</p>
<p><b>Estimands.</b> <code>hr</code>: LR hazard ratio treatment vs reference, conditional on
patient frailty and site (HR &lt; 1 favours the treatment arm). <code>cif_lr</code>: cumulative
incidence of LR per lesion accounting for competing death,
CIF(t) = ∫<sub>0</sub><sup>t</sup> h<sub>LR</sub>(s) S<sub>LR</sub>(s) S<sub>D</sub>(s) ds —
not 1 − Kaplan–Meier. <code>cif_lr_difference</code> = treatment − reference (&lt; 0 favours the
treatment arm). Lesion targets: <i>reference</i> = the pre-specified reference lesion
({ref}); <i>standardised</i> = averaged over the covariates of all analysed lesions (both arms
pooled). Populations: <i>typical_patient</i> = frailty 0 at an average site (conditional);
<i>average_site</i> = averaged over patient frailty at an average site (population-averaged);
<i>new_site</i> = averaged over patient frailty and a new site. <code>death_free_survival</code>:
S<sub>D</sub>(t) of the competing event.</p>
"""


def lr_report_extras(result: Result, lesions: LesionTable,
                     checks: dict[str, xr.Dataset]) -> dict[str, Any]:
    """``Result.extras`` for an LR fit: figures, HTML sections, summary entries, headlines."""
    from bayes_ablation.report.html import _table

    spec = result.spec
    post = result.idata.posterior.to_dataset()
    ref = spec.model_options.get("reference_lesion", {"size_cm": 2.0, "margin_mm": 10.0})
    # figures are made only when a report is rendered (callables of the result)
    figures: dict[str, Any] = {"cif_lr": cif_figure}
    if "beta_covariates" in post:
        figures["lesion_covariate_effects"] = lambda r: forest(
            r.idata.posterior["beta_covariates"], "covariate", "Lesion covariate effects on "
            "the log LR hazard", "log hazard ratio", r.spec.estimands.interval_prob)
    extra_traces = [n for n in ("log_hazard_baseline", "sigma_patient", "death_log_hr",
                                "death_log_cumhaz_ref", "death_weibull_shape") if n in post]
    if extra_traces:
        figures["traces_frailty_death"] = lambda r: traces(r.idata.posterior.to_dataset(),
                                                           extra_traces)
    if any(n in checks for n in _CHECK_TITLES):
        figures["ppc_lr_counts"] = lambda r: counts_figure(checks)
    if "lr_cumulative_incidence" in checks:
        figures["lr_cumulative_incidence_check"] = lambda r: incidence_check_figure(
            checks["lr_cumulative_incidence"])

    baseline = ("piecewise-exponential (cuts " + ", ".join(
        f"{c:g}" for c in spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS)) + " months)"
                if spec.model == "lr_pwe" else "Weibull")
    explain = _EXPLAIN.format(baseline=baseline,
                              covs=html.escape(", ".join(spec.covariates) or "none"),
                              ref=html.escape(", ".join(f"{k} = {v}" for k, v in ref.items())))
    sections = [("Local recurrence: model and estimands", explain)]
    table = _check_table(checks)
    if len(table):
        body = ("<p class='muted'>Each replicated data set redraws every lesion's LR time from "
                "one posterior draw (its own patient frailty, site and covariates) and observes "
                "it through the patient's scans (the scans the data reveal, with the protocol's "
                "visits filling the gaps) up to the patient's last scan. Extreme P(rep ≥ obs) "
                "(&lt; 0.025 or &gt; 0.975) flags misfit.</p>" + _table(table))
        if "lr_cumulative_incidence" in checks:
            inside = checks["lr_cumulative_incidence"]["inside"]
            body += ("<p>Turnbull NPMLE of the data (death and end of scans as censoring) inside "
                     "the band of the same estimator on the replicated data: " + ", ".join(
                         f"{g}: {float(v):.0%}" for g, v in zip(
                             inside["group"].values, inside.values, strict=True)) + ".</p>")
        sections.append(("Posterior predictive checks: local recurrence", body))
    if lesions.warnings:
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in lesions.warnings)
        sections.append(("Data warnings", f"<ul>{items}</ul>"))

    summary = {
        "posterior_predictive_lr": {
            name: {str(g): {v: float(ds[v].sel(group=g)) for v in ds.data_vars
                            if ds[v].dims == ("group",)} for g in ds["group"].values}
            for name, ds in checks.items()},
        "data_warnings": [str(w) for w in lesions.warnings],
        "reference_lesion": dict(ref),
        "estimand_notes": {
            "hr": "LR hazard ratio conditional on patient frailty and site",
            "cif_lr": "cumulative incidence of LR per lesion with death competing",
            "populations": "typical_patient: v=u=0; average_site: frailty integrated, u=0; "
                           "new_site: frailty and site integrated",
        },
    }
    est = result.estimand_table
    headline = est[(est["estimand"] == "hr") | (
        (est["estimand"] == "cif_lr_difference") & (est.get("lesion_target") == "standardised")
        & (est.get("population") == "average_site"))]["label"].tolist()
    note = (f"LR hazard ratio &lt; 1 and CIF difference &lt; 0 favour the treatment arm over "
            f"the reference arm ({html.escape(str(spec.reference_arm))}); the HR is "
            "conditional on patient frailty and site. Lesion targets and populations are "
            "explained under “Local recurrence: model and estimands” below.")
    return {"figures": figures, "sections": sections, "summary": summary,
            "headline_labels": headline, "estimands_note_html": note}
