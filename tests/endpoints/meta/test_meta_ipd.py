"""IPD + aggregate data: one-stage Weibull model with published log HRs vs the two-stage approach.

When the IPD trial is large its likelihood for the trial effect θ is normal, centred on the
maximum-likelihood estimate with the observed-information SE, so pooling the stage-1 estimate
exactly (two-stage) must give the one-stage posterior.
"""

import tomllib

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.simulate import simulate_trial
from bayes_ablation.data.studies import studies_from_frame
from bayes_ablation.endpoints.meta.estimands import compare_with_exact
from bayes_ablation.endpoints.meta.two_stage import ipd_log_hr
from bayes_ablation.spec.plan import parse_spec
from bayes_ablation.workflows.meta import fit_meta
from tests.conftest import MODELS

TRUE_LOG_HR = -0.3


def html_table(folder, ipd_frames: dict[str, pd.DataFrame]):
    rows = [{"study": "A", "log_hr": -0.1, "se": 0.15}, {"study": "B", "log_hr": -0.5, "se": 0.2},
            {"study": "C", "log_hr": -0.2, "se": 0.25}]
    for name, frame in ipd_frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
        rows.append({"study": name, "ipd_file": f"{name}.csv", "reference_arm": "control"})
    return studies_from_frame(pd.DataFrame(rows), base_dir=folder)


def _spec(site_intercepts: bool, **sampler):
    raw = tomllib.loads((MODELS / "meta_ipd_ad.toml").read_text())
    if not site_intercepts:
        raw["hierarchy"] = {"site_intercepts": False}
        raw["priors"].pop("sigma_site")
    raw["sampler"].update({"chains": 4, "draws": 1000, "tune": 1000, "target_accept": 0.995,
                           **sampler})
    return parse_spec(raw, "test_ipd")


@pytest.fixture(scope="module")
def large_trial(tmp_path_factory):
    sim = simulate_trial(1000, 1, TRUE_LOG_HR, seed=11, sigma_site=0.0,
                         arms=("control", "ablation"))
    return html_table(tmp_path_factory.mktemp("ipd"), {"IPD": sim.frame})


def test_stage1_estimates_recover_the_simulated_effect(large_trial):
    patients = large_trial.ipd["IPD"]
    log_hr, se = ipd_log_hr(patients, "weibull")
    cox, cox_se = ipd_log_hr(patients, "cox")
    assert abs(log_hr - TRUE_LOG_HR) < 2.5 * se
    assert 0.05 < se < 0.1 and cox_se >= se * 0.99        # Cox is (slightly) less efficient
    assert abs(cox - log_hr) < 0.5 * se


def test_model_has_one_effect_per_study_and_trial_specific_baselines(tmp_path):
    from bayes_ablation.endpoints.build import build_model

    sims = {name: simulate_trial(60, 2, -0.2, seed=s, arms=("control", "ablation")).frame
            for name, s in (("T1", 1), ("T2", 2))}
    studies = html_table(tmp_path, sims)
    model = build_model(_spec(True), studies)
    assert list(model.coords["study"]) == ["A", "B", "C", "T1", "T2"]
    assert list(model.coords["ipd_study"]) == ["T1", "T2"]
    assert list(model.coords["site"]) == ["T1:S01", "T1:S02", "T2:S01", "T2:S02"]
    assert model.named_vars_to_dims["log_cumhaz_ref"] == ("ipd_study",)
    assert model.named_vars_to_dims["theta"] == ("study",)
    assert len(model.coords["patient"]) == 120
    assert "log_hr" not in model.named_vars          # trial effects come from N(mu, tau^2)


@pytest.fixture(scope="module")
def one_stage(large_trial):
    # ~1 min of NUTS on 1000 patients: the default suite keeps stage 1 and the model structure;
    # bench/meta_ipd_two_stage.py repeats this comparison over seeds
    return fit_meta(_spec(False), large_trial, method="mcmc", cache_key="test_meta_ipd")


@pytest.mark.slow
def test_one_stage_matches_two_stage_for_a_large_ipd_trial(one_stage):
    r = one_stage
    assert r.diagnostics.passed, r.diagnostics.failures
    two_stage = r.details["meta"]["exact_table"]     # stage-1 MLE pooled exactly
    checks = [("mu", "mean"), ("mu", "sd"), ("mu", "q2.5"), ("mu", "q97.5"),
              ("tau", "median"), ("theta_new", "mean"), ("theta[IPD]", "mean"),
              ("theta[IPD]", "sd")]
    comparison = compare_with_exact(r.idata, two_stage, checks)
    assert len(comparison) == len(checks)
    bad = comparison[comparison["gap_in_mcse"] > 3]
    assert bad.empty, f"one-stage and two-stage disagree:\n{bad}"
    theta = r.idata.posterior["theta"].sel(study="IPD").values.ravel()
    lo, hi = np.quantile(theta, [0.025, 0.975])
    assert lo < TRUE_LOG_HR < hi
