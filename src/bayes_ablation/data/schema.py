"""The patient table: its columns, its validation, and the integer codes models use.

Columns: ``patient_id, site, arm, time_months, event`` plus covariates named by the spec.
Validation collects *every* problem (row, column, value, expectation) before raising one
:class:`~bayes_ablation.errors.DataValidationError`; no row is ever dropped.
Rows are numbered from 1 = first data row (in a CSV, file line = row + 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.data.io import (
    STRIPPED_TEXT,
    file_sha256,
    frame_sha256,
    read_raw_table,
    strip_strings,
)
from bayes_ablation.data.subgroups import subgroup_frame
from bayes_ablation.errors import DataValidationError, DataWarning, Problem

PATIENT_COLUMNS = ("patient_id", "site", "arm", "time_months", "event")


def _read_only_codes(labels: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    codes = pd.Categorical(labels, categories=levels).codes.astype(np.int64)
    codes.setflags(write=False)
    return codes


@dataclass(frozen=True)
class PatientTable:
    """A validated patient table with its level orders.

    ``frame`` has columns ``patient_id`` (str), ``site`` (str), ``arm`` (str), ``time_months``
    (float > 0), ``event`` (int 0/1) and the covariates; ``arms`` lists the reference arm first.
    """

    frame: pd.DataFrame
    arms: tuple[str, ...]
    sites: tuple[str, ...]
    covariates: tuple[str, ...]
    source: str
    sha256: str
    extra: dict = field(default_factory=dict)
    #: findings that do not stop the analysis but must be seen (e.g. an arm without events)
    warnings: tuple[DataWarning, ...] = ()
    #: pre-specified subgroup columns (0/1 floats in ``frame``; see :mod:`~bayes_ablation.data.
    #: subgroups`)
    subgroups: tuple[str, ...] = ()

    @property
    def reference_arm(self) -> str:
        return self.arms[0]

    @property
    def treatments(self) -> tuple[str, ...]:
        """Non-reference arms, each compared against the reference."""
        return self.arms[1:]

    @property
    def n_patients(self) -> int:
        return len(self.frame)

    @cached_property
    def arm_idx(self) -> np.ndarray:
        """Each patient's arm as its index into ``arms`` (read-only; computed once: at 10⁶
        patients coding the labels takes ~0.05 s and the model build asks several times)."""
        return _read_only_codes(self.frame["arm"], self.arms)

    @cached_property
    def site_idx(self) -> np.ndarray:
        """Each patient's site as its index into ``sites`` (read-only, computed once)."""
        return _read_only_codes(self.frame["site"], self.sites)

    @property
    def time(self) -> np.ndarray:
        return self.frame["time_months"].to_numpy(dtype=float)

    @property
    def event(self) -> np.ndarray:
        return self.frame["event"].to_numpy(dtype=np.int64)

    def design_matrix(self) -> tuple[np.ndarray, list[str], dict[str, float]]:
        """Covariate design: numeric columns centred at their mean, categoricals dummy-coded
        against their first (sorted) level. Returns (X, column names, centres)."""
        return covariate_design(self.frame, self.covariates)

    def summary(self) -> pd.DataFrame:
        """Patients, events and median follow-up per arm (for reports)."""
        g = self.frame.groupby("arm", sort=False)
        out = pd.DataFrame({
            "patients": g.size(),
            "events": g["event"].sum(),
            "sites": g["site"].nunique(),
            "median_time_months": g["time_months"].median(),
        }).reindex(list(self.arms))
        out.index.name = "arm"
        return out


def covariate_design(frame: pd.DataFrame, covariates: Sequence[str]
                     ) -> tuple[np.ndarray, list[str], dict[str, float]]:
    cols: list[np.ndarray] = []
    names: list[str] = []
    centres: dict[str, float] = {}
    for cov in covariates:
        series = frame[cov]
        if pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype=float)
            centres[cov] = float(values.mean())
            cols.append(values - centres[cov])
            names.append(cov)
        else:
            levels = sorted(series.astype(str).unique())
            for level in levels[1:]:
                cols.append((series.astype(str) == level).to_numpy(dtype=float))
                names.append(f"{cov}[{level}]")
    x = np.column_stack(cols) if cols else np.zeros((len(frame), 0))
    return x, names, centres


