"""Piecewise-exponential PFS model: truth recovery, agreement with Weibull, time-varying effects,
LOO comparison, and the pure-NumPy pieces (cumulative hazard, simulator, log-likelihoods).

Fits are small (2 chains × 500 draws); the two PWE structures (PH, time-varying) are compiled
once per session and reused with new data.
"""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import xarray as xr

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import simulate_trial
from bayes_ablation.errors import SpecError
from bayes_ablation.spec.plan import parse_spec
from tests.conftest import MODELS

CUTS8 = [3.0, 6.0, 9.0, 12.0, 18.0, 24.0, 36.0]          # 8 intervals
REF = "postoperative"


def _pwe_raw() -> dict:
    return tomllib.loads((MODELS / "pfs_piecewise_site.toml").read_text())


def pwe_spec(*, cuts_months=None, count=None, time_varying=False, draws=500, tune=500):
    raw = _pwe_raw()
    model = {"family": "piecewise_exponential", "time_varying_hr": time_varying}
    if cuts_months is not None:
        model["cuts_months"] = list(cuts_months)
    else:
        model["cuts"] = {"method": "quantiles", "count": count}
    raw["model"] = model
    if not time_varying:
        raw["priors"].pop("sigma_log_hr_rw")
    raw["sampler"].update(chains=2, draws=draws, tune=tune)
    return parse_spec(raw, "test:pwe")


def _patients(sim):
    return patients_from_frame(sim.frame, reference_arm=REF)


def _interval(result, name, **sel):
    da = result.estimands[name].sel(**sel)
    v = da.values.ravel()
    return np.quantile(v, [0.025, 0.975]), float(v.mean()), float(v.std(ddof=1))


# ------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def piecewise_fit():
    """PH data with a piecewise-constant baseline; the model's cuts contain the true ones."""
    from bayes_ablation.workflows.fit import fit

    sim = simulate_trial(900, 8, -0.4, seed=21, baseline_cuts_months=[6.0, 12.0, 24.0],
                         baseline_hazards=[0.05, 0.03, 0.045, 0.025], sigma_site=0.25)
    return sim, fit(pwe_spec(cuts_months=CUTS8), _patients(sim), run_ppc=False)


@pytest.fixture(scope="session")
def weibull_data_fits(fit600, trial600):
    """The shared Weibull fit of Weibull data (conftest) and the PWE fit of the same data."""
    from bayes_ablation.workflows.fit import fit

    patients = trial600[1]
    return fit600, fit(pwe_spec(count=8), patients, run_ppc=False), patients


@pytest.fixture(scope="session")
def early_effect_fits():
    """Treatment halves-plus the hazard for 9 months, then no effect."""
    from bayes_ablation.workflows.fit import fit

    sim = simulate_trial(1200, 8, [-0.9, 0.0], seed=8, hr_cuts_months=[9.0],
                         weibull_shape=1.0, median_ref_months=15.0)
    patients = _patients(sim)
    return (fit(pwe_spec(cuts_months=CUTS8, time_varying=True), patients, run_ppc=False),
            fit(pwe_spec(cuts_months=CUTS8), patients, run_ppc=False))


# ----------------------------------------------------------------------------- statistics

def test_interval_hazards_and_log_hr_cover_piecewise_truth(piecewise_fit):
    sim, result = piecewise_fit
    post = result.posterior
    true_log_haz = np.log(np.array([0.05, 0.03, 0.045, 0.025]))
    starts = np.r_[0.0, CUTS8]
    truth = true_log_haz[np.searchsorted([6.0, 12.0, 24.0], starts, side="right")]
    draws = post["log_hazard"].stack(s=("chain", "draw")).transpose("interval", "s").values
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=1)
    assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)
    (lo, hi), _, _ = _interval(result, "log_hr")
    assert lo <= sim.truth["log_hr"] <= hi
    assert result.diagnostics.divergences == 0


def test_pwe_and_weibull_agree_on_delta_s36(weibull_data_fits):
    weibull, pwe, _ = weibull_data_fits
    for target in ("average", "new"):
        _, m_w, sd_w = _interval(weibull, "survival_difference", time=36.0, site_target=target)
        _, m_p, sd_p = _interval(pwe, "survival_difference", time=36.0, site_target=target)
        assert abs(m_w - m_p) < min(sd_w, sd_p), (target, m_w, m_p, sd_w, sd_p)


def _crude_interval_hr(frame, start, stop, arm, ref):
    """Events / exposure in (start, stop] per arm, as a rate ratio (the interval's Poisson MLE)."""
    rates = {}
    for label, g in frame.groupby("arm"):
        t, e = g["time_months"].to_numpy(), g["event"].to_numpy()
        exposure = np.clip(np.minimum(t, stop) - start, 0.0, None).sum()
        rates[label] = ((t > start) & (t <= stop) & (e == 1)).sum() / exposure
    return rates[arm] / rates[ref]


