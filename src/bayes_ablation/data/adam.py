"""CDISC ADaM input: an ADTTE parameter and its ADSL as the package's patient (and dated) table.

Files: SAS transport (``.xpt``, version 5 or 8), ``.sas7bdat`` (both read with pyreadstat),
CSV or Parquet. Column names are matched without regard to case. The mapping (recorded in
provenance, :attr:`AdamData.mapping`):

========================  ==========================================================
ADaM                      package
========================  ==========================================================
``USUBJID``               ``patient_id``
``SITEID`` (ADSL)         ``site`` (when ADTTE also has ``SITEID`` the two must agree)
``TRT01P`` (ADSL)         ``arm`` (``arm_var``: ``TRT01A``, ``ARM``, …)
``AVAL``                  ``time_months`` = ``AVAL`` × months per unit; the unit from
                          ``AVALU``, else from ``PARAM`` ("… (days)"), else ``aval_unit``;
                          1 month = 30.4375 days (365.25 / 12), 1 week = 7 days,
                          1 year = 12 months
``CNSR``                  ``event`` = 1 when ``CNSR = 0`` (ADaM's CNSR is a *censoring*
                          flag, the opposite of ``event``); any integer ≥ 1 is censored
ADSL columns              covariates by name (the spec's ``covariates``)
``STARTDT``, ``ADT``      the dated table of ``monitor``: ``randomised_on = STARTDT``,
                          ``last_followup_on = ADT``, ``progressed_on = ADT`` when
                          ``CNSR = 0``; ``withdrawn`` when ADSL ``EOSSTT = DISCONTINUED``
========================  ==========================================================

Refused, all problems in one :class:`~bayes_ablation.errors.DataValidationError`: a missing
column, a ``PARAMCD`` not in the file (the codes present are listed), a subject twice within
the parameter (or twice in ADSL), ADTTE subjects missing from ADSL, ``SITEID`` disagreeing
between the two, ``CNSR`` not an integer ≥ 0, an ``AVAL`` without a unit (or a unit that
contradicts ``aval_unit``), and everything the patient table refuses (labels, plausibility),
each named by file, row (the row in *that* file) and ADaM column.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.data.cut import (
    _BAD,
    DAYS_PER_MONTH,
    DatedTable,
    _date_or_none,
    check_dated_labels,
)
from bayes_ablation.data.io import file_sha256, read_raw_table
from bayes_ablation.data.schema import (
    PatientTable,
    _parse_numbers,
    as_text,
    plausibility,
    validate_patients,
)
from bayes_ablation.errors import DataValidationError, DataWarning, Problem

ADAM_SUFFIXES = (".xpt", ".sas7bdat", ".csv", ".parquet", ".pq")
#: months per AVAL unit as (numerator, denominator): months = AVAL × num / den, so that days
#: give exactly AVAL / 30.4375 (accepted spellings, upper case)
MONTHS_PER_UNIT = {
    **dict.fromkeys(("DAYS", "DAY", "D"), (1.0, DAYS_PER_MONTH)),
    **dict.fromkeys(("WEEKS", "WEEK", "WK", "WKS", "W"), (7.0, DAYS_PER_MONTH)),
    **dict.fromkeys(("MONTHS", "MONTH", "MO", "MOS", "MON"), (1.0, 1.0)),
    **dict.fromkeys(("YEARS", "YEAR", "YR", "YRS", "Y"), (12.0, 1.0)),
}
_CANONICAL = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}
_PARAM_UNIT = re.compile(r"\(\s*(days?|weeks?|months?|years?)\s*\)", re.IGNORECASE)
SAS_EPOCH = dt.date(1960, 1, 1)
_log = logging.getLogger("bayes_ablation")


def unit_name(text: str) -> str | None:
    """The canonical unit ('days', 'weeks', 'months', 'years') of a spelling, or None."""
    key = str(text).strip().upper()
    if key not in MONTHS_PER_UNIT:
        return None
    return _CANONICAL[key[0]] if key[0] != "M" else "months"


@dataclass(frozen=True)
class AdamData:
    """A validated ADaM parameter: the patient table of ``fit``, the dated table of ``monitor``
    (None when ``STARTDT``/``ADT`` are absent and were not required) and the mapping used."""

    patients: PatientTable
    dated: DatedTable | None
    mapping: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """The mapping in words, one line each (printed by the command line)."""
        m = self.mapping
        lines = [f"ADaM input: {m['adtte']} (PARAMCD = {m['paramcd']!r}"
                 + (f", {m['param']!r}" if m.get("param") else "") + f") + {m['adsl']}"]
        lines += [f"  {src} -> {dst}" for src, dst in m["columns"].items()]
        lines.append(f"  AVAL unit: {m['aval_unit']} (from {m['aval_unit_from']}); "
                     f"{m['days_per_month']} days per month")
        return lines


def read_adam_table(path: str | Path) -> pd.DataFrame:
    """One ADaM dataset (``.xpt``, ``.sas7bdat``, CSV or Parquet) with upper-case column
    names; unreadable files raise the package's error naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ADAM_SUFFIXES:
        raise DataValidationError([Problem(str(path), None, None, suffix or path.name,
                                           f"a file ending in {', '.join(ADAM_SUFFIXES)}")])
    if suffix in (".csv", ".parquet", ".pq"):
        frame = read_raw_table(path)
    else:
        if not path.is_file():
            raise DataValidationError([Problem(str(path), None, None, None, "an existing file")])
        import pyreadstat

        reader = pyreadstat.read_xport if suffix == ".xpt" else pyreadstat.read_sas7bdat
        kind = "SAS transport (.xpt)" if suffix == ".xpt" else "SAS (.sas7bdat)"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame, _ = reader(str(path))
        except Exception as exc:  # pyreadstat raises its own types and ValueError/OSError
            raise DataValidationError([Problem(str(path), None, None, None,
                                               f"a readable {kind} file ({exc})")]) from None
        for w in caught:  # said in the package's words, once each, never raw
            _log.warning("note: reading %s, pyreadstat warned: %s", path,
                         str(w.message).strip().splitlines()[0] if str(w.message).strip()
                         else w.category.__name__)
    renamed = {c: str(c).strip().upper() for c in frame.columns}
    frame = frame.rename(columns=renamed)
    if frame.columns.duplicated().any():
        dup = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
        raise DataValidationError([Problem(str(path), None, c, None, "one column of this name "
                                           "(names are matched without regard to case)")
                                   for c in dup])
    return frame