def covariate_coding(frame: pd.DataFrame, covariates: Sequence[str]) -> dict[str, dict]:
    """How :func:`covariate_design` codes each covariate (for reports and ``summary.json``):
    numeric → its centre (the mean it is centred at); categorical → its reference level (the
    first in sorted order) and the dummy columns against it."""
    out: dict[str, dict] = {}
    for cov in covariates:
        series = frame[cov]
        if pd.api.types.is_numeric_dtype(series):
            out[cov] = {"kind": "numeric", "centred_at": float(series.to_numpy(float).mean())}
        else:
            levels = sorted(series.astype(str).unique())
            out[cov] = {"kind": "categorical", "reference_level": levels[0],
                        "columns": [f"{cov}[{level}]" for level in levels[1:]]}
    return out


def is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _stripped_text(series: pd.Series) -> pd.Series:
    """Every value as stripped text; missing values (None, NaN, NA, NaT) as ''."""
    if series.attrs.get(STRIPPED_TEXT):  # read_raw_table's CSV columns: already stripped text
        return series
    missing = series.isna().to_numpy()
    if not missing.any() and series.dtype == object:
        return strip_strings(series) if pd.api.types.infer_dtype(series, skipna=False) \
            == "string" else strip_strings(series.astype(str))
    return strip_strings(series.astype(object).where(~missing, "").astype(str))


