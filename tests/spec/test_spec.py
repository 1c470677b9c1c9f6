import json
import tomllib

import pytest

from bayes_ablation.errors import SpecError
from bayes_ablation.spec.plan import load_spec, parse_spec
from tests.conftest import MODELS


def _raw():
    return tomllib.loads((MODELS / "pfs_weibull_site.toml").read_text())


def test_shipped_spec_parses_with_priors_and_rationales(weibull_spec):
    assert weibull_spec.model == "weibull"
    assert weibull_spec.reference_arm == "postoperative"
    assert set(weibull_spec.priors) == {"log_hr", "log_cumhaz_ref", "weibull_shape", "sigma_site"}
    assert all(p.rationale for p in weibull_spec.priors.values())
    assert len(weibull_spec.sha256) == 64


def test_hash_ignores_formatting_but_not_meaning(tmp_path):
    text = (MODELS / "pfs_weibull_site.toml").read_text()
    reformatted = tmp_path / "a.toml"
    lines = [ln.replace(" = ", "=") if '"' not in ln else ln for ln in text.splitlines()]
    reformatted.write_text("# a new comment\n\n" + "\n".join(lines))
    assert load_spec(reformatted).sha256 == load_spec(MODELS / "pfs_weibull_site.toml").sha256
    changed = tmp_path / "b.toml"
    changed.write_text(text.replace("sigma = 1.0", "sigma = 2.0", 1))
    assert load_spec(changed).sha256 != load_spec(reformatted).sha256


def test_round_trip_through_toml_text(weibull_spec):
    again = parse_spec(tomllib.loads(weibull_spec.to_toml_text()))
    assert again.sha256 == weibull_spec.sha256


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["analysis"].update(colour="red"), "unknown key 'colour'"),
    (lambda r: r.update(extras={}), "unknown top-level section [extras]"),
    (lambda r: r["priors"]["log_hr"].update(family="cauchyish"), "family 'cauchyish'"),
    (lambda r: r["priors"]["sigma_site"].update(sigma=-1.0), "sigma must be > 0"),
    (lambda r: r["priors"]["weibull_shape"].update(family="normal", mu=0.0, sigma=1.0),
     "positive quantity"),
    (lambda r: r["priors"].pop("log_hr"), "needs a prior for 'log_hr'"),
    (lambda r: r["priors"]["log_hr"].pop("rationale"), "rationale"),
    (lambda r: r["sampler"].update(chains=0), "chains must be >= 1"),
    (lambda r: r["sampler"].update(target_accept=1.5), "target_accept must be <= 0.999"),
    (lambda r: r["sampler"].update(backend="stan"), "backend must be one of"),
    (lambda r: r["estimands"].update(times_months=[-1]), "times_months"),
    (lambda r: r["model"].update(family="cox"), "family must be one of"),
    (lambda r: r["model"].update(time_ref_months=0), "time_ref_months must be a number > 0"),
    (lambda r: r["hierarchy"].update(site_arm_slopes=True), "'sigma_site_arm'"),
    (lambda r: r["diagnostics"].update(rhat_max="1.01"), "rhat_max must be a finite number"),
])
def test_invalid_specs_are_rejected_with_a_clear_message(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(SpecError) as err:
        parse_spec(raw, "plan.toml")
    assert message in str(err.value)
    assert "plan.toml" in str(err.value)


def test_all_problems_reported_together():
    raw = _raw()
    raw["analysis"]["colour"] = "red"
    raw["sampler"]["chains"] = -3
    with pytest.raises(SpecError) as err:
        parse_spec(raw, "plan.toml")
    assert len(err.value.messages) == 2


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[analysis\nname=")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_with_sampler_changes_hash(weibull_spec):
    other = weibull_spec.with_sampler(draws=200)
    assert other.sampler.draws == 200 and other.sha256 != weibull_spec.sha256
    assert json.loads(json.dumps(other.raw))["sampler"]["draws"] == 200


@pytest.mark.parametrize("protocol", [[], [3, 3, 6], [0, 3], "3-monthly"])
def test_lr_scan_protocol_is_validated(protocol):
    import tomllib

    from tests.conftest import MODELS

    raw = tomllib.loads((MODELS / "local_recurrence_lesion.toml").read_text())
    assert parse_spec(raw, "lr.toml").model_options.get("scan_protocol_months") is None
    raw["model"]["scan_protocol_months"] = [4, 8, 12, 18, 24]
    assert parse_spec(raw, "lr.toml").model_options["scan_protocol_months"] == [4, 8, 12, 18, 24]
    raw["model"]["scan_protocol_months"] = protocol
    with pytest.raises(SpecError, match=r"(?s)lr.toml.*scan_protocol_months must be a non-empty list"):
        parse_spec(raw, "lr.toml")


def test_design_defaults_to_randomised_and_accepts_cohort() -> None:
    import tomllib
    from pathlib import Path

    from bayes_ablation.errors import SpecError
    from bayes_ablation.spec.plan import parse_spec

    path = Path(__file__).resolve().parents[2] / "models" / "pfs_weibull_site.toml"
    raw = tomllib.loads(path.read_text())
    assert parse_spec(raw, str(path)).design == "randomised"
    raw["analysis"]["design"] = "cohort"
    assert parse_spec(raw, str(path)).design == "cohort"
    raw["analysis"]["design"] = "observational"
    with pytest.raises(SpecError, match="design must be one of randomised, cohort"):
        parse_spec(raw, str(path))
