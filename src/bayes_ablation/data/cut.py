"""Calendar data cuts: a dated patient table → the time/event table as known on a date.

Dated table columns: ``patient_id, site, arm, randomised_on, progressed_on, last_followup_on``
(ISO dates ``YYYY-MM-DD``; Parquet date columns also accepted), an optional ``withdrawn``
(0/1, blank = 0: the patient left follow-up at ``last_followup_on``) and the covariates.

Rules (checked for every row; every problem is reported at once):

* ``randomised_on`` is required; ``progressed_on`` and ``last_followup_on`` may be blank, but
  not both (a patient not seen since randomisation has ``last_followup_on = randomised_on``).
* neither ``progressed_on`` nor ``last_followup_on`` may precede ``randomised_on``;
* ``progressed_on`` may not be after ``last_followup_on`` when both are given:
  ``last_followup_on`` is the last contact, and a progression cannot be known after it.

Cut on date *c* (everything dated on or before *c* is known on *c*):

* patients randomised after *c* are excluded (counted in ``CutData.n_randomised_after``);
* a progression on or before *c* is an event at ``progressed_on``;
* otherwise the patient is censored at ``min(last_followup_on, c)`` (a progression after *c*
  is censored at the cut; follow-up after *c* is truncated at the cut; a patient without
  follow-up date but with a later progression is censored at *c*).

Time convention (CDISC ADaM ``AVAL = ADT − STARTDT + 1``): the day of randomisation counts, so
``time_months = (date − randomised_on + 1 day) / 30.4375`` (30.4375 = 365.25 / 12 days per
month) and is always > 0.
"""

from __future__ import annotations

import datetime as dt
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
    as_text,
    is_blank,
    plausibility,
    validate_patients,
)
from bayes_ablation.errors import DataValidationError, Problem

DAYS_PER_MONTH = 30.4375
DATE_COLUMNS = ("randomised_on", "progressed_on", "last_followup_on")
DATED_COLUMNS = ("patient_id", "site", "arm", *DATE_COLUMNS)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_iso_date(value: object, what: str = "date") -> dt.date:
    """A ``YYYY-MM-DD`` string (or date) as a :class:`datetime.date`; ValueError otherwise."""
    parsed = _date_or_none(value)
    if parsed is None or parsed is _BAD:
        raise ValueError(f"{what} must be an ISO date YYYY-MM-DD, got {value!r}")
    return parsed  # type: ignore[return-value]


_BAD = object()


