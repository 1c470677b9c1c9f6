"""Weighted Kaplan–Meier and the propensity-weighted companion estimates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.endpoints.confounding.propensity import comparison_design, fit_propensity
from bayes_ablation.endpoints.confounding.weighting import (
    OUTCOME_METHOD,
    WEIGHTING_METHOD,
    parse_causal_label,
    side_by_side,
    weighted_contrasts,
    weighted_km,
)
from bayes_ablation.survival.predictive import kaplan_meier
from tests.endpoints.confounding.simulate import confounded_cohort, true_difference

COVS = ["node_positive", "cea", "n_lesions", "primary"]


def test_weighted_km_with_unit_and_integer_weights_is_kaplan_meier():
    rng = np.random.default_rng(0)
    t = np.round(rng.exponential(10, 80), 1)                  # ties
    d = rng.binomial(1, 0.7, 80)
    at = [0.5, 3.0, 7.5, 12.0, 30.0]
    grid, surv = kaplan_meier(t, d)
    expected = surv[np.searchsorted(grid, at, side="right") - 1]
    s, rmst = weighted_km(t, d, np.ones(80), at, tau=12.0)
    np.testing.assert_allclose(s[0], expected, atol=1e-12)
    keep = grid <= 12.0
    edges = np.append(grid[keep], 12.0)
    np.testing.assert_allclose(rmst[0], (surv[keep] * np.diff(edges)).sum(), atol=1e-12)
    w = rng.integers(1, 4, 80)                                  # weight k = patient k times
    g2, s2 = kaplan_meier(np.repeat(t, w), np.repeat(d, w))
    sw, _ = weighted_km(t, d, w, at)
    np.testing.assert_allclose(sw[0], s2[np.searchsorted(g2, at, side="right") - 1], atol=1e-12)


@pytest.mark.parametrize("seed", [12, 13, 15])
def test_weighted_ate_att_cover_the_truth_where_the_naive_contrast_misses_it(seed):
    frame, truth = confounded_cohort(1500, seed=seed, beta=-0.4, strength=1.5)
    frame["site"] = "S0"
    table = patients_from_frame(frame, reference_arm="postoperative", covariates=COVS)
    fit = fit_propensity(comparison_design(table, "perioperative"))
    comp = weighted_contrasts(fit, [24.0], 36.0, n_boot=400, seed=1)
    treated = (frame["arm"] == "perioperative").to_numpy()
    s1, _ = weighted_km(frame.time_months[treated], frame.event[treated], np.ones(treated.sum()),
                        [24.0])
    s0, _ = weighted_km(frame.time_months[~treated], frame.event[~treated],
                        np.ones((~treated).sum()), [24.0])
    naive = float(s1[0, 0] - s0[0, 0])
    for estimand in ("ATE", "ATT"):
        row = comp[(comp.estimand == estimand) & (comp.quantity == "survival_difference")].iloc[0]
        true = true_difference(truth, 24.0, estimand)
        assert row["q2.5"] < true < row["q97.5"], (estimand, true, row.to_dict())
        assert not row["q2.5"] < naive < row["q97.5"], (estimand, naive, row.to_dict())


def test_labels_parse_and_side_by_side_pairs_the_methods():
    assert parse_causal_label("ATE survival_difference[perioperative, t=24]") == {
        "estimand": "ATE", "quantity": "survival_difference", "treatment": "perioperative",
        "time": 24.0, "population": ""}
    assert parse_causal_label("survival_difference[perioperative, average site, t=24]") is None
    frame, _ = confounded_cohort(300, seed=3)
    table = patients_from_frame(frame, reference_arm="postoperative", covariates=COVS)
    comp = weighted_contrasts(fit_propensity(comparison_design(table, "perioperative")),
                              [12.0, 24.0], 36.0, n_boot=50)
    gcomp = pd.DataFrame({"label": ["ATE survival_difference[perioperative, t=24]",
                                    "ATT rmst_difference[perioperative]", "hr[perioperative]"],
                          "median": [0.1, 2.0, 0.7], "q2.5": [0.0, 1.0, 0.5],
                          "q97.5": [0.2, 3.0, 0.9]})
    both = side_by_side(comp, gcomp)
    assert (both["method"] == WEIGHTING_METHOD).sum() == len(comp)
    g = both[both["method"] == OUTCOME_METHOD]
    assert len(g) == 2 and set(g["estimand"]) == {"ATE", "ATT"}
    ate24 = both[(both.estimand == "ATE") & (both.time == 24.0)
                 & (both.quantity == "survival_difference")]
    assert list(ate24["method"]) == [OUTCOME_METHOD, WEIGHTING_METHOD]
    assert side_by_side(comp, None)["method"].eq(WEIGHTING_METHOD).all()
