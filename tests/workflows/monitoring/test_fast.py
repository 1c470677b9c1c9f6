"""Fast posterior path: Laplace on PWE sufficient statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from bayes_ablation.data.aggregate import aggregate
from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import simulate_trial
from bayes_ablation.workflows.monitoring.fast import (
    FastModel,
    _grad_hess,
    _log_post,
    fast_posterior,
    laplace,
    suff_stats,
    suff_stats_from_table,
)

CUTS = np.array([3.0, 6.0, 12.0, 18.0, 24.0])


@pytest.fixture(scope="module")
def trial():
    sim = simulate_trial(300, 6, -0.3, seed=2)
    return patients_from_frame(sim.frame, reference_arm="postoperative")


def model(nodes, n_sites=6):
    return FastModel(CUTS, n_sites, -3.0, 2.0, 0.0, 1.0, np.asarray(nodes, float))


def test_batched_statistics_equal_aggregate(trial):
    d, e = suff_stats(trial.time[None], trial.event[None], trial.site_idx, trial.arm_idx, CUTS, 6)
    d2, e2 = suff_stats_from_table(trial, CUTS)
    assert np.array_equal(d, d2)
    assert np.allclose(e, e2, rtol=1e-12, atol=1e-9)
    cells = aggregate(trial, CUTS)
    assert d.sum() == cells["events"].sum() == trial.event.sum()
    assert e.sum() == pytest.approx(trial.time.sum())


def test_mode_matches_scipy_and_gradient_is_exact(trial):
    m = model([0.3])
    d, e = suff_stats_from_table(trial, CUTS)
    p = CUTS.size + 2 + 6
    f = lambda th: -_log_post(th[None], d, e, m, 0.3, True)[0]  # noqa: E731
    jac = lambda th: -_grad_hess(th[None], d, e, m, 0.3, True)[0][0]  # noqa: E731
    hess = lambda th: _grad_hess(th[None], d, e, m, 0.3, True)[1][0]  # noqa: E731
    x = np.random.default_rng(1).normal(size=p) * 0.3
    assert optimize.check_grad(f, jac, x) < 1e-5 * np.linalg.norm(jac(x))
    h_num = optimize.approx_fprime(x, jac, 1e-6)
    assert np.allclose(hess(x), h_num, rtol=1e-4, atol=1e-3)
    res = optimize.minimize(f, np.zeros(p), jac=jac, hess=hess, method="trust-exact")
    fp = laplace(d, e, m)
    assert np.max(np.abs(res.x - fp.mode[0, 0])) < 1e-6
    assert np.allclose(fp.cov[0, 0], np.linalg.inv(hess(res.x)), rtol=1e-6)


def test_agrees_with_stratified_cox_and_batches_are_independent(trial):
    from lifelines import CoxPHFitter

    df = trial.frame.assign(trt=(trial.frame["arm"] == "perioperative").astype(int))
    cox = CoxPHFitter().fit(df[["time_months", "event", "trt", "site"]], "time_months", "event",
                            strata=["site"])
    fp = fast_posterior(trial, model([0.15, 0.3, 0.6]))
    # weakly informative N(0, 1) prior, ~170 events: the posterior is close to the partial
    # likelihood estimate (PWE baseline vs Cox's nonparametric one)
    assert fp.log_hr_mean[0] == pytest.approx(cox.params_["trt"], abs=0.03)
    assert fp.log_hr_sd[0] == pytest.approx(cox.standard_errors_["trt"], rel=0.05)
    d, e = suff_stats_from_table(trial, CUTS)
    batch = laplace(np.concatenate([d, d * 0, d]), np.concatenate([e, e * 0, e]),
                    model([0.15, 0.3, 0.6]))
    # each element is fitted on its own (to the last bits, up to SIMD summation order)
    assert batch.prob_hr_below(1.0)[0] == pytest.approx(fp.prob_hr_below(1.0)[0], rel=1e-12)
    assert batch.prob_hr_below(1.0)[2] == pytest.approx(fp.prob_hr_below(1.0)[0], rel=1e-12)
    # no data at all: the log HR posterior is the prior
    assert batch.log_hr_mean[1] == pytest.approx(0.0, abs=1e-9)
    assert batch.log_hr_sd[1] == pytest.approx(1.0, rel=1e-6)


def test_laplace_marginal_of_a_skewed_posterior():
    """One arm-by-interval cell per arm, no sites, flat-ish baseline: the log-HR posterior is
    that of a ratio of Poisson rates, whose exact marginal (numerical integration over the
    baseline on a grid) is skewed with few events. The Laplace marginal matches it; the
    Gaussian approximation is visibly off."""
    from scipy import integrate

    d = np.array([[[[4.0], [1.0]]]])
    e = np.array([[[[40.0], [30.0]]]])
    m = FastModel(np.zeros(0), 1, -2.0, 3.0, 0.0, 2.0, np.array([0.0]))
    marg = laplace(d, e, m)
    gauss = laplace(d, e, m, marginal=False)

    def log_joint(a, b):
        return (5 * a - 40 * np.exp(a) + b - 30 * np.exp(a + b)
                - 0.5 * (a + 2) ** 2 / 9 - 0.5 * b**2 / 4)

    a = np.linspace(-8, 3, 1501)
    b = np.linspace(-9, 6, 1501)
    lj = log_joint(a[:, None], b[None, :])
    dens = np.exp(lj - lj.max())
    marginal_b = integrate.trapezoid(dens, a, axis=0)
    cdf = integrate.cumulative_trapezoid(marginal_b, b, initial=0)
    cdf /= cdf[-1]
    for cutoff in (0.5, 1.0, 2.0):
        exact = np.interp(np.log(cutoff), b, cdf)
        assert marg.prob_hr_below(cutoff)[0] == pytest.approx(exact, abs=0.004)
    exact_1 = np.interp(0.0, b, cdf)
    assert abs(gauss.prob_hr_below(1.0)[0] - exact_1) > 0.02
    mean_b = integrate.trapezoid(marginal_b * b, b) / integrate.trapezoid(marginal_b, b)
    assert marg.log_hr_mean[0] == pytest.approx(mean_b, abs=0.01)


def test_draws_follow_the_laplace_mixture(trial):
    fp = fast_posterior(trial, model([0.15, 0.3, 0.6]))
    draws = fp.draw(20000, np.random.default_rng(3))
    beta = draws[:, CUTS.size + 1]
    assert beta.mean() == pytest.approx(fp.log_hr_mean[0], abs=4 * fp.log_hr_sd[0] / np.sqrt(20000))
    # draws come from the joint Gaussian (used for simulated continuations)
    gauss = fast_posterior(trial, FastModel(CUTS, 6, -3.0, 2.0, 0.0, 1.0,
                                            np.array([0.15, 0.3, 0.6]), marginal=False))
    assert np.mean(beta < 0) == pytest.approx(gauss.prob_hr_below(1.0)[0], abs=0.005)