def blank_mask(series: pd.Series) -> np.ndarray:
    """:func:`is_blank` of every value, vectorised: missing, or text that is only spaces."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.isna().to_numpy()
    return (_stripped_text(series) == "").to_numpy()


def as_text(frame: pd.DataFrame, column: str) -> pd.Series:
    """Each value as stripped text, '' for blanks (vectorised: 10⁶ rows well under a second)."""
    return _stripped_text(frame[column])


def _parse_numbers(series: pd.Series) -> np.ndarray:
    """Numbers where parseable, NaN elsewhere (the caller reports which and why)."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float)
    text = _stripped_text(series)
    if isinstance(text.dtype, pd.StringDtype) and text.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        try:  # every value a number: Arrow's conversion, 5× faster than NumPy's from str
            return pc.cast(pa.array(text.array), pa.float64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    try:  # every value a number: NumPy's C conversion, 5× faster than pd.to_numeric
        return text.to_numpy(dtype=object).astype(float)
    except (ValueError, TypeError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)


#: defaults of the plausibility checks (a spec's ``[analysis]`` may change them)
MIN_PATIENTS_PER_ARM = 5
MAX_TIME_MONTHS = 600.0


def repeated_values(values: pd.Series) -> np.ndarray:
    """``values.duplicated(keep=False)``: whether each value occurs more than once (missing
    values never do). Arrow text: neighbours after Arrow's sort (10⁶ ids in ~0.1 s, a third
    of ``factorize``); else from factorised codes."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow" \
            and len(values) > 1:
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pa.array(values.array)
        order = pc.array_sort_indices(text)
        ordered = text.take(order)
        same = pc.fill_null(pc.equal(ordered.slice(1), ordered.slice(0, len(values) - 1)),
                            False).to_numpy(zero_copy_only=False)
        repeated = np.zeros(len(values), dtype=bool)
        repeated[1:] |= same
        repeated[:-1] |= same
        out = np.empty(len(values), dtype=bool)
        out[order.to_numpy()] = repeated
        return out
    codes, _ = pd.factorize(values)  # missing values: code -1, never repeated
    counts = np.bincount(codes[codes >= 0], minlength=1)
    return (codes >= 0) & (counts[np.maximum(codes, 0)] > 1)


def label_key(label: str) -> str:
    """A label without case, whitespace and punctuation: labels with the same key are typos of
    each other ("Perioperative ", "peri-operative", "PERIOPERATIVE")."""
    return "".join(ch for ch in label.casefold() if ch.isalnum())


def near_duplicate_labels(values: pd.Series, column: str, source: str, rows: np.ndarray
                          ) -> list[Problem]:
    """One problem per label that equals a more frequent one up to case, whitespace or
    punctuation, naming its rows."""
    problems = []
    counts = values.value_counts()
    counts = counts[counts.index != ""]
    groups: dict[str, list[str]] = {}
    for label in counts.index:
        groups.setdefault(label_key(label), []).append(label)
    for labels in groups.values():
        if len(labels) < 2:
            continue
        keep = labels[0]          # the most frequent spelling
        for other in labels[1:]:
            where = rows[(values == other).to_numpy()]
            problems.append(Problem(source, int(where[0]), column, other,
                                    f"one spelling per {column}: {other!r} differs from {keep!r} "
                                    f"only in case, spaces or punctuation (rows "
                                    f"{_row_list(where)}); fix the data or declare the labels "
                                    "with [analysis] arms"))
    return problems


def _row_list(rows: np.ndarray, most: int = 8) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:most])
    return shown + (f", … ({len(rows)} rows)" if len(rows) > most else "")


def validate_patients(raw: pd.DataFrame, source: str, *, reference_arm: str | None,
                      covariates: Sequence[str] = (), arms: Sequence[str] | None = None,
                      sites: Sequence[str] | None = None, sha256: str | None = None,
                      extra_columns: Sequence[str] = (),
                      min_patients_per_arm: int = 1,
                      max_time_months: float = MAX_TIME_MONTHS,
                      event_name: str = "event", require_events: bool = False,
                      row_numbers: Sequence[int] | None = None,
                      min_arms: int = 2,
                      subgroups: Sequence[str] = ()) -> PatientTable:
    """Check a raw patient table and return it typed, or raise with every problem found.

    ``arms``/``sites`` are the levels declared by the plan (or by Parquet categoricals); a declared
    level with no patients is an error, as is a value that was not declared. Without declared
    levels, labels that differ only in case, spaces or punctuation are an error (a typo would
    otherwise become a third arm or another site). Plausibility: each arm needs
    ``min_patients_per_arm`` patients (readers given a spec use its value, default
    :data:`MIN_PATIENTS_PER_ARM`), times may not exceed ``max_time_months``, and with
    ``require_events`` (readers given a spec) there must be at least one ``event_name``; an arm or site
    without one is a warning of the table. ``row_numbers``: the row each row of ``raw`` has in
    its file when ``raw`` is a selection of it (default 1, 2, …); problems and warnings name
    those rows. ``min_arms``: fewest arms (2; 1 for a table of external control patients,
    :func:`bayes_ablation.data.borrowing.read_external`).
    """
    problems: list[Problem] = []
    shown = (np.asarray(row_numbers, dtype=np.int64) if row_numbers is not None
             else np.arange(1, len(raw) + 1))
    if len(shown) != len(raw):
        raise ValueError(f"row_numbers has {len(shown)} entries for {len(raw)} rows")

    def add(row: int | None, column: str | None, value: object, expected: str) -> None:
        problems.append(Problem(source, None if row is None else int(shown[row - 1]), column,
                                value, expected))

    required = (*PATIENT_COLUMNS, *covariates, *extra_columns, *subgroups)
    present = ", ".join(map(str, raw.columns))
    for col in (c for c in required if c not in raw.columns):
        add(None, col, None, f"a column named '{col}' (columns present: {present})")
    if len(raw) == 0:
        add(None, None, None, "at least one data row")
    if any(c not in raw.columns for c in PATIENT_COLUMNS) or len(raw) == 0:
        raise DataValidationError(problems)  # row checks need the core columns
    covariates = [c for c in covariates if c in raw.columns]

    rows = np.arange(1, len(raw) + 1)
    ids = as_text(raw, "patient_id")
    site = as_text(raw, "site")
    arm = as_text(raw, "arm")
    for col, values in (("patient_id", ids), ("site", site), ("arm", arm)):
        for r in rows[(values == "").to_numpy()]:
            add(int(r), col, raw[col].iloc[r - 1], "a non-empty label")

    dup = repeated_values(ids) & (ids != "").to_numpy()
    if dup.any():
        first_row = {pid: int(rows[i]) for i, pid in reversed(list(enumerate(ids)))}
        for r in rows[dup]:
            pid = ids.iloc[r - 1]
            if first_row[pid] != r:
                add(int(r), "patient_id", pid,
                    f"a unique id (also on row {shown[first_row[pid] - 1]})")

    time = _parse_numbers(raw["time_months"])
    with np.errstate(invalid="ignore"):
        bad_time = ~np.isfinite(time) | (time <= 0) | (time > max_time_months)
    for r in rows[bad_time]:
        v = time[r - 1]
        if not np.isfinite(v):
            add(int(r), "time_months", raw["time_months"].iloc[r - 1], "a finite number of months > 0")
        elif v <= 0:
            add(int(r), "time_months", raw["time_months"].iloc[r - 1], "a time in months > 0")
        elif v > max_time_months:
            add(int(r), "time_months", raw["time_months"].iloc[r - 1],
                f"a plausible time: at most {max_time_months:g} months (the spec's "
                "max_time_months; is the unit days?)")

    event = _parse_numbers(raw["event"])
    for r in rows[~np.isin(event, (0.0, 1.0))]:
        if event[r - 1] not in (0.0, 1.0):
            add(int(r), "event", raw["event"].iloc[r - 1], "0 (censored) or 1 (event)")

    declared_arms = list(arms) if arms is not None else _categories(raw["arm"])
    declared_sites = list(sites) if sites is not None else _categories(raw["site"])
    present_arms = [a for a in pd.unique(arm) if a != ""]
    present_sites = [s for s in pd.unique(site) if s != ""]
    if declared_arms is not None:
        for r in rows[(~arm.isin(declared_arms) & (arm != "")).to_numpy()]:
            add(int(r), "arm", arm.iloc[r - 1], f"one of the declared arms {declared_arms}")
        for a in declared_arms:
            if a not in present_arms:
                add(None, "arm", a, "every declared arm to have at least one patient")
    if declared_sites is not None:
        for r in rows[(~site.isin(declared_sites) & (site != "")).to_numpy()]:
            add(int(r), "site", site.iloc[r - 1], f"one of the declared sites {declared_sites}")
        for s in declared_sites:
            if s not in present_sites:
                add(None, "site", s, "every declared site to have at least one patient")
    if declared_arms is None:
        problems.extend(near_duplicate_labels(arm, "arm", source, shown))
    if declared_sites is None:
        problems.extend(near_duplicate_labels(site, "site", source, shown))
    arm_counts = arm[arm != ""].value_counts()
    for a, n in arm_counts.items():
        at = rows[(arm == a).to_numpy()]
        where = shown[at - 1]
        if 0 < n < min_patients_per_arm and where.size:
            add(int(at[0]), "arm", a, f"at least {min_patients_per_arm} patients per arm (the "
                f"spec's min_patients_per_arm); {a!r} has {n} (rows {_row_list(where)})")
    if len(present_arms) < min_arms:
        add(None, "arm", present_arms, "at least two arms to compare")
    if reference_arm is not None and reference_arm not in present_arms:
        add(None, "arm", reference_arm,
            f"the spec's reference arm among the arms in the data {sorted(present_arms)}")

    clean_covariates: dict[str, pd.Series] = {}
    for cov in covariates:
        col = raw[cov]
        blank = blank_mask(col)
        for r in rows[blank]:
            add(int(r), cov, col.iloc[r - 1], "a value (covariates may not be missing)")
        numbers = _parse_numbers(col)
        non_blank = ~blank
        if non_blank.any() and np.isfinite(numbers[non_blank]).all():
            clean_covariates[cov] = pd.Series(numbers, index=raw.index)
            values = numbers[non_blank]
        else:
            if non_blank.any() and np.isfinite(numbers[non_blank]).any() and \
                    pd.api.types.is_numeric_dtype(col):
                for r in rows[non_blank & ~np.isfinite(numbers)]:
                    add(int(r), cov, col.iloc[r - 1], "a finite number")
            clean_covariates[cov] = as_text(raw, cov)
            values = clean_covariates[cov][non_blank].to_numpy()
        if non_blank.any() and len(pd.unique(values)) < 2:
            add(None, cov, values[0], "a covariate that varies (a constant is not estimable)")

    subgroup_values, subgroup_problems = subgroup_frame(raw, subgroups, source, what="patient")
    problems.extend(subgroup_problems)

    if require_events and not problems and not (event == 1.0).any():
        add(None, "event", 0, f"at least one {event_name} (none of {len(raw)} patients has "
            "event = 1: there is nothing to estimate)")
    if problems:
        raise DataValidationError(problems)
    warnings = tuple(
        DataWarning(source, col, tuple(int(r) for r in shown[(values == label).to_numpy()]), label,
                    f"{col} {label!r} has no {event_name} ({int((values == label).sum())} "
                    "patients): its estimates rest on the prior and the other "
                    + ("arms" if col == "arm" else "sites"))
        for col, values in (("arm", arm), ("site", site))
        for label in _labels_without_events(values, event))
    order_arms = [reference_arm] if reference_arm is not None else []
    pool = declared_arms if declared_arms is not None else sorted(present_arms)
    order_arms += [a for a in pool if a not in order_arms]
    order_sites = declared_sites if declared_sites is not None else sorted(present_sites)

    frame = pd.DataFrame({
        "patient_id": ids.to_numpy(),
        "site": site.to_numpy(),
        "arm": arm.to_numpy(),
        "time_months": time,
        "event": event.astype(np.int64),
    })
    for cov, values in clean_covariates.items():
        frame[cov] = values.to_numpy()
    for col in extra_columns:
        if col not in frame.columns:
            frame[col] = raw[col].to_numpy()
    for col, values in subgroup_values.items():
        frame[col] = values
    digest = sha256 if sha256 is not None else frame_sha256(raw.astype(str))
    return PatientTable(frame=frame, arms=tuple(order_arms), sites=tuple(order_sites),
                        covariates=tuple(covariates), source=source, sha256=digest,
                        warnings=warnings, subgroups=tuple(subgroup_values))


def _labels_without_events(values: pd.Series, event: np.ndarray) -> list[str]:
    """The non-empty labels (in order of appearance) none of whose rows has event = 1."""
    codes, labels = pd.factorize(values)
    events = np.bincount(codes[codes >= 0], weights=(event[codes >= 0] == 1.0),
                         minlength=len(labels))
    return [str(label) for label, n in zip(labels, events, strict=True)
            if label != "" and n == 0]


def _categories(series: pd.Series) -> list[str] | None:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(c) for c in series.cat.categories]
    return None


def read_patients(path: str | Path | pd.DataFrame, spec: object | None = None, *,
                  reference_arm: str | None = None,
                  covariates: Sequence[str] | None = None) -> PatientTable:
    """Read and validate a patient table: a CSV or Parquet file, or a pandas DataFrame
    (validated exactly like a file; its source is recorded as ``<DataFrame>``).

    With a spec, the reference arm, covariates and any declared arms/sites come from it.
    """
    checks = plausibility(spec)
    if spec is not None:
        reference_arm = reference_arm or getattr(spec, "reference_arm", None)
        if covariates is None:
            covariates = getattr(spec, "covariates", ())
    if isinstance(path, pd.DataFrame):
        return patients_from_frame(path, reference_arm=reference_arm,
                                   covariates=tuple(covariates or ()), **checks)
    if not isinstance(path, str | Path):
        raise TypeError(f"read_patients takes a file path or a pandas DataFrame, got "
                        f"{type(path).__name__}")
    raw = read_raw_table(path)
    return validate_patients(raw, str(path), reference_arm=reference_arm,
                             covariates=tuple(covariates or ()), sha256=file_sha256(path),
                             **checks)


def patients_from_frame(frame: pd.DataFrame, *, reference_arm: str | None,
                        covariates: Sequence[str] = (), source: str = "<DataFrame>",
                        **checks: Any) -> PatientTable:
    """Validate an in-memory table (e.g. from the simulator) exactly like a file; ``checks``:
    ``arms``, ``min_patients_per_arm``, ``max_time_months`` (see :func:`validate_patients`)."""
    return validate_patients(frame, source, reference_arm=reference_arm,
                             covariates=tuple(covariates), **checks)


def plausibility(spec: object | None) -> dict[str, Any]:
    """The spec's declared arms and plausibility bounds, as :func:`validate_patients` takes
    them (defaults without a spec)."""
    if spec is None:
        return {}
    return {"arms": getattr(spec, "arms", None),
            "subgroups": tuple(getattr(spec, "subgroups", ())),
            "min_patients_per_arm": getattr(spec, "min_patients_per_arm", MIN_PATIENTS_PER_ARM),
            "max_time_months": getattr(spec, "max_time_months", MAX_TIME_MONTHS),
            "require_events": True}
