"""The study table of an evidence synthesis: one row per study, its effect and where it comes from.

Each row gives a study's hazard ratio (experimental vs reference; < 1 favours experimental) in
exactly one of three ways:

* ``log_hr, se`` — the log hazard ratio and its standard error;
* ``hr, ci_low, ci_high[, ci_level]`` — a published HR with its confidence interval; the
  standard error is derived on the log scale, se = (log ci_high − log ci_low) / (2 z), with
  z = Φ⁻¹((1 + level) / 2); ``ci_level`` is a fraction (0.95) or a percent (95.66), default 0.95;
* ``ipd_file, reference_arm`` — individual patient data (a patient table, path relative to the
  study table's folder) whose arm ``reference_arm`` is the comparator.

Any other column (``source``, ``comparison``, …) is kept as text and shown in reports.
Validation reports every problem at once (file, row, column, value, expected); nothing is
dropped. Rows are numbered from 1 = first data row (in a CSV, file line = row + 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayes_ablation.data.io import file_sha256, frame_sha256, read_raw_table
from bayes_ablation.data.schema import PatientTable, read_patients
from bayes_ablation.errors import DataValidationError, Problem

LOG_HR_COLUMNS = ("log_hr", "se")
CI_COLUMNS = ("hr", "ci_low", "ci_high")
IPD_COLUMNS = ("ipd_file", "reference_arm")
EVIDENCE_SETS: dict[str, tuple[str, ...]] = {"log_hr": LOG_HR_COLUMNS, "hr_ci": CI_COLUMNS,
                                             "ipd": IPD_COLUMNS}
KNOWN_COLUMNS = ("study", *LOG_HR_COLUMNS, *CI_COLUMNS, "ci_level", *IPD_COLUMNS)
DEFAULT_CI_LEVEL = 0.95
EVIDENCE_LABELS = {"log_hr": "log HR and SE", "hr_ci": "HR with CI", "ipd": "patient data"}


#: |log HR| and its SE beyond this are not plausible estimates (exp would overflow)
MAX_ABS_LOG_HR = 20.0
#: up to this many studies, τ is prior-driven and the table says so
FEW_STUDIES = 3


@dataclass(frozen=True)
class StudyTable:
    """A validated study table.

    ``frame`` has one row per study with columns ``study``, ``evidence`` ('log_hr', 'hr_ci' or
    'ipd'), ``log_hr``, ``se`` (NaN for IPD rows), ``hr``, ``ci_low``, ``ci_high``,
    ``ci_level``, ``ipd_file``, ``reference_arm`` and any extra (text) columns.
    ``ipd`` maps each IPD study to its validated patient table.
    """

    frame: pd.DataFrame
    source: str
    sha256: str
    ipd: Mapping[str, PatientTable] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def studies(self) -> tuple[str, ...]:
        return tuple(self.frame["study"])

    @property
    def n_studies(self) -> int:
        return len(self.frame)

    @property
    def has_ipd(self) -> bool:
        return bool(self.ipd)

    @property
    def aggregate(self) -> pd.DataFrame:
        """Rows with an aggregate estimate (log_hr, se)."""
        return self.frame[self.frame["evidence"] != "ipd"]

    @property
    def y(self) -> np.ndarray:
        """log HR of the aggregate-data studies (all studies when there is no IPD)."""
        return self.aggregate["log_hr"].to_numpy(dtype=float)

    @property
    def se(self) -> np.ndarray:
        return self.aggregate["se"].to_numpy(dtype=float)

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in (*KNOWN_COLUMNS, "evidence")]

    @property
    def data_sha256(self) -> str:
        """One hash over the study table and every IPD file it names."""
        if not self.ipd:
            return self.sha256
        h = hashlib.sha256(self.sha256.encode())
        for name in sorted(self.ipd):
            h.update(f"{name}:{self.ipd[name].sha256}".encode())
        return h.hexdigest()

    def summary(self, stage1: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
        """The table as shown in reports (index: study); IPD studies show their ``stage1``
        (log HR, SE) estimate when given."""
        cols = ["evidence", "hr", "ci_low", "ci_high", "ci_level", "log_hr", "se"]
        frame = self.with_estimates(stage1).frame if stage1 else self.frame
        out = frame.set_index("study")[cols + self.extra_columns].copy()
        out["evidence"] = out["evidence"].map(lambda e: EVIDENCE_LABELS.get(e, e))
        for name, patients in self.ipd.items():
            out.loc[name, "evidence"] = (f"IPD: {patients.n_patients} patients, "
                                         f"{int(patients.event.sum())} events"
                                         + (" (stage-1 estimate shown)" if stage1 else ""))
        # the level as the publication states it (95.66 %), not as the fraction used inside
        out["ci_level"] = out["ci_level"] * 100
        return out.rename(columns={"ci_level": "ci_level_percent"})

    def with_estimates(self, estimates: Mapping[str, tuple[float, float]]) -> StudyTable:
        """A copy where IPD studies carry a (log_hr, se) estimate (e.g. a stage-1 fit) for
        display and two-stage pooling; the rows are then aggregate rows."""
        frame = self.frame.copy()
        for name, (log_hr, se) in estimates.items():
            i = frame.index[frame["study"] == name]
            frame.loc[i, ["log_hr", "se"]] = [log_hr, se]
            frame.loc[i, "evidence"] = "ipd_stage1"
            z = stats.norm.ppf(0.5 + DEFAULT_CI_LEVEL / 2)
            frame.loc[i, ["hr", "ci_low", "ci_high", "ci_level"]] = [
                np.exp(log_hr), np.exp(log_hr - z * se), np.exp(log_hr + z * se),
                DEFAULT_CI_LEVEL]
        remaining = {k: v for k, v in self.ipd.items() if k not in estimates}
        return StudyTable(frame=frame, source=self.source, sha256=self.sha256, ipd=remaining,
                          warnings=self.warnings)


def se_from_ci(ci_low: np.ndarray, ci_high: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Standard error of the log HR from a confidence interval of the HR."""
    z = stats.norm.ppf(0.5 + np.asarray(level, float) / 2)
    return (np.log(ci_high) - np.log(ci_low)) / (2.0 * z)


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _number(value: object) -> float:
    if _blank(value) or isinstance(value, bool):
        return float("nan")
    try:
        return float(str(value).strip())
    except ValueError:
        return float("nan")


