"""The exact (quadrature) posterior of the normal–normal model against independent computations."""

import numpy as np
import pytest
from scipy import stats

from bayes_ablation.endpoints.meta.quadrature import ExactPosterior, QuadratureUnsupported, tau_log_prior
from bayes_ablation.endpoints.meta.sensitivity import (
    default_tau_panel,
    sensitivity_posteriors,
    sensitivity_table,
)
from bayes_ablation.spec.plan import PriorSpec

MU = PriorSpec("normal", {"mu": 0.0, "sigma": 1.0}, "")
CRLM = (np.log([0.79, 0.63]), np.array([0.12324, 0.20822]))
HIGH_HET = (np.array([-0.9, -0.2, 0.3, -1.1, 0.5]), np.array([0.2, 0.15, 0.25, 0.3, 0.2]))

TAU_PRIORS = {
    "halfnormal": PriorSpec("halfnormal", {"sigma": 0.5}, ""),
    "halfcauchy": PriorSpec("halfcauchy", {"beta": 0.5}, ""),
    "halfstudentt": PriorSpec("halfstudentt", {"nu": 3.0, "sigma": 0.5}, ""),
    "uniform": PriorSpec("uniform", {"lower": 0.0, "upper": 2.0}, ""),
    "lognormal_variance": PriorSpec("lognormal_variance", {"mu": -2.56, "sigma": 1.74}, ""),
}


def _scipy_tau_logpdf(prior: PriorSpec, t: np.ndarray) -> np.ndarray:
    p = prior.params
    return {
        "halfnormal": lambda: stats.halfnorm.logpdf(t, scale=p["sigma"]),
        "halfcauchy": lambda: stats.halfcauchy.logpdf(t, scale=p["beta"]),
        "halfstudentt": lambda: np.log(2) + stats.t.logpdf(t, p["nu"], scale=p["sigma"]),
        "uniform": lambda: stats.uniform.logpdf(t, p["lower"], p["upper"] - p["lower"]),
        # tau^2 ~ LogNormal(mu, sigma): change of variables from tau^2 to tau
        "lognormal_variance": lambda: stats.lognorm.logpdf(t**2, p["sigma"],
                                                           scale=np.exp(p["mu"]))
        + np.log(2 * t),
    }[prior.family]()


def _norm_logpdf(x, mean, sd):
    return -0.5 * np.log(2 * np.pi) - np.log(sd) - 0.5 * ((x - mean) / sd) ** 2


def brute_force(y, se, tau_prior, n_mu=701, n_tau=1001):
    """Independent 2-D grid over (μ, τ) of p(μ) p(τ) Π N(y_i; μ, s_i² + τ²) (no analytic step)."""
    lo_s, hi_s = (tau_prior.params["lower"], tau_prior.params["upper"]) \
        if tau_prior.family == "uniform" else (0.0, 60.0)
    # τ on a grid dense near 0 (cubic spacing), μ on a wide uniform grid with 0 on a node
    tau = lo_s + (hi_s - lo_s) * np.linspace(1e-3, 1.0, n_tau) ** 3
    mu = np.linspace(-4, 3, n_mu)
    m, t = np.meshgrid(mu, tau, indexing="ij")
    logp = _norm_logpdf(m, MU.params["mu"], MU.params["sigma"]) + \
        _scipy_tau_logpdf(tau_prior, tau)[None, :]
    for yi, si in zip(y, se, strict=True):
        logp = logp + _norm_logpdf(yi, m, np.sqrt(si**2 + t**2))
    w = np.exp(logp - logp.max())
    w = w * np.gradient(tau)[None, :] * (mu[1] - mu[0])
    w /= w.sum()
    w_mu, w_tau = w.sum(axis=1), w.sum(axis=0)
    mean = (w_mu * mu).sum()
    sd = np.sqrt((w_mu * (mu - mean) ** 2).sum())
    cdf_mu = np.cumsum(w_mu) - w_mu / 2        # mass below each grid point (midpoint rule)
    cdf_tau = np.cumsum(w_tau) - w_tau / 2
    new_below0 = (w * stats.norm.cdf(-m / np.maximum(t, 1e-12))).sum()
    return {"mean": mean, "sd": sd, "q2.5": np.interp(0.025, cdf_mu, mu),
            "q97.5": np.interp(0.975, cdf_mu, mu), "tau_median": np.interp(0.5, cdf_tau, tau),
            "p_mu_below0": (w_mu * ((mu < 0) + 0.5 * (mu == 0))).sum(), "p_new_below0": new_below0}


@pytest.mark.parametrize("data", [CRLM, HIGH_HET], ids=["two_studies", "high_heterogeneity"])
@pytest.mark.parametrize("family", list(TAU_PRIORS))
def test_exact_posterior_matches_an_independent_2d_grid(data, family):
    y, se = data
    exact = ExactPosterior(y=y, se=se, mu_prior=MU, tau_prior=TAU_PRIORS[family])
    table = exact.summary(0.95).set_index("label")
    grid = brute_force(y, se, TAU_PRIORS[family])
    tol = 2e-3 * grid["sd"]   # the grid's own discretisation error
    for stat in ("mean", "sd", "q2.5", "q97.5"):
        assert table.loc["mu", stat] == pytest.approx(grid[stat], abs=tol), stat
    assert table.loc["tau", "median"] == pytest.approx(grid["tau_median"], rel=5e-3)
    probs = exact.probabilities((1.0,))
    assert probs["P(HR<1) [pooled mu]"] == pytest.approx(grid["p_mu_below0"], abs=1e-3)
    assert probs["P(HR<1) [new study]"] == pytest.approx(grid["p_new_below0"], abs=1e-3)
    assert exact.quad_error < 1e-8 and exact.rule_check < 1e-8


