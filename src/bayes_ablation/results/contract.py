"""The result contract: what one analysis produced, as a typed, frozen object.

The report (:mod:`bayes_ablation.results.sections`, :mod:`bayes_ablation.report`) and the
bundle writer (:mod:`bayes_ablation.results.bundle`) read an :class:`AnalysisResult` and
nothing else: they never see the model, the sampler or the composer. An endpoint puts what is
its own into the typed slots (``checks``, ``tables``, ``groups``, ``summary_entries``,
``details``) and its report sections (registered in :mod:`bayes_ablation.results.sections`)
turn them into tables and figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.inference.convergence import ConvergenceReport
from bayes_ablation.spec.plan import AnalysisSpec

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class AnalysisResult:
    """Everything one analysis produced.

    ``idata`` and ``diagnostics`` are None when the posterior was computed without sampling
    (exact quadrature of a meta-analysis); ``estimands`` then holds posterior densities on
    grids. Times are in months.

    * ``idata``: the fit's DataTree (posterior, sample_stats, observed/constant data,
      log_likelihood); its posterior's attrs carry the spec hash and the provenance.
    * ``estimands``: posterior draws of every estimand (dims chain, draw, …).
    * ``estimand_table``: one row per scalar estimand (label, mean, sd, median, quantiles).
    * ``probabilities``: pre-specified posterior probabilities, e.g. ``P(HR<1) [arm]``.
    * ``checks``: posterior predictive checks by name (xarray Datasets).
    * ``tables``: further tables of the bundle (written as ``<name>.csv``).
    * ``groups``: further groups of the saved posterior file (e.g. exact posterior grids).
    * ``summary_entries``: the endpoint's further ``summary.json`` entries.
    * ``details``: endpoint facts its report sections use (not saved as such).
    * ``headline``: estimand labels a short summary (the CLI's) shows.
    """

    spec: AnalysisSpec
    idata: xr.DataTree | None
    estimands: xr.Dataset
    estimand_table: pd.DataFrame
    probabilities: Mapping[str, float]
    diagnostics: ConvergenceReport | None
    provenance: Mapping[str, Any]
    data_summary: pd.DataFrame
    checks: Mapping[str, xr.Dataset] = field(default=_EMPTY)
    tables: Mapping[str, pd.DataFrame] = field(default=_EMPTY)
    groups: Mapping[str, xr.Dataset] = field(default=_EMPTY)
    summary_entries: Mapping[str, Any] = field(default=_EMPTY)
    details: Mapping[str, Any] = field(default=_EMPTY)
    headline: tuple[str, ...] = ()

    @property
    def posterior(self) -> xr.DataTree:
        """The posterior group (usable with ``az.summary`` / ``az.plot_trace``)."""
        if self.idata is None:
            raise AttributeError("this result has no posterior draws (computed by quadrature)")
        return self.idata.posterior

    @property
    def endpoint(self) -> str:
        return self.spec.endpoint

    @property
    def gate_passed(self) -> bool:
        """The convergence gate passed, or there was nothing to converge (no sampling)."""
        return self.diagnostics is None or self.diagnostics.passed

    def summary(self) -> pd.DataFrame:
        """The estimands as a table indexed by label (mean, sd, median, interval and the
        estimand's coordinates), like lifelines' ``summary``."""
        return self.estimand_table.set_index("label")

    def to_dict(self) -> dict[str, Any]:
        """The content of ``summary.json``: estimands, probabilities, diagnostics, the
        endpoint's entries (e.g. posterior predictive summaries) and provenance."""
        stats = ["mean", "sd", "median", *[c for c in self.estimand_table.columns
                                            if c.startswith("q")]]
        estimands = {}
        for _, row in self.estimand_table.iterrows():
            entry = {k: json_value(row[k]) for k in self.estimand_table.columns
                     if k not in ("label",) and not _missing(row[k])}
            entry.update({k: json_value(row[k]) for k in stats})
            estimands[row["label"]] = entry
        diag = self.diagnostics.to_dict() if self.diagnostics is not None else {}
        entries = dict(self.summary_entries)
        return {
            "analysis": {"name": self.spec.name, "endpoint": self.spec.endpoint,
                         "model": self.spec.model, "reference_arm": self.spec.reference_arm,
                         "time_unit": self.spec.time_unit},
            "estimands": estimands,
            "probabilities": dict(self.probabilities),
            "diagnostics": {k: json_value(v) for k, v in diag.items()},
            "posterior_predictive": entries.pop("posterior_predictive", {}),
            "provenance": dict(self.provenance),
            **entries,
        }


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def json_value(v: Any) -> Any:
    """A NumPy scalar or float as JSON can hold it (non-finite floats as null / "±inf")."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