def validate_studies(raw: pd.DataFrame, source: str, *, base_dir: str | Path | None = None,
                     sha256: str | None = None) -> StudyTable:
    """Check a raw study table and return it typed, or raise with every problem found."""
    problems: list[Problem] = []
    warnings: list[str] = []

    def add(row: int | None, column: str | None, value: object, expected: str) -> None:
        problems.append(Problem(source, row, column, value, expected))

    raw = raw.copy()
    raw.columns = [str(c).strip() for c in raw.columns]
    present = ", ".join(raw.columns)
    if "study" not in raw.columns:
        add(None, "study", None, f"a column named 'study' (columns present: {present})")
    sets_present = {kind: [c for c in cols if c in raw.columns]
                    for kind, cols in EVIDENCE_SETS.items()}
    complete = [k for k, cols in sets_present.items() if len(cols) == len(EVIDENCE_SETS[k])]
    for kind, cols in sets_present.items():
        if cols and kind not in complete:
            for col in EVIDENCE_SETS[kind]:
                if col not in cols:
                    add(None, col, None, f"a column named '{col}' to go with "
                        f"{', '.join(repr(c) for c in cols)}")
    if not any(sets_present.values()):
        add(None, None, None, "columns 'log_hr, se' or 'hr, ci_low, ci_high[, ci_level]' "
            f"(or 'ipd_file, reference_arm'); columns present: {present}")
    if "ci_level" in raw.columns and "hr_ci" not in complete:
        add(None, "ci_level", None, "'ci_level' only together with 'hr, ci_low, ci_high'")
    if len(raw) == 0:
        add(None, None, None, "at least one study (one row per study)")
    if problems:
        raise DataValidationError(problems)

    n = len(raw)
    out = {
        "study": [""] * n, "evidence": [""] * n,
        **{c: np.full(n, np.nan) for c in ("log_hr", "se", "hr", "ci_low", "ci_high",
                                            "ci_level")},
        "ipd_file": [""] * n, "reference_arm": [""] * n,
    }
    base = Path(base_dir) if base_dir is not None else Path(".")
    ipd: dict[str, PatientTable] = {}
    first_row: dict[str, int] = {}

    for i in range(n):
        r = i + 1
        row = raw.iloc[i]
        study = "" if _blank(row["study"]) else str(row["study"]).strip()
        out["study"][i] = study
        if not study:
            add(r, "study", row["study"], "a non-empty study name")
        elif study in first_row:
            add(r, "study", study, f"each study once (also on row {first_row[study]})")
        else:
            first_row[study] = r

        filled = {kind: [c for c in EVIDENCE_SETS[kind] if c in raw.columns
                         and not _blank(row[c])] for kind in complete}
        given = [k for k, cols in filled.items() if cols]
        if not given:
            add(r, None, None, "an estimate: 'log_hr' and 'se', or 'hr', 'ci_low' and "
                "'ci_high', or 'ipd_file' and 'reference_arm'")
            continue
        if len(given) > 1:
            add(r, None, {k: filled[k] for k in given},
                "exactly one way of giving the estimate (cells filled for "
                f"{' and '.join(given)}); leave the others blank")
            continue
        kind = given[0]
        missing = [c for c in EVIDENCE_SETS[kind] if c not in filled[kind]]
        for col in missing:
            add(r, col, "", f"a value (the row gives {', '.join(filled[kind])})")
        if "ci_level" in raw.columns and kind != "hr_ci" and not _blank(row["ci_level"]):
            add(r, "ci_level", row["ci_level"], "a blank (ci_level belongs to hr with ci_low/"
                "ci_high)")
        if missing:
            continue
        out["evidence"][i] = kind
        if kind == "log_hr":
            log_hr, se = _number(row["log_hr"]), _number(row["se"])
            if not (np.isfinite(log_hr) and abs(log_hr) <= MAX_ABS_LOG_HR):
                add(r, "log_hr", row["log_hr"], "a finite log hazard ratio within "
                    f"±{MAX_ABS_LOG_HR:g} (HR between 1e-9 and 1e9)")
            if not (np.isfinite(se) and 0 < se <= MAX_ABS_LOG_HR):
                add(r, "se", row["se"], f"a standard error > 0 and ≤ {MAX_ABS_LOG_HR:g}")
            out["log_hr"][i], out["se"][i] = log_hr, se
            if (np.isfinite(log_hr) and abs(log_hr) <= MAX_ABS_LOG_HR and np.isfinite(se)
                    and 0 < se <= MAX_ABS_LOG_HR):
                z = stats.norm.ppf(0.5 + DEFAULT_CI_LEVEL / 2)
                out["hr"][i] = np.exp(log_hr)
                out["ci_low"][i], out["ci_high"][i] = np.exp(log_hr - z * se), \
                    np.exp(log_hr + z * se)
                out["ci_level"][i] = DEFAULT_CI_LEVEL
        elif kind == "hr_ci":
            _hr_row(raw, row, r, i, out, add, warnings, study)
        else:
            _ipd_row(row, r, i, out, add, base, ipd, study, problems)

    if n == 1 and not problems:
        warnings.append("only one study: the data say nothing about the heterogeneity τ, so "
                        "its posterior is its prior, and the pooled and predictive effects "
                        "are driven by that prior")
    elif n <= FEW_STUDIES and not problems:
        warnings.append(f"only {n} studies: the heterogeneity τ is barely informed by the data, "
                        "so its posterior is driven by its prior, and so are the width of the "
                        "pooled interval and the predictive effect (see the τ-prior panel)")
    if problems:
        raise DataValidationError(problems)

    frame = pd.DataFrame(out)
    for col in raw.columns:
        if col not in KNOWN_COLUMNS:
            frame[col] = raw[col].map(lambda v: "" if _blank(v) else str(v).strip()).to_numpy()
    digest = sha256 if sha256 is not None else frame_sha256(raw.astype(str))
    return StudyTable(frame=frame, source=source, sha256=digest, ipd=ipd,
                      warnings=tuple(warnings))


