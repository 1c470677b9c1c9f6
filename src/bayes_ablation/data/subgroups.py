"""Pre-specified subgroups (``[analysis] subgroups``): binary 0/1 columns, validated cell by cell.

A subgroup column holds 1 for members of the subgroup (e.g. ``ras_mutant``, ``size_gt_2cm``,
``margin_lt_5mm``) and 0 otherwise. Accepted spellings: the numbers 0 and 1 (also ``0.0`` /
``"1"``) and booleans. Anything else — blanks, other numbers, text — is a problem naming the
file, row, column and value; a column with only one level is a problem too (an interaction
with no one on one side is not estimable). Nothing is dropped or recoded silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_ablation.errors import Problem

EXPECTED = "0 or 1 (subgroup '{column}' is a binary indicator: 1 = in the subgroup)"


def binary_indicator(values: pd.Series, column: str, source: str, *,
                     rows: np.ndarray | None = None, what: str = "row"
                     ) -> tuple[np.ndarray, list[Problem]]:
    """The column as floats 0.0 / 1.0 (NaN where invalid) and one problem per invalid cell.

    ``rows``: the row numbers to report (default 1 … n, 1 = first data row)."""
    rows = np.arange(1, len(values) + 1) if rows is None else np.asarray(rows)
    if pd.api.types.is_bool_dtype(values):
        out = values.to_numpy(dtype=float)
    elif pd.api.types.is_numeric_dtype(values):
        out = values.to_numpy(dtype=float)
    else:
        text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
        lowered = text.str.lower()
        mapped = lowered.map({"true": "1", "false": "0"}).fillna(text)
        out = pd.to_numeric(mapped, errors="coerce").to_numpy(dtype=float)
    ok = np.isin(out, (0.0, 1.0))
    problems = [Problem(source, int(rows[i]), column, values.iloc[i],
                        EXPECTED.format(column=column)) for i in np.flatnonzero(~ok)]
    out = np.where(ok, out, np.nan)
    if ok.any() and len(np.unique(out[ok])) < 2:
        level = int(out[ok][0])
        problems.append(Problem(source, None, column, level,
                                f"both levels 0 and 1 of subgroup '{column}' (every {what} "
                                f"has {level}: its interaction with treatment is not "
                                "estimable)"))
    return out, problems


def subgroup_frame(raw: pd.DataFrame, subgroups: Sequence[str], source: str, *,
                   what: str = "row") -> tuple[dict[str, np.ndarray], list[Problem]]:
    """Validated indicators of the subgroup columns present in ``raw`` (a missing column is the
    caller's problem to report: it knows which other table may hold it)."""
    values: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    for column in subgroups:
        if column in raw.columns:
            values[column], found = binary_indicator(raw[column].reset_index(drop=True),
                                                     column, source, what=what)
            problems.extend(found)
    return values, problems


def lesion_subgroups(lesions_raw: pd.DataFrame, patients_raw: pd.DataFrame,
                     lesion_patient_ids: pd.Series, subgroups: Sequence[str], *,
                     lesions_source: str, patients_source: str,
                     derived: dict[str, tuple[np.ndarray, str]] | None = None
                     ) -> tuple[dict[str, np.ndarray], list[Problem]]:
    """Per-lesion indicators of the LR subgroups: a column of the lesion table (lesion-level
    modifiers, e.g. ``size_gt_2cm``), a derived lesion column (``derived``: name → (values,
    source column), e.g. ``margin_lt_5mm`` from ``margin_mm``), or a column of the patient table
    (patient-level modifiers, e.g. ``ras_mutant``, given to each of the patient's lesions)."""
    derived = dict(derived or {})
    values: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    for column in subgroups:
        if column in lesions_raw.columns:
            values[column], found = binary_indicator(
                lesions_raw[column].reset_index(drop=True), column, lesions_source,
                what="lesion")
        elif column in derived:
            v, source_column = derived[column]
            v = np.asarray(v, float)
            found = [Problem(lesions_source, int(r) + 1, source_column,
                             lesions_raw[source_column].iloc[r],
                             f"a value (needed for the subgroup '{column}')")
                     for r in np.flatnonzero(~np.isfinite(v))]
            values[column] = v
        elif column in patients_raw.columns:
            by_patient, found = binary_indicator(
                patients_raw[column].reset_index(drop=True), column, patients_source,
                what="patient")
            ids = patients_raw["patient_id"].astype(str).str.strip().to_numpy() \
                if "patient_id" in patients_raw.columns else np.array([], dtype=str)
            lookup = dict(zip(ids, by_patient, strict=True))
            values[column] = np.array([lookup.get(str(p), np.nan) for p in lesion_patient_ids],
                                      float)
        else:
            found = [Problem(lesions_source, None, column, None,
                             f"a column named '{column}' in the lesion table or in the patient "
                             f"table {patients_source} (a subgroup of the analysis; lesion "
                             f"columns: {', '.join(map(str, lesions_raw.columns))})")]
        problems.extend(found)
    return values, problems