def read_adam(adtte: str | Path, adsl: str | Path, paramcd: str, spec: object | None = None,
              *, arm_var: str = "TRT01P", aval_unit: str | None = None,
              reference_arm: str | None = None, covariates: Sequence[str] | None = None,
              require_dates: bool = False) -> AdamData:
    """Read parameter ``paramcd`` of ``adtte`` with the subject data of ``adsl`` (see the
    module docstring for the mapping and the checks); with a spec, its reference arm,
    covariates and label/plausibility checks apply. ``require_dates``: ``STARTDT`` and ``ADT``
    must be present (``monitor``)."""
    problems: list[Problem] = []
    frames: dict[str, pd.DataFrame] = {}
    for name, path in (("ADTTE", adtte), ("ADSL", adsl)):
        try:
            frames[name] = read_adam_table(path)
        except DataValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DataValidationError(problems)
    checks = plausibility(spec)
    if spec is not None:
        reference_arm = reference_arm or getattr(spec, "reference_arm", None)
        if covariates is None:
            covariates = getattr(spec, "covariates", ())
    return validate_adam(frames["ADTTE"], frames["ADSL"], paramcd, adtte_source=str(adtte),
                         adsl_source=str(adsl), arm_var=arm_var, aval_unit=aval_unit,
                         reference_arm=reference_arm, covariates=tuple(covariates or ()),
                         require_dates=require_dates,
                         sha256=_digest(adtte, adsl, paramcd, arm_var, aval_unit), **checks)


def _digest(adtte: str | Path, adsl: str | Path, *parts: object) -> str:
    text = json.dumps([file_sha256(adtte), file_sha256(adsl), *map(str, parts)])
    return hashlib.sha256(text.encode()).hexdigest()