def _hr_row(raw: pd.DataFrame, row: pd.Series, r: int, i: int, out: dict, add, warnings: list,
            study: str) -> None:
    hr, lo, hi = (_number(row[c]) for c in CI_COLUMNS)
    ok = True
    for col, v in zip(CI_COLUMNS, (hr, lo, hi), strict=True):
        if not (np.isfinite(v) and v > 0):
            add(r, col, row[col], "a hazard ratio > 0 (a number)")
            ok = False
    if ok and not lo < hr < hi:
        add(r, "hr", f"{row['ci_low']} / {row['hr']} / {row['ci_high']}",
            "ci_low < hr < ci_high")
        ok = False
    level = DEFAULT_CI_LEVEL
    if "ci_level" in raw.columns and not _blank(row["ci_level"]):
        v = _number(row["ci_level"])
        if np.isfinite(v) and 0 < v < 1:
            level = v
        elif np.isfinite(v) and 1 < v < 100:
            level = v / 100.0
        else:
            add(r, "ci_level", row["ci_level"], "a confidence level as a fraction in (0, 1) "
                "(0.95) or a percent in (1, 100) (95)")
            ok = False
    out["hr"][i], out["ci_low"][i], out["ci_high"][i], out["ci_level"][i] = hr, lo, hi, level
    if not ok:
        return
    se = float(se_from_ci(lo, hi, level))
    out["log_hr"][i], out["se"][i] = np.log(hr), se
    # published intervals are symmetric on the log scale up to rounding; a clear asymmetry
    # usually means a typo (or an interval that is not a Wald interval)
    mid = 0.5 * (np.log(lo) + np.log(hi))
    rounding = 0.005 * (1 / hr + 0.5 / lo + 0.5 / hi)  # two-decimal rounding on the log scale
    if abs(np.log(hr) - mid) > rounding + 0.1 * (np.log(hi) - np.log(lo)) / 2:
        warnings.append(f"{study}: the interval {lo:g}–{hi:g} is not symmetric around HR "
                        f"{hr:g} on the log scale (centre {np.exp(mid):.3f}); check for a "
                        "typo. The SE is derived from the interval's width.")


