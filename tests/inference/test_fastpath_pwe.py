"""The cached piecewise-exponential kernel is the PyMC model: log density, gradient, traces.

Every structure :func:`~bayes_ablation.endpoints.pfs.model.build_pwe_model` can produce —
time-varying or proportional HR, anchored (location-family) or plain level and log HR,
site intercepts / site × arm slopes / none, covariates, three arms, every parameterisation and
random partial-centring and anchor weights set through ``model.set_data`` — is compared with
PyMC's compiled log density and gradient (``mode='FAST_COMPILE'``) at random points, to 1e-8.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import CovariateSim, simulate_trial
from bayes_ablation.spec.plan import parse_spec
from tests.inference.kernel_checks import assert_kernel_matches_pymc
from tests.inference.test_fastpath import PRIORS, ROOT

BASE_FAMILIES = {"log_hazard_mean": "normal", "log_hr": "normal",
                 "sigma_log_hazard_rw": "halfnormal", "sigma_log_hr_rw": "halfnormal",
                 "sigma_site": "halfnormal", "sigma_site_arm": "halfnormal",
                 "beta_covariates": "normal"}
WEIGHTS = ("centring_log_hazard", "centring_log_hr", "centring_site", "centring_site_arm",
           "anchor_log_hazard", "anchor_log_hr")


@pytest.fixture(scope="module")
def pwe_raw():
    from bayes_ablation.spec.plan import load_spec

    return load_spec(ROOT / "models" / "pfs_piecewise_site.toml").raw


def make_pwe_case(base_raw: dict, *, time_varying: bool = True, intercepts: bool = True,
                  slopes: bool = False, covariates: bool = False, arms: int = 2,
                  families: dict | None = None, n: int = 150, seed: int = 3,
                  parameterisation: str = "auto", cuts_months: list | None = None,
                  partial: bool = False):
    """A PWE spec + simulated patients (``partial`` is read by the test)."""
    fam = {**BASE_FAMILIES, **(families or {})}
    raw = json.loads(json.dumps(base_raw))
    raw["hierarchy"] = {"site_intercepts": intercepts, "site_arm_slopes": slopes}
    raw["model"]["time_varying_hr"] = time_varying
    raw["model"]["parameterisation"] = parameterisation
    if cuts_months is not None:
        raw["model"].pop("cuts", None)
        raw["model"]["cuts_months"] = cuts_months
    else:
        raw["model"]["cuts"] = {"method": "quantiles", "count": 5}
    used = ["log_hazard_mean", "log_hr", "sigma_log_hazard_rw"]
    used += ["sigma_log_hr_rw"] if time_varying else []
    used += ["sigma_site"] if intercepts else []
    used += ["sigma_site_arm"] if slopes else []
    used += ["beta_covariates"] if covariates else []
    raw["priors"] = {name: {"family": fam[name], **PRIORS[fam[name]], "rationale": "test"}
                     for name in used}
    arm_labels = ("postoperative", "perioperative", "ablation_only")[:arms]
    covs = {}
    if covariates:
        covs = {"age": CovariateSim("normal", 0.2, mean=60.0, sd=8.0),
                "kras": CovariateSim("binary", 0.4, p=0.4)}
        raw["analysis"]["covariates"] = list(covs)
    sim = simulate_trial(n, 5, [-0.3] * (arms - 1), seed=seed, arms=arm_labels,
                         covariates=covs)
    spec = parse_spec(raw)
    patients = patients_from_frame(sim.frame, reference_arm=spec.reference_arm,
                                   covariates=spec.covariates)
    return spec, patients


CASES = {
    "shipped": {},
    "proportional_hazards": {"time_varying": False},
    "no_site_effects": {"intercepts": False, "time_varying": False},
    "slopes_covariates_3_arms": {"slopes": True, "covariates": True, "arms": 3},
    "studentt_anchors_uniform_sigma": {"families": {
        "log_hazard_mean": "studentt", "log_hr": "studentt",
        "sigma_log_hazard_rw": "lognormal_variance", "sigma_site": "halfcauchy"}},
    # non-location priors: level and log HR are drawn directly, no anchor
    "plain_level_and_log_hr": {"families": {
        "log_hazard_mean": "uniform", "log_hr": "uniform", "sigma_log_hr_rw": "gamma",
        "sigma_site": "halfstudentt"}},
    "plain_level_proportional": {"time_varying": False, "slopes": True, "families": {
        "log_hazard_mean": "uniform", "sigma_log_hazard_rw": "exponential",
        "sigma_site_arm": "lognormal"}},
    "centred_fixed_cuts": {"parameterisation": "centred", "slopes": True,
                           "cuts_months": [4.0, 10.0, 20.0]},
    "non_centred": {"parameterisation": "non_centred", "families": {
        "sigma_log_hr_rw": "lognormal_variance"}},
    "partial_weights_3_arms": {"partial": True, "arms": 3, "slopes": True, "covariates": True},
    "partial_weights_plain": {"partial": True, "families": {
        "log_hazard_mean": "uniform", "log_hr": "uniform"}},
}


def _randomise_weights(model, seed: int = 4) -> None:
    rng = np.random.default_rng(seed)
    for name in WEIGHTS:
        if name in model.named_vars:
            shape = model[name].get_value().shape
            w = rng.uniform(0.05, 0.95, size=shape)
            if name.startswith("anchor"):
                w = w / w.sum(axis=-1, keepdims=True)
            model.set_data(name, w)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pwe_kernel_equals_pymc_logp_gradient_and_trace(pwe_raw, case):
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs import fastpath as pfs_fastpath
    from bayes_ablation.endpoints.pfs import numba_kernels as nk
    from bayes_ablation.inference import kernels as fastpath

    spec, patients = make_pwe_case(pwe_raw, **CASES[case])
    model = build_model(spec, patients)
    if CASES[case].get("partial"):
        _randomise_weights(model)
    plan = pfs_fastpath.pwe_plan(model, spec)
    buf = pfs_fastpath.pwe_buffer(plan, model)
    cfuncs = nk.pwe_cfuncs()
    assert_kernel_matches_pymc(model, plan, buf, cfuncs)
    # the generic per-process check accepts it too
    fastpath.check_kernel(model, plan, buf, cfuncs, fastpath.check_points(model, plan))


def test_pwe_kernel_check_catches_a_wrong_weight(pwe_raw):
    """A buffer whose anchor weights differ from the model's is rejected by the check."""
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs import fastpath as pfs_fastpath
    from bayes_ablation.endpoints.pfs import numba_kernels as nk
    from bayes_ablation.inference import kernels as fastpath

    spec, patients = make_pwe_case(pwe_raw)
    model = build_model(spec, patients)
    plan = pfs_fastpath.pwe_plan(model, spec)
    buf = pfs_fastpath.pwe_buffer(plan, model)
    _randomise_weights(model, seed=9)   # the model moves on, the buffer does not
    with pytest.raises(fastpath.KernelUnavailable, match="differs from PyMC"):
        fastpath.check_kernel(model, plan, buf, nk.pwe_cfuncs(),
                              fastpath.check_points(model, plan))