def validate_adam(tte: pd.DataFrame, sl: pd.DataFrame, paramcd: str, *, adtte_source: str,
                  adsl_source: str, arm_var: str = "TRT01P", aval_unit: str | None = None,
                  reference_arm: str | None = None, covariates: Sequence[str] = (),
                  require_dates: bool = False, sha256: str | None = None,
                  **checks: Any) -> AdamData:
    """Validate ADTTE/ADSL frames (upper-case columns, as :func:`read_adam_table` gives them)
    and map them; raise once with every problem."""
    problems: list[Problem] = []

    def add(file: str, row: int | None, column: str | None, value: object, expected: str
            ) -> None:
        problems.append(Problem(file, row, column, value, expected))

    arm_var = arm_var.strip().upper()
    cov_columns = {c: c.strip().upper() for c in covariates}
    forced_unit = None
    if aval_unit is not None:
        forced_unit = unit_name(aval_unit)
        if forced_unit is None:
            add("--aval-unit", None, None, aval_unit, "one of days, weeks, months, years")

    def need(frame: pd.DataFrame, file: str, columns: Sequence[str], why: str = "") -> None:
        for col in columns:
            if col not in frame.columns:
                add(file, None, col, None, f"a column named '{col}'{why} (columns present: "
                    f"{', '.join(map(str, frame.columns)) or 'none'})")

    need(tte, adtte_source, ("USUBJID", "PARAMCD", "AVAL", "CNSR"))
    need(sl, adsl_source, ("USUBJID", arm_var), "" if arm_var == "TRT01P" else " (--arm-var)")
    if "SITEID" not in sl.columns and "SITEID" not in tte.columns:
        need(sl, adsl_source, ("SITEID",))
    need(sl, adsl_source, list(cov_columns.values()), " (a covariate of the spec)")
    if require_dates:
        need(tte, adtte_source, ("ADT",))
        if "STARTDT" not in tte.columns and "STARTDT" not in sl.columns:
            need(tte, adtte_source, ("STARTDT",))
    if len(sl) == 0:
        add(adsl_source, None, None, None, "at least one subject row")
    if "PARAMCD" in tte.columns:
        codes = as_text(tte, "PARAMCD")
        if not (codes == paramcd).any():
            present = sorted(set(codes) - {""})
            add(adtte_source, None, "PARAMCD", paramcd,
                f"a parameter code present in the file (present: {', '.join(present) or 'none'})")
    if problems:
        raise DataValidationError(problems)

    # ------------------------------------------------------------------- subjects and rows
    selected = np.flatnonzero((as_text(tte, "PARAMCD") == paramcd).to_numpy())
    tte = tte.iloc[selected].reset_index(drop=True)
    tte_rows = selected + 1
    subject = as_text(tte, "USUBJID")
    sl_subject = as_text(sl, "USUBJID")
    sl_row: dict[str, int] = {}
    for i, sid in enumerate(sl_subject):
        if sid == "":
            add(adsl_source, i + 1, "USUBJID", sl["USUBJID"].iloc[i], "a non-empty subject id")
        elif sid in sl_row:
            add(adsl_source, i + 1, "USUBJID", sid,
                f"one row per subject (also on row {sl_row[sid]})")
        else:
            sl_row[sid] = i + 1
    keep: list[int] = []
    seen: dict[str, int] = {}
    for i, sid in enumerate(subject):
        r = int(tte_rows[i])
        if sid == "":
            add(adtte_source, r, "USUBJID", tte["USUBJID"].iloc[i], "a non-empty subject id")
        elif sid in seen:
            add(adtte_source, r, "USUBJID", sid,
                f"one row per subject within PARAMCD = {paramcd!r} (also on row {seen[sid]})")
        elif sid not in sl_row:
            seen[sid] = r
            add(adtte_source, r, "USUBJID", sid, f"a subject of {adsl_source} (ADTTE subject "
                "missing from ADSL)")
        else:
            seen[sid] = r
            keep.append(i)
    keep_a = np.asarray(keep, dtype=np.int64)
    sl_pos = np.array([sl_row[subject.iloc[i]] - 1 for i in keep], dtype=np.int64)

    # ------------------------------------------------------------------------------ sites
    site_source = adsl_source if "SITEID" in sl.columns else adtte_source
    if "SITEID" in sl.columns:
        sl_site = as_text(sl, "SITEID").to_numpy()
        site = sl_site[sl_pos]
        if "SITEID" in tte.columns:
            tte_site = as_text(tte, "SITEID").to_numpy()
            for i, p in zip(keep, sl_pos, strict=True):
                if tte_site[i] != sl_site[p]:
                    add(adtte_source, int(tte_rows[i]), "SITEID", tte_site[i],
                        f"the subject's SITEID in {adsl_source} ({sl_site[p]!r}, row {p + 1})")
    else:
        site = as_text(tte, "SITEID").to_numpy()[keep_a]

    # ------------------------------------------------------------------------------- CNSR
    cnsr_raw = tte["CNSR"]
    cnsr = _parse_numbers(cnsr_raw)
    event = np.zeros(len(tte), dtype=np.int64)
    cnsr_bad = False
    for i in keep:
        v = cnsr[i]
        if not np.isfinite(v) or v < 0 or v != np.round(v):
            cnsr_bad = True
            add(adtte_source, int(tte_rows[i]), "CNSR", cnsr_raw.iloc[i],
                "an integer ≥ 0 (0 = the event happened, ≥ 1 = censored)")
        else:
            event[i] = int(v == 0)

    # ------------------------------------------------------------------------------- AVAL
    aval_raw = tte["AVAL"]
    aval = _parse_numbers(aval_raw)
    unit_of, unit_from = _units(tte, keep, tte_rows, forced_unit, aval_unit, adtte_source, add)
    months = np.full(len(tte), 1.0)   # placeholder where the unit is unknown (reported)
    for i in keep:
        if unit_of[i] is not None:
            num, den = MONTHS_PER_UNIT[unit_of[i].upper()]
            months[i] = aval[i] * num / den

    # ------------------------------------------------------------------ the patient table
    frame = pd.DataFrame({
        "patient_id": subject.to_numpy()[keep_a],
        "site": site,
        "arm": sl[arm_var].to_numpy()[sl_pos],
        "time_months": months[keep_a],
        "event": event[keep_a],
    })
    for cov, col in cov_columns.items():
        frame[cov] = sl[col].to_numpy()[sl_pos]
    adsl_cols = {"site": "SITEID", "arm": arm_var, **cov_columns}
    tte_cols = {"patient_id": "USUBJID", "time_months": "AVAL", "event": "CNSR"}
    row_in_adsl = sl_pos + 1
    adtte_row_of = dict(zip(row_in_adsl.tolist(), tte_rows[keep_a].tolist(), strict=True))
    source = f"{adtte_source} [PARAMCD={paramcd}] + {adsl_source}"
    patients: PatientTable | None = None
    if len(frame):
        if cnsr_bad:
            checks = {**checks, "require_events": False}
        try:
            patients = validate_patients(
                frame, source, reference_arm=reference_arm, covariates=tuple(cov_columns),
                row_numbers=row_in_adsl, sha256=sha256, event_name="event (CNSR = 0)",
                **checks)
        except DataValidationError as exc:
            for p in exc.problems:
                problems.append(_to_adam(p, adsl_cols, tte_cols, adsl_source, adtte_source,
                                         site_source, adtte_row_of, aval_raw, keep_a,
                                         tte_rows, unit_of))
    elif not problems:
        add(adtte_source, None, "USUBJID", None, f"at least one subject with PARAMCD = "
            f"{paramcd!r} in both ADTTE and ADSL")

    dated_frame = None
    has_dates = "ADT" in tte.columns and ("STARTDT" in tte.columns or "STARTDT" in sl.columns)
    if require_dates and has_dates and len(frame):
        dated_frame = _dates(tte, sl, keep, sl_pos, tte_rows, event, adtte_source,
                             adsl_source, add, site=site, arm=as_text(frame, "arm").to_numpy())
    if problems:
        raise DataValidationError(problems)
    assert patients is not None

    unit_note = sorted({u for u in (unit_of[i] for i in keep) if u is not None})
    mapping: dict[str, Any] = {
        "format": "CDISC ADaM", "adtte": adtte_source, "adsl": adsl_source,
        "paramcd": paramcd, "param": _param_text(tte),
        "columns": {"USUBJID": "patient_id", "SITEID": "site", arm_var: "arm",
                    "AVAL": "time_months", "CNSR": "event (event = 1 when CNSR = 0)",
                    **{col: f"covariate {cov}" for cov, col in cov_columns.items()}},
        "aval_unit": ", ".join(unit_note), "aval_unit_from": ", ".join(sorted(unit_from)),
        "days_per_month": DAYS_PER_MONTH, "n_subjects": len(frame),
        "n_adtte_rows": len(selected),
    }
    if dated_frame is not None:
        mapping["columns"].update({"STARTDT": "randomised_on",
                                   "ADT": "last_followup_on (and progressed_on when CNSR = 0)"})
        if "EOSSTT" in sl.columns:
            mapping["columns"]["EOSSTT"] = "withdrawn (EOSSTT = DISCONTINUED)"
    patients = replace(patients, extra={**patients.extra, "input_mapping": mapping},
                       warnings=tuple(_warning_to_adam(w, adsl_cols, adsl_source, site_source,
                                                       adtte_row_of)
                                      for w in patients.warnings))
    dated = None
    if dated_frame is not None:
        for cov in cov_columns:
            dated_frame[cov] = patients.frame[cov].to_numpy()
        dated_frame["row"] = row_in_adsl
        at_cut = {k: v for k, v in checks.items() if k in ("arms", "max_time_months")}
        dated = DatedTable(frame=dated_frame, covariates=tuple(cov_columns), source=source,
                           sha256=sha256 or patients.sha256, checks=at_cut,
                           extra={"input_mapping": mapping})
        if checks:
            try:
                check_dated_labels(dated_frame, source, {k: v for k, v in checks.items()
                                                         if k != "require_events"})
            except DataValidationError as exc:
                raise DataValidationError([
                    replace(p, file=adtte_source, row=adtte_row_of.get(p.row), column="ADT")
                    if p.column in ("progressed_on", "last_followup_on") and p.row is not None
                    else _to_adam(p, adsl_cols, tte_cols, adsl_source, adtte_source,
                                  site_source, adtte_row_of, None, keep_a, tte_rows, unit_of)
                    for p in exc.problems]) from None
    return AdamData(patients=patients, dated=dated, mapping=mapping)