def _ipd_row(row: pd.Series, r: int, i: int, out: dict, add, base: Path,
             ipd: dict[str, PatientTable], study: str, problems: list[Problem]) -> None:
    path_text = str(row["ipd_file"]).strip()
    reference = str(row["reference_arm"]).strip()
    out["ipd_file"][i], out["reference_arm"][i] = path_text, reference
    path = Path(path_text)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        add(r, "ipd_file", path_text, f"an existing patient table (looked for {path})")
        return
    try:
        patients = read_patients(path, reference_arm=reference)
    except DataValidationError as exc:
        problems.extend(exc.problems)
        return
    if len(patients.arms) != 2:
        add(r, "ipd_file", path_text, f"a two-arm trial (arms found: {list(patients.arms)})")
        return
    if study:
        ipd[study] = patients


def read_studies(path: str | Path | pd.DataFrame) -> StudyTable:
    """Read and validate a study table (CSV or Parquet file; IPD paths are relative to its
    folder), or validate a pandas DataFrame exactly like a file (IPD paths relative to the
    working directory)."""
    if isinstance(path, pd.DataFrame):
        return studies_from_frame(path)
    if not isinstance(path, str | Path):
        raise TypeError(f"read_studies takes a file path or a pandas DataFrame, got "
                        f"{type(path).__name__}")
    path = Path(path)
    raw = read_raw_table(path)
    return validate_studies(raw, str(path), base_dir=path.parent, sha256=file_sha256(path))


def studies_from_frame(frame: pd.DataFrame, *, source: str = "<DataFrame>",
                       base_dir: str | Path | None = None) -> StudyTable:
    """Validate an in-memory study table exactly like a file."""
    return validate_studies(frame, source, base_dir=base_dir)


def studies_from_arrays(y: np.ndarray, se: np.ndarray, names: list[str] | None = None,
                        source: str = "<arrays>") -> StudyTable:
    """A study table from log HRs and standard errors (tests, simulation studies)."""
    y = np.asarray(y, float)
    names = names or [f"study{i + 1}" for i in range(len(y))]
    frame = pd.DataFrame({"study": names, "log_hr": y, "se": np.asarray(se, float)})
    return validate_studies(frame, source)
