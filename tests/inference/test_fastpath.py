"""The cached numba kernel is the PyMC model: log density, gradient, trace values, posterior.

Every prior family and every hierarchy/covariate option of the Weibull model is compared with
PyMC's own compiled log density and gradient (``mode='FAST_COMPILE'``, independent of the
kernel's per-process check, which uses unrewritten graphs) at random points, to 1e-8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import CovariateSim, simulate_trial
from bayes_ablation.spec.plan import parse_spec
from tests.inference.kernel_checks import assert_kernel_matches_pymc

ROOT = Path(__file__).resolve().parents[2]

PRIORS = {  # family -> parameters, for a real-valued and a positive parameter
    "normal": {"mu": -0.5, "sigma": 1.3},
    "studentt": {"nu": 4.0, "mu": 0.2, "sigma": 0.8},
    "uniform": {"lower": -6.0, "upper": 3.0},
    "halfnormal": {"sigma": 0.7},
    "halfcauchy": {"beta": 0.4},
    "halfstudentt": {"nu": 3.0, "sigma": 0.6},
    "lognormal": {"mu": 0.1, "sigma": 0.6},
    "exponential": {"lam": 2.5},
    "gamma": {"alpha": 2.0, "beta": 1.5},
    "lognormal_variance": {"mu": -2.0, "sigma": 1.0},
}


def _prior(family: str) -> dict:
    return {"family": family, **PRIORS[family], "rationale": "test"}


def make_case(base_raw: dict, *, intercepts: bool = True, slopes: bool = False,
              covariates: bool = False, arms: int = 2, families: dict | None = None,
              n: int = 120, seed: int = 3, parameterisation: str | None = None,
              partial: bool = False):
    """A spec + simulated patients; ``families`` maps parameter name -> prior family.
    (``partial`` is read by the test: random centring weights in (0, 1) per site effect.)"""
    families = {"log_cumhaz_ref": "normal", "log_hr": "normal", "weibull_shape": "lognormal",
                "sigma_site": "halfnormal", "sigma_site_arm": "halfnormal",
                "beta_covariates": "normal", **(families or {})}
    raw = json.loads(json.dumps(base_raw))
    raw["hierarchy"] = {"site_intercepts": intercepts, "site_arm_slopes": slopes}
    used = ["log_cumhaz_ref", "log_hr", "weibull_shape"]
    used += ["sigma_site"] if intercepts else []
    used += ["sigma_site_arm"] if slopes else []
    used += ["beta_covariates"] if covariates else []
    raw["priors"] = {name: _prior(families[name]) for name in used}
    if parameterisation is not None:
        raw["model"]["parameterisation"] = parameterisation
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


# every hierarchy/covariate option, and every prior family on a parameter it may serve
CASES = {
    "default": {},
    "no_site_effects": {"intercepts": False},
    "slopes_covariates_3_arms": {"slopes": True, "covariates": True, "arms": 3},
    "real_families": {"covariates": True, "families": {
        "log_cumhaz_ref": "uniform", "log_hr": "studentt", "beta_covariates": "studentt"}},
    "positive_families_1": {"slopes": True, "families": {
        "weibull_shape": "gamma", "sigma_site": "halfcauchy",
        "sigma_site_arm": "lognormal_variance"}},
    "positive_families_2": {"slopes": True, "families": {
        "weibull_shape": "exponential", "sigma_site": "halfstudentt",
        "sigma_site_arm": "lognormal"}},
    "positive_families_3": {"families": {
        "weibull_shape": "halfnormal", "sigma_site": "lognormal_variance"}},
    # site-effect parameterisation: centred, and partial weights w in (0, 1) per effect
    "centred_slopes": {"slopes": True, "parameterisation": "centred"},
    "partial_centring_slopes_covariates": {"slopes": True, "covariates": True, "partial": True,
                                           "families": {"sigma_site": "lognormal_variance"}},
    "partial_centring": {"partial": True},
}
assert {f for c in CASES.values() for f in c.get("families", {}).values()} | {"normal"} \
    >= set(PRIORS), "every prior family is covered"


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_equals_pymc_logp_and_gradient(weibull_spec, case):
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs import fastpath as pfs_fastpath
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    spec, patients = make_case(weibull_spec.raw, **CASES[case])
    model = build_model(spec, patients)
    if CASES[case].get("partial"):
        rng = np.random.default_rng(4)
        for name in ("centring_site", "centring_site_arm"):
            if name in model.named_vars:
                shape = model[name].get_value().shape
                model.set_data(name, rng.uniform(0.05, 0.95, size=shape))
    plan = pfs_fastpath.weibull_plan(model, spec)
    buf = pfs_fastpath.weibull_buffer(plan, model)
    cfuncs = nk.weibull_cfuncs()
    assert_kernel_matches_pymc(model, plan, buf, cfuncs)


def test_kernel_rejects_a_model_it_does_not_know(weibull_spec):
    import pymc as pm

    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference import kernels as fastpath

    spec, patients = make_case(weibull_spec.raw)
    model = build_model(spec, patients)
    with model:
        pm.Normal("extra", 0.0, 1.0)
    with pytest.raises(fastpath.KernelUnavailable, match="extra"):
        fastpath.kernel_model(model, spec)


def test_kernel_check_catches_a_wrong_kernel(weibull_spec):
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs import fastpath as pfs_fastpath
    from bayes_ablation.inference import kernels as fastpath

    spec, patients = make_case(weibull_spec.raw)
    model = build_model(spec, patients)
    plan = pfs_fastpath.weibull_plan(model, spec)
    plan.log_t_ref += 1e-6  # a kernel that is almost, but not exactly, the model
    buf = pfs_fastpath.weibull_buffer(plan, model)
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    with pytest.raises(fastpath.KernelUnavailable, match="differs from PyMC"):
        fastpath.check_kernel(model, plan, buf, nk.weibull_cfuncs(),
                              fastpath.check_points(model, plan))


def test_sampler_falls_back_to_nutpie_compile_when_the_kernel_is_unavailable(
        weibull_spec, monkeypatch):
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference import kernels as fastpath
    from bayes_ablation.inference import sampling as inference

    spec, patients = make_case(weibull_spec.raw)
    model = build_model(spec, patients)

    def refuse(*args, **kwargs):
        raise fastpath.KernelUnavailable("refused for the test")

    def fake_nutpie(*args, **kwargs):
        return inference.SamplingResult(idata=None, sampler="nutpie", settings={},
                                        timings={}, details={"logp_kernel": "pytensor"})

    monkeypatch.setattr(fastpath, "kernel_model", refuse)
    monkeypatch.setattr(inference, "_sample_nutpie", fake_nutpie)
    result = inference.sample(model, spec.sampler, spec=spec)
    assert result.details["cached_kernel_unavailable"] == \
        "KernelUnavailable: refused for the test"
    assert result.details["logp_kernel"] == "pytensor"


def test_kernel_posterior_agrees_with_pymc_nuts(weibull_spec):
    """Same model, two samplers: nutpie on the cached kernel vs PyMC's own NUTS on the
    PyMC graph. Posterior means agree within 4.5 combined Monte Carlo standard errors, and
    the traces have the same variables and dims."""
    import arviz as az

    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference.sampling import sample

    spec, patients = make_case(weibull_spec.raw, n=200, seed=8)
    settings = spec.with_sampler(chains=2, draws=400, tune=300).sampler
    fast = sample(build_model(spec, patients), settings, spec=spec, cache_key="agree")
    assert fast.details["logp_kernel"].startswith("numba cached")
    pymc_settings = spec.with_sampler(chains=2, draws=400, tune=300, backend="pymc").sampler
    slow = sample(build_model(spec, patients), pymc_settings)
    assert slow.sampler == "pymc"
    # PyMC files data used as observed values under observed_data only; ours keeps them in
    # constant_data too, so the pointwise log-likelihood works for either backend
    assert set(slow.idata.constant_data.data_vars) == set(fast.idata.constant_data.data_vars)
    from bayes_ablation.endpoints.pfs.loglik import log_likelihood_group

    group, _ = log_likelihood_group(slow.idata, spec)
    assert np.isfinite(group["y"].values).all()
    post_f, post_s = fast.idata.posterior, slow.idata.posterior
    assert set(post_f.data_vars) == set(post_s.data_vars)
    for name in post_s.data_vars:
        assert post_f[name].dims == post_s[name].dims, name
    for name in ("log_hr", "weibull_shape", "log_cumhaz_ref", "sigma_site"):
        mean_f = post_f[name].mean(("chain", "draw")).values
        mean_s = post_s[name].mean(("chain", "draw")).values
        se = np.hypot(np.asarray(az.mcse(fast.idata, var_names=[name])[name]),
                      np.asarray(az.mcse(slow.idata, var_names=[name])[name]))
        assert np.all(np.abs(mean_f - mean_s) <= 4.5 * se), (name, mean_f, mean_s, se)


def draws_json(spec_path: str, data_path: str) -> str:
    """log HR draws of a small kernel fit (run here and in a subprocess)."""
    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference.sampling import sample
    from bayes_ablation.spec.plan import load_spec

    spec = load_spec(spec_path).with_sampler(chains=2, draws=100, tune=100)
    patients = read_patients(data_path, spec)
    res = sample(build_model(spec, patients), spec.sampler, spec=spec, cores=1)
    return json.dumps({"kernel": res.details["logp_kernel"],
                       "draws": res.idata.posterior["log_hr"].values.ravel().tolist()})


def test_kernel_draws_are_identical_across_processes_and_hash_seeds():
    """Same seed → same draws in another process with another PYTHONHASHSEED."""
    args = [str(ROOT / "models" / "pfs_weibull_site.toml"), str(ROOT / "examples" / "pfs_trial.csv")]
    mine = json.loads(draws_json(*args))
    other_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    env = dict(os.environ, PYTHONHASHSEED=other_seed,
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    code = ("import sys; from tests.inference.test_fastpath import draws_json; "
            "print(draws_json(*sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    assert mine["kernel"].startswith("numba cached")
    assert mine["draws"] == other["draws"]


def test_checked_structure_reuse_reads_the_new_data(weibull_spec):
    """A second model of an already-checked structure skips the check but evaluates its own
    data (the kernel buffer is rebuilt from the model's ``pm.Data`` every time)."""
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs import fastpath as pfs_fastpath
    from bayes_ablation.inference import kernels as fastpath

    spec, first = make_case(weibull_spec.raw, seed=21)
    _, second = make_case(weibull_spec.raw, seed=22)
    model_a, model_b = build_model(spec, first), build_model(spec, second)
    compiled_a, facts_a = fastpath.kernel_model(model_a, spec, cache_key="reuse-test")
    compiled_b, facts_b = fastpath.kernel_model(model_b, spec, cache_key="reuse-test")
    assert facts_b["kernel_check_seconds"] < facts_a["kernel_check_seconds"]
    plan = pfs_fastpath.weibull_plan(model_b, spec)
    position = fastpath.check_points(model_b, plan, n=1, seed=2)[0]
    cfuncs = (compiled_b.compiled_logp_func, compiled_b.compiled_expand_func)
    lp_a = fastpath.kernel_logp_grad(cfuncs, compiled_a.user_data, position)[0]
    lp_b = fastpath.kernel_logp_grad(cfuncs, compiled_b.user_data, position)[0]
    names = plan.names[:len(model_b.free_RVs)]
    sizes = np.cumsum([0, *[int(np.prod(s)) for s in plan.shapes[:len(names)]]])
    point = {n: position[sizes[i]:sizes[i + 1]].reshape(plan.shapes[i])
             for i, n in enumerate(names)}
    assert lp_b == pytest.approx(float(model_b.compile_logp(mode="FAST_COMPILE")(point)),
                                 rel=1e-10)
    assert lp_a == pytest.approx(float(model_a.compile_logp(mode="FAST_COMPILE")(point)),
                                 rel=1e-10)
    assert abs(lp_a - lp_b) > 1.0


def test_kernel_check_is_read_from_its_record_only_for_the_same_digest(weibull_spec, tmp_path,
                                                                       monkeypatch):
    """A passed check is recorded under the digest of code, versions, plan, data and points; a
    new process (here: the in-process memo cleared) with the same digest reads it, other data
    or a damaged record run the check again."""
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference import kernels

    monkeypatch.setenv("BAYES_ABLATION_CACHE_DIR", str(tmp_path))
    spec, first = make_case(weibull_spec.raw, seed=31)
    _, second = make_case(weibull_spec.raw, seed=32)
    model = build_model(spec, first)
    runs = []
    real = kernels.check_kernel
    monkeypatch.setattr(kernels, "check_kernel", lambda *a, **k: runs.append(1) or real(*a, **k))

    def facts(m):
        kernels._CHECKED.clear()
        return kernels.kernel_model(m, spec, cache_key="record-test")[1]

    a = facts(model)
    assert a["kernel_check"] == "run" and len(runs) == 1
    records = list((tmp_path / "kernel_checks").glob("*.json"))
    assert len(records) == 1
    b = facts(build_model(spec, first))            # same data: the record is read
    assert b["kernel_check"].startswith("cached (sha256 ") and len(runs) == 1
    assert b["kernel_check_max_rel_error"] == a["kernel_check_max_rel_error"]
    c = facts(build_model(spec, second))           # other data: checked again
    assert c["kernel_check"] == "run" and len(runs) == 2
    records[0].write_text("{not json")              # a damaged record is no record
    d = facts(build_model(spec, first))
    assert d["kernel_check"] == "run" and len(runs) == 3
    kernels._CHECKED.clear()
