"""MCMC (NUTS on models/meta.py) against the exact quadrature posterior of the same model.

Acceptance: posterior mean, sd and 2.5/97.5% quantiles of μ and the median of τ agree within
3 Monte Carlo standard errors (ArviZ ``mcse``) on several data sets, including two studies and
high heterogeneity; the convergence gate passes. Fits sample with the disk-cached numba kernel;
models with the same structure (prior families, number of studies) share its check against
PyMC.
"""

import tomllib

import numpy as np
import pytest

from bayes_ablation.data.studies import read_studies, studies_from_arrays
from bayes_ablation.endpoints.meta.estimands import compare_with_exact
from bayes_ablation.spec.plan import parse_spec
from bayes_ablation.workflows.meta import fit_meta
from tests.conftest import MODELS, ROOT

ACCEPTANCE = [("mu", "mean"), ("mu", "sd"), ("mu", "q2.5"), ("mu", "q97.5"), ("tau", "median")]


def _spec(tau: dict | None = None, parameterisation: str | None = None, **sampler):
    raw = tomllib.loads((MODELS / "meta_loghr.toml").read_text())
    raw.pop("sensitivity")   # the sensitivity panel is exact and tested elsewhere
    if tau is not None:
        raw["priors"]["tau"] = {**tau, "rationale": "test"}
    if parameterisation is not None:
        raw["model"]["parameterisation"] = parameterisation
    raw["sampler"].update({"chains": 4, "draws": 1500, "tune": 1000, **sampler})
    return parse_spec(raw, "test")


CASES = {
    # the shipped example: EPOC and CLOCC PFS hazard ratios, spec prior HalfNormal(0.5)
    "two_studies": (None, None),
    # five studies far apart relative to their SEs (tau around 0.6), heavy-tailed prior
    "high_heterogeneity": ({"family": "halfcauchy", "beta": 0.5},
                           ([-0.9, -0.2, 0.3, -1.1, 0.5], [0.2, 0.15, 0.25, 0.3, 0.2])),
    # five consistent studies (tau near 0, the funnel's neck): same structure, reuses the compile
    "homogeneous": ({"family": "halfcauchy", "beta": 0.5},
                    ([-0.3, -0.1, -0.45, -0.2, -0.35], [0.12, 0.2, 0.18, 0.25, 0.1])),
}


@pytest.fixture(scope="module")
def fits():
    out = {}
    for name, (tau, data) in CASES.items():
        studies = read_studies(ROOT / "examples" / "meta" / "crlm_pfs_hr.csv") if data is None \
            else studies_from_arrays(*data)
        out[name] = fit_meta(_spec(tau), studies, method="mcmc", cache_key="test_meta_mcmc")
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_mcmc_agrees_with_the_exact_posterior_within_3_mcse(fits, case):
    result = fits[case]
    assert result.diagnostics.passed, result.diagnostics.failures
    comparison = compare_with_exact(result.idata, result.details["meta"]["exact_table"],
                                    ACCEPTANCE).set_index(["quantity", "statistic"])
    assert len(comparison) == len(ACCEPTANCE)
    bad = comparison[comparison["gap_in_mcse"] > 3]
    assert bad.empty, f"{case}: MCMC and exact posterior disagree:\n{bad}"
    # the report's own check is the same comparison (plus θ_new)
    assert result.details["meta"]["comparison"]["gap_in_mcse"].notna().all()


def test_marginal_parameterisation_samples_the_hard_case_cleanly():
    """Two studies under a half-Cauchy τ prior: the non-centred form has divergences (see
    bench/RESULTS.md); the marginal form samples (μ, τ) with θ drawn from its exact
    conditional and must match the exact posterior with a passing gate."""
    studies = read_studies(ROOT / "examples" / "meta" / "crlm_pfs_hr.csv")
    result = fit_meta(_spec({"family": "halfcauchy", "beta": 0.5}, "marginal"), studies,
                      method="mcmc", cache_key="test_meta_mcmc")
    assert result.diagnostics.passed, result.diagnostics.failures
    checks = [*ACCEPTANCE, ("theta[EORTC40004_CLOCC]", "mean"),
              ("theta[EORTC40004_CLOCC]", "sd")]
    comparison = compare_with_exact(result.idata, result.details["meta"]["exact_table"], checks)
    assert len(comparison) == len(checks)
    assert (comparison["gap_in_mcse"] <= 3).all(), comparison


