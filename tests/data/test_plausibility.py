"""Labels and plausibility: a typo is not a third arm, days are not months, no events is no fit."""

from __future__ import annotations

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
