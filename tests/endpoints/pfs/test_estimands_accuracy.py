"""Accuracy of the fast survival estimands against exact or adaptive-quadrature values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, special

from bayes_ablation.survival import estimands as est
from bayes_ablation.survival.kernels import (
    BIN_MIN_PATTERNS,
    GH_MAX_SD,
    GH_ORDERS,
    gh_tables,
    mixed_survival,
    standardised_survival,
)


def _marginal_survival(h: float, sd: float) -> float:
    """E_u[exp(−h e^u)], u ~ N(0, sd²), by adaptive quadrature."""
    def f(u):
        return np.exp(-0.5 * (u / sd) ** 2) / (sd * np.sqrt(2 * np.pi)) * np.exp(-h * np.exp(u))
    return integrate.quad(f, -12 * sd, 12 * sd, epsabs=1e-14, epsrel=1e-13, limit=400,
                          points=[-np.log(h)])[0]


@pytest.mark.parametrize("order_index", range(len(GH_ORDERS) - 1))
def test_gauss_hermite_order_table_meets_1e9(order_index):
    """Each order integrates to ≤ 1e-9 up to its tabulated sd (the kernel's node choice)."""
    sd = GH_MAX_SD[order_index]
    for h in np.geomspace(1e-4, 50.0, 9):
        lh = np.full((1, 1, 1), np.log(h))
        got = mixed_survival(lh, np.zeros((1, 1)), np.ones(1), np.full((1, 1), sd),
                             *gh_tables())[0, 0, 0]
        assert abs(got - _marginal_survival(h, sd)) <= 1e-9


def test_mixed_survival_average_site_and_patterns_exact():
    rng = np.random.default_rng(1)
    lh = rng.normal(size=(5, 2, 7))
    off = rng.normal(size=(5, 3))
    w = np.array([0.2, 0.5, 0.3])
    got = mixed_survival(lh, off, w, np.zeros((5, 2)), *gh_tables())
    want = np.einsum("p,dpat->dat", w, np.exp(-np.exp(lh[:, None] + off[:, :, None, None])))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("sd_scale", [0.0, 0.3, 1.5])
def test_binned_standardisation_matches_exact_sum(sd_scale):
    """Many covariate patterns: the binned lattice agrees with the exact sum over the whole
    range of H (S ≈ 1, the bulk, S ≈ 0) and of random-effect sds, within 1.7e-6 (the error
    bound is 1.93e-6; these inputs give 1.3–1.4e-6)."""
    rng = np.random.default_rng(7)
    n_draw, n_pattern = 60, 500
    lh = rng.normal(0.0, 3.0, (n_draw, 2, 40))
    lh[:, :, :4] = -25.0                                   # far left tail: 1 − e^z Σ w e^o
    lh[:, :, -4:] = 6.0                                    # far right: S = 0
    off = (rng.normal(0.0, 1.0, (n_draw, 1)) * rng.normal(0.0, 0.8, (1, n_pattern))
           + rng.normal(0.0, 0.3, (n_draw, n_pattern)))
    w = rng.dirichlet(np.ones(n_pattern))
    sd = np.abs(rng.normal(0.0, sd_scale, (n_draw, 2)))
    exact = mixed_survival(lh, off, w, sd, *gh_tables())
    binned = standardised_survival(lh, off, w, sd)
    err = np.abs(binned - exact).max()
    assert err <= 1.7e-6, err
    assert err > 0.0                                       # the binned path was the one taken


def test_few_patterns_are_summed_exactly():
    rng = np.random.default_rng(8)
    n = BIN_MIN_PATTERNS - 1
    lh, off = rng.normal(size=(4, 2, 9)), rng.normal(size=(4, n))
    w, sd = np.full(n, 1 / n), np.abs(rng.normal(size=(4, 2)))
    assert np.array_equal(standardised_survival(lh, off, w, sd),
                          mixed_survival(lh, off, w, sd, *gh_tables()))


def test_new_site_survival_matches_quadrature_for_large_sd():
    sds = np.array([[0.3, 0.9], [1.3, 2.0]])
    lh = np.log(np.array([0.05, 0.7, 3.0]))[None, None, :].repeat(2, 0).repeat(2, 1)
    got = mixed_survival(lh, np.zeros((2, 1)), np.ones(1), sds, *gh_tables())
    for d in range(2):
        for a in range(2):
            for t in range(3):
                want = _marginal_survival(np.exp(lh[d, a, t]), sds[d, a])
                # 64 nodes beyond sd 1.2: no worse than 1e-5 at sd 2 (24 nodes gave 3e-4)
                tol = 1e-9 if sds[d, a] <= 1.2 else 1e-5
                assert abs(got[d, a, t] - want) <= tol


@pytest.mark.parametrize("k", [0.5, 0.8, 1.0, 1.4, 3.0])
def test_rmst_quadrature_matches_exact_weibull(k):
    """∫₀^τ exp(−λ t^k) dt = λ^(−1/k) γ(1/k, λ τ^k) / k."""
    lam, tau = 0.04, 36.0
    times, weights = est.rmst_nodes(tau)
    curve = xr.DataArray(np.exp(-lam * times**k), dims="time", coords={"time": times})
    got = float(est.rmst_quadrature(curve, weights))
    exact = lam ** (-1 / k) * special.gamma(1 / k) * special.gammainc(1 / k, lam * tau**k) / k
    assert got == pytest.approx(exact, rel=1e-7)


@pytest.mark.parametrize("k", [0.6, 1.0, 1.7])
def test_median_cloglog_exact_for_weibull(k):
    lam = np.array([0.01, 0.05, 0.3])
    grid = np.geomspace(0.05, 1200.0, est.MEDIAN_GRID_POINTS)
    curve = xr.DataArray(np.exp(-lam[:, None] * grid[None, :] ** k), dims=("draw", "time"),
                         coords={"time": grid})
    got = est.median_time(curve, scale="cloglog").values
    np.testing.assert_allclose(got, (np.log(2) / lam) ** (1 / k), rtol=1e-10)


def test_median_new_site_close_to_root():
    """Marginal (new-site) curve: grid interpolation vs the root of S(t) = 1/2."""
    from scipy.optimize import brentq

    k, alpha, sd = 1.3, np.log(0.05), 0.8
    grid = np.geomspace(0.05, 1200.0, est.MEDIAN_GRID_POINTS)
    lh = (alpha + k * np.log(grid))[None, None, :]
    s = mixed_survival(lh, np.zeros((1, 1)), np.ones(1), np.full((1, 1), sd), *gh_tables())
    curve = xr.DataArray(s[0, 0], dims="time", coords={"time": grid})
    got = float(est.median_time(curve, scale="cloglog"))
    root = brentq(lambda t: _marginal_survival(np.exp(alpha) * t**k, sd) - 0.5, 0.1, 500.0,
                  xtol=1e-12)
    assert got == pytest.approx(root, rel=2e-4)


def test_kaplan_meier_table_equals_lifelines():
    from lifelines import KaplanMeierFitter

    from bayes_ablation.survival.predictive import kaplan_meier

    rng = np.random.default_rng(4)
    time = np.round(rng.exponential(10.0, size=300), 1)  # ties on purpose
    event = rng.integers(0, 2, size=300)
    for d in (event, 1 - event):
        grid, surv = kaplan_meier(time, d)
        km = KaplanMeierFitter().fit(time, d).survival_function_
        np.testing.assert_array_equal(grid, km.index.values)
        np.testing.assert_allclose(surv, km.iloc[:, 0].values, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("per_draw_weights", [False, True])
def test_batched_tables_for_several_sds_equal_one_table_per_call(per_draw_weights):
    """Tables made a batch of draws at a time and interpolated for an average and a new
    site's sd give what tables over all draws at once give (to rounding), for each sd."""
    from bayes_ablation.survival import kernels

    rng = np.random.default_rng(3)
    n_draw, n_pattern = 600, 120          # more draws than one batch
    offsets = rng.normal(0.0, 0.8, size=(n_draw, n_pattern))
    weights = (rng.dirichlet(np.ones(n_pattern), size=n_draw) if per_draw_weights
               else np.full(n_pattern, 1 / n_pattern))
    log_h = np.log(np.linspace(0.05, 3.0, 7))[None, None, :] + rng.normal(0, 0.2, (n_draw, 2, 1))
    sds = [np.zeros((n_draw, 2)), np.abs(rng.normal(0.4, 0.1, (n_draw, 2)))]
    got = kernels.standardised_survival_by_sd(log_h, offsets, weights, sds)
    tables, shift, tail, k0 = kernels._binned_tables(offsets, weights, kernels.BIN_STEP)
    for out, sd in zip(got, sds, strict=True):
        ref = kernels._interpolated_survival(np.ascontiguousarray(log_h), tables, shift, tail,
                                             k0, kernels.BIN_STEP, sd, *kernels.gh_tables())
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-13)
        single = kernels.standardised_survival(log_h, offsets, weights, sd)
        np.testing.assert_array_equal(out, single)


def test_tables_are_the_correlation_of_g_with_the_binned_offsets():
    """The tables (binned by one weighted bincount) equal the direct correlation of G with
    the offsets binned by ``np.add.at`` of the lower and then the upper neighbours."""
    from bayes_ablation.survival import kernels

    rng = np.random.default_rng(4)
    offsets = rng.normal(0.0, 1.0, size=(300, 97))
    for weights in (np.full(97, 1 / 97), rng.dirichlet(np.ones(97), size=300)):
        h = kernels.BIN_STEP
        q = offsets / h
        rel = q - np.floor(q.min(axis=1))[:, None]
        idx = np.floor(rel).astype(np.int64)
        frac = rel - idx
        width = int(idx.max()) + 2
        bins = np.zeros((300, width))
        rows = np.broadcast_to(np.arange(300)[:, None], idx.shape)
        np.add.at(bins, (rows, idx), weights * (1.0 - frac))
        np.add.at(bins, (rows, idx + 1), weights * frac)
        tables, _, _, k0 = kernels._binned_tables(offsets, weights, h)
        # the tables are the correlation of these bins with G: rebuild it from them
        g = np.exp(-np.exp((k0 + np.arange(tables.shape[1] + width - 1)) * h))
        ref = np.stack([np.correlate(g, b, mode="valid") for b in bins[:5]])
        np.testing.assert_allclose(tables[:5], ref, rtol=1e-9, atol=1e-12)