@pytest.mark.parametrize("family", list(TAU_PRIORS))
def test_tau_prior_densities_are_normalised_and_match_scipy(family):
    prior = TAU_PRIORS[family]
    logpdf, _, _ = tau_log_prior(prior)
    t = np.linspace(1e-3, 1.9, 50)
    assert logpdf(t) == pytest.approx(_scipy_tau_logpdf(prior, t), rel=1e-10, abs=1e-10)


def test_tau_prior_densities_match_the_pymc_priors_used_by_mcmc():
    import pymc as pm

    from bayes_ablation.endpoints.priors import prior

    t = np.array([0.05, 0.3, 1.2])
    for family, spec in TAU_PRIORS.items():
        with pm.Model() as model:
            prior("tau", spec)
        if family == "lognormal_variance":
            rv, value = model["tau_sq"], t**2
            jac = np.log(2 * t)
        else:
            rv, value, jac = model["tau"], t, 0.0
        pymc_logp = pm.logp(rv, value).eval() + jac
        assert tau_log_prior(spec)[0](t) == pytest.approx(pymc_logp, rel=1e-6), family


def test_fixed_effect_limit_is_the_conjugate_normal_posterior():
    y, se = HIGH_HET
    tiny = PriorSpec("halfnormal", {"sigma": 1e-7}, "")
    exact = ExactPosterior(y=y, se=se, mu_prior=MU, tau_prior=tiny)
    prec = np.sum(1 / se**2) + 1.0
    mean = np.sum(y / se**2) / prec
    table = exact.summary(0.95).set_index("label")
    assert table.loc["mu", "mean"] == pytest.approx(mean, rel=1e-6)
    assert table.loc["mu", "sd"] == pytest.approx(prec**-0.5, rel=1e-6)
    assert table.loc["mu", "q97.5"] == pytest.approx(mean + 1.959964 * prec**-0.5, rel=1e-5)
    # no heterogeneity: every study's θ_i and θ_new collapse onto μ
    assert table.loc["theta[study1]", "mean"] == pytest.approx(mean, rel=1e-5)
    assert table.loc["theta_new", "sd"] == pytest.approx(prec**-0.5, rel=1e-5)


def test_quantiles_invert_the_cdf_and_shrinkage_pulls_towards_mu():
    y, se = HIGH_HET
    exact = ExactPosterior(y=y, se=se, mu_prior=MU, tau_prior=TAU_PRIORS["halfcauchy"])
    q = exact.quantiles([0.025, 0.5, 0.975])
    for i, name in enumerate(exact.quantities):
        assert exact.cdf(q.loc[name].to_numpy(), [i] * 3) == \
            pytest.approx([0.025, 0.5, 0.975], abs=1e-9)
    assert exact.tau_cdf(exact.tau_quantile(0.9))[0] == pytest.approx(0.9, abs=1e-10)
    mom = exact.moments
    mu = mom.loc["mu", "mean"]
    for i, yi in enumerate(y):     # θ_i lies between y_i and μ, and is surer than y_i alone
        theta = mom.loc[f"theta[study{i + 1}]"]
        assert min(yi, mu) < theta["mean"] < max(yi, mu)
        assert theta["sd"] < se[i]


def test_non_normal_mu_prior_is_refused_with_a_pointer_to_mcmc():
    with pytest.raises(QuadratureUnsupported, match="mcmc"):
        ExactPosterior(y=CRLM[0], se=CRLM[1], tau_prior=TAU_PRIORS["halfnormal"],
                       mu_prior=PriorSpec("studentt", {"nu": 3, "mu": 0, "sigma": 1}, ""))


def test_sensitivity_follows_the_prior_ordering():
    """Half-normal priors have a monotone likelihood ratio in their scale, so a wider τ prior
    gives a stochastically larger τ posterior and a wider prediction for a new study."""
    panel = default_tau_panel()
    chosen = {k: panel[k] for k in ("halfnormal_0_25", "halfnormal_0_5", "halfnormal_1")}
    posts = sensitivity_posteriors(*CRLM, MU, chosen)
    table = sensitivity_table(posts, chosen).set_index("tau prior")
    assert table["tau median"].is_monotonic_increasing
    width = np.log(table["new-study HR upper"]) - np.log(table["new-study HR lower"])
    assert width.is_monotonic_increasing
    assert (table["P(new-study HR<1)"] < table["P(pooled HR<1)"]).all()
    assert len(panel) >= 6 and all(p.rationale for p in panel.values())


def test_power_law_tails_give_infinite_moments_not_truncated_ones():
    """One study under a half-Cauchy prior: p(τ | y) ~ τ^-3, so E[τ²] = ∞ and θ_new has no sd."""
    hc = TAU_PRIORS["halfcauchy"]
    one = ExactPosterior(y=np.array([-0.3]), se=np.array([0.2]), mu_prior=MU, tau_prior=hc)
    table = one.summary().set_index("label")
    assert np.isinf(table.loc["tau", "sd"]) and np.isinf(table.loc["theta_new", "sd"])
    assert np.isfinite(table.loc["tau", "mean"]) and np.isfinite(table.loc["theta_new", "q97.5"])
    assert any("infinite" in n for n in one.notes)
    two = ExactPosterior(y=CRLM[0], se=CRLM[1], mu_prior=MU, tau_prior=hc)   # τ^-4: finite
    assert np.isfinite(two.summary().set_index("label").loc["theta_new", "sd"])
