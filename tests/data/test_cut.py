"""Calendar cuts on hand-made dated tables, validation of dates, simulator round trip."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.cut import DAYS_PER_MONTH, cut, cut_latent, read_dated, validate_dated
from bayes_ablation.data.simulate_dated import simulate_dated_trial
from bayes_ablation.errors import DataValidationError

HAND = pd.DataFrame({
    "patient_id": ["A", "B", "C", "D", "E", "F"],
    "site": ["S1", "S1", "S2", "S2", "S1", "S2"],
    "arm": ["ctl", "trt", "ctl", "trt", "trt", "ctl"],
    "randomised_on": ["2027-01-01", "2027-01-10", "2027-02-01", "2027-03-01", "2027-07-01",
                      "2027-03-15"],
    "progressed_on": ["2027-03-01", "", "2027-08-01", "", "", "2027-06-30"],
    "last_followup_on": ["2027-03-01", "2027-09-01", "", "2027-05-01", "2027-12-01",
                         "2027-06-30"],
    "withdrawn": ["", "0", "", "1", "0", "0"],
})


def months(days: int) -> float:
    return days / DAYS_PER_MONTH


def test_cut_on_hand_made_table():
    table = validate_dated(HAND, "hand.csv")
    c = cut(table, "2027-06-30", reference_arm="ctl")
    f = c.patients.frame.set_index("patient_id")
    # E is randomised after the cut: excluded, and counted
    assert list(f.index) == ["A", "B", "C", "D", "F"]
    assert c.n_randomised_after == 1
    # A: progression before the cut -> event at 2027-03-01, day of randomisation counts
    assert f.loc["A", "event"] == 1
    assert f.loc["A", "time_months"] == pytest.approx(months(59 + 1))
    # B: followed beyond the cut -> censored at the cut
    assert f.loc["B", "event"] == 0
    assert f.loc["B", "time_months"] == pytest.approx(months((dt.date(2027, 6, 30)
                                                              - dt.date(2027, 1, 10)).days + 1))
    # C: progression after the cut, no follow-up date -> censored at the cut
    assert f.loc["C", "event"] == 0 and c.n_progressions_after == 1
    assert f.loc["C", "time_months"] == pytest.approx(months(149 + 1))
    # D: withdrawn on 2027-05-01 -> censored there, and no longer at risk
    assert f.loc["D", "event"] == 0
    assert f.loc["D", "time_months"] == pytest.approx(months(61 + 1))
    # F: progression on the cut date is known on the cut date
    assert f.loc["F", "event"] == 1
    assert c.patients.arms == ("ctl", "trt")
    assert list(c.withdrawn) == [False, False, False, True, False]
    # potential follow-up on the cut date, for every kept patient
    assert c.followup_at_cut[0] == pytest.approx(months(180 + 1))
    assert c.n_events == 2


def test_withdrawal_after_the_cut_is_not_known_at_the_cut():
    c = cut(validate_dated(HAND, "hand.csv"), "2027-04-15", reference_arm="ctl")
    f = c.patients.frame.set_index("patient_id")
    assert f.loc["D", "time_months"] == pytest.approx(months(45 + 1))
    assert not c.withdrawn.any()
    assert f.loc["A", "event"] == 1 and f.loc["F", "event"] == 0


def test_earlier_cut_and_nobody_randomised():
    table = validate_dated(HAND, "hand.csv")
    c = cut(table, "2027-01-31", reference_arm="ctl")
    assert list(c.patients.frame["patient_id"]) == ["A", "B"]
    assert c.patients.event.sum() == 0
    with pytest.raises(DataValidationError, match="at least one patient randomised"):
        cut(table, "2026-12-31")
    with pytest.raises(ValueError, match="ISO date"):
        cut(table, "30/06/2027")


def test_all_date_problems_are_reported_at_once():
    bad = HAND.copy()
    bad.loc[0, "randomised_on"] = "2027-02-30"        # not a date
    bad.loc[1, "progressed_on"] = "2026-12-01"        # before randomisation
    bad.loc[2, "last_followup_on"] = "2027-01-15"     # before randomisation, and ...
    bad.loc[2, "progressed_on"] = "2027-02-10"        # ... progression after last follow-up
    bad.loc[3, "progressed_on"] = ""
    bad.loc[3, "last_followup_on"] = ""               # neither date
    bad.loc[4, "randomised_on"] = ""                  # missing
    bad.loc[5, "withdrawn"] = "yes"
    bad.loc[5, "patient_id"] = "A"                    # duplicate
    with pytest.raises(DataValidationError) as err:
        validate_dated(bad, "bad.csv")
    text = str(err.value)
    found = {(p.row, p.column) for p in err.value.problems}
    assert {(1, "randomised_on"), (2, "progressed_on"), (3, "last_followup_on"),
            (3, "progressed_on"), (4, "last_followup_on"), (5, "randomised_on"),
            (6, "withdrawn"), (6, "patient_id")} <= found
    assert "bad.csv, row 3, column 'progressed_on'" in text
    assert "on or before the last follow-up" in text


def test_missing_columns_named():
    with pytest.raises(DataValidationError, match="progressed_on"):
        validate_dated(HAND.drop(columns=["progressed_on"]), "x.csv")


def test_csv_round_trip_and_simulator(tmp_path):
    sim = simulate_dated_trial(120, 4, -0.3, seed=3, accrual_months=12, followup_months=12)
    path = tmp_path / "dated.csv"
    sim.frame.to_csv(path, index=False)
    table = read_dated(path)
    assert table.n_patients == 120
    # a cut after the end of follow-up recovers simulate_trial's time/event table
    last = max(table.frame["last_followup_on"])
    full = cut(table, last, reference_arm="postoperative")
    from bayes_ablation.data.simulate import simulate_trial
    plain = simulate_trial(120, 4, -0.3, seed=3, accrual_months=12, followup_months=12).frame
    assert np.array_equal(full.patients.event, plain["event"].to_numpy())
    assert np.max(np.abs(full.patients.time - plain["time_months"].to_numpy())) < 0.6 / DAYS_PER_MONTH
    # an interim cut agrees with the latent-time cut to within a day
    d = sim.details
    mid = dt.date(2026, 1, 15) + dt.timedelta(days=int(8 * DAYS_PER_MONTH))
    interim = cut(table, mid, reference_arm="postoperative", start_date="2026-01-15")
    latent = cut_latent(d["entry_months"].to_numpy(), d["event_time_months"].to_numpy(),
                        np.where(d["dropped_out"], d["censor_time_months"], np.inf),
                        interim.cut_months)
    assert latent["enrolled"].sum() == interim.patients.n_patients
    assert latent["event"].sum() == interim.n_events
    assert np.max(np.abs(latent["time"] - interim.patients.time)) < 1.6 / DAYS_PER_MONTH
