"""``[borrowing]`` in a spec: parsed into a typed table, every problem reported at once."""

from __future__ import annotations

import tomllib

import pytest

from bayes_ablation.errors import SpecError
from bayes_ablation.spec.plan import load_spec, parse_spec
from tests.conftest import MODELS


def raw_spec() -> dict:
    return tomllib.loads((MODELS / "pfs_external_controls.toml").read_text())


def test_shipped_spec_is_commensurate():
    spec = load_spec(MODELS / "pfs_external_controls.toml")
    assert spec.borrowing.method == "commensurate"
    assert spec.borrowing.precision.family == "lognormal"
    assert spec.borrowing.needs_external


@pytest.mark.parametrize("method", ["none", "full"])
def test_methods_without_parameters(method):
    raw = raw_spec()
    raw["borrowing"] = {"method": method}
    assert parse_spec(raw).borrowing.method == method


def test_power_needs_a0_in_unit_interval():
    raw = raw_spec()
    raw["borrowing"] = {"method": "power", "a0": 0.5}
    assert parse_spec(raw).borrowing.a0 == 0.5
    raw["borrowing"] = {"method": "power", "a0": 1.5}
    with pytest.raises(SpecError, match=r"a0 must be <= 1.0"):
        parse_spec(raw)
    raw["borrowing"] = {"method": "power"}
    with pytest.raises(SpecError, match="needs a0"):
        parse_spec(raw)


def test_every_problem_is_listed():
    raw = raw_spec()
    raw["borrowing"] = {"method": "commensurate", "a0": 0.3,
                        "precision": {"family": "normal", "mu": 0, "sigma": 1,
                                      "rationale": "r"}}
    with pytest.raises(SpecError) as info:
        parse_spec(raw, "plan.toml")
    text = str(info.value)
    assert "unknown key 'a0'" in text
    assert "[borrowing.precision] is a positive quantity" in text


def test_unknown_method_and_wrong_family():
    raw = tomllib.loads((MODELS / "pfs_piecewise_site.toml").read_text())
    raw["borrowing"] = {"method": "full"}
    with pytest.raises(SpecError, match="implemented for endpoint 'pfs' with model family "
                                        "'weibull'"):
        parse_spec(raw)
    raw = raw_spec()
    raw["borrowing"] = {"method": "borrow_a_lot"}
    with pytest.raises(SpecError, match="method must be one of none, full, power"):
        parse_spec(raw)


def test_map_table():
    raw = raw_spec()
    raw["borrowing"] = {"method": "map", "studies": "hist.csv", "target": "log_hr",
                        "robust_weight": 0.3,
                        "map_mu": {"family": "normal", "mu": 0, "sigma": 2, "rationale": "r"},
                        "map_tau": {"family": "halfnormal", "sigma": 0.5, "rationale": "r"}}
    b = parse_spec(raw, "/plans/x.toml").borrowing
    assert b.target == "log_hr" and b.robust_weight == 0.3 and b.robust_sd_value == 2.0
    assert str(b.studies_path("/plans/x.toml")) == "/plans/hist.csv"
    raw["borrowing"].pop("map_tau")
    raw["borrowing"]["target"] = "median"
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert "target must be one of" in str(info.value)
    assert "[borrowing.map_tau]" in str(info.value)
