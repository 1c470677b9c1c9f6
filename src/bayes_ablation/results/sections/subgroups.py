"""Report section "Subgroups": effect modification by the pre-specified subgroups (PFS and LR)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import FigureSpec, Section, Table, Text


def _interval(row: dict, name: str) -> str:
    return f"{row[name]:.2f} ({row[name + '_lower']:.2f}–{row[name + '_upper']:.2f})"


def subgroups_section(result: AnalysisResult) -> Section | None:
    """The subgroup HRs (forest plot with the overall HR), each subgroup's HR ratio between
    its levels and P(effect differs); None when the spec has no subgroups."""
    est = result.estimands
    if est is None or "delta_subgroup" not in est:
        return None
    from bayes_ablation.endpoints.subgroups import DIFFERENCE_HR_RATIO, subgroup_table

    spec = result.spec
    prob = spec.estimands.interval_prob
    entry = result.summary_entries.get("subgroups", {})
    records = entry.get("by_subgroup") or subgroup_table(est, None, prob).to_dict("records")
    unit = "lesions" if spec.endpoint == "local_recurrence" else "patients"
    level = f"{100 * prob:g}% CrI"
    rows = []
    for r in records:
        item = {"subgroup": r["subgroup"],
                "comparison": f"{r['treatment']} vs {spec.reference_arm}"}
        if "n_level_1" in r:
            item[f"{unit} (1 / 0)"] = f"{r['n_level_1']} / {r['n_level_0']}"
        if "events_level_1" in r:
            item["events (1 / 0)"] = f"{r['events_level_1']} / {r['events_level_0']}"
        item[f"HR in level 1 ({level})"] = _interval(r, "hr_level_1")
        item[f"HR in level 0 ({level})"] = _interval(r, "hr_level_0")
        item[f"HR ratio 1 vs 0 ({level})"] = _interval(r, "hr_ratio")
        item[f"P(ratio > {DIFFERENCE_HR_RATIO:g} or < 1/{DIFFERENCE_HR_RATIO:g})"] = \
            r[f"p_differs_by_{DIFFERENCE_HR_RATIO:g}x"]
        item["P(ratio < 1)"] = r["p_delta_below_0"]
        rows.append(item)
    tau = est["sigma_subgroup"].values.ravel()
    lo, hi = np.quantile(tau, [(1 - prob) / 2, 1 - (1 - prob) / 2])
    what = "local-recurrence HR" if spec.endpoint == "local_recurrence" else "HR"
    names = ", ".join(f"<code>{html.escape(g)}</code>" for g in spec.subgroups)
    text = (
        f"<p>Pre-specified subgroups: {names} (1 = in the subgroup). Each subgroup variable has "
        "its own main (prognostic) effect on the log hazard and an interaction δ with "
        f"treatment; the interactions share one sd τ<sub>sub</sub> (prior "
        f"{html.escape(spec.priors['sigma_subgroup'].describe())}), so they are shrunk "
        "towards no effect modification together instead of being estimated one by one "
        f"without penalty. The {what} in a level is the effect there with the other subgroup "
        "variables at their mean; the overall HR is the effect at the analysed "
        f"{unit}' average mix. δ = log HR(level 1) − log HR(level 0): "
        f"“P(ratio &gt; {DIFFERENCE_HR_RATIO:g} or &lt; 1/{DIFFERENCE_HR_RATIO:g})” = "
        f"P(|δ| &gt; log {DIFFERENCE_HR_RATIO:g}) is the probability that the effect differs "
        "between the levels by more than 25%; “P(ratio &lt; 1)” = P(δ &lt; 0) that the "
        "treatment does better in level 1. τ<sub>sub</sub>: posterior median "
        f"{np.median(tau):.2f} ({level} {lo:.2f}–{hi:.2f}).</p>")
    p_differs = {f"{r['treatment']}, {r['subgroup']}": r[f"p_differs_by_{DIFFERENCE_HR_RATIO:g}x"]
                 for r in records}
    figure = FigureSpec("subgroup_forest", "subgroup_forest", {
        "hr_subgroup": est["hr_subgroup"], "hr": est["hr"], "interval_prob": prob,
        "p_differs": p_differs,
        "title": f"{what} by subgroup (shrunk together), overall {what} on top"})
    return Section("Subgroups", (Text(text), Table(pd.DataFrame(rows), digits=3), figure))
