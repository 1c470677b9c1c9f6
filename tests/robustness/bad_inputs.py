"""A named catalogue of bad inputs, across every reader the command line uses.

Each :class:`Case` starts from a valid input of the repository (the example tables, a shipped
spec), makes one mistake in it, and says where the error message must point: the file, the
row (1 = first data row; None for a problem of the whole table) and the column (or the spec
key). ``tests/robustness/test_bad_inputs.py`` runs every case through the command line (in
process) and asserts exit code 2, that location in the message, and that nothing was written.

Inputs (file name → what it is; the case's ``target`` names the file it edits):

* ``trial.csv`` — ``examples/pfs_trial.csv`` (``fit`` with ``models/pfs_weibull_site.toml``)
* ``patients.csv``, ``lesions.csv`` — ``examples/lr_*.csv`` (``fit --lesions``)
* ``dated.csv`` — a simulated dated trial (``monitor`` with ``models/interim_design.toml``)
* ``studies.csv`` — ``examples/meta/crlm_pfs_hr.csv`` (``meta``)
* ``curve.csv``, ``atrisk.csv`` — ``examples/reconstruct/`` (``reconstruct``)
* ``adtte.xpt``, ``adsl.xpt`` — ``examples/adam/`` (``fit --adtte --adsl --paramcd PFS``)
* ``spec.toml`` — ``models/pfs_weibull_site.toml`` (``fit --spec``)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

Edit = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Case:
    name: str
    command: str              # fit | lr | monitor | meta | reconstruct | adam | spec
    target: str               # the input file the edit applies to
    edit: Edit | Callable[[str], str]
    row: int | None           # expected "row N" in the message (None: no row to name)
    column: str | None        # expected "column 'X'" (spec: the key named)
    fragment: str = ""        # further text the message must contain
    argv: tuple[str, ...] = ()  # extra command-line arguments


def cell(row: int, column: str, value: object) -> Edit:
    """Set data row ``row`` (1-based) of ``column`` to ``value``."""
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        if column not in out.columns:
            out[column] = ""
        out[column] = out[column].astype(object)
        out.loc[out.index[row - 1], column] = value
        return out
    return edit


def cells(changes: dict[tuple[int, str], object]) -> Edit:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        for (row, column), value in changes.items():
            frame = cell(row, column, value)(frame)
        return frame
    return edit


def drop(column: str) -> Edit:
    return lambda frame: frame.drop(columns=[column])


def copy_row(src: int, dst: int, column: str) -> Edit:
    """Row ``dst`` gets row ``src``'s value of ``column`` (a duplicate id)."""
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        return cell(dst, column, frame[column].iloc[src - 1])(frame)
    return edit


def column_to(column: str, value: object) -> Edit:
    return lambda frame: frame.assign(**{column: value})