def test_second_data_set_of_a_structure_reuses_the_checked_kernel(fits):
    first, second = (fits[c].provenance for c in ("high_heterogeneity", "homogeneous"))
    assert second["timings_seconds"]["compile_cache_hit"]   # nothing compiled in this process
    for prov in (first, second):
        assert prov["sampler_details"]["logp_kernel"] == "numba cached (normal_normal)"
        assert prov["timings_seconds"]["compile_cache_hit"] == \
            prov["sampler_details"]["kernel_cache_hit"]
    # the second fit of the structure reuses the first one's check (same recorded error)
    assert second["sampler_details"]["kernel_check_max_rel_error"] == \
        first["sampler_details"]["kernel_check_max_rel_error"]
    assert fits["two_studies"].provenance["sampler_details"]["kernel_check_max_rel_error"] != \
        first["sampler_details"]["kernel_check_max_rel_error"]


def test_heterogeneity_is_detected_where_it_exists(fits):
    def tau(case):
        t = fits[case].estimand_table.set_index("label")
        return t.loc["tau", "q2.5"], t.loc["tau", "median"], t.loc["tau", "q97.5"]

    lo, med, _ = tau("high_heterogeneity")
    assert lo > 0.2 and 0.4 < med < 1.2      # sample sd of the five log HRs is 0.68
    assert tau("homogeneous")[1] < 0.2


def test_mcmc_result_carries_hr_scale_and_new_study_estimands(fits):
    r = fits["two_studies"]
    table = r.estimand_table.set_index("label")
    mu = r.idata.posterior["mu"].values
    assert r.probabilities["P(HR<1) [pooled mu]"] == np.mean(mu < 0)
    assert r.probabilities["P(HR<0.8) [pooled mu]"] == np.mean(mu < np.log(0.8))
    assert table.loc["hr_mu", "q2.5"] < table.loc["hr_mu", "median"] < table.loc["hr_mu", "q97.5"]
    # the prediction for a new study is wider than the pooled mean's interval
    assert table.loc["theta_new", "sd"] > table.loc["mu", "sd"]
    assert set(r.probabilities) == {"P(HR<1) [pooled mu]", "P(HR<1) [new study]",
                                    "P(HR<0.8) [pooled mu]", "P(HR<0.8) [new study]"}
    assert r.idata.posterior["theta"].dims == ("chain", "draw", "study")


SLOW_PRIORS = {
    "uniform": {"family": "uniform", "lower": 0.0, "upper": 2.0},
    "halfstudentt": {"family": "halfstudentt", "nu": 3, "sigma": 0.5},
    "lognormal_variance": {"family": "lognormal_variance", "mu": -2.56, "sigma": 1.74},
    "halfnormal": {"family": "halfnormal", "sigma": 0.5},
}
SLOW_DATA = {
    "two_studies": (np.log([0.79, 0.63]), [0.1232, 0.2082]),
    "high_heterogeneity": ([-0.9, -0.2, 0.3, -1.1, 0.5], [0.2, 0.15, 0.25, 0.3, 0.2]),
}


@pytest.mark.slow
@pytest.mark.parametrize("data", list(SLOW_DATA))
@pytest.mark.parametrize("prior", list(SLOW_PRIORS))
def test_every_tau_prior_family_agrees_with_the_exact_posterior(prior, data):
    result = fit_meta(_spec(SLOW_PRIORS[prior]), studies_from_arrays(*SLOW_DATA[data]),
                      method="mcmc", cache_key="test_meta_mcmc_slow")
    assert result.diagnostics.passed, result.diagnostics.failures
    comparison = compare_with_exact(result.idata, result.details["meta"]["exact_table"],
                                    ACCEPTANCE)
    bad = comparison[comparison["gap_in_mcse"] > 3]
    assert bad.empty, f"{prior}/{data}:\n{bad}"