def _param_text(tte: pd.DataFrame) -> str | None:
    if "PARAM" not in tte.columns or not len(tte):
        return None
    values = [v for v in pd.unique(as_text(tte, "PARAM")) if v]
    return values[0] if len(values) == 1 else (", ".join(values) or None)


def _units(tte: pd.DataFrame, keep: list[int], tte_rows: np.ndarray, forced: str | None,
           given: str | None, source: str, add) -> tuple[list[str | None], set[str]]:
    """The unit of each selected row's AVAL: AVALU, else PARAM's "(days)", else --aval-unit."""
    avalu = as_text(tte, "AVALU").to_numpy() if "AVALU" in tte.columns else None
    param = as_text(tte, "PARAM").to_numpy() if "PARAM" in tte.columns else None
    out: list[str | None] = [None] * len(tte)
    used: set[str] = set()
    for i in keep:
        r = int(tte_rows[i])
        found, where = None, None
        if avalu is not None and avalu[i] != "":
            found = unit_name(avalu[i])
            if found is None:
                add(source, r, "AVALU", avalu[i], "a unit of AVAL: days, weeks, months or years")
                continue
            where = "AVALU"
        elif param is not None and (m := _PARAM_UNIT.search(param[i])):
            found, where = unit_name(m.group(1)), "PARAM"
        if found is not None and forced is not None and found != forced:
            add(source, r, where, avalu[i] if where == "AVALU" else param[i],
                f"a unit agreeing with --aval-unit {given} (the data say {found}; units never "
                "change silently: drop --aval-unit or fix the data)")
            continue
        if found is None:
            if forced is None:
                if given is None:
                    add(source, r, "AVALU", None, "the unit of AVAL: an AVALU column, a unit in "
                        "PARAM such as '(days)', or --aval-unit days|weeks|months|years")
                continue
            found, where = forced, "--aval-unit"
        out[i] = found
        used.add(where)
    return out, used


