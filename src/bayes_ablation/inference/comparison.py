"""Model comparison by PSIS-LOO (ArviZ), with Pareto-k diagnostics, of fits of the same data.

LOO compares predictive densities of the *same* pointwise units. Per-patient values
(``log_likelihood.y``, ℓ_i = d_i log h_i(t_i) − H_i(t_i), months) exist for every PFS family,
so a Weibull and a piecewise-exponential fit of the same patients are compared patient by
patient. Aggregated models also store per-cell values (``log_likelihood.events``); those are
used only when per-patient values are missing (very large trials) and every model has
identical cells — leaving out a cell is a different question from leaving out a patient, and
the output says which unit was used. Anything else (different patients, different cells) is
refused with a message saying why.

Pareto k: PSIS is reliable for k ≤ good_k = min(1 − 1/log10 S, 0.7) (S draws); above it the
elpd estimate of that point is unreliable, and models with many such points can be favoured
spuriously.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.errors import BayesAblationError

UNITS = {"y": "patient", "events": "cell (site x arm x interval x covariate pattern)"}


class ComparisonError(BayesAblationError):
    """The fits cannot be compared by LOO (different data or pointwise units)."""

    exit_code = 2


@dataclass
class Comparison:
    """ArviZ LOO comparison table (best model first) with Pareto-k counts per model."""

    table: pd.DataFrame
    unit: str
    var_name: str
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        cols = [c for c in ("rank", "elpd", "se", "p", "elpd_diff", "dse", "weight",
                            "pareto_k_max", "k_good", "k_bad", "k_very_bad", "n_points")
                if c in self.table.columns]
        lines = [f"LOO comparison (PSIS-LOO, ArviZ); pointwise unit: {self.unit} "
                 f"(log_likelihood.{self.var_name})",
                 self.table[cols].to_string(float_format=lambda v: f"{v:.2f}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all(a == b))


def _unit(fits: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Choose the pointwise variable all fits share on the same data; raise otherwise."""
    names = list(fits)
    missing = [n for n in names if "log_likelihood" not in fits[n].children]
    if missing:
        raise ComparisonError(f"no pointwise log-likelihood in {', '.join(missing)} "
                              "(fit with log_likelihood=True; bundles store it in the posterior file)")
    cdata = {n: fits[n].constant_data for n in names}
    first = names[0]
    for n in names[1:]:
        for var in ("time_months", "event"):
            if var in cdata[first] and var in cdata[n] and not _same(cdata[first][var],
                                                                     cdata[n][var]):
                raise ComparisonError(
                    f"{first} and {n} were fitted to different data ({var} differs): LOO "
                    "compares models of the same observations only")
    notes: list[str] = []
    has = {n: set(fits[n].log_likelihood.data_vars) for n in names}
    if all("y" in has[n] for n in names):
        ids = [np.asarray(fits[n].log_likelihood["patient"].values) for n in names]
        if all(_same(ids[0], i) for i in ids[1:]):
            return "y", notes
        raise ComparisonError("the fits have per-patient log-likelihoods of different patients")
    if all("events" in has[n] for n in names):
        cell_vars = ("cell_arm_idx", "cell_site_idx", "cell_interval_idx", "interval_start",
                     "cell_x", "cell_log_exposure", "cell_events")
        for n in names[1:]:
            for var in cell_vars:
                a, b = cdata[first].get(var), cdata[n].get(var)
                if (a is None) != (b is None) or (a is not None and not _same(a, b)):
                    raise ComparisonError(
                        f"{first} and {n} have no per-patient log-likelihood and their "
                        f"aggregated cells differ ({var}): cell-level LOO values are comparable "
                        "only for identical cells. Refit with per-patient log-likelihoods "
                        "(smaller draws × patients) to compare them.")
        notes.append("per-patient log-likelihoods are missing, so whole aggregated cells are "
                     "left out: this is leave-one-cell-out, not leave-one-patient-out")
        return "events", notes
    lacking = {n: sorted(has[n]) for n in names}
    raise ComparisonError(f"the fits share no pointwise log-likelihood unit: {lacking}. "
                          "A fit of an aggregated model without per-patient values cannot be "
                          "compared with a per-patient model.")


def compare_fits(fits: Mapping[str, Any], *, method: str = "stacking") -> Comparison:
    """PSIS-LOO comparison of fits (DataTrees with ``log_likelihood`` and ``constant_data``
    groups), keyed by model label."""
    import arviz as az

    if len(fits) < 2:
        raise ComparisonError("need at least two fits to compare")
    var_name, notes = _unit(fits)
    loos = {name: az.loo(tree, var_name=var_name, pointwise=True) for name, tree in fits.items()}
    table = pd.DataFrame(az.compare(loos, method=method, round_to="none"))
    rows = []
    for name, loo in loos.items():
        k = np.asarray(loo.pareto_k).ravel()
        good = float(loo.good_k)
        rows.append({"model": name, "pareto_k_max": float(np.max(k)),
                     "k_good": int(np.sum(k <= good)),
                     "k_bad": int(np.sum((k > good) & (k <= 1.0))),
                     "k_very_bad": int(np.sum(k > 1.0)), "good_k": good, "n_points": k.size})
        if np.any(k > good):
            notes.append(f"{name}: {int(np.sum(k > good))} of {k.size} points have Pareto k > "
                         f"{good:.2f}; their LOO estimates are unreliable")
    table = table.join(pd.DataFrame(rows).set_index("model"))
    table.index.name = "model"
    return Comparison(table=table, unit=UNITS.get(var_name, var_name), var_name=var_name,
                      notes=notes)