def test_time_varying_model_finds_early_only_effect(early_effect_fits):
    tv, _ = early_effect_fits
    hr = tv.estimands["hr_interval"].sel(treatment="perioperative")
    labels = list(hr["interval"].values)
    for early in labels[:2]:                                  # (0, 3], (3, 6]
        (lo, hi), _, _ = _interval(tv, "hr_interval", treatment="perioperative", interval=early)
        assert hi < 1.0, (early, lo, hi)
    # after 9 months the true HR is 1. With this seed the last interval's crude HR is 1.71
    # (95% CI 1.10-2.68), so "every late CrI covers 1" would test the luck of the draw;
    # instead: each late CrI covers the interval's own Poisson MLE, and at most one of the five
    # excludes the truth (P(>= 2 of 5) ~ 2% for independent 95% intervals, less with smoothing).
    sim = simulate_trial(1200, 8, [-0.9, 0.0], seed=8, hr_cuts_months=[9.0],
                         weibull_shape=1.0, median_ref_months=15.0)
    edges = [*CUTS8, np.inf]
    misses = []
    for j, late in enumerate(labels[3:], start=3):            # (9, 12] ... (36, inf)
        (lo, hi), _, _ = _interval(tv, "hr_interval", treatment="perioperative", interval=late)
        crude = _crude_interval_hr(sim.frame, edges[j - 1], edges[j], "perioperative", REF)
        assert lo < crude < hi, (late, lo, crude, hi)
        if not lo < 1.0 < hi:
            misses.append((late, lo, hi))
    assert len(misses) <= 1, misses


def test_loo_prefers_the_time_varying_model(early_effect_fits):
    from bayes_ablation.inference.comparison import compare_fits

    tv, ph = early_effect_fits
    comparison = compare_fits({"time_varying": tv.idata, "proportional": ph.idata})
    assert comparison.unit == "patient"
    assert comparison.table.index[0] == "time_varying"
    assert comparison.table.loc["proportional", "elpd_diff"] < 0
    assert {"pareto_k_max", "k_good", "k_bad", "k_very_bad"} <= set(comparison.table.columns)
    assert comparison.table["n_points"].tolist() == [1200, 1200]


# ------------------------------------------------------------------ log-likelihood identities

def test_cell_loglik_is_the_sum_of_patient_logliks(early_effect_fits):
    tv, _ = early_effect_fits
    ll = tv.idata.log_likelihood
    by_patient = ll["y"].sum("patient").values
    by_cell = ll["events"].sum("cell").values
    np.testing.assert_allclose(by_patient, by_cell, rtol=1e-10)


def test_weibull_pointwise_loglik_matches_pymc(weibull_data_fits, small_weibull_spec):
    import pymc as pm

    from bayes_ablation.endpoints.build import build_model

    weibull, _, patients = weibull_data_fits
    idata = weibull.idata
    draws = idata.log_likelihood["draw"].values[:20]  # the stored (possibly thinned) draws
    sub = xr.DataTree.from_dict({"posterior": idata.posterior.to_dataset().sel(draw=draws)})
    model = build_model(small_weibull_spec, patients)
    pm.compute_log_likelihood(sub, model=model, progressbar=False)
    ours = idata.log_likelihood["y"].sel(draw=draws).values
    np.testing.assert_allclose(sub.log_likelihood["y"].values, ours, rtol=1e-9, atol=1e-9)


# --------------------------------------------------- compiled-model cache swaps the data in

def test_cached_compiled_model_fits_the_new_data_with_its_labels(piecewise_fit):
    """Quantile cut points and arm names differ between data sets; the compiled model of the
    same structure is reused and the posterior carries the new data's labels."""
    from bayes_ablation.workflows.fit import fit

    spec = pwe_spec(count=8).updated(analysis={"reference_arm": "control"})
    means = []
    for log_hr, seed in ((-0.8, 31), (0.8, 32)):
        sim = simulate_trial(400, 8, log_hr, seed=seed, sigma_site=0.2,
                             arms=("control", f"treated{seed}"))
        result = fit(spec, patients_from_frame(sim.frame, reference_arm="control"),
                     run_ppc=False, log_likelihood=False)
        assert result.provenance["timings_seconds"]["compile_cache_hit"]
        post = result.posterior
        assert list(post["treatment"].values) == [f"treated{seed}"]
        assert list(post["interval"].values) == list(result.idata.constant_data["interval"].values)
        means.append(float(post["log_hr"].mean()))
    assert means[0] < -0.4 and means[1] > 0.4, means


