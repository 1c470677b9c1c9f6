"""Lesion-level local recurrence (LR) data: the lesion table, its patient table, and their
cross-references.

Two tables, joined on ``patient_id``:

* **patients** (one row per patient): ``patient_id, site, arm, followup_months, died``.
  ``followup_months`` is the time from ablation (time 0 of every lesion) to death
  (``died = 1``) or to the last contact alive (``died = 0``). Death is recorded whatever
  happened to the lesions before it: the LR model treats it as a competing event with its own
  cause-specific hazard, and a lesion stops being at risk of LR when its patient dies.
* **lesions** (one row per ablated lesion): ``patient_id, lesion_id, lr_lower_months,
  lr_upper_months`` and optionally ``size_cm``, ``margin_mm`` (minimal ablation margin) and
  ``modality`` (RFA, MWA, ...). LR happened in ``(lower, upper]``: ``lower`` is the last scan
  without LR, ``upper`` the first scan showing it. An empty ``upper`` means no LR was seen by
  ``lower``, the last negative scan: the lesion is right-censored at ``lower`` (an LR between
  that scan and death would never be observed, so the lesion is not followed to the death
  date). ``lower = 0`` (the ablation) is allowed.

Validation reports every problem of both files at once (file, row, column, value, what was
expected): a lesion of an unknown patient, ``lower > upper`` or ``lower = upper``, negative
times, scans after the patient's death or last contact, duplicate ``lesion_id`` within a
patient, ``size_cm <= 0``, ``margin_mm < 0``, an unknown modality, an arm without lesions.
More than 10 lesions in one patient, or a patient without lesions, is clinically possible but
unusual: such rows are kept and listed as *warnings* (``LesionTable.warnings``), shown in the
report. Derived covariate: ``margin_lt_5mm`` = 1 when ``margin_mm`` < 5 (the dichotomy of the
published meta-analyses, e.g. Chlorogiannis 2023: RR 3.6 for local tumour progression).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.data.io import file_sha256, frame_sha256, read_raw_table
from bayes_ablation.data.schema import (
    PatientTable,
    _parse_numbers,
    as_text,
    covariate_design,
    is_blank,
    plausibility,
    validate_patients,
)
from bayes_ablation.data.subgroups import lesion_subgroups
from bayes_ablation.errors import DataValidationError, DataWarning, Problem

LR_PATIENT_COLUMNS = ("patient_id", "site", "arm", "followup_months", "died")
LESION_COLUMNS = ("patient_id", "lesion_id", "lr_lower_months", "lr_upper_months")
OPTIONAL_LESION_COLUMNS = ("size_cm", "margin_mm", "modality")
#: accepted spellings (case-insensitive) -> canonical modality label
MODALITIES = {"rfa": "RFA", "mwa": "MWA", "cryo": "cryoablation", "cryoablation": "cryoablation",
              "ire": "IRE", "litt": "LITT", "laser": "LITT"}
MAX_LESIONS_PER_PATIENT = 10
MARGIN_THRESHOLD_MM = 5.0
#: covariates computed from another column: name -> source column
DERIVED_COVARIATES = {"margin_lt_5mm": "margin_mm"}
#: tolerance (months) for "scan on the day of death/last contact" after date rounding
_TIME_TOL = 1e-6

# the patient table reuses schema.validate_patients: its columns time_months/event are ours
_TO_SCHEMA = {"followup_months": "time_months", "died": "event"}
_FROM_SCHEMA = {v: k for k, v in _TO_SCHEMA.items()}
_EXPECTED_FROM_SCHEMA = {
    "0 (censored) or 1 (event)": "0 (alive at last contact) or 1 (died)",
    "a finite number of months > 0": "a finite number of months > 0 (ablation to death or "
                                     "last contact)",
}


@dataclass(frozen=True)
class LesionTable:
    """Validated lesions, aligned with the validated :class:`PatientTable` they belong to.

    ``frame`` columns: ``patient_id, lesion_id, lr_lower_months`` (float ≥ 0),
    ``lr_upper_months`` (float, NaN = no LR seen), ``lr_observed`` (0/1), ``patient_idx``
    (row of the patient in ``patients.frame``), the optional lesion columns present in the
    file and any derived covariate. ``patients.frame`` holds ``time_months`` = follow-up
    (death or last contact) and ``event`` = died.
    """

    frame: pd.DataFrame
    patients: PatientTable
    covariates: tuple[str, ...]
    source: str
    sha256: str
    warnings: tuple[DataWarning, ...] = ()
    extra: dict = field(default_factory=dict)
    #: pre-specified subgroups: per-lesion 0/1 columns of ``frame`` (lesion, derived or
    #: patient-level; see :func:`~bayes_ablation.data.subgroups.lesion_subgroups`)
    subgroups: tuple[str, ...] = ()

    @property
    def n_lesions(self) -> int:
        return len(self.frame)

    @property
    def patient_idx(self) -> np.ndarray:
        return self.frame["patient_idx"].to_numpy(dtype=np.int64)

    @property
    def arm_idx(self) -> np.ndarray:
        return self.patients.arm_idx[self.patient_idx]

    @property
    def site_idx(self) -> np.ndarray:
        return self.patients.site_idx[self.patient_idx]

    @property
    def lower(self) -> np.ndarray:
        return self.frame["lr_lower_months"].to_numpy(dtype=float)

    @property
    def upper(self) -> np.ndarray:
        """First positive scan; +inf for lesions without observed LR."""
        u = self.frame["lr_upper_months"].to_numpy(dtype=float)
        return np.where(np.isnan(u), np.inf, u)

    @property
    def observed(self) -> np.ndarray:
        return self.frame["lr_observed"].to_numpy(dtype=np.int64)

    def design_matrix(self) -> tuple[np.ndarray, list[str], dict[str, float]]:
        """Lesion covariates: numeric centred at their mean, categoricals dummy-coded against
        the first sorted level (see :func:`~bayes_ablation.data.schema.covariate_design`)."""
        return covariate_design(self.frame, self.covariates)

    def summary(self) -> pd.DataFrame:
        """Per arm: patients, deaths, lesions, lesions with LR observed, median follow-up."""
        pf = self.patients.frame
        lf = self.frame.assign(arm=pf["arm"].to_numpy()[self.patient_idx])
        gp = pf.groupby("arm", sort=False)
        gl = lf.groupby("arm", sort=False)
        out = pd.DataFrame({
            "patients": gp.size(),
            "deaths": gp["event"].sum(),
            "median_followup_months": gp["time_months"].median(),
            "lesions": gl.size(),
            "lesions_with_lr": gl["lr_observed"].sum(),
            "sites": gp["site"].nunique(),
        }).reindex(list(self.patients.arms))
        out["lesions"] = out["lesions"].fillna(0).astype(int)
        out["lesions_with_lr"] = out["lesions_with_lr"].fillna(0).astype(int)
        out.index.name = "arm"
        return out


# --------------------------------------------------------------------------------- patients

def validate_lr_patients(raw: pd.DataFrame, source: str, *, reference_arm: str | None,
                         sha256: str | None = None, **checks: Any) -> PatientTable:
    """Validate the LR patient table (``patient_id, site, arm, followup_months, died``).

    Returns a :class:`PatientTable` whose ``time_months``/``event`` are the follow-up and the
    death indicator; problems name the file's own columns. ``checks``: the label and
    plausibility checks of :func:`~bayes_ablation.data.schema.validate_patients` (declared
    ``arms``, ``min_patients_per_arm``, ``max_time_months``); deaths are not required (the
    event of the analysis is local recurrence, see :func:`validate_lr_data`).
    """
    clash = [c for c in _TO_SCHEMA.values() if c in raw.columns]
    frame = raw.drop(columns=clash).rename(columns=_TO_SCHEMA)
    checks = {k: v for k, v in checks.items() if k != "require_events"}
    try:
        table = validate_patients(frame, source, reference_arm=reference_arm, sha256=sha256,
                                  event_name="death", **checks)
    except DataValidationError as exc:
        raise DataValidationError([_rename_problem(p) for p in exc.problems]) from None
    return table


def _rename_problem(p: Problem) -> Problem:
    column = _FROM_SCHEMA.get(p.column, p.column) if p.column else p.column
    expected = _EXPECTED_FROM_SCHEMA.get(p.expected, p.expected)
    if expected.startswith("a column named"):
        for old, new in _FROM_SCHEMA.items():
            expected = re.sub(rf"\b{old}\b", new, expected)
    return replace(p, column=column, expected=expected)


def _patient_lookup(raw: pd.DataFrame) -> dict[str, float]:
    """patient_id -> follow-up (NaN where not a valid number) from a raw patient table, for
    cross-references even when the patient table itself has problems."""
    if "patient_id" not in raw.columns:
        return {}
    ids = as_text(raw, "patient_id")
    follow = (_parse_numbers(raw["followup_months"]) if "followup_months" in raw.columns
              else np.full(len(raw), np.nan))
    out: dict[str, float] = {}
    for pid, f in zip(ids, follow, strict=True):
        if pid and pid not in out:
            out[pid] = float(f) if np.isfinite(f) and f > 0 else float("nan")
    return out


# ---------------------------------------------------------------------------------- lesions

def validate_lesions(raw: pd.DataFrame, source: str, patients_raw: pd.DataFrame, *,
                     covariates: Sequence[str] = ()) -> tuple[list[Problem], list[Problem],
                                                               pd.DataFrame]:
    """Check the lesion table and its references to the (raw) patient table.

    Returns (problems, warnings, cleaned frame without ``patient_idx``).
    """
    problems: list[Problem] = []
    warnings: list[DataWarning] = []

    def add(row: int | None, column: str | None, value: object, expected: str) -> None:
        problems.append(Problem(source, row, column, value, expected))

    needed_for = {c: DERIVED_COVARIATES.get(c, c) for c in covariates}
    required = list(LESION_COLUMNS) + [src for src in needed_for.values()
                                       if src not in LESION_COLUMNS]
    for col in dict.fromkeys(required):
        if col not in raw.columns:
            why = [c for c, src in needed_for.items() if src == col and c != col]
            because = f" (needed for the covariate '{why[0]}')" if why else ""
            add(None, col, None, f"a column named '{col}'{because} (columns present: "
                                 f"{', '.join(map(str, raw.columns))})")
    if len(raw) == 0:
        add(None, None, None, "at least one lesion row")
    if problems:
        return problems, warnings, pd.DataFrame()

    rows = np.arange(1, len(raw) + 1)
    pid = as_text(raw, "patient_id")
    lid = as_text(raw, "lesion_id")
    for col, values in (("patient_id", pid), ("lesion_id", lid)):
        for r in rows[(values == "").to_numpy()]:
            add(int(r), col, raw[col].iloc[r - 1], "a non-empty label")

    lookup = _patient_lookup(patients_raw)
    for r in rows[(~pid.isin(list(lookup)) & (pid != "")).to_numpy()]:
        add(int(r), "patient_id", pid.iloc[r - 1],
            "a patient_id of the patient table (lesion of an unknown patient)")

    key = pid + "\x00" + lid
    seen: dict[str, int] = {}
    for r, k, p, ll in zip(rows, key, pid, lid, strict=True):
        if not p or not ll:
            continue
        if k in seen:
            add(int(r), "lesion_id", ll,
                f"a lesion_id unique within patient {p} (also on row {seen[k]})")
        else:
            seen[k] = int(r)

    lower = _parse_numbers(raw["lr_lower_months"])
    upper_blank = raw["lr_upper_months"].map(is_blank).to_numpy()
    upper = _parse_numbers(raw["lr_upper_months"])
    follow = pid.map(lambda p: lookup.get(p, np.nan)).to_numpy(dtype=float)
    for i, r in enumerate(rows):
        lo, up, fu = lower[i], upper[i], follow[i]
        raw_lo, raw_up = raw["lr_lower_months"].iloc[i], raw["lr_upper_months"].iloc[i]
        lo_ok = np.isfinite(lo) and lo >= 0
        if not np.isfinite(lo):
            add(int(r), "lr_lower_months", raw_lo,
                "a finite number of months ≥ 0 (the last scan without local recurrence)")
        elif lo < 0:
            add(int(r), "lr_lower_months", raw_lo, "a time in months ≥ 0 (0 = the ablation)")
        elif np.isfinite(fu) and lo > fu + _TIME_TOL:
            add(int(r), "lr_lower_months", raw_lo,
                f"a scan no later than the patient's death or last contact "
                f"(followup_months = {fu:g})")
        if upper_blank[i]:
            continue
        if not np.isfinite(up):
            add(int(r), "lr_upper_months", raw_up,
                "empty (no local recurrence seen) or a finite number of months (the first "
                "scan showing it)")
        elif lo_ok and up < lo:
            add(int(r), "lr_upper_months", raw_up,
                f"a time ≥ lr_lower_months ({lo:g}): lower > upper")
        elif lo_ok and up == lo:
            add(int(r), "lr_upper_months", raw_up,
                f"a time > lr_lower_months ({lo:g}): the recurrence happened between the last "
                "negative and the first positive scan")
        elif np.isfinite(fu) and up > fu + _TIME_TOL:
            add(int(r), "lr_upper_months", raw_up,
                f"a scan no later than the patient's death or last contact "
                f"(followup_months = {fu:g})")

    frame = pd.DataFrame({
        "patient_id": pid.to_numpy(),
        "lesion_id": lid.to_numpy(),
        "lr_lower_months": lower,
        "lr_upper_months": np.where(upper_blank, np.nan, upper),
        "lr_observed": (~upper_blank).astype(np.int64),
    })

    used = set(covariates) | {DERIVED_COVARIATES.get(c, c) for c in covariates}
    if "size_cm" in raw.columns:
        frame["size_cm"] = _check_numeric(raw, "size_cm", rows, used, add,
                                          lambda v: v > 0, "a lesion diameter in cm > 0")
    if "margin_mm" in raw.columns:
        frame["margin_mm"] = _check_numeric(raw, "margin_mm", rows, used, add,
                                            lambda v: v >= 0, "a minimal ablation margin in "
                                                              "mm ≥ 0")
        frame["margin_lt_5mm"] = np.where(np.isfinite(frame["margin_mm"]),
                                          (frame["margin_mm"] < MARGIN_THRESHOLD_MM)
                                          .astype(float), np.nan)
    if "modality" in raw.columns:
        frame["modality"] = _check_modality(raw, rows, "modality" in used, add)

    for cov in covariates:
        if cov in frame.columns:
            values = frame[cov]
        elif cov in raw.columns:
            values = _check_generic(raw, cov, rows, add)
            frame[cov] = values
        else:
            continue  # missing column already reported
        present = values.dropna() if values.dtype != object else values[values != ""]
        if len(present) and present.nunique() < 2:
            add(None, cov, present.iloc[0],
                "a lesion covariate that varies (a constant is not estimable)")

    unscanned = rows[(lower == 0) & upper_blank]
    if unscanned.size:
        warnings.append(DataWarning(source, "lr_lower_months", tuple(int(r) for r in unscanned), 0,
                                    f"{unscanned.size} lesion(s) with no scan after the ablation "
                                    "and no recurrence: they carry no information on LR (kept)"))
    counts = frame.groupby("patient_id").size()
    for p, n in counts[counts > MAX_LESIONS_PER_PATIENT].items():
        where = tuple(int(r) for r in rows[(pid == p).to_numpy()])
        warnings.append(DataWarning(source, "patient_id", where, p,
                                    f"{n} lesions in one patient, more than the "
                                    f"{MAX_LESIONS_PER_PATIENT} expected (kept, please check)"))
    with_lesions = set(pid)
    for p in lookup:
        if p not in with_lesions:
            warnings.append(DataWarning(source, "patient_id", (), p,
                                        "a patient without lesions: informs the death hazard "
                                        "only (kept)"))
    return problems, warnings, frame


def _check_numeric(raw: pd.DataFrame, col: str, rows: np.ndarray, used: set[str], add,
                   ok, expected: str) -> np.ndarray:
    blank = raw[col].map(is_blank).to_numpy()
    values = _parse_numbers(raw[col])
    for i, r in enumerate(rows):
        if blank[i]:
            if col in used:
                add(int(r), col, raw[col].iloc[i], f"{expected} (a covariate of the analysis "
                                                   "may not be missing)")
            continue
        if not np.isfinite(values[i]) or not ok(values[i]):
            add(int(r), col, raw[col].iloc[i], expected)
    return np.where(blank, np.nan, values)


def _check_modality(raw: pd.DataFrame, rows: np.ndarray, used: bool, add) -> np.ndarray:
    text = as_text(raw, "modality")
    out = []
    allowed = sorted(set(MODALITIES.values()))
    for i, r in enumerate(rows):
        v = text.iloc[i]
        if v == "":
            if used:
                add(int(r), "modality", raw["modality"].iloc[i],
                    f"one of {allowed} (a covariate of the analysis may not be missing)")
            out.append("")
            continue
        canon = MODALITIES.get(v.lower())
        if canon is None:
            add(int(r), "modality", v, f"a known ablation modality, one of {allowed}")
            out.append("")
        else:
            out.append(canon)
    return np.array(out, dtype=object)


def _check_generic(raw: pd.DataFrame, col: str, rows: np.ndarray, add) -> pd.Series:
    blank = raw[col].map(is_blank).to_numpy()
    for r in rows[blank]:
        add(int(r), col, raw[col].iloc[r - 1], "a value (covariates may not be missing)")
    numbers = _parse_numbers(raw[col])
    if np.isfinite(numbers[~blank]).all():
        return pd.Series(np.where(blank, np.nan, numbers))
    return as_text(raw, col).reset_index(drop=True)


# ------------------------------------------------------------------------------- both files

def validate_lr_data(patients_raw: pd.DataFrame, lesions_raw: pd.DataFrame, *,
                     patients_source: str, lesions_source: str, reference_arm: str | None,
                     covariates: Sequence[str] = (), patients_sha256: str | None = None,
                     lesions_sha256: str | None = None,
                     subgroups: Sequence[str] = (), **checks: Any) -> LesionTable:
    """Validate both tables and every cross-reference; raise once with all problems.

    ``checks`` (from a spec: :func:`~bayes_ablation.data.schema.plausibility`): the patient
    table's label and plausibility checks; with ``require_events`` at least one lesion must
    show local recurrence, and an arm whose lesions show none is a warning. ``subgroups``:
    binary effect-modifier columns (lesion columns, ``margin_lt_5mm``, or patient columns).
    """
    problems: list[Problem] = []
    patients: PatientTable | None = None
    try:
        patients = validate_lr_patients(patients_raw, patients_source,
                                        reference_arm=reference_arm, sha256=patients_sha256,
                                        **checks)
    except DataValidationError as exc:
        problems.extend(exc.problems)
    lesion_problems, warnings, frame = validate_lesions(
        lesions_raw, lesions_source, patients_raw, covariates=covariates)
    problems.extend(lesion_problems)
    subgroup_values: dict[str, np.ndarray] = {}
    if subgroups and not lesion_problems:
        derived = {c: (frame[c].to_numpy(float), src) for c, src in DERIVED_COVARIATES.items()
                   if c in frame.columns}
        subgroup_values, found = lesion_subgroups(
            lesions_raw, patients_raw, frame["patient_id"], subgroups,
            lesions_source=lesions_source, patients_source=patients_source, derived=derived)
        problems.extend(found)
    if patients is not None and not lesion_problems:
        arm_of = dict(zip(patients.frame["patient_id"], patients.frame["arm"], strict=True))
        lesion_arms = set(frame["patient_id"].map(arm_of))
        for arm in patients.arms:
            if arm not in lesion_arms:
                problems.append(Problem(lesions_source, None, "patient_id", arm,
                                        "every arm to have at least one lesion"))
        lr_arms = frame.loc[frame["lr_observed"] == 1, "patient_id"].map(arm_of)
        if checks.get("require_events") and not problems and not len(lr_arms):
            problems.append(Problem(lesions_source, None, "lr_upper_months", None,
                                    f"at least one local recurrence (none of {len(frame)} "
                                    "lesions has an lr_upper_months: there is nothing to "
                                    "estimate)"))
        elif checks.get("require_events"):
            lesion_arm = frame["patient_id"].map(arm_of).to_numpy()
            for arm in patients.arms:
                if arm in lesion_arms and arm not in set(lr_arms):
                    where = tuple(int(r) for r in np.flatnonzero(lesion_arm == arm) + 1)
                    warnings.append(DataWarning(
                        lesions_source, "lr_upper_months", where, arm,
                        f"arm {arm!r} has no local recurrence ({len(where)} lesions): its "
                        "estimates rest on the prior and the other arms"))
    if problems:
        raise DataValidationError(problems)
    assert patients is not None
    position = {p: i for i, p in enumerate(patients.frame["patient_id"])}
    frame.insert(2, "patient_idx", frame["patient_id"].map(position).astype(np.int64))
    for column, values in subgroup_values.items():
        frame[column] = values
    digest = lesions_sha256 if lesions_sha256 is not None else \
        frame_sha256(lesions_raw.astype(str))
    return LesionTable(frame=frame, patients=patients, covariates=tuple(covariates),
                       source=lesions_source, sha256=digest, warnings=tuple(warnings),
                       subgroups=tuple(subgroup_values))


def read_lr_data(patients_path: str | Path | pd.DataFrame,
                 lesions_path: str | Path | pd.DataFrame, spec: object | None = None,
                 *, reference_arm: str | None = None,
                 covariates: Sequence[str] | None = None) -> LesionTable:
    """Read and validate an LR patient table and lesion table (CSV or Parquet files, or pandas
    DataFrames, validated exactly like files).

    With a spec, the reference arm and the lesion covariates come from it. The returned
    :class:`LesionTable` carries its validated ``patients``.
    """
    checks = plausibility(spec)
    if spec is not None:
        reference_arm = reference_arm or getattr(spec, "reference_arm", None)
        if covariates is None:
            covariates = getattr(spec, "covariates", ())
    problems: list[Problem] = []
    tables: list[pd.DataFrame | None] = []
    sources, digests = [], []
    for name, path in (("patients", patients_path), ("lesions", lesions_path)):
        if isinstance(path, pd.DataFrame):
            tables.append(path)
            sources.append(f"<DataFrame> {name}")
            digests.append(None)
            continue
        if not isinstance(path, str | Path):
            raise TypeError(f"read_lr_data takes file paths or pandas DataFrames, got "
                            f"{type(path).__name__} for the {name} table")
        sources.append(str(path))
        try:
            tables.append(read_raw_table(path))
            digests.append(file_sha256(path))
        except DataValidationError as exc:
            problems.extend(exc.problems)
            tables.append(None)
            digests.append(None)
    if problems:
        raise DataValidationError(problems)
    return validate_lr_data(tables[0], tables[1], patients_source=sources[0],
                            lesions_source=sources[1], reference_arm=reference_arm,
                            covariates=tuple(covariates or ()),
                            patients_sha256=digests[0], lesions_sha256=digests[1],
                            **{"subgroups": tuple(getattr(spec, "subgroups", ())), **checks})


def lr_data_from_frames(patients: pd.DataFrame, lesions: pd.DataFrame, *,
                        reference_arm: str | None, covariates: Sequence[str] = (),
                        source: str = "<DataFrame>", subgroups: Sequence[str] = ()
                        ) -> LesionTable:
    """Validate in-memory tables (e.g. from the simulator) exactly like files."""
    return validate_lr_data(patients, lesions, patients_source=f"{source} patients",
                            lesions_source=f"{source} lesions", reference_arm=reference_arm,
                            covariates=tuple(covariates), subgroups=tuple(subgroups))


def design_row(lesions: LesionTable, values: dict, *, source: str = "<spec>") -> np.ndarray:
    """Covariate vector of one hypothetical lesion described by ``values`` (e.g. ``{"size_cm":
    2.0, "margin_mm": 10.0, "modality": "MWA"}``), coded exactly like
    :meth:`LesionTable.design_matrix`. A covariate ``values`` does not name gets x = 0 (its mean
    for a numeric covariate, the reference level for a categorical one); ``margin_lt_5mm`` may
    be given directly or through ``margin_mm``. Keys naming no covariate are ignored.
    """
    from bayes_ablation.errors import SpecError

    _, names, centres = lesions.design_matrix()
    row = dict.fromkeys(names, 0.0)
    errors = []
    for cov in lesions.covariates:
        series = lesions.frame[cov]
        given = values.get(cov)
        if given is None and cov in DERIVED_COVARIATES and DERIVED_COVARIATES[cov] in values:
            src = values[DERIVED_COVARIATES[cov]]
            if isinstance(src, int | float) and not isinstance(src, bool):
                given = float(src < MARGIN_THRESHOLD_MM)
            else:
                errors.append(f"reference_lesion {DERIVED_COVARIATES[cov]} must be a number, "
                              f"got {src!r}")
                continue
        if given is None:
            continue
        if cov in centres:
            if isinstance(given, bool) or not isinstance(given, int | float):
                errors.append(f"reference_lesion {cov} must be a number, got {given!r}")
                continue
            row[cov] = float(given) - centres[cov]
        else:
            levels = sorted(series.astype(str).unique())
            label = MODALITIES.get(str(given).lower(), str(given)) if cov == "modality" \
                else str(given)
            if label not in levels:
                errors.append(f"reference_lesion {cov} = {given!r} is not a level in the data "
                              f"{levels}")
                continue
            for level in levels[1:]:
                row[f"{cov}[{level}]"] = float(label == level)
    if errors:
        raise SpecError(source, errors)
    return np.array([row[n] for n in names], dtype=float)
