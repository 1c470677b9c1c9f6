"""Estimand functions against closed forms and quadrature (no MCMC: hand-made draws)."""

import json

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

from bayes_ablation.endpoints.pfs import estimands as pfs_est
from bayes_ablation.survival import estimands as est
from bayes_ablation.survival.ppc import km_on_grid


def _post(n_chain=2, n_draw=50, seed=0, sigma_site=0.4, slope=None):
    rng = np.random.default_rng(seed)
    shape = (n_chain, n_draw)
    ds = xr.Dataset({
        "log_cumhaz_ref": (("chain", "draw"), rng.normal(-0.7, 0.1, shape)),
        "weibull_shape": (("chain", "draw"), rng.lognormal(0.2, 0.05, shape)),
        "log_hr": (("chain", "draw", "treatment"), rng.normal(-0.3, 0.1, (*shape, 1))),
        "sigma_site": (("chain", "draw"), np.full(shape, sigma_site)),
    }, coords={"chain": range(n_chain), "draw": range(n_draw), "treatment": ["peri"]})
    if slope is not None:
        ds["sigma_site_arm"] = (("chain", "draw"), np.full(shape, slope))
    ds.attrs["arms"] = json.dumps(["post", "peri"])
    return ds


class _Tree:
    """Just enough of a DataTree for estimands: posterior + children."""

    def __init__(self, post, x=None):
        self.posterior = post
        self.children = {"posterior": post}
        if x is not None:
            self.constant_data = xr.Dataset({"x": (("patient", "covariate"), x)})
            self.children["constant_data"] = self.constant_data


@pytest.fixture
def spec(weibull_spec):
    return weibull_spec


def _closed_form_s(post, t, arm_shift, u=0.0, offset=0.0):
    k = post["weibull_shape"].values
    a = post["log_cumhaz_ref"].values
    return np.exp(-np.exp(a + k * np.log(t / 12.0) + arm_shift + u + offset))


def test_average_site_survival_is_the_closed_form(spec):
    post = _post()
    s = pfs_est.survival_at(_Tree(post), spec, np.array([6.0, 24.0]), "average")
    for i, t in enumerate([6.0, 24.0]):
        np.testing.assert_allclose(s.sel(arm="post").values[..., i], _closed_form_s(post, t, 0.0),
                                   rtol=1e-12)
        np.testing.assert_allclose(s.sel(arm="peri").values[..., i],
                                   _closed_form_s(post, t, post["log_hr"].values[..., 0]),
                                   rtol=1e-12)


@pytest.mark.parametrize("slope", [None, 0.25])
def test_new_site_survival_integrates_over_site_distribution(spec, slope):
    post = _post(n_draw=3, sigma_site=0.6, slope=slope)
    s = pfs_est.survival_at(_Tree(post), spec, np.array([18.0]), "new")
    for c in range(2):
        for d in range(3):
            p = post.isel(chain=c, draw=d)
            for arm, shift in (("post", 0.0), ("peri", float(p["log_hr"][0]))):
                sd = 0.6 if arm == "post" or slope is None else np.hypot(0.6, slope)
                exact = integrate.quad(
                    lambda u, shift=shift, sd=sd, p=p: stats.norm.pdf(u, 0, sd) * float(
                        _closed_form_s(p, 18.0, shift, u)), -12 * sd, 12 * sd, epsabs=1e-12)[0]
                assert float(s.sel(arm=arm).values[c, d, 0]) == pytest.approx(exact, abs=1e-9)


def test_covariate_standardisation_averages_over_patients(spec):
    post = _post(n_draw=4)
    post["beta_covariates"] = (("chain", "draw", "covariate"), np.full((2, 4, 2), [0.5, -1.0]))
    x = np.array([[0.5, 0.0], [-0.5, 1.0], [0.5, 0.0], [1.5, 1.0]])
    s = pfs_est.survival_at(_Tree(post, x), spec, np.array([12.0]), "average")
    manual = np.mean([_closed_form_s(post, 12.0, 0.0, offset=xi @ [0.5, -1.0]) for xi in x], axis=0)
    np.testing.assert_allclose(s.sel(arm="post").values[..., 0], manual, rtol=1e-12)


