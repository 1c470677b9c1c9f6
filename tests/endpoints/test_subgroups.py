"""Effect modification (``[analysis] subgroups``): spec and data checks, recovery of a true
effect modifier next to a null one (PFS Weibull and PWE, LR), shrinkage, the Weibull kernel's
fallback, the report section and its forest plot."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.simulate import CovariateSim, simulate_trial
from bayes_ablation.errors import DataValidationError, SpecError
from bayes_ablation.spec.plan import load_spec, parse_spec
from tests.conftest import MODELS

PRIORS = {
    "beta_subgroup": {"family": "normal", "mu": 0.0, "sigma": 1.0,
                      "rationale": "prognostic effect of each subgroup variable"},
    "sigma_subgroup": {"family": "halfnormal", "sigma": 0.5,
                       "rationale": "subgroup HRs within x2.7 of each other at 2 sd"},
}
SAMPLER = {"chains": 2, "draws": 500, "tune": 500}
#: true log HR (reference level of both subgroups) and the true modification by ras_mutant
LOG_HR, RAS_DELTA = -0.5, 1.0


def with_subgroups(path, subgroups, *, tau_sd: float = 0.5, **analysis):
    priors = json.loads(json.dumps(PRIORS))
    priors["sigma_subgroup"]["sigma"] = tau_sd
    return load_spec(path).updated(analysis={"subgroups": list(subgroups), **analysis},
                                   priors=priors, sampler=SAMPLER)


def pfs_trial(seed: int = 3) -> pd.DataFrame:
    """600 patients: ras_mutant modifies the effect (log HR −0.5 → +0.5), size_gt_2cm does
    not (prognostic only)."""
    return simulate_trial(600, 6, LOG_HR, seed=seed, covariates={
        "ras_mutant": CovariateSim("binary", 0.3, p=0.4, arm_interaction=RAS_DELTA),
        "size_gt_2cm": CovariateSim("binary", 0.2, p=0.5)}).frame


def draws(result, name, **sel):
    return result.estimands[name].sel(treatment="perioperative", **sel).values.ravel()


def interval(values, prob=0.95):
    return np.quantile(values, [(1 - prob) / 2, 1 - (1 - prob) / 2])


# ------------------------------------------------------------------------------ spec

def _raw(name="pfs_weibull_site.toml"):
    return tomllib.loads((MODELS / name).read_text())


def test_subgroups_need_their_priors_and_are_listed_in_the_spec():
    raw = _raw()
    raw["analysis"]["subgroups"] = ["ras_mutant", "size_gt_2cm"]
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    text = str(err.value)
    assert "needs a prior for 'beta_subgroup'" in text
    assert "needs a prior for 'sigma_subgroup'" in text
    raw["priors"].update(json.loads(json.dumps(PRIORS)))
    spec = parse_spec(raw)
    assert spec.subgroups == ("ras_mutant", "size_gt_2cm")


def test_every_subgroup_spec_problem_is_reported_together():
    raw = _raw()
    raw["analysis"]["subgroups"] = ["ras_mutant", "ras_mutant", "age"]
    raw["analysis"]["covariates"] = ["age"]
    raw["priors"].update(json.loads(json.dumps(PRIORS)))
    raw["priors"]["beta_covariates"] = {"family": "normal", "mu": 0.0, "sigma": 1.0,
                                        "rationale": "x"}
    raw["priors"]["sigma_subgroup"] = {"family": "normal", "mu": 0.0, "sigma": 1.0,
                                       "rationale": "x"}
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    text = str(err.value)
    assert "listed twice: ras_mutant" in text
    assert "age listed both as covariates and as subgroups" in text
    assert "[priors.sigma_subgroup] is a positive quantity" in text
    raw["analysis"]["subgroups"] = "ras_mutant"
    with pytest.raises(SpecError, match="subgroups must be a list of column names"):
        parse_spec(raw)


def test_shipped_specs_are_unchanged_without_subgroups():
    for path in MODELS.glob("*.toml"):
        raw = tomllib.loads(path.read_text())
        if "analysis" not in raw:
            continue
        spec = load_spec(path)
        assert spec.subgroups == ()
        assert not {"beta_subgroup", "sigma_subgroup"} & set(spec.priors)


# ------------------------------------------------------------------------------ data

def test_non_binary_subgroup_cells_are_errors_naming_file_row_and_column(tmp_path):
    from bayes_ablation.data.schema import read_patients

    spec = with_subgroups(MODELS / "pfs_weibull_site.toml", ["ras_mutant", "size_gt_2cm",
                                                             "node_positive"])
    frame = pfs_trial().head(60).copy()
    frame["ras_mutant"] = frame["ras_mutant"].astype(object)
    frame.loc[4, "ras_mutant"] = 2           # row 5
    frame.loc[9, "ras_mutant"] = "yes"       # row 10
    frame.loc[11, "ras_mutant"] = ""         # row 12: missing
    frame["size_gt_2cm"] = 1.0               # one level only
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as err:
        read_patients(path, spec)
    problems = err.value.problems
    where = {(p.row, p.column) for p in problems}
    assert {(5, "ras_mutant"), (10, "ras_mutant"), (12, "ras_mutant")} <= where
    assert (None, "node_positive") in where                     # unknown column
    assert any(p.column == "size_gt_2cm" and "both levels" in p.expected for p in problems)
    assert all(p.file == str(path) for p in problems)
    assert any("0 or 1" in p.expected for p in problems if p.column == "ras_mutant")


def test_valid_subgroups_are_kept_as_zero_one_columns():
    from bayes_ablation.data.schema import read_patients

    spec = with_subgroups(MODELS / "pfs_weibull_site.toml", ["ras_mutant"])
    frame = pfs_trial().head(80).copy()
    frame["ras_mutant"] = np.where(frame["ras_mutant"] == 1, "true", "False")
    table = read_patients(frame, spec)
    assert table.subgroups == ("ras_mutant",)
    assert set(table.frame["ras_mutant"].unique()) == {0.0, 1.0}
    assert (table.frame["ras_mutant"] == 1).sum() == (frame["ras_mutant"] == "true").sum()


def test_lr_subgroups_from_lesions_derived_margin_and_patient_table():
    from bayes_ablation.data.lesions import read_lr_data
    from bayes_ablation.data.simulate_lr import simulate_lr_trial

    sim = simulate_lr_trial(60, 3, seed=2, log_hr_interactions={"size_gt_2cm": 0.0})
    patients = sim.patients.assign(ras_mutant=np.arange(len(sim.patients)) % 2)
    spec = with_subgroups(MODELS / "local_recurrence_lesion.toml",
                          ["size_gt_2cm", "margin_lt_5mm", "ras_mutant"],
                          covariates=["size_cm", "modality"])
    table = read_lr_data(patients, sim.lesions, spec)
    assert table.subgroups == ("size_gt_2cm", "margin_lt_5mm", "ras_mutant")
    f = table.frame
    np.testing.assert_array_equal(f["size_gt_2cm"], (sim.lesions["size_cm"] > 2).astype(float))
    np.testing.assert_array_equal(f["margin_lt_5mm"], (sim.lesions["margin_mm"] < 5).astype(float))
    owner = patients.set_index("patient_id")["ras_mutant"]
    np.testing.assert_array_equal(f["ras_mutant"], owner.loc[f["patient_id"]].to_numpy(float))

    bad = with_subgroups(MODELS / "local_recurrence_lesion.toml", ["size_gt_2cm", "kras"],
                         covariates=["size_cm"])
    lesions = sim.lesions.copy()
    lesions.loc[2, "size_gt_2cm"] = 3
    with pytest.raises(DataValidationError) as err:
        read_lr_data(patients, lesions, bad)
    where = {(p.row, p.column) for p in err.value.problems}
    assert (3, "size_gt_2cm") in where and (None, "kras") in where


# ------------------------------------------------------------------------------ kernel

def test_weibull_kernel_declines_a_subgroup_model_and_sampling_falls_back(monkeypatch):
    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs import fastpath as pfs_fastpath
    from bayes_ablation.inference import kernels
    from bayes_ablation.inference import sampling as inference

    spec = with_subgroups(MODELS / "pfs_weibull_site.toml", ["ras_mutant", "size_gt_2cm"])
    model = build_model(spec, read_patients(pfs_trial().head(120), spec))
    assert {"beta_subgroup", "sigma_subgroup", "z_subgroup"} <= {rv.name for rv in
                                                                model.free_RVs}
    with pytest.raises(kernels.KernelUnavailable, match="subgroup"):
        pfs_fastpath.weibull_plan(model, spec)
    with pytest.raises(kernels.KernelUnavailable, match="subgroup"):
        kernels.kernel_model(model, spec)

    def fake_nutpie(*args, **kwargs):       # no compile: only the routing is under test
        return inference.SamplingResult(idata=None, sampler="nutpie", settings={},
                                        timings={}, details={"logp_kernel": "pytensor"})

    monkeypatch.setattr(inference, "_sample_nutpie", fake_nutpie)
    result = inference.sample(model, spec.sampler, spec=spec)
    assert "subgroup" in result.details["cached_kernel_unavailable"]
    assert result.details["logp_kernel"] == "pytensor"


# ------------------------------------------------------------------------------ fits

@pytest.fixture(scope="module")
def pfs_fit():
    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.workflows.fit import fit

    spec = with_subgroups(MODELS / "pfs_weibull_site.toml", ["ras_mutant", "size_gt_2cm"])
    return fit(spec, read_patients(pfs_trial(), spec), ppc_draws=40)


def test_true_effect_modifier_is_found_and_the_null_one_is_not(pfs_fit):
    ras = draws(pfs_fit, "delta_subgroup", subgroup="ras_mutant")
    size = draws(pfs_fit, "delta_subgroup", subgroup="size_gt_2cm")
    lo, hi = interval(ras)
    assert lo > 0 and lo < RAS_DELTA < hi                       # excludes 0, covers truth
    lo, hi = interval(size)
    assert lo < 0 < hi                                          # the null covers 0
    probs = pfs_fit.probabilities
    assert probs["P(|delta|>log(1.25)) [perioperative, ras_mutant]"] > 0.95
    assert probs["P(delta<0) [perioperative, ras_mutant]"] < 0.01
    assert probs["P(|delta|>log(1.25)) [perioperative, size_gt_2cm]"] < 0.6
    # level HRs (the other subgroup at its mean) cover the simulated ones
    for level, truth in ((0, LOG_HR), (1, LOG_HR + RAS_DELTA)):
        lo, hi = interval(np.log(draws(pfs_fit, "hr_subgroup",
                                       subgroup_level=f"ras_mutant={level}")))
        assert lo < truth < hi
    # the Weibull kernel declined the model; nutpie compiled the PyMC graph
    details = pfs_fit.provenance["sampler_details"]
    assert "subgroup" in details["cached_kernel_unavailable"]
    assert "pytensor" in details["logp_kernel"]


def test_subgroup_estimands_reach_the_table_summary_and_report(pfs_fit, tmp_path):
    from bayes_ablation.report.plots import plotter, save
    from bayes_ablation.results.sections import build_report

    labels = set(pfs_fit.estimand_table["label"])
    assert {"hr_subgroup[perioperative, ras_mutant=1]", "hr_subgroup[perioperative, ras_mutant=0]",
            "delta_subgroup[perioperative, size_gt_2cm]", "sigma_subgroup"} <= labels
    summary = pfs_fit.to_dict()
    records = summary["subgroups"]["by_subgroup"]
    assert [r["subgroup"] for r in records] == ["ras_mutant", "size_gt_2cm"]
    ras = records[0]
    assert ras["p_differs_by_1.25x"] == summary["probabilities"][
        "P(|delta|>log(1.25)) [perioperative, ras_mutant]"]
    assert ras["n_level_1"] + ras["n_level_0"] == 600
    assert ras["hr_level_1_lower"] < ras["hr_level_1"] < ras["hr_level_1_upper"]
    assert "hr_subgroup[perioperative, ras_mutant=1]" in summary["estimands"]

    report = build_report("pfs", pfs_fit)
    section = next(s for s in report.sections if s.title == "Subgroups")
    (figure,) = section.figures
    assert figure.kind == "subgroup_forest"
    fig = plotter(figure.kind)(**figure.data)
    assert len(fig.axes) == 1
    labels = {t.get_text() for t in fig.axes[0].get_yticklabels()}
    assert labels == {"overall", "ras_mutant=1", "ras_mutant=0", "size_gt_2cm=1",
                      "size_gt_2cm=0"}
    save(fig, str(tmp_path / "forest.png"))
    assert (tmp_path / "forest.png").stat().st_size > 5000


def test_numpy_log_likelihood_matches_the_pymc_graph(pfs_fit):
    """The model-free η (PPC, LOO, predictions) includes the subgroup terms exactly."""
    import pymc as pm
    import xarray as xr

    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.endpoints.build import build_model

    spec = pfs_fit.spec
    model = build_model(spec, read_patients(pfs_trial(), spec))
    post = pfs_fit.idata.posterior.to_dataset().isel(chain=[0], draw=slice(0, 4))
    ll = pm.compute_log_likelihood(xr.DataTree.from_dict({"posterior": post}), model=model,
                                   extend_inferencedata=False, progressbar=False)
    ours = pfs_fit.idata.log_likelihood["y"].isel(chain=[0], draw=slice(0, 4)).values
    np.testing.assert_allclose(ll["y"].values, ours, rtol=1e-8, atol=1e-10)


def test_tiny_subgroup_sd_collapses_subgroup_hrs_to_the_overall_hr():
    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.workflows.fit import fit

    spec = with_subgroups(MODELS / "pfs_weibull_site.toml", ["ras_mutant", "size_gt_2cm"],
                          tau_sd=0.01)
    result = fit(spec, read_patients(pfs_trial(), spec), run_ppc=False, log_likelihood=False)
    overall = np.log(draws(result, "hr"))
    for level in result.estimands["subgroup_level"].values:
        sub = np.log(draws(result, "hr_subgroup", subgroup_level=level))
        assert abs(np.median(sub) - np.median(overall)) < 0.03, level
    assert np.quantile(np.abs(draws(result, "delta_subgroup", subgroup="ras_mutant")),
                       0.975) < 0.06        # vs a true modification of 1.0, found above


def test_pwe_recovers_the_modifier_and_its_cells_sum_to_the_patients():
    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.workflows.fit import fit

    spec = with_subgroups(MODELS / "pfs_piecewise_site.toml", ["ras_mutant", "size_gt_2cm"])
    result = fit(spec, read_patients(pfs_trial(), spec), ppc_draws=20)
    lo, hi = interval(draws(result, "delta_subgroup", subgroup="ras_mutant"))
    assert 0 < lo < RAS_DELTA < hi
    lo, hi = interval(draws(result, "delta_subgroup", subgroup="size_gt_2cm"))
    assert lo < 0 < hi
    ll = result.idata.log_likelihood     # cells hold the subgroup pattern: exact aggregation
    np.testing.assert_allclose(ll["events"].sum("cell").values, ll["y"].sum("patient").values,
                               rtol=1e-9)


def test_lr_lesion_level_modifier_is_found_and_the_null_one_is_not():
    from bayes_ablation.data.lesions import read_lr_data
    from bayes_ablation.data.simulate_lr import simulate_lr_trial
    from bayes_ablation.results.sections import build_report
    from bayes_ablation.workflows.fit import fit

    spec = with_subgroups(MODELS / "local_recurrence_lesion.toml",
                          ["margin_lt_5mm", "size_gt_2cm"], covariates=["size_cm", "modality"])
    sim = simulate_lr_trial(400, 6, -0.3, seed=5, lr_cuminc_24_ref=0.15,
                            log_hr_interactions={"margin_lt_5mm": 1.2})
    result = fit(spec, read_lr_data(sim.patients, sim.lesions, spec), ppc_draws=20)
    margin = draws(result, "delta_subgroup", subgroup="margin_lt_5mm")
    assert interval(margin)[0] > 0                              # 95% CrI excludes 0
    lo, hi = interval(margin, 0.99)          # shrinkage (two subgroups, τ ~ HN(0.5)) pulls
    assert lo < 1.2 < hi                     # the estimate towards 0; 99% still covers truth
    lo, hi = interval(draws(result, "delta_subgroup", subgroup="size_gt_2cm"))
    assert lo < 0 < hi
    assert result.probabilities["P(|delta|>log(1.25)) [perioperative, margin_lt_5mm]"] > 0.95
    # the standardised CIF uses each arm's own subgroup offsets: the difference is finite
    cif = result.estimands["cif_lr_difference"]
    assert np.isfinite(cif.values).all()
    report = build_report("local_recurrence", result)
    section = next(s for s in report.sections if s.title == "Subgroups")
    assert section.figures[0].kind == "subgroup_forest"
    records = result.to_dict()["subgroups"]["by_subgroup"]
    assert records[0]["n_level_1"] + records[0]["n_level_0"] == len(sim.lesions)


def test_validation_adapters_refuse_subgroup_specs():
    from bayes_ablation.endpoints.sbc import ValidationSetupError, get_adapter

    spec = with_subgroups(MODELS / "pfs_weibull_site.toml", ["ras_mutant"])
    with pytest.raises(ValidationSetupError, match="subgroups"):
        get_adapter(spec)
