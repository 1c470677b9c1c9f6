"""The cached meta-analysis kernel is the PyMC model: log density, gradient, traced values.

``normal_normal`` (non-centred) and ``weibull_ipd_ad`` (IPD + aggregate, IPD only, centred IPD
effects, with/without site intercepts, site × arm slopes, several IPD trials) against PyMC's
compiled log density and gradient (``mode='FAST_COMPILE'``) at random points, to 1e-8, over
the prior families μ and τ may take.
"""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.simulate import simulate_trial
from bayes_ablation.data.studies import studies_from_frame
from bayes_ablation.spec.plan import parse_spec
from tests.inference.kernel_checks import assert_kernel_matches_pymc
from tests.inference.test_fastpath import PRIORS, ROOT

AGGREGATE = [{"study": "A", "log_hr": -0.1, "se": 0.15}, {"study": "B", "log_hr": -0.5, "se": 0.2},
             {"study": "C", "log_hr": -0.2, "se": 0.25}, {"study": "D", "log_hr": 0.1, "se": 0.3}]


def _raw(name: str) -> dict:
    return tomllib.loads((ROOT / "models" / name).read_text())


def _with_priors(raw: dict, families: dict) -> dict:
    raw = json.loads(json.dumps(raw))
    for name, family in families.items():  # a family, or (family, parameters)
        family, params = family if isinstance(family, tuple) else (family, PRIORS[family])
        raw["priors"][name] = {"family": family, **params, "rationale": "test"}
    return raw


def normal_normal_case(families: dict):
    raw = _with_priors(_raw("meta_loghr.toml"), families)
    return parse_spec(raw, "test_nn"), studies_from_frame(pd.DataFrame(AGGREGATE))


def ipd_case(folder, *, aggregate: bool = True, n_ipd: int = 1, intercepts: bool = True,
             slopes: bool = False, centred: bool = False, families: dict | None = None):
    raw = _with_priors(_raw("meta_ipd_ad.toml"), families or {})
    raw["hierarchy"] = {"site_intercepts": intercepts, "site_arm_slopes": slopes}
    if not intercepts:
        raw["priors"].pop("sigma_site")
    if slopes:
        raw["priors"]["sigma_site_arm"] = {"family": "halfnormal", "sigma": 0.3,
                                           "rationale": "test"}
    if centred:
        raw["model"]["ipd_effects"] = "centred"
    rows = list(AGGREGATE[:2]) if aggregate else []
    for j in range(n_ipd):
        sim = simulate_trial(80 + 30 * j, 3, -0.3, seed=5 + j, arms=("control", "ablation"))
        sim.frame.to_csv(folder / f"ipd{j}.csv", index=False)
        rows.append({"study": f"IPD{j}", "ipd_file": f"ipd{j}.csv", "reference_arm": "control"})
    return parse_spec(raw, "test_ipd"), studies_from_frame(pd.DataFrame(rows), base_dir=folder)


NN_CASES = {
    "shipped": {},
    "studentt_mu_halfcauchy_tau": {"mu": "studentt", "tau": "halfcauchy"},
    "uniform_mu_turner_tau": {"mu": "uniform", "tau": "lognormal_variance"},
    "halfstudentt_tau": {"tau": "halfstudentt"},
    "uniform_tau": {"tau": ("uniform", {"lower": 0.0, "upper": 2.0})},
}
IPD_CASES = {
    "shipped": {},
    "no_sites": {"intercepts": False},
    "ipd_only_two_trials": {"aggregate": False, "n_ipd": 2},
    "centred_slopes": {"centred": True, "slopes": True, "n_ipd": 2},
    "centred_ipd_only": {"centred": True, "aggregate": False,
                         "families": {"tau": "lognormal_variance", "weibull_shape": "gamma"}},
}


def assert_meta_kernel_matches_pymc(model, spec):
    from bayes_ablation.endpoints.meta import fastpath as meta_fastpath
    from bayes_ablation.endpoints.pfs import numba_kernels as nk
    from bayes_ablation.inference import kernels as fastpath

    plan = meta_fastpath.meta_plan(model, spec)
    buf = meta_fastpath.meta_buffer(plan, model)
    cfuncs = nk.meta_cfuncs()
    assert_kernel_matches_pymc(model, plan, buf, cfuncs)
    fastpath.check_kernel(model, plan, buf, cfuncs, fastpath.check_points(model, plan))


@pytest.mark.parametrize("case", sorted(NN_CASES))
def test_normal_normal_kernel_equals_pymc(case):
    from bayes_ablation.endpoints.build import build_model

    spec, studies = normal_normal_case(NN_CASES[case])
    assert_meta_kernel_matches_pymc(build_model(spec, studies), spec)


@pytest.mark.parametrize("case", sorted(IPD_CASES))
def test_ipd_ad_kernel_equals_pymc(tmp_path, case):
    from bayes_ablation.endpoints.build import build_model

    spec, studies = ipd_case(tmp_path, **IPD_CASES[case])
    assert_meta_kernel_matches_pymc(build_model(spec, studies), spec)


def test_marginal_parameterisation_falls_back():
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference import kernels as fastpath

    raw = _raw("meta_loghr.toml")
    raw["model"]["parameterisation"] = "marginal"
    spec = parse_spec(raw, "test_marginal")
    model = build_model(spec, studies_from_frame(pd.DataFrame(AGGREGATE)))
    with pytest.raises(fastpath.KernelUnavailable, match="non-centred"):
        fastpath.kernel_model(model, spec)


def test_meta_kernel_check_catches_changed_data():
    """The buffer holds the data it was built from: new estimates make the check fail."""
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.meta import fastpath as meta_fastpath
    from bayes_ablation.endpoints.pfs import numba_kernels as nk
    from bayes_ablation.inference import kernels as fastpath

    spec, studies = normal_normal_case({})
    model = build_model(spec, studies)
    plan = meta_fastpath.meta_plan(model, spec)
    buf = meta_fastpath.meta_buffer(plan, model)
    model.set_data("y_data", np.asarray(model["y_data"].get_value()) + 0.01)
    with pytest.raises(fastpath.KernelUnavailable, match="differs from PyMC"):
        fastpath.check_kernel(model, plan, buf, nk.meta_cfuncs(),
                              fastpath.check_points(model, plan))


def test_fit_meta_samples_with_the_cached_kernel():
    """fit_meta goes through the kernel path and records it (small fit, a few seconds)."""
    from bayes_ablation.workflows.meta import fit_meta

    spec, studies = normal_normal_case({})
    spec = spec.with_sampler(chains=2, draws=200, tune=200)
    result = fit_meta(spec, studies, method="mcmc", progress=False, cache_key=None)
    assert result.provenance["sampler_details"]["logp_kernel"] == "numba cached (normal_normal)"
    assert "compile_cache_hit" in result.provenance["timings_seconds"]
