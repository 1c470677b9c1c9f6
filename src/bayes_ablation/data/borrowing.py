"""Inputs of borrowing (``[borrowing]`` in a spec): external control patients, and the study
table of a MAP prior for the control arm's baseline.

External (historical) control patients have the patient table's columns (``patient_id, site,
arm, time_months, event`` and the spec's covariates) and are read by the same validator; every
row's ``arm`` must be the spec's reference arm (they are controls). The baseline study table
(MAP prior with ``target = "log_cumhaz_ref"``) has ``study, log_cumhaz, se``: each historical
study's estimate of the control arm's log cumulative hazard at the spec's ``time_ref_months``
and its standard error (e.g. from a published t_ref-month PFS S with events D:
log_cumhaz = log(−log S), se ≈ 1/√D).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.data.io import file_sha256, read_raw_table
from bayes_ablation.data.schema import PatientTable, plausibility, validate_patients
from bayes_ablation.errors import DataValidationError, Problem

BASELINE_COLUMNS = ("study", "log_cumhaz", "se")


def read_external(path: str | Path | pd.DataFrame, spec: Any) -> PatientTable:
    """Read and validate external control patients against ``spec`` (all problems at once;
    file, row, column, value and what was expected)."""
    reference = spec.reference_arm
    checks = plausibility(spec)
    checks.update(arms=[reference], min_patients_per_arm=1, min_arms=1)
    if isinstance(path, pd.DataFrame):
        raw, source, digest = path, "<DataFrame>", None
    else:
        raw, source, digest = read_raw_table(path), str(path), file_sha256(path)
    try:
        table = validate_patients(raw, source, reference_arm=reference,
                                  covariates=tuple(spec.covariates), sha256=digest, **checks)
    except DataValidationError as exc:
        problems = [replace(p, expected=f"the reference arm {reference!r} (external patients "
                            "are control patients)")
                    if p.column == "arm" and p.row is not None
                    and str(p.expected).startswith("one of the declared arms") else p
                    for p in exc.problems]
        raise DataValidationError(problems) from None
    return table


def read_baseline_studies(path: str | Path | pd.DataFrame) -> tuple[list[str], np.ndarray,
                                                                     np.ndarray, str]:
    """A baseline study table (``study, log_cumhaz, se``): (names, estimates, ses, source)."""
    if isinstance(path, pd.DataFrame):
        raw, source = path.astype(str), "<DataFrame>"
    else:
        raw, source = read_raw_table(path), str(path)
    problems: list[Problem] = []
    present = ", ".join(map(str, raw.columns))
    for col in BASELINE_COLUMNS:
        if col not in raw.columns:
            problems.append(Problem(source, None, col, None,
                                    f"a column named '{col}' (columns present: {present})"))
    if len(raw) == 0:
        problems.append(Problem(source, None, None, None, "at least one study row"))
    if problems:
        raise DataValidationError(problems)
    names = [str(v).strip() for v in raw["study"]]
    values = {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(float)
              for c in ("log_cumhaz", "se")}
    for r in range(len(raw)):
        if not names[r]:
            problems.append(Problem(source, r + 1, "study", raw["study"].iloc[r],
                                    "a non-empty study label"))
        y = values["log_cumhaz"][r]
        if not np.isfinite(y) or abs(y) > 20:
            problems.append(Problem(source, r + 1, "log_cumhaz", raw["log_cumhaz"].iloc[r],
                                    "a finite log cumulative hazard with |value| <= 20"))
        se = values["se"][r]
        if not np.isfinite(se) or se <= 0 or se > 20:
            problems.append(Problem(source, r + 1, "se", raw["se"].iloc[r],
                                    "a standard error > 0 and <= 20"))
    seen: dict[str, int] = {}
    for r, name in enumerate(names):
        if name and name in seen:
            problems.append(Problem(source, r + 1, "study", name,
                                    f"a unique study label (also on row {seen[name]})"))
        seen.setdefault(name, r + 1)
    if problems:
        raise DataValidationError(problems)
    return names, values["log_cumhaz"], values["se"], source
