"""Interim-monitoring design files: parsing, validation messages, hash."""

from __future__ import annotations

import copy
import tomllib

import pytest

from bayes_ablation.errors import SpecError
from bayes_ablation.spec.design import load_design, parse_design
from tests.conftest import MODELS

DESIGN = MODELS / "interim_design.toml"


def _raw():
    return tomllib.loads(DESIGN.read_text())


def test_shipped_design_parses():
    d = load_design(DESIGN)
    assert d.spec.name == "pfs_weibull_site"
    assert d.final_events == 250 and d.final_date is None
    assert [lk.events for lk in d.looks] == [100, 175]
    assert [r.kind for r in d.rules] == ["efficacy", "futility", "success"]
    assert d.success_rule.hr_cutoff == 1.0 and d.success_rule.holds(0.98)
    assert not d.success_rule.holds(0.975)
    assert d.needs_ppos
    assert abs(sum(d.accrual.site_weights) - 1) < 1e-12
    assert set(d.scenarios) == {"null", "alt"}
    assert len(d.sha256) == 64


def test_hash_covers_design_and_analysis_spec(tmp_path):
    base = load_design(DESIGN)
    raw = _raw()
    raw["rules"][0]["threshold"] = 0.995
    assert parse_design(raw, base_dir=MODELS).sha256 != base.sha256
    spec_text = (MODELS / "pfs_weibull_site.toml").read_text().replace("sigma = 1.0", "sigma = 2.0", 1)
    (tmp_path / "pfs_weibull_site.toml").write_text(spec_text)
    (tmp_path / "design.toml").write_text(DESIGN.read_text())
    assert load_design(tmp_path / "design.toml").sha256 != base.sha256
    # a TOML date for the final trigger is accepted and hashed as its ISO text
    raw = _raw()
    raw["final"] = {"date": __import__("datetime").date(2030, 6, 30)}
    raw["looks"] = [{"date": "2027-06-30"}, {"date": "2028-06-30"}]
    d = parse_design(raw, base_dir=MODELS)
    assert str(d.final_date) == "2030-06-30" and len(d.sha256) == 64


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["rules"][0].update(op="=>"), "op must be one of"),
    (lambda r: r["rules"][0].update(quantity="P(HR<1) or 1"), "quantity must be"),
    (lambda r: r["rules"][0].update(quantity="__import__('os')"), "quantity must be"),
    (lambda r: r["rules"][0].update(threshold=1.5), "threshold must be <= 1"),
    (lambda r: r["rules"][2].update(quantity="PPoS"), "success rule must be on a posterior"),
    (lambda r: r["rules"].pop(2), "exactly one rule of kind 'success'"),
    (lambda r: r["rules"][0].update(kind="harm"), "kind must be one of"),
    (lambda r: r["rules"][0].update(looks=[3]), "interim look numbers 1..2"),
    (lambda r: r["final"].update(date="2030-01-01"), "exactly one trigger"),
    (lambda r: r["final"].update(events=1000), "cannot exceed accrual total_n"),
    (lambda r: r["looks"][1].update(events=50), "strictly increasing"),
    (lambda r: r["looks"][1].update(events=300), "below the final"),
    (lambda r: r["accrual"].update(site_weights=[1, 2]), "site_weights must be 8 numbers"),
    (lambda r: r["accrual"].update(rate_per_month=0), "rate_per_month must be >"),
    (lambda r: r["design"].update(analysis_spec="missing.toml"), "cannot read file"),
    (lambda r: r["design"].update(start_date="15/01/2026"), "start_date must be an ISO date"),
    (lambda r: r["fast"].update(cuts_months=[6, 3]), "cuts_months must be"),
    (lambda r: r["fast"]["baseline_log_hazard"].update(family="studentt", nu=3),
     "must be a normal prior"),
    (lambda r: r["scenarios"]["alt"].update(log_hr="big"), "log_hr must be a finite number"),
    (lambda r: r["scenarios"]["alt"].pop("log_hr"), "needs the true log_hr"),
    (lambda r: r.update(extra={}), "unknown top-level section [extra]"),
])
def test_invalid_designs_are_rejected_clearly(mutate, message):
    raw = copy.deepcopy(_raw())
    mutate(raw)
    with pytest.raises(SpecError) as err:
        parse_design(raw, "plan.toml", base_dir=MODELS)
    assert message in str(err.value)
    assert "plan.toml" in str(err.value)


def test_all_problems_at_once():
    raw = _raw()
    raw["rules"][0]["op"] = "=="
    raw["accrual"]["total_n"] = -1
    raw["ppos"]["draws"] = 3
    with pytest.raises(SpecError) as err:
        parse_design(raw, "plan.toml", base_dir=MODELS)
    assert len(err.value.messages) >= 3
