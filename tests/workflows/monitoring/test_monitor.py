"""`bayes-ablation monitor` end to end: a look, an identical re-run (no-op), a refused
different look, a second look, the report; ledger problems caught before any fitting."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bayes_ablation.cli.main import main
from bayes_ablation.data.simulate_dated import simulate_dated_trial
from tests.conftest import MODELS


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    spec = (MODELS / "pfs_weibull_site.toml").read_text()
    spec = spec.replace("chains = 4", "chains = 2").replace("draws = 1000", "draws = 400") \
        .replace("tune = 1000", "tune = 400")
    (tmp / "spec.toml").write_text(spec)
    design = (MODELS / "interim_design.toml").read_text()
    design = design.replace('analysis_spec = "pfs_weibull_site.toml"',
                            'analysis_spec = "spec.toml"').replace("draws = 1000", "draws = 300")
    (tmp / "design.toml").write_text(design)
    sim = simulate_dated_trial(300, 8, -0.3, seed=11, accrual_months=24, followup_months=24,
                               start_date="2026-01-15")
    sim.frame.to_csv(tmp / "dated.csv", index=False)
    return tmp


def monitor(tmp, cut, ledger="trial.db", data="dated.csv", out="report"):
    return main(["monitor", "--design", str(tmp / "design.toml"), "--data", str(tmp / data),
                 "--cut", cut, "--ledger", str(tmp / ledger), "--out", str(tmp / out),
                 "--quiet"])


def test_monitor_looks_reruns_and_refusals(setup, capsys):
    tmp = setup
    assert monitor(tmp, "2027-06-30") == 0
    out = capsys.readouterr().out
    assert "look 1 — cut 2027-06-30 — interim analysis" in out
    assert "PPoS" in out and "DECISION:" in out and "recorded in" in out
    look = json.loads((tmp / "report" / "look.json").read_text())
    assert look["ppos"]["n_draws"] == 300
    assert 0 <= look["ppos"]["ppos"] <= 1 and look["ppos"]["mcse"] >= 0
    p_mcmc, p_fast = look["posterior"]["P(HR<1)"], look["fast_posterior"]["P(HR<1)"]
    assert abs(p_mcmc - p_fast) < 0.05  # same data, two posteriors (Weibull MCMC vs PWE Laplace)

    # identical re-run: reproduced exactly, nothing written
    db = (tmp / "trial.db").read_bytes()
    assert monitor(tmp, "2027-06-30") == 0
    assert "already recorded with identical inputs and result; nothing written" in \
        capsys.readouterr().out
    assert (tmp / "trial.db").read_bytes() == db

    # the same cut with changed data is refused before fitting
    frame = pd.read_csv(tmp / "dated.csv", dtype=str, keep_default_na=False)
    early = frame.index[(frame["randomised_on"] < "2027-01-01") & (frame["progressed_on"] == "")]
    frame.loc[early[0], ["progressed_on", "last_followup_on"]] = "2027-03-01"
    frame.to_csv(tmp / "changed.csv", index=False)
    assert monitor(tmp, "2027-06-30", data="changed.csv") == 2
    err = capsys.readouterr().err
    assert "REFUSED" in err and "data SHA-256" in err
    assert (tmp / "trial.db").read_bytes() == db

    assert "Decision:" in (tmp / "report" / "report.html").read_text()


def test_report_shows_the_trajectory_over_all_looks(tmp_path):
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.ledger import Ledger, LookEntry
    from bayes_ablation.workflows.monitoring.report import write_monitor_report

    design = load_design(MODELS / "interim_design.toml")
    with Ledger.open(tmp_path / "t.db") as ledger:
        for k, (cut, p, ppos) in enumerate([("2027-06-30", 0.81, 0.55), ("2027-12-31", 0.93, 0.71),
                                            ("2028-06-30", 0.996, None)], start=1):
            rules = [{"rule": r.describe(), "kind": r.kind, "quantity": r.quantity,
                      "value": p, "threshold": r.threshold, "holds": False, "note": ""}
                     for r in design.rules]
            result = {"analysis": "interim", "cut_date": cut, "comparison": "b vs a",
                      "data": {"patients": 100 * k, "events": 40 * k, "randomised_after_cut": 0,
                               "progressions_after_cut": 0, "withdrawn": 0,
                               "by_arm": {"a": {"patients": 50 * k, "events": 22 * k}}},
                      "posterior": {"P(HR<1)": p, "log_hr_mean": -0.2, "log_hr_sd": 0.2,
                                    "hr_median": 0.8, "hr_q2.5": 0.6, "hr_q97.5": 1.1,
                                    "diagnostics_passed": True, "diagnostics_failures": []},
                      "fast_posterior": {"P(HR<1)": p, "log_hr_mean": -0.2, "log_hr_sd": 0.2},
                      "ppos": None if ppos is None else {
                          "ppos": ppos, "mcse": 0.01, "n_draws": 1000, "success_rule": "x",
                          **{key: {"median": 1, "q5": 0, "q95": 2} for key in (
                              "final_months_after_cut", "final_enrolled", "final_events")}},
                      "decision": {"action": "continue", "reason": "no rule holds",
                                   "rules": rules}}
            ledger.record(LookEntry(cut, "d" * 64, design.sha256, p, ppos,
                                    None if ppos is None else 0.01, "continue", result,
                                    {"numpy": "2"}))
        looks = ledger.looks()
    out = write_monitor_report(tmp_path / "rep", design, looks, looks[-1], "t.db", "ok")
    assert list(pd.read_csv(out / "looks.csv")["look"]) == [1, 2, 3]
    assert (out / "trajectory.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    assert "Trajectory over all looks" in html and "2028-06-30" in html
    # the report folder is replaced atomically at the next look, never another folder
    write_monitor_report(tmp_path / "rep", design, looks, looks[0], "t.db", "again")
    assert "look 1 (2027-06-30)" in (out / "report.html").read_text()


def test_bad_ledger_or_cut_is_refused_before_fitting(setup, capsys):
    tmp = setup
    (tmp / "notes.db").write_text("not a database")
    assert monitor(tmp, "2027-06-30", ledger="notes.db", out="r2") == 2
    assert "not an SQLite database" in capsys.readouterr().err
    assert (tmp / "notes.db").read_text() == "not a database"
    assert monitor(tmp, "30/06/2027", ledger="new.db", out="r2") == 2
    assert not (tmp / "r2").exists()
