"""The cached LR kernels (``lr_weibull``, ``lr_pwe``) are the PyMC models: log density,
gradient and traced values at random points, to 1e-8, for every structure the builder makes.

Compared with PyMC's own compiled log density and gradient (``mode='FAST_COMPILE'``,
independent of the kernel's per-process check, which uses unrewritten graphs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayes_ablation.data.lesions import lr_data_from_frames
from bayes_ablation.data.simulate_lr import simulate_lr_trial
from bayes_ablation.spec.plan import load_spec, parse_spec
from tests.conftest import MODELS
from tests.inference.kernel_checks import assert_kernel_matches_pymc

ROOT = Path(__file__).resolve().parents[2]
SPECS = {"lr_weibull": "local_recurrence_lesion.toml", "lr_pwe": "local_recurrence_lesion_pwe.toml"}


def _prior(family: str, **params: float) -> dict:
    return {"family": family, **params, "rationale": "test"}


def make_case(family: str, *, covariates: bool = True, frailty: bool = True,
              intercepts: bool = True, slopes: bool = False, parameterisation: str | None = None,
              priors: dict | None = None, seed: int = 3):
    """A spec of ``family`` with the given structure + a small simulated trial."""
    raw = json.loads(json.dumps(load_spec(MODELS / SPECS[family]).raw))
    raw["hierarchy"] = {"site_intercepts": intercepts, "site_arm_slopes": slopes}
    raw["model"]["patient_frailty"] = frailty
    if parameterisation is not None:
        raw["model"]["parameterisation"] = parameterisation
    if not covariates:
        raw["analysis"]["covariates"] = []
        raw["model"].pop("reference_lesion", None)
        raw["priors"].pop("beta_covariates")
    if not frailty:
        raw["priors"].pop("sigma_patient")
    if not intercepts:
        raw["priors"].pop("sigma_site")
    if slopes:
        raw["priors"]["sigma_site_arm"] = _prior("halfnormal", sigma=0.3)
    raw["priors"].update(priors or {})
    spec = parse_spec(raw)
    sim = simulate_lr_trial(70, 4, seed=seed, lr_cuminc_24_ref=0.2)
    lesions = lr_data_from_frames(sim.patients, sim.lesions, reference_arm=spec.reference_arm,
                                  covariates=spec.covariates)
    return spec, lesions


CASES = {
    "weibull_default": ("lr_weibull", {}),
    "weibull_no_covariates_partial": ("lr_weibull", {"covariates": False, "partial": True}),
    "weibull_no_frailty": ("lr_weibull", {"frailty": False}),
    "weibull_no_site_effects": ("lr_weibull", {"intercepts": False, "covariates": False}),
    "weibull_slopes_partial": ("lr_weibull", {"slopes": True, "partial": True}),
    "weibull_centred_slopes": ("lr_weibull", {"slopes": True, "parameterisation": "centred"}),
    "weibull_prior_families": ("lr_weibull", {"slopes": True, "partial": True, "priors": {
        "log_cumhaz_ref": _prior("uniform", lower=-8.0, upper=2.0),
        "weibull_shape": _prior("gamma", alpha=4.0, beta=4.0),
        "log_hr": _prior("studentt", nu=4.0, mu=0.0, sigma=0.8),
        "beta_covariates": _prior("studentt", nu=5.0, mu=0.1, sigma=1.2),
        "sigma_patient": _prior("lognormal_variance", mu=-1.0, sigma=1.0),
        "sigma_site": _prior("halfcauchy", beta=0.4),
        "sigma_site_arm": _prior("halfstudentt", nu=3.0, sigma=0.3),
        "death_weibull_shape": _prior("halfnormal", sigma=1.5),
        "death_log_cumhaz_ref": _prior("normal", mu=-2.0, sigma=1.0)}}),
    "weibull_more_families": ("lr_weibull", {"priors": {
        "weibull_shape": _prior("exponential", lam=1.0),
        "sigma_patient": _prior("lognormal", mu=-0.5, sigma=0.6),
        "sigma_site": _prior("lognormal_variance", mu=-2.0, sigma=1.0)}}),
    "pwe_default": ("lr_pwe", {}),
    "pwe_no_covariates_partial": ("lr_pwe", {"covariates": False, "partial": True}),
    "pwe_no_frailty_no_sites": ("lr_pwe", {"frailty": False, "intercepts": False}),
    "pwe_slopes_families": ("lr_pwe", {"slopes": True, "partial": True, "priors": {
        "log_hazard_baseline": _prior("studentt", nu=5.0, mu=-4.0, sigma=2.0),
        "sigma_site": _prior("halfstudentt", nu=3.0, sigma=0.5),
        "death_weibull_shape": _prior("gamma", alpha=3.0, beta=2.5)}}),
}


def _model(case: str):
    from bayes_ablation.endpoints.build import build_model

    family, options = CASES[case]
    options = dict(options)
    partial = options.pop("partial", False)
    spec, lesions = make_case(family, **options)
    model = build_model(spec, lesions)
    if partial:  # random centring weights w in (0, 1), swapped in like new data
        rng = np.random.default_rng(4)
        for name in ("centring_site", "centring_site_arm", "centring_patient"):
            if name in model.named_vars:
                model.set_data(name, rng.uniform(0.05, 0.95,
                                                 size=model[name].get_value().shape))
    return spec, model


@pytest.mark.parametrize("case", sorted(CASES))
def test_lr_kernel_equals_pymc_logp_gradient_and_trace(case):
    from bayes_ablation.endpoints.local_recurrence import fastpath as lr_fastpath
    from bayes_ablation.endpoints.local_recurrence import numba_kernels as nk
    from bayes_ablation.inference import kernels

    spec, model = _model(case)
    if CASES[case][1].get("partial"):
        assert np.all(model["centring_site"].get_value() > 0.0)
        if "centring_patient" in model.named_vars:
            assert np.all(model["centring_patient"].get_value() > 0.0)
    plan = lr_fastpath.lr_plan(model, spec)
    buf = lr_fastpath.lr_buffer(plan, model)
    cfuncs = nk.lr_cfuncs()
    assert_kernel_matches_pymc(model, plan, buf, cfuncs)
    # the sampler path: a checked nutpie model on the cached kernel
    compiled, facts = kernels.kernel_model(model, spec)
    assert facts["logp_kernel"] == f"numba cached ({spec.model})"
    assert facts["kernel_check_max_rel_error"] <= 1e-8
    assert compiled.n_dim == plan.n_dim


def test_lr_kernel_check_catches_a_wrong_kernel():
    from bayes_ablation.endpoints.local_recurrence import fastpath as lr_fastpath
    from bayes_ablation.endpoints.local_recurrence import numba_kernels as nk
    from bayes_ablation.inference import kernels

    spec, model = _model("weibull_default")
    plan = lr_fastpath.lr_plan(model, spec)
    plan.log_t_ref += 1e-6  # almost, but not exactly, the model
    buf = lr_fastpath.lr_buffer(plan, model)
    with pytest.raises(kernels.KernelUnavailable, match="differs from PyMC"):
        kernels.check_kernel(model, plan, buf, nk.lr_cfuncs(),
                             kernels.check_points(model, plan))


def test_lr_kernel_rejects_a_model_it_does_not_know():
    import pymc as pm

    from bayes_ablation.inference import kernels

    spec, model = _model("pwe_default")
    with model:
        pm.Normal("extra", 0.0, 1.0)
    with pytest.raises(kernels.KernelUnavailable, match="extra"):
        kernels.kernel_model(model, spec)


def test_lr_kernel_reads_new_data_swapped_into_the_model():
    """The buffer is rebuilt from the model's current ``pm.Data``: new lesion times change
    the kernel's log density exactly as PyMC's."""
    from bayes_ablation.endpoints.local_recurrence import fastpath as lr_fastpath
    from bayes_ablation.endpoints.local_recurrence import numba_kernels as nk
    from bayes_ablation.inference import kernels

    spec, model = _model("weibull_no_covariates_partial")
    plan = lr_fastpath.lr_plan(model, spec)
    position = kernels.check_points(model, plan, n=1, seed=2)[0]
    before = kernels.kernel_logp_grad(nk.lr_cfuncs(), lr_fastpath.lr_buffer(plan, model),
                                      position)[0]
    lower = model["lr_lower"].get_value()
    upper = model["lr_upper_safe"].get_value()
    model.set_data("lr_lower", 0.5 * lower)
    model.set_data("lr_upper_safe", np.maximum(0.9 * upper, 0.5 * lower + 0.01))
    after = kernels.kernel_logp_grad(nk.lr_cfuncs(), lr_fastpath.lr_buffer(plan, model),
                                     position)[0]
    assert abs(after - before) > 1.0
    assert kernels.check_kernel(model, plan, lr_fastpath.lr_buffer(plan, model),
                                nk.lr_cfuncs(), kernels.check_points(model, plan)) <= 1e-8


_SECOND_PROCESS = """
import json, sys
from tests.inference.test_lr_kernel import _model
from bayes_ablation.inference import kernels
spec, model = _model(sys.argv[1])
compiled, facts = kernels.kernel_model(model, spec)
print(json.dumps({"kernel_loaded_from_disk_cache": facts["kernel_loaded_from_disk_cache"]}))
"""


def test_a_new_process_loads_the_lr_kernel_from_the_disk_cache():
    """Issue 13, point 2: a second process loads the machine code from numba's disk cache
    (no compile), for both families (they share one kernel)."""
    from bayes_ablation.endpoints.local_recurrence import numba_kernels as nk

    nk.lr_cfuncs()  # compiled (and cached) here if not yet
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "PYTHONHASHSEED": "0"}
    for case in ("weibull_default", "pwe_default"):
        proc = subprocess.run([sys.executable, "-c", _SECOND_PROCESS, case],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
        assert facts["kernel_loaded_from_disk_cache"] is True, facts  # (no timing asserted)