def replace_text(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def first_row_where(column: str, value: object) -> Callable[[pd.DataFrame], int]:
    return lambda frame: int(np.flatnonzero(frame[column].astype(str) == str(value))[0]) + 1


CASES: list[Case] = [
    # ---------------------------------------------------------------- patient table (fit)
    Case("patients: no event column", "fit", "trial.csv", drop("event"), None, "event"),
    Case("patients: no time column", "fit", "trial.csv", drop("time_months"), None,
         "time_months"),
    Case("patients: time as text", "fit", "trial.csv", cell(3, "time_months", "abc"), 3,
         "time_months"),
    Case("patients: negative time", "fit", "trial.csv", cell(5, "time_months", "-2.5"), 5,
         "time_months", "> 0"),
    Case("patients: zero time", "fit", "trial.csv", cell(6, "time_months", "0"), 6,
         "time_months"),
    Case("patients: NaN time", "fit", "trial.csv", cell(7, "time_months", "NaN"), 7,
         "time_months", "finite"),
    Case("patients: infinite time", "fit", "trial.csv", cell(8, "time_months", "inf"), 8,
         "time_months", "finite"),
    Case("patients: time 1e308 months", "fit", "trial.csv", cell(9, "time_months", "1e308"), 9,
         "time_months", "at most 600"),
    Case("patients: time in days", "fit", "trial.csv", cell(10, "time_months", "730"), 10,
         "time_months", "is the unit days?"),
    Case("patients: blank time", "fit", "trial.csv", cell(11, "time_months", ""), 11,
         "time_months"),
    Case("patients: event 2", "fit", "trial.csv", cell(12, "event", "2"), 12, "event",
         "0 (censored) or 1 (event)"),
    Case("patients: event as word", "fit", "trial.csv", cell(13, "event", "yes"), 13, "event"),
    Case("patients: blank event", "fit", "trial.csv", cell(14, "event", ""), 14, "event"),
    Case("patients: blank patient id", "fit", "trial.csv", cell(15, "patient_id", ""), 15,
         "patient_id", "non-empty"),
    Case("patients: duplicate patient id", "fit", "trial.csv", copy_row(1, 16, "patient_id"),
         16, "patient_id", "also on row 1"),
    Case("patients: blank site", "fit", "trial.csv", cell(17, "site", ""), 17, "site"),
    Case("patients: blank arm", "fit", "trial.csv", cell(18, "arm", ""), 18, "arm"),
    Case("patients: arm typo in case", "fit", "trial.csv", cell(19, "arm", "Perioperative"),
         19, "arm", "only in case, spaces or punctuation"),
    Case("patients: arm typo in punctuation", "fit", "trial.csv",
         cell(20, "arm", "peri-operative"), 20, "arm", "only in case"),
    Case("patients: site typo", "fit", "trial.csv", cell(21, "site", "s01"), 21, "site",
         "only in case"),
    Case("patients: a third arm of two patients", "fit", "trial.csv",
         cells({(22, "arm"): "placebo", (23, "arm"): "placebo"}), 22, "arm",
         "at least 5 patients per arm"),
    Case("patients: HTML in an arm label", "fit", "trial.csv",
         cell(24, "arm", "<script>alert(1)</script>"), 24, "arm"),
    Case("patients: no events at all", "fit", "trial.csv", column_to("event", "0"), None,
         "event", "at least one event"),
    Case("patients: one arm only", "fit", "trial.csv", column_to("arm", "postoperative"), None,
         "arm", "at least two arms"),

    # --------------------------------------------------------------- LR tables (fit --lesions)
    Case("lesions: unknown patient", "lr", "lesions.csv", cell(2, "patient_id", "P999"), 2,
         "patient_id", "lesion of an unknown patient"),
    Case("lesions: upper before lower", "lr", "lesions.csv",
         cells({(3, "lr_lower_months"): "10", (3, "lr_upper_months"): "4"}), 3,
         "lr_upper_months", "lower > upper"),
    Case("lesions: upper equals lower", "lr", "lesions.csv",
         cells({(4, "lr_lower_months"): "6", (4, "lr_upper_months"): "6"}), 4,
         "lr_upper_months"),
    Case("lesions: negative lower", "lr", "lesions.csv", cell(5, "lr_lower_months", "-1"), 5,
         "lr_lower_months"),
    Case("lesions: lower as text", "lr", "lesions.csv", cell(6, "lr_lower_months", "six"), 6,
         "lr_lower_months"),
    Case("lesions: scan after death", "lr", "lesions.csv", cell(1, "lr_lower_months", "500"),
         1, "lr_lower_months", "death or last contact"),
    Case("lesions: duplicate lesion id", "lr", "lesions.csv", copy_row(1, 2, "lesion_id"), 2,
         "lesion_id", "unique within patient"),
    Case("lesions: size zero", "lr", "lesions.csv", cell(7, "size_cm", "0"), 7, "size_cm"),
    Case("lesions: negative margin", "lr", "lesions.csv", cell(8, "margin_mm", "-3"), 8,
         "margin_mm"),
    Case("lesions: unknown modality", "lr", "lesions.csv", cell(9, "modality", "laser beam"),
         9, "modality", "known ablation modality"),
    Case("lesions: missing size of an analysed covariate", "lr", "lesions.csv",
         cell(10, "size_cm", ""), 10, "size_cm"),
    Case("LR patients: died 3", "lr", "patients.csv", cell(2, "died", "3"), 2, "died"),
    Case("LR patients: zero follow-up", "lr", "patients.csv", cell(3, "followup_months", "0"),
         3, "followup_months"),
    Case("LR patients: follow-up in days", "lr", "patients.csv",
         cell(4, "followup_months", "9000"), 4, "followup_months", "at most 600"),
    Case("LR patients: arm typo", "lr", "patients.csv", cell(5, "arm", "POSTOPERATIVE"), 5,
         "arm", "only in case"),
    Case("LR patients: duplicate id", "lr", "patients.csv", copy_row(1, 6, "patient_id"), 6,
         "patient_id"),

    # ---------------------------------------------------------------- dated table (monitor)
    Case("dated: blank randomisation", "monitor", "dated.csv", cell(2, "randomised_on", ""),
         2, "randomised_on", "required"),
    Case("dated: date not ISO", "monitor", "dated.csv",
         cell(3, "randomised_on", "31/12/2026"), 3, "randomised_on", "YYYY-MM-DD"),
    Case("dated: impossible date", "monitor", "dated.csv",
         cell(4, "last_followup_on", "2026-02-30"), 4, "last_followup_on"),
    Case("dated: progression before randomisation", "monitor", "dated.csv",
         cell(5, "progressed_on", "2020-01-01"), 5, "progressed_on", "on or after "
         "randomisation"),
    Case("dated: follow-up before randomisation", "monitor", "dated.csv",
         cells({(6, "last_followup_on"): "2020-01-01", (6, "progressed_on"): ""}), 6,
         "last_followup_on"),
    Case("dated: progression after last follow-up", "monitor", "dated.csv",
         cells({(7, "progressed_on"): "2031-01-01", (7, "last_followup_on"): "2030-01-01"}), 7,
         "progressed_on", "last follow-up"),
    Case("dated: no date after randomisation", "monitor", "dated.csv",
         cells({(8, "progressed_on"): "", (8, "last_followup_on"): ""}), 8, "last_followup_on"),
    Case("dated: withdrawn not 0/1", "monitor", "dated.csv", cell(9, "withdrawn", "maybe"), 9,
         "withdrawn"),
    Case("dated: duplicate patient id", "monitor", "dated.csv",
         copy_row(1, 10, "patient_id"), 10, "patient_id"),
    Case("dated: arm typo", "monitor", "dated.csv", cell(11, "arm", "Perioperative"), 11,
         "arm", "only in case"),
    Case("dated: follow-up of 73 years", "monitor", "dated.csv",
         cells({(12, "last_followup_on"): "2099-01-01", (12, "progressed_on"): ""}), 12,
         "last_followup_on", "at most 600 months"),
    Case("dated: blank site", "monitor", "dated.csv", cell(13, "site", ""), 13, "site"),

    # --------------------------------------------------------------------- studies (meta)
    Case("studies: HR as text", "meta", "studies.csv", cell(2, "hr", "n/a"), 2, "hr"),
    Case("studies: negative HR", "meta", "studies.csv", cell(2, "hr", "-0.8"), 2, "hr"),
    Case("studies: CI low above high", "meta", "studies.csv",
         cells({(1, "ci_low"): "1.5", (1, "ci_high"): "0.9"}), 1, "hr", "ci_low < hr < ci_high"),
    Case("studies: HR outside its CI", "meta", "studies.csv", cell(1, "hr", "3.5"), 1, "hr"),
    Case("studies: duplicate study", "meta", "studies.csv", copy_row(1, 2, "study"), 2,
         "study", "each study once"),
    Case("studies: blank study name", "meta", "studies.csv", cell(2, "study", ""), 2,
         "study"),
    Case("studies: CI level out of range", "meta", "studies.csv", cell(2, "ci_level", "150"),
         2, "ci_level"),
    Case("studies: missing CI bound", "meta", "studies.csv", cell(1, "ci_high", ""), 1,
         "ci_high"),

    # ------------------------------------------------------ reconstruction (reconstruct)
    Case("curve: time as text", "reconstruct", "curve.csv", cell(2, "time_months", "x"), 2,
         "time_months", "finite number"),
    Case("curve: very negative time", "reconstruct", "curve.csv",
         cell(3, "time_months", "-4"), 3, "time_months", "≥ 0"),
    Case("curve: negative survival", "reconstruct", "curve.csv", cell(4, "survival", "-20"),
         4, "survival"),
    Case("curve: survival missing", "reconstruct", "curve.csv", cell(5, "survival", ""), 5,
         "survival"),
    Case("at-risk: first row not at 0", "reconstruct", "atrisk.csv",
         cell(1, "time_months", "1"), 1, "time_months", "time 0"),
    Case("at-risk: numbers increase", "reconstruct", "atrisk.csv", cell(3, "n_at_risk", "500"),
         3, "n_at_risk", "cannot increase"),
    Case("at-risk: fractional count", "reconstruct", "atrisk.csv", cell(2, "n_at_risk", "15.5"),
         2, "n_at_risk", "whole number"),
    Case("at-risk: times not increasing", "reconstruct", "atrisk.csv",
         cell(3, "time_months", "2"), 3, "time_months", "after the previous row"),

    # ------------------------------------------------------------------ ADaM (fit --adtte)
    Case("ADaM: PARAMCD not present", "adam", "adtte.xpt", lambda f: f, None, "PARAMCD",
         "present: OS, PFS", argv=("--paramcd", "DFS")),
    Case("ADaM: subject twice within PFS", "adam", "adtte.xpt", copy_row(1, 2, "USUBJID"), 2,
         "USUBJID", "one row per subject within PARAMCD"),
    Case("ADaM: ADTTE subject missing from ADSL", "adam", "adtte.xpt",
         cell(3, "USUBJID", "ABL-01-P999"), 3, "USUBJID", "missing from ADSL"),
    Case("ADaM: SITEID disagrees with ADSL", "adam", "adtte.xpt", cell(4, "SITEID", "S99"), 4,
         "SITEID", "the subject's SITEID in"),
    Case("ADaM: negative CNSR", "adam", "adtte.xpt", cell(5, "CNSR", -1.0), 5, "CNSR",
         "an integer ≥ 0"),
    Case("ADaM: fractional CNSR", "adam", "adtte.xpt", cell(6, "CNSR", 0.5), 6, "CNSR"),
    Case("ADaM: unknown AVALU", "adam", "adtte.xpt", cell(7, "AVALU", "FURLONGS"), 7, "AVALU"),
    Case("ADaM: no unit anywhere", "adam", "adtte.xpt",
         lambda f: f.drop(columns=["AVALU"]).assign(PARAM="Progression-free survival"), 1,
         "AVALU", "--aval-unit"),
    Case("ADaM: AVAL negative", "adam", "adtte.xpt", cell(8, "AVAL", -30.0), 8, "AVAL"),
    Case("ADaM: AVAL of 110 years in days", "adam", "adtte.xpt", cell(9, "AVAL", 40000.0), 9,
         "AVAL", "at most 600 months"),
    Case("ADaM: ADSL subject twice", "adam", "adsl.xpt", copy_row(1, 2, "USUBJID"), 2,
         "USUBJID", "one row per subject"),
    Case("ADaM: blank TRT01P", "adam", "adsl.xpt", cell(3, "TRT01P", ""), 3, "TRT01P"),
    Case("ADaM: TRT01P typo", "adam", "adsl.xpt", cell(4, "TRT01P", "Postoperative"), 4,
         "TRT01P", "only in case"),
    Case("ADaM: no TRT01A for --arm-var", "adam", "adsl.xpt", drop("TRT01A"), None, "TRT01A",
         "--arm-var", argv=("--arm-var", "TRT01A")),

    # -------------------------------------------------------------------- spec (fit --spec)
    Case("spec: unknown model family", "spec", "spec.toml",
         replace_text('family = "weibull"', 'family = "cauchy"'), None, "family"),
    Case("spec: negative draws", "spec", "spec.toml", replace_text("draws = ", "draws = -"),
         None, "draws"),
    Case("spec: reference arm a number", "spec", "spec.toml",
         replace_text('reference_arm = "postoperative"', "reference_arm = 5"), None,
         "reference_arm"),
    Case("spec: TOML syntax error", "spec", "spec.toml",
         replace_text('reference_arm = "postoperative"', 'reference_arm = "postoperative'),
         None, "line"),
    Case("spec: unknown key", "spec", "spec.toml",
         replace_text('reference_arm = "postoperative"',
                      'reference_arm = "postoperative"\nreferance_arm = "x"'), None,
         "referance_arm"),
    Case("spec: max_time_months negative", "spec", "spec.toml",
         replace_text('reference_arm = "postoperative"',
                      'reference_arm = "postoperative"\nmax_time_months = -1'), None,
         "max_time_months"),
]