def _date_or_none(value: object) -> dt.date | object | None:
    """date, None (blank) or _BAD (unparsable)."""
    if is_blank(value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        return ts.date() if ts == ts.normalize() else _BAD
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return _date_or_none(pd.Timestamp(value))
    text = str(value).strip()
    if not _ISO.match(text):
        return _BAD
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return _BAD


def months_between(start: dt.date, end: dt.date) -> float:
    """Calendar months from ``start`` to ``end`` (days / 30.4375; no +1 day)."""
    return (end - start).days / DAYS_PER_MONTH


@dataclass(frozen=True)
class DatedTable:
    """A validated dated patient table (dates as ``datetime.date`` or None)."""

    frame: pd.DataFrame
    covariates: tuple[str, ...]
    source: str
    sha256: str
    #: the spec's label and plausibility checks the table was validated with (applied again to
    #: the table as known at each cut); ``row`` = each patient's row in the file
    checks: dict = field(default_factory=dict)
    #: where the table came from when it is not the package's own format (e.g. ADaM mapping)
    extra: dict = field(default_factory=dict)

    @property
    def n_patients(self) -> int:
        return len(self.frame)

    @property
    def first_randomised(self) -> dt.date:
        return min(self.frame["randomised_on"])


@dataclass(frozen=True)
class CutData:
    """The data as known on ``cut_date``.

    ``patients`` is the analysable time/event table (rows in the dated table's order, later
    randomisations left out). Per patient, aligned with ``patients.frame``:
    ``followup_at_cut`` = potential follow-up on the cut date (months, the time a patient still
    in follow-up would have if seen on the cut date), ``withdrawn`` = left follow-up on or before
    the cut (no further information will come), ``randomised_months`` = months from
    ``start_date`` to randomisation.
    """

    patients: PatientTable
    cut_date: dt.date
    start_date: dt.date
    followup_at_cut: np.ndarray
    withdrawn: np.ndarray
    randomised_months: np.ndarray
    n_randomised_after: int
    n_progressions_after: int

    @property
    def cut_months(self) -> float:
        """Months from ``start_date`` to the cut."""
        return months_between(self.start_date, self.cut_date)

    @property
    def n_events(self) -> int:
        return int(self.patients.event.sum())

    def describe(self) -> str:
        p = self.patients
        return (f"cut {self.cut_date.isoformat()}: {p.n_patients} patients randomised, "
                f"{self.n_events} progressions known; {self.n_randomised_after} randomised "
                f"later (excluded), {self.n_progressions_after} later progressions censored "
                f"at the cut, {int(self.withdrawn.sum())} withdrawn")


def validate_dated(raw: pd.DataFrame, source: str, *, covariates: Sequence[str] = (),
                   sha256: str | None = None, **checks: Any) -> DatedTable:
    """Check a raw dated table; return it typed or raise with every problem found.

    ``checks`` (from a spec, :func:`~bayes_ablation.data.schema.plausibility`): the label and
    plausibility checks of the patient table, applied to the whole dated table (declared arms,
    labels that differ only in case or punctuation, patients per arm, follow-up at most
    ``max_time_months``); the table as known at a cut is checked again by :func:`cut`.
    """
    problems: list[Problem] = []

    def add(row: int | None, column: str | None, value: object, expected: str) -> None:
        problems.append(Problem(source, row, column, value, expected))

    for col in (*DATED_COLUMNS, *covariates):
        if col not in raw.columns:
            add(None, col, None, f"a column named '{col}' (columns present: "
                f"{', '.join(map(str, raw.columns))})")
    if len(raw) == 0:
        add(None, None, None, "at least one data row")
    if problems:
        raise DataValidationError(problems)

    n = len(raw)
    rows = np.arange(1, n + 1)
    ids = as_text(raw, "patient_id")
    for col in ("patient_id", "site", "arm"):
        values = as_text(raw, col)
        for r in rows[(values == "").to_numpy()]:
            add(int(r), col, raw[col].iloc[r - 1], "a non-empty label")
    first_row: dict[str, int] = {}
    for r, pid in zip(rows, ids, strict=True):
        if pid and pid in first_row:
            add(int(r), "patient_id", pid, f"a unique id (also on row {first_row[pid]})")
        first_row.setdefault(pid, int(r))

    dates: dict[str, list[dt.date | None]] = {}
    for col in DATE_COLUMNS:
        parsed = []
        for r, value in zip(rows, raw[col], strict=True):
            d = _date_or_none(value)
            if d is _BAD:
                add(int(r), col, value, "an ISO date YYYY-MM-DD (or blank)"
                    if col != "randomised_on" else "an ISO date YYYY-MM-DD")
                d = None
            elif d is None and col == "randomised_on":
                add(int(r), col, value, "the date of randomisation (required)")
            parsed.append(d)  # type: ignore[arg-type]
        dates[col] = parsed

    withdrawn = np.zeros(n, dtype=bool)
    if "withdrawn" in raw.columns:
        for i, value in enumerate(raw["withdrawn"]):
            text = "" if is_blank(value) else str(value).strip()
            if text in ("", "0", "0.0", "False", "false"):
                continue
            if text in ("1", "1.0", "True", "true"):
                withdrawn[i] = True
            else:
                add(i + 1, "withdrawn", value, "0 or 1 (or blank = 0)")

    bad_dates = {(p.row, p.column) for p in problems}
    for i in range(n):
        r = i + 1
        rand, prog, last = (dates[c][i] for c in DATE_COLUMNS)
        if prog is None and last is None and (r, "progressed_on") not in bad_dates \
                and (r, "last_followup_on") not in bad_dates:
            add(r, "last_followup_on", raw["last_followup_on"].iloc[i],
                "a last follow-up date when there is no progression date (use the "
                "randomisation date for a patient not yet seen)")
        if rand is None:
            continue
        if prog is not None and prog < rand:
            add(r, "progressed_on", prog.isoformat(),
                f"a date on or after randomisation ({rand.isoformat()})")
        if last is not None and last < rand:
            add(r, "last_followup_on", last.isoformat(),
                f"a date on or after randomisation ({rand.isoformat()})")
        if prog is not None and last is not None and prog > last:
            add(r, "progressed_on", prog.isoformat(),
                f"a date on or before the last follow-up ({last.isoformat()}): the last "
                "follow-up is the last contact, so a later progression cannot be known")

    for cov in covariates:
        for r in rows[raw[cov].map(is_blank).to_numpy()]:
            add(int(r), cov, raw[cov].iloc[r - 1], "a value (covariates may not be missing)")

    if problems:
        raise DataValidationError(problems)
    frame = pd.DataFrame({
        "patient_id": ids.to_numpy(),
        "site": as_text(raw, "site").to_numpy(),
        "arm": as_text(raw, "arm").to_numpy(),
        **{c: pd.Series(dates[c], dtype=object).to_numpy() for c in DATE_COLUMNS},
        "withdrawn": withdrawn,
    })
    for cov in covariates:
        frame[cov] = raw[cov].to_numpy()
    row = checks.pop("row_numbers", None)
    frame["row"] = np.asarray(row, dtype=np.int64) if row is not None else rows
    if checks:
        check_dated_labels(frame, source, checks)
    digest = sha256 if sha256 is not None else frame_sha256(raw.astype(str))
    # at a cut: the declared arms and the time bound (an early cut may have few patients)
    at_cut = {k: v for k, v in checks.items() if k in ("arms", "max_time_months")}
    return DatedTable(frame=frame, covariates=tuple(covariates), source=source, sha256=digest,
                      checks=at_cut)


def check_dated_labels(frame: pd.DataFrame, source: str, checks: dict[str, Any]) -> None:
    """The patient table's label and plausibility checks on a dated table (``frame`` as built
    by :func:`validate_dated`): the follow-up of each patient up to its last date stands for
    ``time_months``; problems name the dated table's own columns and rows."""
    last = [max(d for d in (p, f) if d is not None)
            for p, f in zip(frame["progressed_on"], frame["last_followup_on"], strict=True)]
    use_prog = [p is not None and (f is None or p >= f)
                for p, f in zip(frame["progressed_on"], frame["last_followup_on"], strict=True)]
    months = [((end - r).days + 1) / DAYS_PER_MONTH
              for end, r in zip(last, frame["randomised_on"], strict=True)]
    pseudo = pd.DataFrame({"patient_id": frame["patient_id"], "site": frame["site"],
                           "arm": frame["arm"], "time_months": months,
                           "event": [int(p is not None) for p in frame["progressed_on"]]})
    position = {int(r): i for i, r in enumerate(frame["row"])}
    try:
        validate_patients(pseudo, source, reference_arm=None,
                          row_numbers=frame["row"].to_numpy(),
                          **{k: v for k, v in checks.items() if k != "require_events"})
    except DataValidationError as exc:
        out = []
        for p in exc.problems:
            if p.column != "time_months" or p.row is None:
                out.append(p)
                continue
            i = position[p.row]
            col = "progressed_on" if use_prog[i] else "last_followup_on"
            expected = p.expected.replace("a plausible time", "a plausible follow-up from "
                                          "randomisation").replace("; is the unit days?",
                                                                   "; a typo in a date?")
            out.append(replace(p, column=col, value=last[i].isoformat(), expected=expected))
        raise DataValidationError(out) from None


def read_dated(path: str | Path | pd.DataFrame, *, covariates: Sequence[str] = (),
               spec: object | None = None) -> DatedTable:
    """Read and validate a dated patient table (CSV or Parquet file, or a pandas DataFrame
    validated exactly like a file). With a spec, its label and plausibility checks apply to
    the whole table and again at each cut."""
    checks = plausibility(spec)
    if isinstance(path, pd.DataFrame):
        return validate_dated(path.astype(str).where(path.notna(), ""), "<DataFrame>",
                              covariates=covariates, sha256=frame_sha256(path.astype(str)),
                              **checks)
    raw = read_raw_table(path)
    return validate_dated(raw, str(path), covariates=covariates, sha256=file_sha256(path),
                          **checks)


def cut(table: DatedTable, date: dt.date | str, *, reference_arm: str | None = None,
        start_date: dt.date | str | None = None) -> CutData:
    """The time/event table as known on ``date`` (see the module docstring for the rules).

    ``start_date`` (default: the first randomisation) only anchors ``randomised_months``.
    Raises :class:`DataValidationError` when nobody was randomised by the cut, or when the
    data as known then cannot be analysed (e.g. only one arm).
    """
    c = parse_iso_date(date, "cut date") if not isinstance(date, dt.date) else date
    start = (table.first_randomised if start_date is None else
             start_date if isinstance(start_date, dt.date) else
             parse_iso_date(start_date, "start date"))
    f = table.frame
    rand = f["randomised_on"].to_numpy()
    keep = np.array([r <= c for r in rand])
    if not keep.any():
        raise DataValidationError([Problem(table.source, None, "randomised_on", c.isoformat(),
                                           "at least one patient randomised on or before "
                                           "the cut date")])
    kept = f.loc[keep].reset_index(drop=True)
    times, events, potential, withdrawn, r_months = [], [], [], [], []
    n_prog_after = 0
    for row in kept.itertuples(index=False):
        r, p, last = row.randomised_on, row.progressed_on, row.last_followup_on
        if p is not None and p <= c:
            end, event = p, 1
        else:
            if p is not None:
                n_prog_after += 1
            end, event = (min(last, c) if last is not None else c), 0
        times.append(((end - r).days + 1) / DAYS_PER_MONTH)
        events.append(event)
        potential.append(((c - r).days + 1) / DAYS_PER_MONTH)
        withdrawn.append(bool(row.withdrawn) and event == 0 and last is not None and last <= c)
        r_months.append(months_between(start, r))
    frame = pd.DataFrame({
        "patient_id": kept["patient_id"], "site": kept["site"], "arm": kept["arm"],
        "time_months": times, "event": events,
    })
    for cov in table.covariates:
        frame[cov] = kept[cov]
    source = f"{table.source} (as known on {c.isoformat()})"
    rows = kept["row"].to_numpy() if "row" in kept.columns else None
    patients = validate_patients(frame, source, reference_arm=reference_arm,
                                 covariates=table.covariates, row_numbers=rows,
                                 **table.checks)  # hash: of the cut table
    return CutData(patients=patients, cut_date=c, start_date=start,
                   followup_at_cut=np.asarray(potential, float),
                   withdrawn=np.asarray(withdrawn, bool),
                   randomised_months=np.asarray(r_months, float),
                   n_randomised_after=int((~keep).sum()), n_progressions_after=n_prog_after)


def cut_latent(entry: np.ndarray, event_time: np.ndarray, dropout_time: np.ndarray,
               cut_months: float) -> dict[str, np.ndarray]:
    """The same cut on simulated latent times (months from trial start, no dates).

    ``entry``: randomisation time; ``event_time``/``dropout_time``: from randomisation. Returns
    ``enrolled`` (mask), and for enrolled patients ``time``, ``event`` and ``at_risk`` (still in
    follow-up, no event). Times are ``cut − entry`` (the continuous-time analogue of the
    day-counting rule).
    """
    enrolled = entry <= cut_months
    e = entry[enrolled]
    t_ev = event_time[enrolled]
    t_drop = dropout_time[enrolled]
    # an event is known when it happened (calendar entry + T) on or before the cut, before dropout
    event = (t_ev <= t_drop) & (e + t_ev <= cut_months)
    end = np.minimum(t_drop, cut_months - e)
    time = np.where(event, t_ev, end)
    return {"enrolled": enrolled, "time": np.maximum(time, 1e-6), "event": event.astype(np.int64),
            "at_risk": ~event & (t_drop > cut_months - e)}
