"""Every patient-table validation rule, reported with row, column, value and expectation."""

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.schema import patients_from_frame, read_patients
from bayes_ablation.data.simulate import CovariateSim, simulate_trial
from bayes_ablation.errors import DataValidationError


def _frame(n=8):
    return pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(n)],
        "site": ["A", "B"] * (n // 2),
        "arm": ["post", "post", "peri", "peri"] * (n // 4),
        "time_months": np.linspace(1, 20, n),
        "event": [1, 0] * (n // 2),
    })


def _problems(frame, **kw):
    kw.setdefault("reference_arm", "post")
    with pytest.raises(DataValidationError) as err:
        patients_from_frame(frame, source="trial.csv", **kw)
    return err.value.problems


def _one(frame, **kw):
    problems = _problems(frame, **kw)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_table_round_trips():
    table = patients_from_frame(_frame(), reference_arm="post")
    assert table.arms == ("post", "peri") and table.sites == ("A", "B")
    assert table.n_patients == 8 and table.event.sum() == 4


def test_missing_columns_named():
    p = _problems(_frame().drop(columns=["event", "site"]))
    assert {q.column for q in p} == {"event", "site"}
    assert all(q.row is None for q in p)


@pytest.mark.parametrize(("value", "expected"), [
    ("abc", "finite number"), (np.nan, "finite number"), (0.0, "> 0"), (-2.0, "> 0"),
    (np.inf, "finite number"),
])
def test_bad_times(value, expected):
    f = _frame().astype({"time_months": object})
    f.loc[3, "time_months"] = value
    p = _one(f)
    assert (p.row, p.column) == (4, "time_months") and expected in p.expected
    assert "trial.csv, row 4, column 'time_months'" in str(p)


@pytest.mark.parametrize("value", [2, -1, "yes", np.nan, 0.5])
def test_event_not_binary(value):
    f = _frame().astype({"event": object})
    f.loc[5, "event"] = value
    p = _one(f)
    assert (p.row, p.column) == (6, "event") and "0 (censored) or 1 (event)" in p.expected


def test_duplicate_ids_point_at_first_occurrence():
    f = _frame()
    f.loc[6, "patient_id"] = "P1"
    p = _one(f)
    assert (p.row, p.column, p.value) == (7, "patient_id", "P1") and "row 2" in p.expected


def test_blank_labels():
    f = _frame()
    f.loc[0, "site"] = " "
    f.loc[1, "arm"] = ""
    p = _problems(f)
    assert {(q.row, q.column) for q in p} == {(1, "site"), (2, "arm")}


def test_fewer_than_two_arms_and_reference_absent():
    f = _frame()
    f["arm"] = "peri"
    p = _problems(f)
    expectations = " | ".join(q.expected for q in p)
    assert "at least two arms" in expectations and "reference arm" in expectations


def test_reference_arm_absent():
    p = _one(_frame(), reference_arm="control")
    assert p.column == "arm" and p.value == "control"


def test_declared_arm_or_site_without_patients_parquet(tmp_path):
    f = _frame()
    f["arm"] = pd.Categorical(f["arm"], categories=["post", "peri", "placebo"])
    f["site"] = pd.Categorical(f["site"], categories=["A", "B", "C"])
    path = tmp_path / "trial.parquet"
    f.to_parquet(path)
    with pytest.raises(DataValidationError) as err:
        read_patients(path, reference_arm="post")
    p = err.value.problems
    assert {(q.column, q.value) for q in p} == {("arm", "placebo"), ("site", "C")}
    assert all("no patients" in q.expected or "at least one patient" in q.expected for q in p)


def test_covariates_missing_values_and_constant():
    f = _frame()
    f["size_cm"] = [1.0, 2.0, np.nan, 1.5, 2.5, 1.2, 0.8, 3.0]
    f["modality"] = ["RFA"] * 8
    p = _problems(f, covariates=["size_cm", "modality", "margin_mm"])
    got = {(q.row, q.column) for q in p}
    assert (3, "size_cm") in got          # missing value
    assert (None, "modality") in got      # constant
    assert (None, "margin_mm") in got     # absent column


def test_every_problem_reported_at_once():
    f = _frame().astype({"time_months": object, "event": object})
    f.loc[0, "time_months"] = -1
    f.loc[1, "event"] = 3
    f.loc[2, "patient_id"] = "P0"
    assert len(_problems(f)) == 3


def test_csv_reading_names_file_and_keeps_every_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("patient_id,site,arm,time_months,event\nP1,A,post,3.5,1\nP2,A,peri,,0\n"
                    "P3,B,peri,2,1\nP4,B,post,4,x\n")
    with pytest.raises(DataValidationError) as err:
        read_patients(path, reference_arm="post")
    msg = str(err.value)
    assert str(path) in msg and "row 2, column 'time_months'" in msg
    assert "row 4, column 'event'" in msg


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "t.xlsx"
    path.write_text("x")
    with pytest.raises(DataValidationError, match="ending in"):
        read_patients(path, reference_arm="post")


def test_simulator_is_reproducible_and_validates():
    a = simulate_trial(120, 4, -0.3, seed=7, covariates={"size_cm": CovariateSim("normal", 0.2,
                                                                                  2.0, 0.5)})
    b = simulate_trial(120, 4, -0.3, seed=7, covariates={"size_cm": CovariateSim("normal", 0.2,
                                                                                  2.0, 0.5)})
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.truth == b.truth
    table = patients_from_frame(a.frame, reference_arm="postoperative", covariates=["size_cm"])
    assert len(table.sites) == 4 and table.n_patients == 120
    c = simulate_trial(120, 4, -0.3, seed=8)
    assert not a.frame["time_months"].equals(c.frame["time_months"])


def test_simulator_truth_matches_generated_hazard():
    """With no censoring, the reference-arm median equals the requested median (large n)."""
    sim = simulate_trial(40000, 1, 0.0, seed=3, sigma_site=0.0, median_ref_months=18.0,
                         dropout_per_month=0.0, followup_months=1e6)
    ref = sim.frame[sim.frame["arm"] == "postoperative"]
    assert ref["event"].all()
    assert abs(np.median(ref["time_months"]) - 18.0) < 0.5  # se of the median ~0.17
