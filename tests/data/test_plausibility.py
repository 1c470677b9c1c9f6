"""Labels and plausibility: a typo is not a third arm, days are not months, no events is no fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayes_ablation as ba
from tests.conftest import MODELS, ROOT


@pytest.fixture(scope="module")
def spec():
    return ba.load_spec(MODELS / "pfs_weibull_site.toml")


@pytest.fixture()
def trial():
    return pd.read_csv(ROOT / "examples" / "pfs_trial.csv")


def test_a_label_differing_only_in_case_or_spaces_is_refused_with_its_rows(spec, trial):
    trial.loc[[4, 9], "arm"] = "Perioperative "
    with pytest.raises(ba.DataValidationError, match=r"row 5, column 'arm'.*rows 5, 10"):
        ba.read_patients(trial, spec)


def test_an_undeclared_label_is_refused_when_the_spec_lists_arms(spec, trial):
    declared = spec.updated(analysis={"arms": ["postoperative", "perioperative"]})
    trial.loc[7, "arm"] = "placebo"
    with pytest.raises(ba.DataValidationError, match=r"row 8, column 'arm': got 'placebo'"):
        ba.read_patients(trial, declared)


def test_tiny_arm_implausible_time_and_no_events_are_refused(spec, trial):
    small = trial.copy()
    small.loc[:2, "arm"] = "third"
    with pytest.raises(ba.DataValidationError, match="at least 5 patients per arm"):
        ba.read_patients(small, spec)
    far = trial.copy()
    far.loc[3, "time_months"] = 1e308
    with pytest.raises(ba.DataValidationError, match=r"row 4, column 'time_months'.*at most 600"):
        ba.read_patients(far, spec)
    none = trial.copy()
    none["event"] = 0
    with pytest.raises(ba.DataValidationError, match="at least one event"):
        ba.read_patients(none, spec)


def test_an_arm_without_events_is_a_named_warning(spec, trial):
    quiet = trial.copy()
    quiet.loc[quiet["arm"] == "perioperative", "event"] = 0
    table = ba.read_patients(quiet, spec)
    assert any("arm 'perioperative' has no event" in str(w) for w in table.warnings)


def test_spec_arms_must_include_the_reference_arm(tmp_path):
    text = (MODELS / "pfs_weibull_site.toml").read_text().replace(
        'reference_arm = "postoperative"',
        'reference_arm = "postoperative"\narms = ["perioperative", "other"]')
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ba.SpecError, match="must be one of arms"):
        ba.load_spec(path)


# ------------------------------------------------ the same checks in the LR and dated readers

@pytest.fixture(scope="module")
def lr_spec():
    return ba.load_spec(MODELS / "local_recurrence_lesion.toml")


def test_lr_reader_applies_the_label_and_plausibility_checks(lr_spec):
    from bayes_ablation.data.lesions import read_lr_data

    patients = pd.read_csv(ROOT / "examples" / "lr_patients.csv")
    lesions = pd.read_csv(ROOT / "examples" / "lr_lesions.csv")
    typo = patients.copy()
    typo.loc[[2, 6], "arm"] = "PERIOPERATIVE"
    typo.loc[4, "followup_months"] = 9000.0
    with pytest.raises(ba.DataValidationError) as info:
        read_lr_data(typo, lesions, lr_spec)
    text = str(info.value)
    assert "row 3, column 'arm': got 'PERIOPERATIVE'" in text and "rows 3, 7" in text
    assert "row 5, column 'followup_months'" in text and "at most 600" in text
    none = lesions.assign(lr_upper_months=float("nan"))
    with pytest.raises(ba.DataValidationError, match="at least one local recurrence"):
        read_lr_data(patients, none, lr_spec)
    arm_of = dict(zip(patients["patient_id"], patients["arm"], strict=True))
    quiet = lesions.copy()
    quiet.loc[quiet["patient_id"].map(arm_of) == "perioperative", "lr_upper_months"] = np.nan
    table = read_lr_data(patients, quiet, lr_spec)
    assert any("arm 'perioperative' has no local recurrence" in str(w) for w in table.warnings)


def test_dated_reader_applies_the_label_and_plausibility_checks(spec):
    from bayes_ablation.data.cut import cut, read_dated
    from bayes_ablation.data.simulate_dated import simulate_dated_trial

    frame = simulate_dated_trial(60, 4, -0.3, seed=3, start_date="2026-01-15").frame
    frame = frame.astype(str).replace({"NaT": "", "nan": "", "None": ""})
    bad = frame.copy()
    bad.loc[[3, 8], "arm"] = " Perioperative"
    bad.loc[5, "last_followup_on"] = "2099-01-01"
    bad.loc[5, "progressed_on"] = ""
    with pytest.raises(ba.DataValidationError) as info:
        read_dated(bad, spec=spec)
    text = str(info.value)
    assert "row 4, column 'arm'" in text and "rows 4, 9" in text
    assert "row 6, column 'last_followup_on': got '2099-01-01'" in text
    assert "a plausible follow-up from randomisation: at most 600 months" in text
    declared = spec.updated(analysis={"arms": ["postoperative", "perioperative"]})
    other = frame.copy()
    other.loc[10, "arm"] = "placebo"
    with pytest.raises(ba.DataValidationError, match=r"row 11, column 'arm': got 'placebo'"):
        read_dated(other, spec=declared)
    # at a cut the rows named are the file's rows, not the cut table's
    late = frame.copy()
    order = pd.to_datetime(late["randomised_on"]).argsort().to_numpy()
    last_row = int(order[-1])
    late.loc[last_row, "arm"] = "placebo"
    table = read_dated(late)  # no spec: the label is only refused when the plan declares arms
    table = type(table)(frame=table.frame, covariates=table.covariates, source=table.source,
                        sha256=table.sha256, checks={"arms": ["postoperative", "perioperative"]})
    with pytest.raises(ba.DataValidationError, match=rf"row {last_row + 1}, column 'arm'"):
        cut(table, "2040-01-01", reference_arm="postoperative")
