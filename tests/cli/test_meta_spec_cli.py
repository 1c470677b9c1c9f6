"""Meta-analysis specs (priors, sensitivity panels) and the ``bayes-ablation meta`` command."""

import tomllib

import pandas as pd
import pytest

from bayes_ablation.cli.main import main
from bayes_ablation.core.files import verify
from bayes_ablation.errors import SpecError
from bayes_ablation.results.bundle import read_summary
from bayes_ablation.spec.plan import load_spec, parse_spec
from tests.conftest import MODELS, ROOT

EXAMPLE = ROOT / "examples" / "meta" / "crlm_pfs_hr.csv"


def _raw(name="meta_loghr.toml"):
    return tomllib.loads((MODELS / name).read_text())


def test_shipped_meta_specs_parse_and_round_trip():
    spec = load_spec(MODELS / "meta_loghr.toml")
    assert spec.endpoint == "meta" and spec.model == "normal_normal"
    assert spec.reference_arm is None and set(spec.priors) == {"mu", "tau"}
    assert len(spec.sensitivity["tau"]) == 7
    assert spec.sensitivity["tau"]["turner2015_any"].family == "lognormal_variance"
    again = parse_spec(tomllib.loads(spec.to_toml_text()))
    assert again.sha256 == spec.sha256 and again.sensitivity == spec.sensitivity
    ipd = load_spec(MODELS / "meta_ipd_ad.toml")
    assert set(ipd.priors) == {"mu", "tau", "log_cumhaz_ref", "weibull_shape", "sigma_site"}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["priors"]["tau"].update(family="normal", mu=0.0, sigma=1.0),
     "[priors.tau] is a positive quantity"),
    (lambda r: r["priors"]["tau"].update(family="uniform", lower=-1.0, upper=2.0),
     "uniform prior needs lower >= 0"),
    (lambda r: r["sensitivity"]["tau"]["uniform_0_2"].update(lower=-0.5),
     "[sensitivity.tau.uniform_0_2] is a positive quantity"),
    (lambda r: r["sensitivity"]["tau"]["halfnormal_1"].update(family="halfnormalish"),
     "[sensitivity.tau.halfnormal_1] family 'halfnormalish'"),
    (lambda r: r["sensitivity"].update(sigma_site={"a": {"family": "halfnormal", "sigma": 1.0,
                                                         "rationale": "x"}}),
     "[sensitivity.sigma_site] is not a prior of this spec"),
    (lambda r: r.update(hierarchy={"site_intercepts": True}), "[hierarchy] does not apply"),
    (lambda r: r["analysis"].update(covariates=["age"]), "covariates are not used"),
    (lambda r: r["priors"].pop("tau"), "needs a prior for 'tau'"),
])
def test_invalid_meta_specs_are_rejected(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(SpecError) as err:
        parse_spec(raw, "meta.toml")
    assert message in str(err.value)


def test_uniform_tau_prior_from_zero_is_allowed_and_ipd_options_are_checked():
    raw = _raw()
    raw["priors"]["tau"] = {"family": "uniform", "lower": 0.0, "upper": 2.0, "rationale": "x"}
    assert parse_spec(raw).priors["tau"].family == "uniform"
    raw = _raw("meta_ipd_ad.toml")
    raw["model"]["ipd_effects"] = "sideways"
    with pytest.raises(SpecError, match="ipd_effects must be one of non_centred, centred"):
        parse_spec(raw)
    pfs = tomllib.loads((MODELS / "pfs_weibull_site.toml").read_text())
    pfs["sensitivity"] = {"log_hr": {"wide": {"family": "normal", "mu": 0, "sigma": 2,
                                              "rationale": "x"}}}
    with pytest.raises(SpecError, match="only for endpoint 'meta'"):
        parse_spec(pfs)
    raw = _raw("meta_ipd_ad.toml")
    raw["priors"].pop("sigma_site")
    with pytest.raises(SpecError, match="needs a prior for 'sigma_site'"):
        parse_spec(raw)


def test_cli_quadrature_writes_a_complete_bundle(tmp_path, capsys):
    out = tmp_path / "meta"
    code = main(["meta", "--spec", str(MODELS / "meta_loghr.toml"), "--data", str(EXAMPLE),
                 "--out", str(out), "--method", "quadrature", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "exact quadrature" in printed and "pooled HR" in printed
    verify(out)
    summary = read_summary(out)
    assert summary["analysis"]["endpoint"] == "meta"
    assert summary["provenance"]["method"] == "quadrature"
    assert summary["diagnostics"] == {}
    labels = [row["tau prior"] for row in summary["meta"]["prior_sensitivity"]]
    assert labels[0] == "spec prior" and "turner2015_any" in labels
    assert summary["estimands"]["hr_mu"]["median"] == pytest.approx(0.738, abs=0.002)
    sens = pd.read_csv(out / "prior_sensitivity.csv")
    assert len(sens) == 8
    html = (out / "report.html").read_text()
    for piece in ("Heterogeneity prior sensitivity", 'id="fig-forest"',
                  'id="fig-heterogeneity_prior_sensitivity"', "exact quadrature",
                  "Nordlinger"):
        assert piece in html, piece
    assert {p.name for p in (out / "figures").iterdir()} == {
        "forest.png", "heterogeneity_prior_sensitivity.png", "tau_prior_posterior.png",
        "prior_posterior.png"}
    import xarray as xr
    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert "tau_posterior" in tree["estimands"]


def test_cli_refuses_bad_input_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("study,hr,ci_low,ci_high\nA,0.8,0.9,1.1\nA,0.7,0.5,0.9\n")
    args = ["meta", "--spec", str(MODELS / "meta_loghr.toml"), "--out", str(tmp_path / "o"),
            "--quiet"]
    assert main([*args, "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, row 1, column 'hr'" in err and "row 2, column 'study'" in err
    assert not (tmp_path / "o").exists()

    ipd = tmp_path / "ipd.csv"
    ipd.write_text(f"study,log_hr,se,ipd_file,reference_arm\nA,-0.2,0.1,,\n"
                   f"T,,,{ROOT / 'examples' / 'pfs_trial.csv'},postoperative\n")
    assert main([*args, "--data", str(ipd), "--method", "quadrature"]) == 2
    assert "normal_normal pools published estimates" in capsys.readouterr().err

    raw = _raw()
    raw["priors"]["mu"] = {"family": "studentt", "nu": 3, "mu": 0, "sigma": 1, "rationale": "x"}
    spec = tmp_path / "t.toml"
    spec.write_text(parse_spec(raw).to_toml_text())
    assert main(["meta", "--spec", str(spec), "--data", str(EXAMPLE), "--out",
                 str(tmp_path / "o"), "--method", "quadrature", "--quiet"]) == 2
    assert "normal prior on mu" in capsys.readouterr().err

    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "file").write_text("x")
    assert main(["meta", "--spec", str(MODELS / "meta_loghr.toml"), "--data", str(EXAMPLE),
                 "--out", str(existing), "--quiet"]) == 2
    assert (existing / "file").read_text() == "x"


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--log-likelihood", "all"], "all"),
                                                (["--log-likelihood", "none"], False)])
def test_fit_log_likelihood_option(flag, expected):
    from bayes_ablation.cli.main import _log_likelihood_option, build_parser

    args = build_parser().parse_args(["fit", "--spec", "s.toml", "--data", "d.csv",
                                      "--out", "o", *flag])
    assert _log_likelihood_option(args) == expected