def test_pwe_kernel_rejects_an_unknown_variable(pwe_raw):
    import pymc as pm

    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference import kernels as fastpath

    spec, patients = make_pwe_case(pwe_raw)
    model = build_model(spec, patients)
    with model:
        pm.Normal("extra", 0.0, 1.0)
    with pytest.raises(fastpath.KernelUnavailable, match="extra"):
        fastpath.kernel_model(model, spec)


@pytest.mark.slow
def test_pwe_kernel_posterior_agrees_with_nutpie_compiled_model(pwe_raw):
    """Same model, same sampler: nutpie on the cached kernel vs nutpie on PyMC's compiled
    graph. Posterior means of log HR and the level agree within 4.5 combined MCSE (slow: the
    nutpie compile of the PyMC graph alone takes 15-40 s)."""
    import arviz as az

    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference.sampling import sample

    spec, patients = make_pwe_case(pwe_raw, n=200, seed=8, time_varying=False)
    settings = spec.with_sampler(chains=2, draws=300, tune=300).sampler
    fast = sample(build_model(spec, patients), settings, spec=spec)
    assert fast.details["logp_kernel"] == "numba cached (piecewise_exponential)"
    slow = sample(build_model(spec, patients), settings, spec=spec, logp_kernel="pytensor")
    assert slow.details["logp_kernel"].startswith("pytensor")
    post_f, post_s = fast.idata.posterior, slow.idata.posterior
    assert set(post_f.data_vars) == set(post_s.data_vars)
    for name in ("log_hr", "log_hazard_mean", "sigma_site"):
        mean_f = post_f[name].mean(("chain", "draw")).values
        mean_s = post_s[name].mean(("chain", "draw")).values
        se = np.hypot(np.asarray(az.mcse(fast.idata, var_names=[name])[name]),
                      np.asarray(az.mcse(slow.idata, var_names=[name])[name]))
        assert np.all(np.abs(mean_f - mean_s) <= 4.5 * se), (name, mean_f, mean_s, se)
