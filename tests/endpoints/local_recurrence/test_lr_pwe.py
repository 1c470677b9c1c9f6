"""Piecewise-exponential LR baseline (``lr_pwe``): exposures, likelihood, estimands, model."""

from __future__ import annotations

import json

import numpy as np
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayes_ablation.data.lesions import lr_data_from_frames
from bayes_ablation.data.simulate_lr import simulate_lr_trial
from bayes_ablation.endpoints.local_recurrence import estimands as elr
from bayes_ablation.endpoints.local_recurrence.model import (
    _pwe_logp,
    _pwe_random_factory,
    log_interval_prob,
    safe_upper,
)
from bayes_ablation.spec.plan import load_spec
from bayes_ablation.survival.piecewise import exposure, interval_labels, invert_cumhaz
from tests.conftest import MODELS

CUTS = (3.0, 6.0, 12.0, 24.0)


@pytest.fixture(scope="module")
def pwe_spec():
    return load_spec(MODELS / "local_recurrence_lesion_pwe.toml")


def test_exposure_and_inverse_cumulative_hazard():
    assert interval_labels(CUTS) == ["0–3", "3–6", "6–12", "12–24", "24+"]
    e = exposure(np.array([0.0, 2.0, 7.0, 30.0]), CUTS)
    np.testing.assert_allclose(e, [[0, 0, 0, 0, 0], [2, 0, 0, 0, 0], [3, 3, 1, 0, 0],
                                   [3, 3, 6, 12, 6]])
    rates = np.array([0.02, 0.01, 0.005, 0.003, 0.001])
    t = np.array([0.5, 3.0, 5.0, 11.0, 40.0, 200.0])
    np.testing.assert_allclose(invert_cumhaz(exposure(t, CUTS) @ rates, rates, CUTS), t)


def test_pwe_likelihood_with_equal_rates_is_the_exponential_likelihood():
    lower = np.array([0.0, 3.0, 5.9, 12.0, 0.0, 24.0, 30.0])
    upper = np.array([3.1, 6.0, 9.2, np.inf, np.inf, 30.0, 30.0001])
    eta = np.array([0.3, -0.2, 1.0, 0.0, -1.0, 0.5, 2.0])
    rate = 0.01
    u_safe, interval = safe_upper(lower, upper)
    rates = np.full(len(CUTS) + 1, rate)
    cum_l = exposure(lower, CUTS) @ rates
    log_dcum = np.log((exposure(u_safe, CUTS) - exposure(lower, CUTS)) @ rates)
    pwe = _pwe_logp(pt.as_tensor(lower), eta, cum_l, log_dcum, interval).eval()
    weib = log_interval_prob(pt.as_tensor(lower), u_safe, interval, np.log(rate) + eta,
                             1.0).eval()
    np.testing.assert_allclose(pwe, weib, rtol=1e-9)


def test_pwe_estimands_with_equal_rates_match_the_exponential_model(pwe_spec):
    weib_spec = load_spec(MODELS / "local_recurrence_lesion.toml")
    rng = np.random.default_rng(1)
    n = 3
    common = {
        "log_hr": (("chain", "draw", "treatment"), rng.normal(-0.3, 0.1, (1, n, 1))),
        "beta_covariates": (("chain", "draw", "covariate"), rng.normal(0.5, 0.1, (1, n, 1))),
        "sigma_patient": (("chain", "draw"), np.full((1, n), 0.7)),
        "sigma_site": (("chain", "draw"), np.full((1, n), 0.2)),
        "death_log_cumhaz_ref": (("chain", "draw"), np.full((1, n), -2.3)),
        "death_weibull_shape": (("chain", "draw"), np.full((1, n), 1.2)),
        "death_log_hr": (("chain", "draw", "treatment"), np.zeros((1, n, 1))),
    }
    log_rate = rng.normal(-4.5, 0.2, (1, n))
    coords = {"chain": [0], "draw": np.arange(n), "treatment": ["perioperative"],
              "covariate": ["size_cm"], "interval": interval_labels(CUTS)}
    pwe = xr.Dataset({**common, "log_hazard_baseline": (("chain", "draw", "interval"),
                                                        np.repeat(log_rate[..., None], 5, -1))},
                     coords=coords)
    weib = xr.Dataset({**common, "log_cumhaz_ref": (("chain", "draw"), log_rate + np.log(12)),
                       "weibull_shape": (("chain", "draw"), np.ones((1, n)))},
                      coords={k: v for k, v in coords.items() if k != "interval"})
    for ds in (pwe, weib):
        ds.attrs["arms"] = json.dumps(["postoperative", "perioperative"])
    times = np.array([12.0, 24.0, 36.0])
    off = elr.lesion_mix_offsets(pwe, np.array([[0.4], [-0.4], [1.0]]))
    for pop in elr.POPULATIONS:
        a = elr.lr_cif(pwe, pwe_spec, times, off, pop)
        b = elr.lr_cif(weib, weib_spec, times, off, pop)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-10)


def test_pwe_model_builds_with_finite_logp_and_predictive_draws(pwe_spec):
    from bayes_ablation.endpoints.build import build_model

    sim = simulate_lr_trial(40, n_sites=2, seed=2)
    lesions = lr_data_from_frames(sim.patients, sim.lesions, reference_arm="postoperative",
                                  covariates=pwe_spec.covariates)
    model = build_model(pwe_spec, lesions)
    assert model.named_vars_to_dims["log_hazard_baseline"] == ("interval",)
    logp = model.compile_logp(mode="FAST_COMPILE")(model.initial_point())
    assert np.isfinite(logp)
    # the CustomDist's random: latent times whose cumulative hazard is Exp(1)-distributed
    rates = np.array([0.02, 0.01, 0.005, 0.003, 0.001])
    eta = np.full(20_000, 0.5)
    t = _pwe_random_factory(CUTS)(eta, None, None, None, *rates,
                                  rng=np.random.default_rng(1), size=eta.shape)
    h = exposure(t, CUTS) @ rates * np.exp(eta)
    assert abs(h.mean() - 1) < 0.03 and abs(np.median(h) - np.log(2)) < 0.03


@pytest.mark.slow
def test_pwe_fit_recovers_lr_hazard_ratio_and_lesion_effects(pwe_spec):
    from bayes_ablation.workflows.fit import fit

    sim = simulate_lr_trial(300, n_sites=6, seed=3, lr_cuminc_24_ref=0.12)
    lesions = lr_data_from_frames(sim.patients, sim.lesions, reference_arm="postoperative",
                                  covariates=pwe_spec.covariates)
    result = fit(pwe_spec.with_sampler(chains=2, draws=500, tune=500), lesions.patients,
                 lesions=lesions)
    post = result.posterior
    checks = {"log_hr": (post["log_hr"], sim.truth["log_hr"]),
              "sigma_patient": (post["sigma_patient"], sim.truth["sigma_patient"])}
    for name, value in sim.truth["beta_covariates"].items():
        checks[name] = (post["beta_covariates"].sel(covariate=name), value)
    for name, (da, true) in checks.items():
        lo, hi = np.quantile(da.values.ravel(), [0.025, 0.975])
        assert lo < true < hi, name
    assert "lr_cumulative_incidence" in result.to_dict()["posterior_predictive_lr"]
