"""The hierarchical Weibull PFS model: likelihood identity, recovery of truth, agreement with
a frequentist fit, the convergence gate and reproducibility."""

import numpy as np
import pytest

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import CovariateSim, simulate_trial
from bayes_ablation.endpoints.build import build_model
from bayes_ablation.endpoints.pfs.model import build_weibull_censored_reference
from bayes_ablation.inference.sampling import sample
from bayes_ablation.workflows.fit import fit


@pytest.mark.parametrize("variant", ["intercepts", "slopes_covariates"])
def test_handwritten_likelihood_equals_pm_censored(weibull_spec, variant):
    covs = {}
    spec = weibull_spec
    if variant == "slopes_covariates":
        covs = {"size_cm": CovariateSim("normal", 0.3, 2.0, 0.6), "mwa": CovariateSim("binary", -0.2)}
        spec = spec.updated(
            hierarchy={"site_arm_slopes": True}, analysis={"covariates": ["size_cm", "mwa"]},
            priors={"sigma_site_arm": {"family": "halfnormal", "sigma": 0.3, "rationale": "t"},
                    "beta_covariates": {"family": "normal", "mu": 0.0, "sigma": 1.0,
                                        "rationale": "t"}})
    sim = simulate_trial(150, 5, -0.2, seed=4, covariates=covs)
    patients = patients_from_frame(sim.frame, reference_arm="postoperative",
                                   covariates=list(covs))
    fast = build_model(spec, patients)
    ref = build_weibull_censored_reference(spec, patients)
    # Python linker: the values are what is compared, machine code is not needed for 5 points
    f_fast, f_ref = (m.compile_logp(mode="FAST_COMPILE") for m in (fast, ref))
    g_fast, g_ref = (m.compile_dlogp(mode="FAST_COMPILE") for m in (fast, ref))
    rng = np.random.default_rng(0)
    point = fast.initial_point()
    assert set(point) == set(ref.initial_point())
    for _ in range(5):
        p = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in point.items()}
        assert f_fast(p) == pytest.approx(f_ref(p), abs=1e-8, rel=0)
        np.testing.assert_allclose(g_fast(p), g_ref(p), atol=1e-8, rtol=0)


def test_recovers_truth_on_600_patient_trial(fit600, trial600):
    """95% intervals cover the truth and posterior means lie within 2 sd of it.

    The baseline level is checked as α + mean(u_site) against its realised value: with 8
    sites the data identify the realised sites' mean level, not the population α (here the
    8 simulated site effects happen to average +0.29, ~2.7 sd of their mean).
    """
    sim, _ = trial600
    post = fit600.idata.posterior
    assert fit600.diagnostics.divergences == 0
    assert fit600.provenance["sampler"] == "nutpie"
    u_true = np.asarray(sim.truth["u_site"])
    checks = [
        ("log_hr", post["log_hr"], sim.truth["log_hr"]),
        ("weibull_shape", post["weibull_shape"], sim.truth["weibull_shape"]),
        ("sigma_site", post["sigma_site"], sim.truth["sigma_site"]),
        ("site level", post["log_cumhaz_ref"] + post["u_site"].mean("site"),
         sim.truth["log_cumhaz_ref"] + u_true.mean()),
    ]
    for name, da, truth in checks:
        draws = da.values.ravel()
        lo, hi = np.quantile(draws, [0.025, 0.975])
        assert lo < truth < hi, (name, lo, hi, truth)
        assert abs(draws.mean() - truth) < 2 * draws.std(), name
    # site effects relative to their mean are recovered too (most of 8 at 95%)
    rel = post["u_site"] - post["u_site"].mean("site")
    lo, hi = rel.quantile([0.025, 0.975], dim=("chain", "draw")).values
    inside = (lo < u_true - u_true.mean()) & (u_true - u_true.mean() < hi)
    assert inside.sum() >= 6, inside


def test_estimands_in_summary_have_required_statistics(fit600):
    summary = fit600.to_dict()
    hr = summary["estimands"]["hr[perioperative]"]
    assert {"mean", "sd", "median", "q2.5", "q97.5"} <= set(hr)
    assert hr["q2.5"] < hr["median"] < hr["q97.5"]
    keys = set(summary["estimands"])
    for t in (12, 24, 36):
        for site in ("average", "new"):
            assert f"survival_difference[perioperative, {site} site, t={t}]" in keys
    assert "rmst_difference[perioperative, new site]" in keys
    assert "median[postoperative, average site]" in keys
    p = summary["probabilities"]["P(HR<1) [perioperative]"]
    draws = fit600.idata.posterior["hr"].values.ravel()
    assert p == pytest.approx(np.mean(draws < 1))
    assert set(summary["diagnostics"]) >= {"passed", "rhat_max", "ess_bulk_min", "ess_tail_min",
                                            "divergences"}
    prov = summary["provenance"]
    assert len(prov["spec_sha256"]) == 64 and len(prov["data_sha256"]) == 64
    assert prov["seed"] == fit600.spec.sampler.seed and prov["versions"]["pymc"].startswith("6")