# ----------------------------------------------------------------------- bundles and CLI

def test_bundles_report_and_cli_compare(weibull_data_fits, piecewise_fit, tmp_path, capsys):
    from bayes_ablation.cli.main import main
    from bayes_ablation.inference.comparison import ComparisonError, compare_fits

    weibull, pwe, _ = weibull_data_fits
    weibull.save(tmp_path / "weibull")
    pwe.save(tmp_path / "pwe")
    assert (tmp_path / "pwe" / "figures" / "hazard_by_interval.png").stat().st_size > 0
    summary = json.loads((tmp_path / "pwe" / "summary.json").read_text())
    assert len(summary["model_details"]["cuts_months"]) == 7
    assert main(["compare", str(tmp_path / "weibull"), str(tmp_path / "pwe")]) == 0
    out = capsys.readouterr().out
    assert "pointwise unit: patient" in out and "pareto_k_max" in out
    with pytest.raises(ComparisonError, match="different data"):
        compare_fits({"a": weibull.idata, "b": piecewise_fit[1].idata})


# ------------------------------------------------------------------------ pure functions

def _fake_posterior(rng, cuts, time_varying):
    n_int = len(cuts) + 1
    coords = {"chain": [0], "draw": np.arange(3), "interval": [f"i{j}" for j in range(n_int)],
              "treatment": ["perioperative"]}
    ds = xr.Dataset({
        "log_hazard": (("chain", "draw", "interval"), rng.normal(-3, 0.5, (1, 3, n_int))),
        "log_hr": (("chain", "draw", "treatment"), rng.normal(-0.3, 0.2, (1, 3, 1))),
    }, coords=coords)
    if time_varying:
        ds["log_hr_interval"] = ds["log_hr"] + xr.DataArray(
            rng.normal(0, 0.3, (1, 3, 1, n_int)), dims=("chain", "draw", "treatment", "interval"))
    ds.attrs.update(arms=json.dumps([REF, "perioperative"]), cuts_months=json.dumps(cuts))
    return ds


@pytest.mark.parametrize("time_varying", [False, True])
def test_pwe_cumulative_hazard_matches_quadrature(time_varying):
    from scipy.integrate import quad

    from bayes_ablation.endpoints.pfs.estimands import pwe_log_cumhaz, pwe_log_rate

    cuts = [2.0, 5.0, 11.0]
    post = _fake_posterior(np.random.default_rng(1), cuts, time_varying)
    times = np.array([0.5, 2.0, 4.0, 11.0, 30.0])
    log_h = pwe_log_cumhaz(post, times, None)
    rate = np.exp(pwe_log_rate(post).values)
    bounds = np.r_[0.0, cuts]
    for a in range(2):
        for d in range(3):
            def hazard(t, a=a, d=d):
                return rate[0, d, a, np.searchsorted(bounds, t, side="left") - 1]
            for k, t in enumerate(times):
                h = quad(hazard, 0, t, points=[c for c in cuts if c < t], limit=200)[0]
                assert np.exp(log_h.values[0, d, a, k]) == pytest.approx(h, rel=1e-9)