def _to_adam(p: Problem, adsl_cols: dict[str, str], tte_cols: dict[str, str], adsl_source: str,
             adtte_source: str, site_source: str, adtte_row_of: dict[int, int],
             aval_raw: pd.Series | None, keep: np.ndarray, tte_rows: np.ndarray,
             unit_of: list[str | None]) -> Problem:
    """A patient-table problem in ADaM terms: the file, row and column it comes from."""
    col = p.column
    if col in tte_cols:
        row = adtte_row_of.get(p.row) if p.row is not None else None
        value, expected = p.value, p.expected
        if col == "time_months" and row is not None:
            i = int(np.flatnonzero(tte_rows == row)[0]) if aval_raw is not None else None
            if i is not None:
                value = aval_raw.iloc[i]
                value = value.item() if hasattr(value, "item") else value
                unit = unit_of[i]
                shown = f"{value:g}" if isinstance(value, float) else repr(value)
                expected = (f"{p.expected} [AVAL {shown} {unit} = {p.value:.6g} months]"
                            if isinstance(p.value, float) and np.isfinite(p.value) and unit
                            else p.expected)
        elif col == "event":
            expected = p.expected.replace("event = 1", "CNSR = 0")
        return replace(p, file=adtte_source, row=row, column=tte_cols[col], value=value,
                       expected=expected)
    if col == "site" and site_source == adtte_source:  # SITEID only in ADTTE
        row = adtte_row_of.get(p.row) if p.row is not None else None
        return replace(p, file=adtte_source, row=row, column="SITEID")
    if col in adsl_cols:
        return replace(p, file=adsl_source, column=adsl_cols[col])
    if p.row is None and col is None:
        return replace(p, file=adtte_source)
    return replace(p, file=adsl_source)


