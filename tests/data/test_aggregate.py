"""Sufficient statistics of the piecewise-exponential likelihood are exact.

The reference is the textbook per-patient-interval expansion, built here with plain loops.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln
from scipy.stats import poisson

from bayes_ablation.data.aggregate import aggregate, cell_design, exposure_matrix, quantile_cuts
from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.errors import DataValidationError


def _random_table(rng: np.random.Generator, n: int, n_sites: int, n_arms: int,
                  cuts: np.ndarray, with_covariates: bool):
    time = rng.exponential(12.0, n) + 1e-3
    # some times exactly on cut points, the right-closed boundary case
    on_cut = rng.random(n) < 0.15
    if cuts.size:
        time[on_cut] = rng.choice(cuts, on_cut.sum())
    frame = pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(n)],
        "site": [f"S{s}" for s in np.r_[np.arange(n_sites), rng.integers(0, n_sites, n - n_sites)]],
        "arm": [f"A{a}" for a in np.r_[np.arange(n_arms), rng.integers(0, n_arms, n - n_arms)]],
        "time_months": time,
        "event": rng.integers(0, 2, n),
    })
    covariates: tuple[str, ...] = ()
    if with_covariates:
        frame["stage"] = np.r_[["I", "II", "III"], rng.choice(["I", "II", "III"], n - 3)]
        frame["lesions"] = np.r_[[1.0, 2.0], rng.integers(1, 4, n - 2).astype(float)]
        covariates = ("stage", "lesions")
    return patients_from_frame(frame, reference_arm="A0", covariates=covariates)


def _long_loglik(patients, cuts, log_lam, site_eff, arm_eff, beta):
    """Σ_i Σ_j d_ij (log λ_j + η_i) − λ_j e^{η_i} e_ij and the Poisson version, by loops."""
    bounds = [0.0, *cuts.tolist(), np.inf]
    x, _, _ = patients.design_matrix()
    kernel = 0.0
    pois = 0.0
    for i in range(patients.n_patients):
        eta = site_eff[patients.site_idx[i]] + arm_eff[patients.arm_idx[i]] + x[i] @ beta
        t = patients.time[i]
        for j in range(len(bounds) - 1):
            if t <= bounds[j]:
                break
            e = min(t, bounds[j + 1]) - bounds[j]
            d = int(patients.event[i]) if t <= bounds[j + 1] else 0
            kernel += d * (log_lam[j] + eta) - np.exp(log_lam[j] + eta) * e
            pois += poisson.logpmf(d, np.exp(log_lam[j] + eta) * e)
    return kernel, pois


def _cell_logliks(cells, patients, log_lam, site_eff, arm_eff, beta):
    x_cells, _ = cell_design(cells, patients)
    eta = site_eff[cells.site_idx] + arm_eff[cells.arm_idx] + x_cells @ beta
    lin = log_lam[cells.interval_idx] + eta
    d = cells.events.to_numpy()
    e = cells.exposure_months.to_numpy()
    kernel = float(np.sum(d * lin - np.exp(lin) * e))
    pois = float(np.sum(poisson.logpmf(d, np.exp(lin) * e)))
    const = float(np.sum(d * np.log(e) - gammaln(d + 1)))
    return kernel, pois, const


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 60), n_sites=st.integers(1, 4),
       n_arms=st.integers(2, 3), n_cuts=st.integers(0, 5), with_covariates=st.booleans())
def test_aggregated_poisson_loglik_equals_patient_interval_loglik(seed, n, n_sites, n_arms, n_cuts,
                                                                  with_covariates):
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, 40), n_cuts, replace=False)).astype(float)
    patients = _random_table(rng, n, n_sites, n_arms, cuts, with_covariates)
    cells = aggregate(patients, cuts)
    assert cells.events.sum() == patients.event.sum()
    assert cells.exposure_months.sum() == pytest.approx(patients.time.sum(), rel=1e-12)
    n_cov = patients.design_matrix()[0].shape[1]
    offsets = []
    for _ in range(3):  # random parameter points
        log_lam = rng.normal(-3, 1, n_cuts + 1)
        site_eff = rng.normal(0, 0.5, n_sites)
        arm_eff = np.r_[0.0, rng.normal(0, 0.5, n_arms - 1)]
        beta = rng.normal(0, 0.5, n_cov)
        k_long, p_long = _long_loglik(patients, cuts, log_lam, site_eff, arm_eff, beta)
        k_agg, p_agg, const = _cell_logliks(cells, patients, log_lam, site_eff, arm_eff, beta)
        assert k_agg == pytest.approx(k_long, abs=1e-8, rel=0)
        # Poisson log-pmf on cells = kernel + parameter-free constant
        assert p_agg - const == pytest.approx(k_long, abs=1e-8, rel=0)
        offsets.append(p_agg - p_long)
    # the aggregated and the long Poisson likelihoods differ by a constant only
    assert np.ptp(offsets) < 1e-8


def test_cells_on_a_hand_computed_example():
    frame = pd.DataFrame({
        "patient_id": ["a", "b", "c", "d"], "site": ["S1", "S1", "S1", "S2"],
        "arm": ["ref", "ref", "trt", "trt"], "time_months": [2.0, 7.5, 5.0, 12.0],
        "event": [1, 0, 1, 1],
    })
    patients = patients_from_frame(frame, reference_arm="ref")
    cells = aggregate(patients, [5.0, 10.0])
    got = {(r.site, r.arm, r.interval): (r.events, r.exposure_months) for r in cells.itertuples()}
    assert got == {
        ("S1", "ref", "(0, 5]"): (1, 2.0 + 5.0),
        ("S1", "ref", "(5, 10]"): (0, 2.5),
        ("S1", "trt", "(0, 5]"): (1, 5.0),          # event exactly at the cut: first interval
        ("S2", "trt", "(0, 5]"): (0, 5.0),
        ("S2", "trt", "(5, 10]"): (0, 5.0),
        ("S2", "trt", "(10, inf)"): (1, 2.0),
    }
    assert exposure_matrix(patients.time, [5.0, 10.0]).sum(axis=1).tolist() == patients.time.tolist()


def test_quantile_cuts_split_events_evenly_and_fail_clearly():
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"patient_id": range(n), "site": "S", "arm": rng.choice(["a", "b"], n),
                          "time_months": rng.exponential(10, n) + 0.01, "event": 1})
    patients = patients_from_frame(frame, reference_arm="a")
    cuts = quantile_cuts(patients, 8)
    counts = np.bincount(np.searchsorted(cuts, patients.time), minlength=8)
    assert len(cuts) == 7 and counts.min() >= 48 and counts.max() <= 52
    few = patients_from_frame(frame.assign(event=np.r_[1, 1, np.zeros(n - 2, int)]), reference_arm="a")
    with pytest.raises(DataValidationError, match="distinct event times"):
        quantile_cuts(few, 5)
