"""Bias-parameter analysis of an unmeasured binary confounder and the E-value."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ablation.endpoints.confounding.sensitivity import (
    NO_BIAS,
    BiasPriors,
    adjusted_log_hr,
    e_value_hr,
    e_value_rr,
    hr_to_rr,
    probabilistic_bias,
    sensitivity_grid,
)


def test_zero_bias_returns_the_unadjusted_posterior_exactly():
    draws = np.random.default_rng(0).normal(-0.3, 0.12, (4, 250))
    assert np.array_equal(probabilistic_bias(draws, NO_BIAS), draws)
    # gamma = 0 with any prevalences, or equal prevalences with any gamma: no bias either
    no_effect = BiasPriors(gamma_mean=0.0, gamma_sd=0.0)
    assert np.array_equal(probabilistic_bias(draws, no_effect, seed=3), draws)
    same = BiasPriors(p1_fixed=0.3, p0_fixed=0.3, gamma_sd=0.5)
    assert np.array_equal(probabilistic_bias(draws, same, seed=3), draws)
    grid = sensitivity_grid(draws)
    q = np.quantile(draws, [0.025, 0.5, 0.975])
    at_null = grid[np.isclose(grid["hr_u"], 1.0) | np.isclose(grid["prevalence_difference"], 0)]
    assert len(at_null) > 0
    np.testing.assert_array_equal(at_null["hr_adjusted_median"], np.exp(q[1]))
    np.testing.assert_array_equal(at_null["hr_adjusted_upper"], np.exp(q[2]))
    np.testing.assert_array_equal(at_null["p_hr_adjusted_below_1"], np.mean(draws < 0))


def test_bias_formula_on_known_values():
    # all treated and no reference patient carry U, which doubles the hazard: log 2 of bias
    assert adjusted_log_hr(0.0, 1.0, 0.0, np.log(2.0)) == pytest.approx(-np.log(2.0))
    # p1 = 0.5, p0 = 0.2, HR_U = 3: bias = (1 + 0.5·2) / (1 + 0.2·2) = 2 / 1.4
    assert adjusted_log_hr(0.0, 0.5, 0.2, np.log(3.0)) == pytest.approx(-np.log(2 / 1.4))
    # priors: the adjusted posterior is the observed one shifted by the prior's bias draws
    draws = np.zeros(20000)
    adj = probabilistic_bias(draws, BiasPriors(p1_fixed=1.0, p0_fixed=0.0, gamma_mean=0.5,
                                               gamma_sd=0.1), seed=1)
    assert adj.mean() == pytest.approx(-0.5, abs=0.005)
    assert adj.std() == pytest.approx(0.1, abs=0.005)


def test_e_value_matches_the_published_example():
    # VanderWeele & Ding (2017), Ann Intern Med: RR 3.9 (95% CI 1.8 to 8.7) → 7.26 and 3.0
    assert float(e_value_rr(3.9)) == pytest.approx(7.26, abs=0.005)
    out = e_value_hr(3.9, 1.8, 8.7, common=False)
    assert out["e_value"] == pytest.approx(3.9 + np.sqrt(3.9 * 2.9))
    assert out["e_value_interval"] == pytest.approx(3.0, abs=0.005)
    # protective effects use the inverse; an interval containing 1 has E-value 1
    assert float(e_value_rr(0.5)) == pytest.approx(2 + np.sqrt(2))
    assert e_value_hr(0.8, 0.6, 1.1, common=False)["e_value_interval"] == 1.0
    # common outcome: HR → RR by (1 − 0.5^√HR) / (1 − 0.5^√(1/HR)); HR 1 ↦ 1
    assert float(hr_to_rr(1.0, common=True)) == pytest.approx(1.0)
    assert float(hr_to_rr(0.5, common=True)) == pytest.approx(
        (1 - 0.5 ** np.sqrt(0.5)) / (1 - 0.5 ** np.sqrt(2)))