def _warning_to_adam(w: DataWarning, adsl_cols: dict[str, str], adsl_source: str,
                     site_source: str, adtte_row_of: dict[int, int]) -> DataWarning:
    if w.column == "site" and site_source != adsl_source:  # SITEID only in ADTTE
        return replace(w, file=site_source, column="SITEID",
                       rows=tuple(adtte_row_of[r] for r in w.rows))
    if w.column in adsl_cols:
        return replace(w, file=adsl_source, column=adsl_cols[w.column])
    return w


def _dates(tte: pd.DataFrame, sl: pd.DataFrame, keep: list[int], sl_pos: np.ndarray,
           tte_rows: np.ndarray, event: np.ndarray, adtte_source: str, adsl_source: str,
           add, *, site: np.ndarray, arm: np.ndarray) -> pd.DataFrame:
    """The dated table (``cut``'s columns) of the kept subjects; date problems are added."""
    start_in_tte = "STARTDT" in tte.columns
    start_col = tte["STARTDT"] if start_in_tte else sl["STARTDT"]
    start_file = adtte_source if start_in_tte else adsl_source
    randomised, last, progressed = [], [], []
    for j, i in enumerate(keep):
        si = i if start_in_tte else int(sl_pos[j])
        start_row = int(tte_rows[i]) if start_in_tte else si + 1
        start = _sas_date(start_col.iloc[si])
        end = _sas_date(tte["ADT"].iloc[i])
        if start is None or start is _BAD:
            add(start_file, start_row, "STARTDT", start_col.iloc[si],
                "the date of randomisation (a SAS date or YYYY-MM-DD)")
            start = None
        if end is None or end is _BAD:
            add(adtte_source, int(tte_rows[i]), "ADT", tte["ADT"].iloc[i],
                "the date of the event or censoring (a SAS date or YYYY-MM-DD)")
            end = None
        if start is not None and end is not None and end < start:
            add(adtte_source, int(tte_rows[i]), "ADT", end.isoformat(),
                f"a date on or after STARTDT ({start.isoformat()})")
        randomised.append(start)
        last.append(end)
        progressed.append(end if event[i] == 1 else None)
    withdrawn = np.zeros(len(keep), dtype=bool)
    if "EOSSTT" in sl.columns:
        withdrawn = (as_text(sl, "EOSSTT").str.upper().to_numpy()[sl_pos] == "DISCONTINUED")
    kept = np.asarray(keep, dtype=np.int64)
    return pd.DataFrame({
        "patient_id": as_text(tte, "USUBJID").to_numpy()[kept],
        "site": site,
        "arm": arm,
        "randomised_on": pd.Series(randomised, dtype=object).to_numpy(),
        "progressed_on": pd.Series(progressed, dtype=object).to_numpy(),
        "last_followup_on": pd.Series(last, dtype=object).to_numpy(),
        "withdrawn": withdrawn,
    })


def _sas_date(value: object) -> dt.date | object | None:
    """A SAS date (days since 1960-01-01, as pyreadstat gives an unformatted date), a date, a
    timestamp at midnight or ``YYYY-MM-DD``; None when blank, ``_BAD`` when unreadable."""
    if isinstance(value, float | int | np.floating | np.integer) and not isinstance(value, bool):
        if not np.isfinite(value):
            return None
        if value != np.round(value) or abs(value) > 3e6:
            return _BAD
        return SAS_EPOCH + dt.timedelta(days=int(value))
    return _date_or_none(value)