def test_rmst_and_median_match_quadrature_and_closed_form(spec):
    post = _post(n_draw=5, sigma_site=0.0)
    grid = np.linspace(0, 36, 241)[1:]
    curve = pfs_est.survival_at(_Tree(post), spec, grid, "average")
    r = est.rmst(curve, 36.0)
    p = post.isel(chain=0, draw=0)
    exact = integrate.quad(lambda t: float(_closed_form_s(p, t, 0.0)), 0, 36)[0]
    assert float(r.sel(arm="post").values[0, 0]) == pytest.approx(exact, rel=1e-4)
    grid = np.geomspace(0.05, 400, 2000)
    med = est.median_time(pfs_est.survival_at(_Tree(post), spec, grid, "average"))
    k, a = float(p["weibull_shape"]), float(p["log_cumhaz_ref"])
    exact_median = 12.0 * (np.log(2) / np.exp(a)) ** (1 / k)
    assert float(med.sel(arm="post").values[0, 0]) == pytest.approx(exact_median, rel=1e-3)


def test_median_not_reached_is_infinite():
    s = xr.DataArray(np.array([[0.9, 0.8, 0.7]]), dims=("arm", "time"),
                     coords={"arm": ["a"], "time": [1.0, 2.0, 3.0]})
    assert np.isinf(est.median_time(s).values[0])


def test_contrast_is_treatment_minus_reference():
    v = xr.DataArray(np.array([1.0, 3.0]), dims="arm", coords={"arm": ["ref", "trt"]})
    assert float(est.contrast(v, ["ref", "trt"]).sel(treatment="trt")) == 2.0


def test_summarise_and_probabilities(spec):
    post = _post(n_draw=400)
    ds = xr.Dataset({"hr": np.exp(post["log_hr"])})
    ds.attrs["hr_thresholds"] = [1.0, 0.7]
    probs = pfs_est.probabilities(ds)
    hr = np.exp(post["log_hr"].values.ravel())
    assert probs["P(HR<0.7) [peri]"] == pytest.approx(np.mean(hr < 0.7))
    table = est.summarise(ds, 0.95)
    row = table.iloc[0]
    assert row["label"] == "hr[peri]"
    assert row["q2.5"] == pytest.approx(np.quantile(hr, 0.025))
    assert row["sd"] == pytest.approx(np.std(hr, ddof=1))


def test_km_on_grid_matches_lifelines():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(3)
    t = np.round(rng.exponential(10, 300), 1)  # ties on purpose
    e = rng.integers(0, 2, 300)
    grid = np.linspace(0, t.max(), 97)
    km = KaplanMeierFitter().fit(t, e)
    np.testing.assert_allclose(km_on_grid(t, e, grid), km.survival_function_at_times(grid).values,
                               atol=1e-12)


@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_batched_km_matches_lifelines_row_by_row(decimals):
    from lifelines import KaplanMeierFitter

    from bayes_ablation.survival.ppc import km_on_grid_batch

    rng = np.random.default_rng(4)
    t = rng.exponential(10, (6, 250))
    if decimals is not None:
        t = np.round(t, decimals) + 0.5    # ties between events and censorings on purpose
    e = rng.integers(0, 2, (6, 250))
    grid = np.concatenate([[0.0], np.sort(t[0, :20]), np.linspace(0, t.max() + 1, 50)])
    batch = km_on_grid_batch(t, e, grid)
    for row in range(6):
        km = KaplanMeierFitter().fit(t[row], e[row])
        np.testing.assert_allclose(batch[row], km.survival_function_at_times(grid).values,
                                   atol=1e-12)