def test_pwe_simulator_reproduces_model_survival():
    from bayes_ablation.endpoints.pfs.estimands import pwe_log_cumhaz
    from bayes_ablation.endpoints.pfs.predictive import pwe_event_times
    from bayes_ablation.survival.predictive import thin

    cuts = [2.0, 5.0, 11.0]
    post = _fake_posterior(np.random.default_rng(2), cuts, True).isel(draw=[0])
    n = 40_000
    arm = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
    cdata = xr.Dataset({"arm_idx": ("patient", arm), "site_idx": ("patient", np.zeros(n, int)),
                        "interval_start": ("interval", np.r_[0.0, cuts])})
    times = pwe_event_times(thin(post, 1, 0), cdata, None, np.random.default_rng(3))[0]
    grid = np.array([1.0, 3.0, 8.0, 20.0])
    expected = np.exp(-np.exp(pwe_log_cumhaz(post, grid, None).values[0, 0]))   # (arm, time)
    for a in range(2):
        observed = (times[arm == a][:, None] > grid[None, :]).mean(axis=0)
        se = np.sqrt(expected[a] * (1 - expected[a]) / (n // 2))
        assert np.all(np.abs(observed - expected[a]) < 4 * se), (a, observed, expected[a])


def test_simulator_piecewise_baseline_and_time_varying_effect():
    base = simulate_trial(500, 5, -0.25, seed=3)
    same = simulate_trial(500, 5, [-0.25, -0.25], seed=3, hr_cuts_months=[10.0])
    np.testing.assert_allclose(base.details["event_time_months"], same.details["event_time_months"],
                               rtol=1e-10)
    sim = simulate_trial(100_000, 1, [np.log(0.5), 0.0], seed=1, hr_cuts_months=[5.0],
                         baseline_cuts_months=[5.0], baseline_hazards=[0.2, 0.05], sigma_site=0)
    t = sim.details["event_time_months"].to_numpy()
    treated = (sim.frame["arm"] != REF).to_numpy()
    n = treated.sum()
    for mask, h5, h15 in ((~treated, 1.0, 1.5), (treated, 0.5, 1.0)):
        for t0, cumhaz in ((5.0, h5), (15.0, h15)):
            p = np.exp(-cumhaz)
            assert abs((t[mask] > t0).mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert sim.truth["log_hazard"] == pytest.approx(np.log([0.2, 0.05]).tolist())


# --------------------------------------------------------------------------------- spec

@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(cuts_months=[3.0, 6.0]), "exactly one of cuts_months"),
    (lambda m: m.pop("cuts"), "exactly one of cuts_months"),
    (lambda m: m.update(cuts={"method": "quantiles", "count": 1}), "count = N"),
    (lambda m: (m.pop("cuts"), m.update(cuts_months=[6.0, 3.0])), "strictly increasing"),
    (lambda m: m.update(parameterisation="sideways"), "parameterisation must be one of"),
])
def test_pwe_spec_errors(change, message):
    raw = _pwe_raw()
    change(raw["model"])
    with pytest.raises(SpecError, match=message):
        parse_spec(raw, "plan.toml")


def test_time_varying_needs_its_prior():
    raw = _pwe_raw()
    raw["priors"].pop("sigma_log_hr_rw")
    with pytest.raises(SpecError, match="sigma_log_hr_rw"):
        parse_spec(raw, "plan.toml")
    raw = _pwe_raw()
    raw["model"]["time_varying_hr"] = False
    with pytest.raises(SpecError, match="'sigma_log_hr_rw' is not a parameter"):
        parse_spec(raw, "plan.toml")


def test_anchored_levels_keep_the_prior_and_likelihood_exactly():
    """The anchors (log_hazard_anchor, log_hr_anchor) are a unit-Jacobian shift of μ and β:
    the model with data-driven anchor weights, at any point, has the same log density and the
    same hazards as the model with uniform weights (a = μ, the plain parameterisation) at the
    matching point a' = μ, so the prior and the posterior of (μ, β, …) are unchanged."""
    import pymc as pm

    from bayes_ablation.data.aggregate import aggregate
    from bayes_ablation.endpoints.pfs.model import build_pwe_model, pwe_centring

    # a high hazard: almost every event in the first intervals (the case the anchors are for)
    sim = simulate_trial(300, 4, [0.3, 0.1, -0.2, 0.0, 0.0, 0.0, 0.0, 0.0], seed=5,
                         median_ref_months=2.0, weibull_shape=1.0, sigma_site=0.3,
                         hr_cuts_months=CUTS8)
    patients = _patients(sim)
    spec = pwe_spec(cuts_months=CUTS8, time_varying=True)
    w = pwe_centring(aggregate(patients, np.array(CUTS8)), 4, 2, len(CUTS8) + 1)
    assert w["anchor"].max() > 0.4 and w["anchor"][-1] < 0.01     # far from uniform
    model = build_pwe_model(spec, patients)
    logp = model.compile_logp()
    names = ["log_hazard_mean", "log_hr", "log_hazard", "log_hr_interval"]
    outputs = model.replace_rvs_by_values([model[n] for n in names])
    values = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore")
    rng = np.random.default_rng(1)
    start = model.initial_point()
    points = []
    for _ in range(3):
        p = {name: rng.normal(0.0, 0.7, size=np.shape(v)) for name, v in start.items()}
        points.append((p, float(logp(p)), [np.array(v, copy=True) for v in values(p)]))
    n_int = len(CUTS8) + 1
    pm.set_data({"anchor_log_hazard": np.full(n_int, 1 / n_int),
                 "anchor_log_hr": np.full((1, n_int), 1 / n_int)}, model=model)
    for p, lp, vals in points:      # the compiled functions read the new anchor weights
        q = {**p, "log_hazard_anchor": vals[0], "log_hr_anchor": vals[1]}
        np.testing.assert_allclose(float(logp(q)), lp, rtol=1e-10)
        for a, b in zip(values(q), vals, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        assert abs(float(p["log_hazard_anchor"]) - float(vals[0])) > 1e-3   # a ≠ μ here