def test_ppc_band_covers_observed_km_when_model_is_right(fit600):
    arm = fit600.checks["arm"]
    assert (arm["coverage"].values >= 0.9).all(), arm["coverage"].values
    assert ((arm["events_p_value"].values > 0.01) & (arm["events_p_value"].values < 0.99)).all()
    assert fit600.checks["site_arm"].sizes["group"] == 16


def test_ppc_detects_a_misspecified_hazard(small_weibull_spec):
    """Progression concentrated in months 10–12 (a hazard spike) cannot be fitted by a Weibull:
    the observed KM must leave the predictive band."""
    rng = np.random.default_rng(5)
    sim = simulate_trial(600, 8, -0.3, seed=12)
    frame = sim.frame.copy()
    spike = rng.uniform(10, 12, len(frame))
    early = rng.uniform(0.5, 3, len(frame))
    t = np.where(rng.uniform(size=len(frame)) < 0.5, spike, early)
    frame["time_months"] = np.minimum(t, 30.0)
    frame["event"] = (t < 30.0).astype(int)
    patients = patients_from_frame(frame, reference_arm="postoperative")
    result = fit(small_weibull_spec, patients, ppc_draws=60)
    assert (result.checks["arm"]["coverage"].values < 0.6).all(), result.checks["arm"]["coverage"].values


def test_agrees_with_lifelines_weibull_mle_under_flat_priors(weibull_spec):
    from lifelines import WeibullAFTFitter

    flat = {"family": "normal", "mu": 0.0, "sigma": 10.0, "rationale": "flat"}
    spec = weibull_spec.updated(
        hierarchy={"site_intercepts": False},
        priors={"sigma_site": None, "log_hr": flat, "log_cumhaz_ref": flat,
                "weibull_shape": {"family": "lognormal", "mu": 0.0, "sigma": 2.0,
                                  "rationale": "flat"}},
        sampler={"chains": 4, "draws": 1000, "tune": 600})
    sim = simulate_trial(3000, 1, -0.3, seed=21, sigma_site=0.0)
    patients = patients_from_frame(sim.frame, reference_arm="postoperative")
    result = fit(spec, patients, run_ppc=False)
    assert result.provenance["sampler"] == "nutpie", result.provenance["sampler_fallback_reason"]
    df = sim.frame.assign(treated=(sim.frame["arm"] == "perioperative").astype(float))
    aft = WeibullAFTFitter().fit(df[["time_months", "event", "treated"]], "time_months", "event")
    rho = float(np.exp(aft.params_.loc[("rho_", "Intercept")]))
    mle_log_hr = -rho * float(aft.params_.loc[("lambda_", "treated")])
    draws = result.idata.posterior["log_hr"].values.ravel()
    assert abs(draws.mean() - mle_log_hr) < 0.1 * draws.std(), (draws.mean(), mle_log_hr)
    shape = result.idata.posterior["weibull_shape"].values.ravel()
    assert abs(shape.mean() - rho) < 0.1 * shape.std()


def test_gate_trips_on_undersampled_fit(small_weibull_spec, trial600):
    spec = small_weibull_spec.with_sampler(draws=25, tune=25)
    result = fit(spec, trial600[1], run_ppc=False)
    d = result.diagnostics
    assert not d.passed
    assert any("ESS" in f for f in d.failures)
    assert d.ess_bulk_min < 400


def test_same_seed_same_draws_in_process(small_weibull_spec, trial600):
    spec = small_weibull_spec.with_sampler(draws=100, tune=100)
    model = build_model(spec, trial600[1])
    a = sample(model, spec.sampler, cache_key="repro").idata.posterior
    b = sample(model, spec.sampler, cache_key="repro").idata.posterior
    c = sample(model, spec.with_sampler(seed=99).sampler, cache_key="repro").idata.posterior
    for name in ("log_hr", "weibull_shape", "z_site"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert not np.array_equal(a["log_hr"].values, c["log_hr"].values)


def test_compiled_model_cache_swaps_in_new_data(small_weibull_spec, trial600):
    """A cache hit must sample the *new* data: identical draws to a fresh compile.

    The cache key is the one of the test above: its compiled model (of trial600's data) is
    reused when both run, so only the fresh compile of the new data's model is paid here."""
    spec = small_weibull_spec.with_sampler(draws=100, tune=100)
    other = simulate_trial(600, 8, 0.4, seed=99)
    model_b = build_model(spec, patients_from_frame(other.frame, reference_arm="postoperative"))
    sample(build_model(spec, trial600[1]), spec.sampler, cache_key="repro")
    cached = sample(model_b, spec.sampler, cache_key="repro")
    fresh = sample(model_b, spec.sampler, cache_key=None)
    assert cached.timings["compile_cache_hit"] == 1.0 and fresh.timings["compile_cache_hit"] == 0.0
    np.testing.assert_array_equal(cached.idata.posterior["log_hr"].values,
                                  fresh.idata.posterior["log_hr"].values)
    assert cached.idata.posterior["log_hr"].mean() > 0.1  # the new data's effect (truth +0.4)
