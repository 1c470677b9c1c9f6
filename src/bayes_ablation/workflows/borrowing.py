"""Borrowing in :func:`bayes_ablation.workflows.fit.fit`: the inputs (external controls, the MAP
prior from a study table) before the model is built, and what was borrowed afterwards.

    >>> fit("models/pfs_external_controls.toml", "examples/borrowing/internal.csv",
    ...     external="examples/borrowing/external.csv")
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_ablation.data.borrowing import read_baseline_studies, read_external
from bayes_ablation.data.schema import PatientTable
from bayes_ablation.endpoints.registry import Prepared
from bayes_ablation.errors import InputError
from bayes_ablation.spec.plan import AnalysisSpec

ExternalLike = PatientTable | pd.DataFrame | str | Path | None


def prepare_borrowing(spec: AnalysisSpec, prepared: Prepared, external: ExternalLike
                      ) -> Prepared:
    """``prepared`` with borrowing model data (internal patients, external controls, MAP
    prior); checks that the spec's method gets the inputs it needs."""
    from bayes_ablation.endpoints.borrowing.model import BorrowingData

    b = spec.borrowing
    if b is None:
        raise InputError(f"external control patients were given but spec {spec.name!r} "
                                 "has no [borrowing] section saying how to use them")
    if b.needs_external and external is None:
        raise InputError(f"[borrowing] method {b.method!r} of spec {spec.name!r} needs "
                                 "external control patients (fit --external external.csv)")
    if b.method == "map" and external is not None:
        raise InputError("[borrowing] method 'map' takes its evidence from the study "
                                 f"table {b.studies!r}; --external is not used by it")
    patients: PatientTable = prepared.model_data
    ext = None
    if external is not None:
        ext = external if isinstance(external, PatientTable) else read_external(external, spec)
        if ext.arms != (spec.reference_arm,):
            raise InputError(f"external patients must all be in the reference arm "
                                     f"{spec.reference_arm!r}, found arms {list(ext.arms)}")
    map_prior = None
    provenance = dict(prepared.provenance)
    if b.method == "map":
        map_prior = build_map_prior(spec, patients)
        provenance["borrowing_studies"] = map_prior.source
    if ext is not None:
        provenance.update({"external_source": ext.source, "external_sha256": ext.sha256,
                           "external_patients": ext.n_patients})
    key = (json.dumps(spec.raw.get("borrowing"), sort_keys=True, default=str),
           json.dumps(map_prior.robust.to_dict()) if map_prior is not None else None)
    tables = dict(prepared.tables)
    if ext is not None:
        tables["external"] = ext
    return replace(prepared, model_data=BorrowingData(patients, ext, map_prior),
                   provenance=provenance, compile_extra=(*prepared.compile_extra, *key),
                   tables=tables)


def build_map_prior(spec: AnalysisSpec, patients: PatientTable | None) -> Any:
    """The robust MAP prior of the spec's target from its study table (``patients``: the
    trial's, to check a log-HR target's two arms; ``None`` in design simulations)."""
    from bayes_ablation.data.studies import read_studies
    from bayes_ablation.endpoints.borrowing.map_prior import map_prior
    from bayes_ablation.spec.borrowing import UNIT_SD

    b = spec.borrowing
    path = b.studies_path(spec.source_path)
    if b.target == "log_hr":
        if patients is not None and len(patients.arms) != 2:
            raise InputError("a MAP prior for log_hr needs exactly two arms, got "
                                     f"{list(patients.arms)}")
        studies = read_studies(path)
        if studies.has_ipd:
            raise InputError(f"{path}: a MAP study table takes log_hr/se or HR with CI "
                                     "rows (no ipd_file rows)")
        names, y, se, source = list(studies.studies), studies.y, studies.se, studies.source
    else:
        names, y, se, source = read_baseline_studies(path)
    return map_prior(y, se, b.map_mu, b.map_tau, target=b.target, unit_sd=UNIT_SD[b.target],
                     robust_weight=b.robust_weight, robust_sd=b.robust_sd_value,
                     max_components=b.max_components, n_draws=b.map_draws,
                     seed=spec.sampler.seed, studies=names, source=source)


def borrowing_outputs(spec: AnalysisSpec, prepared: Prepared, idata: Any
                      ) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, Any]]:
    """(``summary.json["borrowing"]``, bundle tables, report details) of a fitted analysis."""
    from bayes_ablation.endpoints.borrowing.summary import (
        borrowing_summary,
        density_grid,
        side_by_side_table,
    )

    data = prepared.model_data
    summary = borrowing_summary(spec, data, idata)
    table = side_by_side_table(summary)
    details = {"summary": summary, "side_by_side": table,
               "densities": density_grid(data, spec, idata, summary)}
    return summary, {"borrowing_side_by_side": table}, details
