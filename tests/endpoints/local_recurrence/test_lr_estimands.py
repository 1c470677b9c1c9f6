"""LR estimands (pure functions on draws) against closed forms and quadrature; Turnbull NPMLE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scipy import integrate, stats

from bayes_ablation.data.simulate_lr import simulate_lr_trial
from bayes_ablation.endpoints.local_recurrence import estimands as elr
from bayes_ablation.spec.plan import load_spec
from bayes_ablation.survival.ppc import km_on_grid
from bayes_ablation.survival.turnbull import step_on_grid, turnbull
from tests.conftest import MODELS

ARMS = ["postoperative", "perioperative"]


@pytest.fixture(scope="module")
def spec():
    return load_spec(MODELS / "local_recurrence_lesion.toml")


def _post(n_draws=3, *, alpha=-2.0, k=0.8, log_hr=-0.4, beta=(0.3, 1.2), sigma_p=0.8,
          sigma_s=0.3, alpha_d=-2.3, k_d=1.2, log_hr_d=0.1, seed=0) -> xr.Dataset:
    """A small synthetic posterior (chain=1) with some spread between draws."""
    rng = np.random.default_rng(seed)

    def v(x, sd=0.05, size=None):
        shape = (1, n_draws) if size is None else (1, n_draws, size)
        return x + sd * rng.standard_normal(shape)

    ds = xr.Dataset({
        "log_cumhaz_ref": (("chain", "draw"), v(alpha)),
        "weibull_shape": (("chain", "draw"), np.abs(v(k))),
        "log_hr": (("chain", "draw", "treatment"), v(log_hr, size=1)),
        "beta_covariates": (("chain", "draw", "covariate"),
                            np.stack([v(b) for b in beta], axis=-1)),
        "sigma_patient": (("chain", "draw"), np.abs(v(sigma_p))),
        "sigma_site": (("chain", "draw"), np.abs(v(sigma_s))),
        "death_log_cumhaz_ref": (("chain", "draw"), v(alpha_d)),
        "death_weibull_shape": (("chain", "draw"), np.abs(v(k_d))),
        "death_log_hr": (("chain", "draw", "treatment"), v(log_hr_d, size=1)),
    }, coords={"chain": [0], "draw": np.arange(n_draws), "treatment": ARMS[1:],
               "covariate": ["size_cm", "margin_lt_5mm"][:len(beta)]})
    ds.attrs["arms"] = json.dumps(ARMS)
    return ds


def _one(ds, d, name, arm_index=None):
    x = ds[name].isel(chain=0, draw=d)
    return float(x if arm_index is None else x.values[arm_index])


def test_without_deaths_the_cif_is_one_minus_lr_survival(spec):
    post = _post(alpha_d=-800.0)                      # S_D(t) = 1 to machine precision
    times = np.array([12.0, 24.0, 36.0])
    for target in ("reference", "standardised"):
        x = np.array([[0.5, 1.0], [-0.3, 0.0], [1.2, 1.0]])
        off = elr.reference_offsets(post, x[0]) if target == "reference" else \
            elr.lesion_mix_offsets(post, x)
        for pop in elr.POPULATIONS:
            cif = elr.lr_cif(post, spec, times, off, pop)
            surv = elr.mixture_survival(elr.lr_log_cumhaz(post, times, spec), off,
                                        elr.random_effect_sd(post, pop))
            np.testing.assert_allclose(cif.values, 1.0 - surv.values, rtol=0, atol=1e-13)


def test_cif_with_constant_hazards_matches_the_closed_form(spec):
    post = _post(k=1.0, k_d=1.0, sigma_p=0.0, beta=(0.0, 0.0))
    post["weibull_shape"][:] = 1.0
    post["death_weibull_shape"][:] = 1.0
    post["sigma_patient"][:] = 0.0
    times = np.array([12.0, 24.0, 36.0])
    cif = elr.lr_cif(post, spec, times, elr.reference_offsets(post, None), "typical_patient")
    t_ref = 12.0
    for d in range(post.sizes["draw"]):
        for a in range(2):
            log_hr = 0.0 if a == 0 else _one(post, d, "log_hr", 0)
            log_hr_d = 0.0 if a == 0 else _one(post, d, "death_log_hr", 0)
            lam = np.exp(_one(post, d, "log_cumhaz_ref") + log_hr) / t_ref
            mu = np.exp(_one(post, d, "death_log_cumhaz_ref") + log_hr_d) / t_ref
            exact = lam / (lam + mu) * (1 - np.exp(-(lam + mu) * times))
            np.testing.assert_allclose(cif.isel(chain=0, draw=d, arm=a).values, exact,
                                       rtol=1e-5)


def test_weibull_cif_population_averaged_matches_quadrature(spec):
    post = _post(n_draws=2)
    times = np.array([12.0, 36.0])
    x = np.array([[0.4, 1.0]])
    off = elr.reference_offsets(post, x[0])
    cif = elr.lr_cif(post, spec, times, off, "average_site")
    d, a = 1, 1
    alpha, k = _one(post, d, "log_cumhaz_ref"), _one(post, d, "weibull_shape")
    eta = _one(post, d, "log_hr", 0) + float(x[0] @ post["beta_covariates"].isel(
        chain=0, draw=d).values)
    sp = _one(post, d, "sigma_patient")
    ad, kd = _one(post, d, "death_log_cumhaz_ref"), _one(post, d, "death_weibull_shape")
    bd = _one(post, d, "death_log_hr", 0)

    def given_v(t, v):
        # w = s^k turns dF = h S ds into λ e^{-λ w} dw (smooth, no singularity at 0)
        lam = np.exp(alpha - k * np.log(12.0) + eta + v)
        return integrate.quad(lambda w: lam * np.exp(-lam * w) * np.exp(-np.exp(
            ad + kd * (np.log(w) / k - np.log(12.0)) + bd)), 0, t**k, epsabs=1e-12)[0]

    for i, t in enumerate(times):
        exact = integrate.quad(lambda v, t=t: given_v(t, v) * stats.norm.pdf(v, 0, sp), -9 * sp,
                               9 * sp, epsabs=1e-10)[0]
        assert cif.isel(chain=0, draw=d, arm=a, time=i).item() == pytest.approx(exact,
                                                                              abs=1e-4)


def test_new_site_adds_the_site_variance_and_typical_patient_has_none():
    post = _post(n_draws=2)
    sd_avg = elr.random_effect_sd(post, "average_site")
    sd_new = elr.random_effect_sd(post, "new_site")
    np.testing.assert_allclose(sd_avg.values[..., 0], post["sigma_patient"].values)
    np.testing.assert_allclose(sd_new.values[..., 1] ** 2, post["sigma_patient"].values ** 2
                               + post["sigma_site"].values ** 2)
    assert elr.random_effect_sd(post, "typical_patient") is None


def test_lesion_mix_compression_is_exact_or_close(spec):
    post = _post(n_draws=2)
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(0, 0.8, 400), rng.binomial(1, 0.4, 400) - 0.4])
    times = np.array([24.0])
    exact = elr.lr_cif(post, spec, times, elr.lesion_mix_offsets(post, x, 10_000),
                       "average_site")
    compressed = elr.lr_cif(post, spec, times, elr.lesion_mix_offsets(post, x), "average_site")
    np.testing.assert_allclose(compressed.values, exact.values, atol=1e-3)
    few = x[:5]
    off = elr.lesion_mix_offsets(post, np.repeat(few, 3, axis=0))
    assert off.sizes["pattern"] == 5 and np.allclose(off.attrs["weights"], 0.2)


def test_estimand_dataset_has_contrasts_and_probabilities(spec):
    post = _post(n_draws=4)
    tree = xr.DataTree.from_dict({
        "posterior": post,
        "constant_data": xr.Dataset({"x": (("lesion", "covariate"), np.array([[0.1, 0.6],
                                                                               [-0.1, -0.4]])),
                                     "x_reference": ("covariate", np.array([0.0, -0.4]))}),
    })
    ds = elr.compute_lr_estimands(tree, spec)
    assert ds["cif_lr"].dims == ("chain", "draw", "lesion_target", "population", "arm", "time")
    diff = ds["cif_lr"].sel(arm="perioperative") - ds["cif_lr"].sel(arm="postoperative")
    np.testing.assert_allclose(ds["cif_lr_difference"].sel(treatment="perioperative").values,
                               diff.values)
    probs = elr.lr_probabilities(ds)
    hr = np.exp(post["log_hr"].values)
    assert probs["P(HR<1) [perioperative]"] == pytest.approx(float((hr < 1).mean()))
    # a lower LR hazard with the same death hazard means a lower CIF
    assert np.all(ds["cif_lr"].sel(arm="perioperative") <= ds["cif_lr"].sel(arm="postoperative")
                  + 1e-3)


def test_turnbull_equals_kaplan_meier_for_exactly_observed_times():
    rng = np.random.default_rng(7)
    t = rng.exponential(10, 300)
    c = rng.uniform(0, 30, 300)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    lower = np.where(event == 1, time - 1e-7, time)
    upper = np.where(event == 1, time, np.inf)
    atoms, f = turnbull(lower, upper)
    grid = np.linspace(0, 29, 300)
    np.testing.assert_allclose(step_on_grid(atoms, f, grid), 1 - km_on_grid(time, event, grid),
                               atol=1e-5)


def test_turnbull_recovers_an_interval_censored_distribution():
    rng = np.random.default_rng(8)
    t = rng.exponential(10, 3000)
    grid = np.arange(0, 43, 3.0)
    seen = t < 39
    pos = np.minimum(np.searchsorted(grid, t), grid.size - 1)
    up = np.where(seen, grid[pos], np.inf)
    lo = np.where(seen, grid[pos - 1], 39.0)
    atoms, f = turnbull(lo, up)
    at = np.array([3.0, 12.0, 24.0])
    np.testing.assert_allclose(step_on_grid(atoms, f, at), 1 - np.exp(-at / 10), atol=0.02)


def _plain_em_turnbull(lower, upper, grid):
    """Reference: unaccelerated self-consistency EM on the innermost intervals, run to 1e-13."""
    from bayes_ablation.survival.turnbull import innermost_intervals

    left, right = innermost_intervals(lower, upper)
    a = ((lower[:, None] <= left[None, :]) & (right[None, :] <= upper[:, None])).astype(float)
    p = np.full(right.size, 1.0 / right.size)
    for _ in range(200_000):
        new = p * (a.T @ (1.0 / (a @ p))) / a.shape[0]
        if np.max(np.abs(new - p)) < 1e-13:
            break
        p = new
    fin = np.isfinite(right)
    return step_on_grid(right[fin], np.cumsum(p[fin]), grid)


@pytest.mark.parametrize("seed", [3, 5])
def test_accelerated_turnbull_reaches_the_plain_em_npmle(seed):
    les = simulate_lr_trial(seed=seed).lesions
    lower = les["lr_lower_months"].to_numpy()
    upper = les["lr_upper_months"].fillna(np.inf).to_numpy()
    grid = np.linspace(0, 60, 601)
    fast = step_on_grid(*turnbull(lower, upper), grid)
    np.testing.assert_allclose(fast, _plain_em_turnbull(lower, upper, grid), atol=1e-6)


def _row_counts(rows, counts):
    return sorted((tuple(r.astype(int)), int(c)) for r, c in zip(rows, counts, strict=True))


@pytest.mark.parametrize("case", ["scheduled", "exact_and_censored", "censored_before_last"])
def test_distinct_cover_rows_are_those_of_the_cover_matrix(case):
    from bayes_ablation.survival.turnbull import distinct_cover_rows, innermost_intervals

    rng = np.random.default_rng(11)
    if case == "scheduled":
        les = simulate_lr_trial(seed=4).lesions
        lower = les["lr_lower_months"].to_numpy()
        upper = les["lr_upper_months"].fillna(np.inf).to_numpy()
    elif case == "exact_and_censored":
        t = rng.exponential(10, 200)
        c = rng.uniform(0, 30, 200)
        lower = np.where(t <= c, t - 1e-7, c)
        upper = np.where(t <= c, t, np.inf)
    else:  # right-censored at 5, events later: the last innermost interval starts before
        lower = np.array([5.0, 10.0, 11.0, 2.0, 5.0])   # finite ones (unsorted intervals)
        upper = np.array([np.inf, 12.0, 14.0, 3.0, np.inf])
    left, right = innermost_intervals(lower, upper)
    sorted_intervals = bool(np.all(np.diff(left) >= 0))
    if case != "exact_and_censored":   # scheduled: the fast path; the other: the general one
        assert sorted_intervals == (case == "scheduled")
    cover = (lower[:, None] <= left[None, :]) & (right[None, :] <= upper[:, None])
    cover = cover[cover.sum(axis=1) < right.size]
    expected = np.unique(cover, axis=0, return_counts=True)
    got = distinct_cover_rows(lower, upper, left, right)
    assert got[0].dtype == float
    assert _row_counts(*got) == _row_counts(*expected)
    assert int(got[1].sum()) == cover.shape[0]


def test_innermost_intervals_follow_turnbulls_definition():
    from bayes_ablation.survival.turnbull import innermost_intervals

    # (0,3] (2,6] (3,9] (6,inf]: endpoints 0L 2L 3U 3L 6U 6L 9U → (2,3], (3,6], (6,9], (6,inf)
    lower = np.array([0.0, 2.0, 3.0, 6.0])
    upper = np.array([3.0, 6.0, 9.0, np.inf])
    left, right = innermost_intervals(lower, upper)
    np.testing.assert_array_equal(left, [2.0, 3.0, 6.0, 6.0])
    np.testing.assert_array_equal(right, [3.0, 6.0, 9.0, np.inf])


def _lesion_table(sim):
    from bayes_ablation.data.lesions import lr_data_from_frames

    return lr_data_from_frames(sim.patients, sim.lesions, reference_arm="postoperative",
                               covariates=())


def test_replicating_the_true_lr_times_through_the_scans_gives_back_the_data():
    """No jitter, no missed visits: the reconstructed schedules are the scans done, and the true
    latent LR times observed through them (up to each patient's true last scan) are the data."""
    from bayes_ablation.data.imaging import imaging_schedule
    from bayes_ablation.endpoints.local_recurrence.checks import (
        patient_scan_schedules,
        replicate_intervals,
    )

    sim = simulate_lr_trial(200, n_sites=4, seed=11, visit_jitter_sd=0.0, p_missed=0.0,
                            lr_cuminc_24_ref=0.3)
    lesions = _lesion_table(sim)
    schedules = patient_scan_schedules(lesions)
    follow = lesions.patients.time
    for i in range(lesions.patients.n_patients):
        done = imaging_schedule(60.0)
        done = done[done <= follow[i]]
        np.testing.assert_array_equal(schedules[i][np.isfinite(schedules[i])], done)
    last_scan = np.array([np.max(np.append(s[np.isfinite(s)], 0.0)) for s in schedules])
    t_true = sim.details["lr_time_months"].to_numpy()[None, :]
    lo, up = replicate_intervals(t_true, schedules, last_scan[None, :], lesions.patient_idx)
    np.testing.assert_array_equal(lo[0], lesions.lower)
    np.testing.assert_array_equal(up[0], lesions.upper)


def test_replicated_intervals_bracket_the_latent_time_on_the_patients_scans():
    """Default simulator (jittered and missed visits): with the true LR times and last scans the
    replicate sees exactly the LRs the data saw; every interval brackets its latent time and
    its ends are scans of that patient done by the last scan; revealed scans are all kept."""
    from bayes_ablation.endpoints.local_recurrence.checks import (
        patient_scan_schedules,
        replicate_intervals,
        scan_horizons,
    )

    sim = simulate_lr_trial(300, n_sites=6, seed=12, lr_cuminc_24_ref=0.3)
    lesions = _lesion_table(sim)
    schedules = patient_scan_schedules(lesions)
    idx = lesions.patient_idx
    for col in (lesions.lower, lesions.upper):
        ok = np.isfinite(col) & (col > 0)
        assert all(np.any(schedules[idx[j]] == col[j]) for j in np.flatnonzero(ok))
    horizon = scan_horizons(lesions, 3, np.random.default_rng(0))
    free = np.zeros(lesions.patients.n_patients, bool)
    np.logical_or.at(free, idx, lesions.observed == 0)
    assert np.all(horizon[:, free] == horizon[0, free])          # known last scans
    t = np.vstack([sim.details["lr_time_months"].to_numpy(),
                   np.random.default_rng(1).exponential(20.0, (2, idx.size))])
    lo, up = replicate_intervals(t, schedules, horizon, idx)
    seen = np.isfinite(up)
    np.testing.assert_array_equal(seen[0][free[idx]], lesions.observed[free[idx]] == 1)
    assert np.all((lo < t) & ((t <= up) | ~seen))
    assert np.all(~seen | (up <= horizon[:, idx] + 1e-9))
    assert np.all(seen | (lo == np.where(horizon[:, idx] > 1e-9, horizon[:, idx], 0.0)))
    for s in range(3):
        for j in np.flatnonzero(seen[s])[:200]:
            sched = np.append(schedules[idx[j]], horizon[s, idx[j]])
            assert np.any(np.isclose(sched, up[s, j])) and (lo[s, j] == 0 or
                                                             np.any(np.isclose(sched, lo[s, j])))


def test_frailty_mixture_is_accurate_at_large_frailty_sd():
    """S̄(t) over several lesion patterns and a frailty sd up to 2 against 300-node
    Gauss–Hermite sums (the old fixed 16 nodes erred by up to 1e-3 at sd 2)."""
    import xarray as xr

    rng = np.random.default_rng(4)
    n_draw, times = 50, np.linspace(0.5, 36.0, 12)
    lh = xr.DataArray(rng.normal(-1.5, 1.5, (1, n_draw, 2, times.size)),
                      dims=("chain", "draw", "arm", "time"),
                      coords={"arm": ["a", "b"], "time": times})
    offsets = xr.DataArray(rng.normal(0.0, 0.7, (1, n_draw, 5)),
                           dims=("chain", "draw", "pattern"))
    weights = rng.dirichlet(np.ones(5))
    offsets.attrs["weights"] = weights
    sd = xr.DataArray(rng.uniform(0.1, 2.0, (1, n_draw, 2)), dims=("chain", "draw", "arm"))
    ours = elr.mixture_survival(lh, offsets, sd).values
    assert np.isfinite(ours).all()
    x, w = np.polynomial.hermite.hermgauss(300)
    z, w = np.sqrt(2.0) * x, w / np.sqrt(np.pi)
    shift = (offsets.values[:, :, None, None, :, None]
             + sd.values[:, :, :, None, None, None] * z)                # (1, D, A, 1, P, N)
    with np.errstate(over="ignore"):
        exact = (np.exp(-np.exp(lh.values[..., None, None] + shift)) * w).sum(-1) @ weights
    np.testing.assert_allclose(ours, exact, atol=3e-6)
