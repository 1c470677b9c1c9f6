"""Propensity model (penalised ML by Newton) against an independent optimiser and simulation
truth; exact balance of overlap weights; positivity warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.endpoints.confounding.propensity import (
    balance_table,
    comparison_design,
    fit_propensity,
    penalised_logistic,
    positivity_warnings,
)
from tests.endpoints.confounding.simulate import confounded_cohort

COVS = ["node_positive", "cea", "n_lesions", "primary"]


def _table(frame: pd.DataFrame, covariates=COVS):
    return patients_from_frame(frame, reference_arm="postoperative", covariates=covariates)


def _scipy_fit(x: np.ndarray, y: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The same objective minimised by scipy's BFGS (an independent implementation)."""
    def f(b):
        eta = x @ b
        return -(y * eta - np.logaddexp(0, eta)).sum() + 0.5 * (precision * b**2).sum()

    def g(b):
        return -x.T @ (y - expit(x @ b)) + precision * b

    res = minimize(f, np.zeros(x.shape[1]), jac=g, method="BFGS", options={"gtol": 1e-10,
                                                                          "maxiter": 10000})
    return res.x


def test_unpenalised_fit_agrees_with_scipy_and_recovers_truth():
    rng = np.random.default_rng(3)
    n = 4000
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.4, n)])
    truth = np.array([-0.4, 0.8, -1.0])
    y = rng.binomial(1, expit(x @ truth)).astype(float)
    beta, ok = penalised_logistic(x, y, np.zeros(3))
    assert ok.all()
    np.testing.assert_allclose(beta[0], _scipy_fit(x, y, np.zeros(3)), atol=1e-5)
    # the MLE's standard errors from the Fisher information: truth within 3.5 SE
    p = expit(x @ beta[0])
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]))))
    assert np.all(np.abs(beta[0] - truth) < 3.5 * se)


def test_site_penalised_fit_agrees_with_scipy_and_single_site_is_plain_mle():
    frame, _ = confounded_cohort(400, seed=5)
    design = comparison_design(_table(frame), "perioperative")
    x, pen, _ = design.matrix()
    beta, _ = penalised_logistic(x, design.treated, pen)
    np.testing.assert_allclose(beta[0], _scipy_fit(x, design.treated, pen), atol=1e-5)
    # one site: no site columns, the plain (unpenalised) MLE
    one = _table(frame.assign(site="S0"))
    d1 = comparison_design(one, "perioperative")
    x1, pen1, scale = d1.matrix()
    assert x1.shape[1] == 1 + d1.x.shape[1] and not pen1.any()
    fit = fit_propensity(d1)
    b = _scipy_fit(x1, d1.treated, np.zeros(x1.shape[1]))
    np.testing.assert_allclose([fit.coefficients[k] for k in d1.names], b[1:] / scale[1:],
                               rtol=1e-5, atol=1e-6)


def test_overlap_weights_balance_covariates_exactly():
    frame, _ = confounded_cohort(668, seed=2)
    fit = fit_propensity(comparison_design(_table(frame), "perioperative"))
    assert fit.converged and not fit.separation
    bal = balance_table(fit)
    cov = bal[bal["kind"] == "covariate"]
    assert set(cov["covariate"]) == {"node_positive", "cea", "n_lesions", "primary[rectum]",
                                     "primary[sigmoid]"}
    assert cov["smd_unweighted"].abs().max() > 0.2            # confounded before weighting
    assert cov["smd_overlap_weighted"].abs().max() < 1e-6     # exact balance at the fit
    sites = bal[bal["kind"] == "site"]                          # shrunken: balance improves
    assert sites["smd_overlap_weighted"].abs().max() < sites["smd_unweighted"].abs().max()


def _no_overlap_frame() -> pd.DataFrame:
    frame, _ = confounded_cohort(400, seed=9)
    rng = np.random.default_rng(0)
    frame["cea_high"] = rng.binomial(1, 0.4, len(frame))
    both = (frame["node_positive"] == 1) & (frame["cea_high"] == 1)
    frame.loc[both, "arm"] = "perioperative"                   # nobody postoperative there
    return frame


def test_positivity_warning_names_the_pattern_without_overlap():
    frame = _no_overlap_frame()
    n_both = int(((frame["node_positive"] == 1) & (frame["cea_high"] == 1)).sum())
    table = _table(frame, ["node_positive", "cea_high", "n_lesions"])
    found = positivity_warnings(comparison_design(table, "perioperative"), table.covariates)
    messages = [w.message for w in found]
    assert f"node_positive=1 & cea_high=1: 0 postoperative patients of {n_both}" in messages
    hit = found[messages.index(f"node_positive=1 & cea_high=1: 0 postoperative patients of "
                               f"{n_both}")]
    both = (frame["node_positive"] == 1) & (frame["cea_high"] == 1)
    assert list(hit.rows) == list(np.flatnonzero(both.to_numpy()) + 1)   # table rows, 1-based
    # the single levels overlap, so they are not flagged
    assert not any(m.startswith(("node_positive=1:", "cea_high=1:")) for m in messages)


def test_no_positivity_warning_when_the_arms_overlap():
    frame, _ = confounded_cohort(668, seed=4, strength=0.0)
    frame["site"] = "S0"
    table = _table(frame, ["node_positive", "n_lesions", "primary"])
    assert positivity_warnings(comparison_design(table, "perioperative"), table.covariates) == []


def test_separation_falls_back_to_a_covariate_ridge_and_says_so():
    frame, _ = confounded_cohort(300, seed=6)
    frame["marker"] = (frame["arm"] == "perioperative").astype(int)   # perfect predictor
    fit = fit_propensity(comparison_design(_table(frame, ["marker", "cea"]), "perioperative"))
    assert fit.separation and fit.converged
    assert "separate the arms" in fit.method
    assert np.isfinite(fit.propensity).all()


@pytest.mark.parametrize("treatment", ["perioperative"])
def test_propensity_is_a_probability_per_patient(treatment):
    frame, _ = confounded_cohort(200, seed=8)
    fit = fit_propensity(comparison_design(_table(frame), treatment))
    assert fit.propensity.shape == (200,)
    assert ((fit.propensity > 0) & (fit.propensity < 1)).all()
