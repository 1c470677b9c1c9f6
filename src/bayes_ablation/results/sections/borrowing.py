"""Report section of a ``[borrowing]`` analysis: prior, external, internal and posterior side by
side (table and figure), the amount borrowed and the prior-data conflict measures."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import FigureSpec, Section, section

_LABELS = {"log_cumhaz_ref": "log cumulative hazard of the reference arm at t_ref",
           "log_hr": "log hazard ratio"}


def borrowing_section(result: AnalysisResult) -> Section | None:
    details: dict[str, Any] | None = result.details.get("borrowing")
    if not details:
        return None
    s = details["summary"]
    amount = s["amount_borrowed"]
    conflict = s["conflict"]
    rows = [{"measure": k, "value": v} for k, v in amount.items()
            if isinstance(v, int | float)]
    rows += [{"measure": k, "value": v} for k, v in conflict.items()
             if isinstance(v, int | float)]
    for name in ("commensurate_precision", "external_offset"):
        if name in conflict:
            c = conflict[name]
            rows.append({"measure": f"{name} (posterior mean [95%])",
                         "value": f"{c['mean']:.3g} [{c['q2.5']:.3g}, {c['q97.5']:.3g}]"})
    target = _LABELS.get(s["target"], s["target"])
    note = (f"Method <b>{html.escape(s['method'])}</b>; target: {html.escape(target)} "
            f"(t_ref = {s['time_ref_months']:g} months). <i>external</i> and <i>internal</i> "
            "are normal approximations of each data source's Weibull likelihood (no site "
            "effects); effective external events: events' worth of external information in "
            "the posterior; Box's p: how surprising the internal estimate is under the "
            "borrowed prior (small: prior-data conflict).")
    figure = FigureSpec("borrowing_side_by_side", "borrowing_side_by_side",
                        dict(details["densities"]))
    return section("Borrowing", note, details["side_by_side"], pd.DataFrame(rows), figure)
