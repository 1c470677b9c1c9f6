"""Lesion table validation, cross-references to the patient table, and the LR simulator."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.lesions import (
    design_row,
    lr_data_from_frames,
    read_lr_data,
)
from bayes_ablation.data.simulate_lr import imaging_schedule, simulate_lr_trial
from bayes_ablation.errors import DataValidationError, SpecError

COVS = ("size_cm", "margin_lt_5mm", "modality")


def _patients() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["P1", "P2", "P3", "P4"],
        "site": ["A", "A", "B", "B"],
        "arm": ["postoperative", "perioperative", "postoperative", "perioperative"],
        "followup_months": ["30", "12.5", "40", "24"],
        "died": ["0", "1", "0", "1"],
    })


def _lesions() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["P1", "P1", "P2", "P3", "P4"],
        "lesion_id": ["L1", "L2", "L1", "L1", "L1"],
        "lr_lower_months": ["6.1", "29", "0", "39.5", "9"],
        "lr_upper_months": ["9.0", "", "3.2", "", "12.1"],
        "size_cm": ["2.1", "1.0", "3.4", "1.5", "0.8"],
        "margin_mm": ["3", "8", "0", "12", "5"],
        "modality": ["RFA", "mwa", "MWA", "RFA", "MWA"],
    })


def _validate(patients=None, lesions=None, covariates=COVS):
    return lr_data_from_frames(_patients() if patients is None else patients,
                               _lesions() if lesions is None else lesions,
                               reference_arm="postoperative", covariates=covariates,
                               source="t")


def _problems(patients=None, lesions=None, covariates=COVS):
    with pytest.raises(DataValidationError) as err:
        _validate(patients, lesions, covariates)
    return err.value.problems


def test_valid_tables_are_joined_and_typed():
    table = _validate()
    f = table.frame
    assert table.n_lesions == 5 and table.patients.n_patients == 4
    np.testing.assert_array_equal(table.patient_idx, [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(table.observed, [1, 0, 1, 0, 1])
    assert np.isinf(table.upper[1]) and table.upper[0] == 9.0
    assert f["modality"].tolist() == ["RFA", "MWA", "MWA", "RFA", "MWA"]   # canonical labels
    assert f["margin_lt_5mm"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]        # 5 mm is not < 5
    np.testing.assert_array_equal(table.patients.time, [30, 12.5, 40, 24])
    np.testing.assert_array_equal(table.patients.event, [0, 1, 0, 1])
    x, names, _ = table.design_matrix()
    assert names == ["size_cm", "margin_lt_5mm", "modality[RFA]"] and x.shape == (5, 3)
    summary = table.summary()
    assert summary.loc["postoperative", "lesions"] == 3
    assert summary.loc["perioperative", "lesions_with_lr"] == 2
    assert summary.loc["perioperative", "deaths"] == 2


@pytest.mark.parametrize(("mutate", "row", "column", "expected"), [
    (lambda p, l: l.loc.__setitem__((2, "patient_id"), "P9"), 3, "patient_id", "unknown patient"),
    (lambda p, l: l.loc.__setitem__((0, "lr_upper_months"), "5"), 1, "lr_upper_months",
     "lower > upper"),
    (lambda p, l: l.loc.__setitem__((0, "lr_upper_months"), "6.1"), 1, "lr_upper_months",
     "a time > lr_lower_months"),
    (lambda p, l: l.loc.__setitem__((1, "lr_lower_months"), "-1"), 2, "lr_lower_months",
     "≥ 0"),
    (lambda p, l: l.loc.__setitem__((1, "lr_lower_months"), "abc"), 2, "lr_lower_months",
     "finite number"),
    (lambda p, l: l.loc.__setitem__((2, "lr_upper_months"), "13"), 3, "lr_upper_months",
     "no later than the patient's death"),
    (lambda p, l: l.loc.__setitem__((1, "lr_lower_months"), "31"), 2, "lr_lower_months",
     "no later than the patient's death or last contact"),
    (lambda p, l: l.loc.__setitem__((1, "lesion_id"), "L1"), 2, "lesion_id",
     "unique within patient P1 (also on row 1)"),
    (lambda p, l: l.loc.__setitem__((3, "size_cm"), "0"), 4, "size_cm", "> 0"),
    (lambda p, l: l.loc.__setitem__((3, "margin_mm"), "-2"), 4, "margin_mm", "≥ 0"),
    (lambda p, l: l.loc.__setitem__((4, "modality"), "laser-ish"), 5, "modality",
     "known ablation modality"),
    (lambda p, l: l.loc.__setitem__((4, "modality"), ""), 5, "modality", "may not be missing"),
    (lambda p, l: l.loc.__setitem__((4, "size_cm"), ""), 5, "size_cm", "may not be missing"),
    (lambda p, l: p.loc.__setitem__((1, "died"), "2"), 2, "died", "0 (alive at last contact) or 1"),
    (lambda p, l: p.loc.__setitem__((1, "followup_months"), "-3"), 2, "followup_months", "> 0"),
])
def test_each_wrong_value_or_cross_reference_is_named(mutate, row, column, expected):
    p, l = _patients(), _lesions()
    mutate(p, l)
    problems = _problems(p, l)
    assert len(problems) == 1, problems
    prob = problems[0]
    assert (prob.row, prob.column) == (row, column)
    assert expected in prob.expected
    assert prob.file.startswith("t ")


def test_same_lesion_id_in_two_patients_is_fine():
    assert _validate().frame["lesion_id"].tolist().count("L1") == 4


def test_every_problem_of_both_files_is_reported_at_once():
    p, l = _patients(), _lesions()
    p.loc[0, "arm"] = ""                        # patient problem
    l.loc[0, "patient_id"] = "P77"              # unknown patient
    l.loc[1, "lr_upper_months"] = "1"           # lower > upper
    l.loc[2, "size_cm"] = "-1"                  # size
    l.loc[3, "margin_mm"] = "x"                 # margin
    l.loc[4, "modality"] = "HIFU"               # modality
    problems = _problems(p, l)
    where = {(q.file.split()[-1], q.row, q.column) for q in problems}
    assert where == {("patients", 1, "arm"), ("lesions", 1, "patient_id"),
                     ("lesions", 2, "lr_upper_months"), ("lesions", 3, "size_cm"),
                     ("lesions", 4, "margin_mm"), ("lesions", 5, "modality")}
    assert "6 problems" in str(DataValidationError(problems))


def test_missing_columns_name_what_needs_them():
    l = _lesions().drop(columns=["lr_upper_months", "margin_mm"])
    problems = _problems(lesions=l)
    msgs = {q.column: q.expected for q in problems}
    assert set(msgs) == {"lr_upper_months", "margin_mm"}
    assert "needed for the covariate 'margin_lt_5mm'" in msgs["margin_mm"]
    p = _patients().drop(columns=["died"])
    problems = _problems(patients=p)
    assert [(q.column, q.expected.startswith("a column named 'died'")) for q in problems] == \
        [("died", True)]


def test_optional_columns_may_be_absent_when_not_analysed():
    l = _lesions().drop(columns=["size_cm", "margin_mm", "modality"])
    table = _validate(lesions=l, covariates=())
    assert table.design_matrix()[0].shape == (5, 0)


def test_arm_without_lesions_is_an_error():
    l = _lesions()
    l = l[l["patient_id"].isin(["P1", "P3"])].reset_index(drop=True)
    problems = _problems(lesions=l)
    assert any(q.value == "perioperative" and "at least one lesion" in q.expected
               for q in problems)


def test_many_lesions_and_patients_without_lesions_are_warnings():
    l = _lesions()
    extra = pd.DataFrame({"patient_id": ["P3"] * 11, "lesion_id": [f"X{i}" for i in range(11)],
                          "lr_lower_months": ["39"] * 11, "lr_upper_months": [""] * 11,
                          "size_cm": ["1"] * 11, "margin_mm": ["6"] * 11,
                          "modality": ["MWA"] * 11})
    p = pd.concat([_patients(), pd.DataFrame({"patient_id": ["P5"], "site": ["B"],
                                              "arm": ["perioperative"],
                                              "followup_months": ["5"], "died": ["1"]})])
    table = _validate(p.reset_index(drop=True), pd.concat([l, extra]).reset_index(drop=True))
    texts = [str(w) for w in table.warnings]
    assert len(texts) == 2
    assert "12 lesions in one patient, more than the 10 expected" in texts[0]
    assert "P5" in texts[1] and "without lesions" in texts[1]


def test_read_lr_data_from_csv_files(tmp_path):
    _patients().to_csv(tmp_path / "patients.csv", index=False)
    _lesions().to_csv(tmp_path / "lesions.csv", index=False)
    table = read_lr_data(tmp_path / "patients.csv", tmp_path / "lesions.csv",
                         reference_arm="postoperative", covariates=COVS)
    assert table.n_lesions == 5 and len(table.sha256) == 64
    bad = _lesions()
    bad.loc[0, "patient_id"] = "nobody"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataValidationError) as err:
        read_lr_data(tmp_path / "patients.csv", tmp_path / "bad.csv",
                     reference_arm="postoperative", covariates=COVS)
    assert "bad.csv, row 1, column 'patient_id'" in str(err.value)
    with pytest.raises(DataValidationError, match=r"missing\.csv"):
        read_lr_data(tmp_path / "patients.csv", tmp_path / "missing.csv")


def test_reference_lesion_design_row():
    table = _validate()
    _, _, centres = table.design_matrix()
    row = design_row(table, {"size_cm": 2.0, "margin_mm": 10.0, "modality": "mwa"})
    np.testing.assert_allclose(row, [2.0 - centres["size_cm"], 0.0 - centres["margin_lt_5mm"],
                                     0.0])
    row = design_row(table, {"margin_mm": 3.0, "modality": "RFA"})
    np.testing.assert_allclose(row, [0.0, 1.0 - centres["margin_lt_5mm"], 1.0])
    with pytest.raises(SpecError, match="not a level"):
        design_row(table, {"modality": "cryo"})


def test_simulator_is_reproducible_valid_and_follows_the_schedule():
    np.testing.assert_allclose(imaging_schedule(48), [3, 6, 9, 12, 15, 18, 21, 24, 30, 36,
                                                      42, 48])
    a = simulate_lr_trial(120, n_sites=3, seed=5)
    b = simulate_lr_trial(120, n_sites=3, seed=5)
    pd.testing.assert_frame_equal(a.lesions, b.lesions)
    table = lr_data_from_frames(a.patients, a.lesions, reference_arm="postoperative",
                                covariates=COVS)
    counts = table.frame.groupby("patient_id").size()
    assert counts.min() >= 1 and counts.max() <= 10 and (counts == 1).mean() > 0.3
    assert 0.5 < (a.lesions["size_cm"] < 3).mean() < 1.0
    lo, up = table.lower, table.upper
    assert np.all(up[np.isfinite(up)] > lo[np.isfinite(up)])
    # LR seen only at a scan after the latent time; unseen LRs happen after the last scan
    t = a.details["lr_time_months"].to_numpy()
    seen = np.isfinite(up)
    assert np.all((t[seen] > lo[seen]) & (t[seen] <= up[seen]))
    assert np.all(t[~seen] > lo[~seen])
    none = simulate_lr_trial(120, n_sites=3, seed=5, no_deaths=True)
    assert none.patients["died"].sum() == 0


def test_lesions_never_scanned_are_kept_with_one_warning():
    l = _lesions()
    l.loc[[1, 3], "lr_lower_months"] = "0"
    table = _validate(lesions=l)
    assert table.n_lesions == 5
    [warning] = table.warnings
    assert warning.column == "lr_lower_months" and warning.rows == (2, 4) and warning.value == 0
    assert "rows 2, 4: value 0 — 2 lesion(s) with no scan" in str(warning)


def test_lr_spec_requires_its_priors_and_checks_the_reference_lesion():
    from bayes_ablation.spec.plan import load_spec, parse_spec
    from tests.conftest import MODELS

    spec = load_spec(MODELS / "local_recurrence_lesion.toml")
    assert spec.endpoint == "local_recurrence" and spec.model == "lr_weibull"
    assert {"sigma_patient", "death_log_hr", "death_weibull_shape"} <= set(spec.priors)
    no_frailty = spec.updated(model={"patient_frailty": False}, priors={"sigma_patient": None})
    assert "sigma_patient" not in no_frailty.priors
    raw = json.loads(json.dumps(spec.raw))
    raw["priors"].pop("sigma_patient")
    raw["model"]["reference_lesion"] = {"size_cm": [2]}
    raw["priors"]["death_weibull_shape"] = {"family": "normal", "mu": 0, "sigma": 1,
                                            "rationale": "x"}
    with pytest.raises(SpecError) as err:
        parse_spec(raw, "lr.toml")
    text = str(err.value)
    assert "needs a prior for 'sigma_patient'" in text
    assert "reference_lesion size_cm must be a number or a label" in text
    assert "[priors.death_weibull_shape] is a positive quantity" in text
