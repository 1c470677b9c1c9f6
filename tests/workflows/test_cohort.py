"""design = "cohort": g-computation with Bayesian-bootstrap weights, the confounded-cohort
simulator's truth, naive vs adjusted analyses, patient covariates for PFS and LR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.simulate_cohort import simulate_cohort
from bayes_ablation.errors import DataValidationError
from tests.conftest import MODELS, ROOT

# ------------------------------------------------------------------------ fast, no sampling


def test_bayesian_bootstrap_weights_are_dirichlet_over_the_members_and_seeded():
    from bayes_ablation.survival.estimands import bayesian_bootstrap_weights

    members = np.arange(50) % 3 == 0
    w = bayesian_bootstrap_weights(4000, members, seed=5)
    assert np.allclose(w.sum(axis=1), 1.0) and (w[:, ~members] == 0).all()
    n = members.sum()
    # Dirichlet(1,…,1): E w = 1/n, var w = (n − 1) / (n² (n + 1))
    assert w[:, members].mean() == pytest.approx(1 / n, rel=1e-9)
    assert w[:, members].var() == pytest.approx((n - 1) / (n**2 * (n + 1)), rel=0.05)
    assert np.array_equal(w, bayesian_bootstrap_weights(4000, members, seed=5))
    assert not np.array_equal(w, bayesian_bootstrap_weights(4000, members, seed=6))


@pytest.mark.parametrize(("n_patterns", "step", "bound"), [
    (7, None, 1e-12),           # exact sum
    (300, None, 1.93e-6),       # binned lattice, the randomised design's step
    (300, 0.02, 3.1e-5)])       # the causal estimands' coarser lattice (CAUSAL_BIN_STEP)
def test_per_draw_weights_match_the_exact_weighted_sum(n_patterns, step, bound):
    from bayes_ablation.survival.kernels import CAUSAL_BIN_STEP, standardised_survival

    assert CAUSAL_BIN_STEP == 0.02

    rng = np.random.default_rng(1)
    lh = rng.normal(-0.5, 1.0, (6, 2, 5))
    off = rng.normal(0.0, 0.7, (6, n_patterns))
    w = rng.dirichlet(np.ones(n_patterns), size=6)
    kwargs = {} if step is None else {"step": step}
    got = standardised_survival(lh, off, w, np.zeros((6, 2)), **kwargs)
    exact = np.einsum("dp,dapt->dat", w, np.exp(-np.exp(lh[:, :, None, :]
                                                        + off[:, None, :, None])))
    assert np.abs(got - exact).max() < bound


def test_g_computation_groups_identical_patients_and_uses_each_patients_site():
    """Σ_i w_i S(t | a, x_i, u_s(i)) by brute force over patients equals the grouped kernel."""
    import xarray as xr

    from bayes_ablation.survival.estimands import g_computation_survival

    rng = np.random.default_rng(2)
    n_pat, n_unit = 4, 40
    pattern = rng.integers(0, n_pat, n_unit)
    pattern[:n_pat] = np.arange(n_pat)
    lh = xr.DataArray(rng.normal(-0.5, 0.5, (2, 3, 2, 4)), dims=("chain", "draw", "arm", "time"))
    off = xr.DataArray(rng.normal(0, 0.5, (2, 3, 2, n_pat)),
                       dims=("chain", "draw", "arm", "pattern"))
    w = rng.dirichlet(np.ones(n_unit), size=6)
    got = g_computation_survival(lh, off, pattern, w).values.reshape(6, 2, 4)
    per_unit = np.exp(-np.exp(lh.values.reshape(6, 2, 1, 4)
                              + off.values.reshape(6, 2, n_pat, 1)[:, :, pattern]))
    exact = np.einsum("du,daut->dat", w, per_unit)
    assert np.abs(got - exact).max() < 1e-12


def test_simulator_truth_is_the_sample_average_of_the_true_curves_and_confounded():
    sim = simulate_cohort(400, 4, -0.25, seed=3)
    f, t = sim.frame, sim.truth
    eta0 = sim.details["eta"].to_numpy() - t["log_hr"] * (f["arm"] == "perioperative")
    lam0 = np.exp(t["log_cumhaz_ref"]) / t["time_ref_months"] ** t["weibull_shape"]

    def s(a):
        return np.exp(-lam0 * 24.0 ** t["weibull_shape"] * np.exp(eta0 + a * t["log_hr"]))

    assert t["sate_survival_difference"][1] == pytest.approx(float(np.mean(s(1) - s(0))))
    treated = (f["arm"] == "perioperative").to_numpy()
    assert t["satt_survival_difference"][1] == pytest.approx(
        float(np.mean((s(1) - s(0))[treated])))
    # confounding: the treated have worse prognostic factors
    means = f.groupby("arm")[["n_lesions", "max_size_cm", "cea_high"]].mean()
    assert (means.loc["perioperative"] > means.loc["postoperative"]).all()
    assert set(f["node_status"]) == {"negative", "positive"}
    assert simulate_cohort(400, 4, -0.25, seed=3).frame.equals(f)


def test_categorical_patient_covariates_are_dummy_coded_against_the_first_sorted_level():
    from bayes_ablation.data.schema import patients_from_frame

    sim = simulate_cohort(60, 2, seed=1)
    table = patients_from_frame(sim.frame, reference_arm="postoperative",
                                covariates=("n_lesions", "node_status", "presentation"))
    x, names, centres = table.design_matrix()
    assert names == ["n_lesions", "node_status[positive]", "presentation[synchronous]"]
    assert np.array_equal(x[:, 1], (sim.frame["node_status"] == "positive").to_numpy(float))
    assert set(centres) == {"n_lesions"} and abs(x[:, 0].mean()) < 1e-12
    from bayes_ablation.data.schema import covariate_coding

    coding = covariate_coding(table.frame, table.covariates)
    assert coding["node_status"] == {"kind": "categorical", "reference_level": "negative",
                                     "columns": ["node_status[positive]"]}
    assert coding["n_lesions"]["centred_at"] == pytest.approx(sim.frame["n_lesions"].mean())


def test_missing_patient_covariates_are_an_error_naming_every_cell(tmp_path):
    from bayes_ablation.data.schema import read_patients

    frame = simulate_cohort(30, 2, seed=1).frame
    frame.loc[[3, 7], "cea_high"] = np.nan
    frame.loc[5, "node_status"] = ""
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as err:
        read_patients(path, covariates=("cea_high", "node_status"),
                      reference_arm="postoperative")
    cells = {(p.row, p.column) for p in err.value.problems}
    assert cells == {(4, "cea_high"), (8, "cea_high"), (6, "node_status")}
    assert all(p.file == str(path) for p in err.value.problems)


def _lr_tables(tmp_path):
    patients = pd.read_csv(ROOT / "examples" / "lr_patients.csv")
    lesions = pd.read_csv(ROOT / "examples" / "lr_lesions.csv")
    rng = np.random.default_rng(4)
    patients["cea_ng_ml"] = np.round(rng.lognormal(1.5, 0.8, len(patients)), 1)
    patients["node_status"] = rng.choice(["negative", "positive"], len(patients))
    return patients, lesions


def test_lr_patient_covariates_are_merged_onto_each_lesion(tmp_path):
    from bayes_ablation.data.lesions import lr_data_from_frames

    patients, lesions = _lr_tables(tmp_path)
    table = lr_data_from_frames(patients, lesions, reference_arm="postoperative",
                                covariates=("size_cm", "cea_ng_ml", "node_status"))
    by_id = patients.set_index("patient_id")
    merged = table.frame
    assert np.allclose(merged["cea_ng_ml"], by_id.loc[merged["patient_id"], "cea_ng_ml"])
    assert (merged["node_status"].to_numpy()
            == by_id.loc[merged["patient_id"], "node_status"].to_numpy()).all()
    x, names, _ = table.design_matrix()
    assert names == ["size_cm", "cea_ng_ml", "node_status[positive]"]
    assert x.shape == (len(lesions), 3)


def test_lr_missing_patient_covariate_cells_and_unknown_columns_are_listed(tmp_path):
    from bayes_ablation.data.lesions import read_lr_data

    patients, lesions = _lr_tables(tmp_path)
    patients.loc[[0, 9], "cea_ng_ml"] = np.nan
    p_path, l_path = tmp_path / "patients.csv", tmp_path / "lesions.csv"
    patients.to_csv(p_path, index=False)
    lesions.to_csv(l_path, index=False)
    with pytest.raises(DataValidationError) as err:
        read_lr_data(p_path, l_path, reference_arm="postoperative",
                     covariates=("cea_ng_ml", "dfi_months"))
    found = {(p.file, p.row, p.column) for p in err.value.problems}
    assert {(str(p_path), 1, "cea_ng_ml"), (str(p_path), 10, "cea_ng_ml")} <= found
    assert any(p.column == "dfi_months" and "patient table" in p.expected
               for p in err.value.problems)


# ----------------------------------------------------------------------- small fits (MCMC)

@pytest.fixture(scope="module")
def cohort_spec():
    from bayes_ablation.spec.plan import load_spec

    return load_spec(ROOT / "examples" / "cohort" / "pfs_cohort.toml").with_sampler(
        chains=2, draws=400, tune=400)


def _interval(table: pd.DataFrame, label: str) -> tuple[float, float]:
    row = table.set_index("label").loc[label]
    return float(row["q2.5"]), float(row["q97.5"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_adjusted_analysis_covers_the_truth_and_the_naive_one_misses_it(cohort_spec, seed):
    """Strongly confounded cohort (400 patients): the adjusted ATE/ATT of S(24) and the
    conditional log HR cover the truth; the unadjusted (no covariates) ATE misses it."""
    from bayes_ablation import fit

    sim = simulate_cohort(400, 4, -0.3, seed=seed,
                          treatment_effects={"n_lesions": 0.8, "max_size_cm": 1.0,
                                             "cea_high": 1.6, "node_status": 1.4,
                                             "presentation": 0.8},
                          outcome_effects={"n_lesions": 0.25, "max_size_cm": 0.4,
                                           "cea_high": 0.6, "node_status": 0.6})
    truth = sim.truth
    adjusted = fit(cohort_spec, sim.frame, run_ppc=False, log_likelihood=False)
    unadjusted = cohort_spec.updated(analysis={"covariates": []},
                                     priors={"beta_covariates": None})
    naive = fit(unadjusted, sim.frame, run_ppc=False, log_likelihood=False)
    a, n = adjusted.estimand_table, naive.estimand_table
    lo, hi = _interval(a, "ATE survival_difference[perioperative, t=24]")
    assert lo < truth["sate_survival_difference"][1] < hi
    lo, hi = _interval(a, "ATT survival_difference[perioperative, t=24]")
    assert lo < truth["satt_survival_difference"][1] < hi
    lo, hi = _interval(a, "ATE rmst_difference[perioperative]")
    assert lo < truth["sate_rmst_difference"] < hi
    lo, hi = _interval(a, "conditional log_hr[perioperative]")
    assert lo < truth["log_hr"] < hi
    lo, hi = _interval(n, "ATE survival_difference[perioperative, t=24]")
    assert not lo < truth["sate_survival_difference"][1] < hi
    assert hi < truth["sate_survival_difference"][1]   # confounding by indication: too low


def test_randomised_design_has_no_causal_estimands(cohort_spec):
    from bayes_ablation import fit

    sim = simulate_cohort(120, 2, seed=4)
    spec = cohort_spec.with_changes("analysis", design="randomised")
    result = fit(spec.with_sampler(draws=100, tune=100), sim.frame, run_ppc=False,
                 log_likelihood=False)
    labels = result.estimand_table["label"]
    assert not labels.str.contains("ATE|ATT|conditional").any()
    assert "hr[perioperative]" in set(labels)


@pytest.mark.slow   # compiles an LR model with a new covariate set (~30 s of 40 s)
def test_lr_cohort_ate_is_the_lesion_average_cif_with_patient_covariates(tmp_path):
    """LR, design = "cohort", a patient covariate beside the lesion ones: per posterior draw
    the ATE CIF is linear in the Bayesian-bootstrap weights, so its posterior mean equals the
    posterior mean of the equal-weight average over the analysed lesions (each at its own site,
    frailty integrated), computed here independently with ``lr_cif``."""
    import xarray as xr

    from bayes_ablation import fit
    from bayes_ablation.data.lesions import lr_data_from_frames
    from bayes_ablation.endpoints.local_recurrence.estimands import lr_cif
    from bayes_ablation.spec.plan import load_spec
    from bayes_ablation.survival.estimands import arms_of, posterior_of, unit_offsets

    patients, lesions = _lr_tables(tmp_path)
    spec = load_spec(MODELS / "local_recurrence_lesion.toml").updated(
        analysis={"design": "cohort",
                  "covariates": ["size_cm", "margin_lt_5mm", "modality", "cea_ng_ml"]},
        sampler={"chains": 2, "draws": 200, "tune": 300})
    table = lr_data_from_frames(patients, lesions, reference_arm="postoperative",
                                covariates=spec.covariates)
    result = fit(spec, table, run_ppc=False)
    labels = set(result.estimand_table["label"])
    assert {"ATE cif_lr_difference[perioperative, t=24]",
            "ATT cif_lr_difference[perioperative, t=24]",
            "conditional hr[perioperative]"} <= labels
    post = posterior_of(result.idata)
    cdata = result.idata.constant_data
    offsets, pattern = unit_offsets(post, cdata["x"].values, cdata["lesion_site_idx"].values,
                                    arms_of(post))
    counts = np.bincount(pattern, minlength=offsets.sizes["pattern"])
    equal = offsets.isel(arm=0, drop=True).transpose("chain", "draw", "pattern")
    equal.attrs["weights"] = counts / counts.sum()
    times = np.asarray(spec.estimands.times_months, float)
    expected = lr_cif(post, spec, times, equal, "average_site").mean(("chain", "draw"))
    got = result.estimands["ate_cif_lr"].mean(("chain", "draw"))
    # measured 2.7e-4 (the weights' Monte Carlo noise); at u = 0 instead of each lesion's own
    # site the difference is 1.3e-3
    assert float(np.abs(got - expected).max()) < 6e-4
    assert isinstance(got, xr.DataArray) and float(expected.max()) > 0.02
