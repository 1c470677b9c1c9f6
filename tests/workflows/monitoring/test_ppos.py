"""Predictive probability of success: closed form, residual times, simulated continuations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from bayes_ablation.data.cut import cut_latent
from bayes_ablation.spec.design import Rule
from bayes_ablation.workflows.monitoring.fast import FastModel, laplace, suff_stats
from bayes_ablation.workflows.monitoring.oc import event_calendar_times, simulate_latent
from bayes_ablation.workflows.monitoring.ppos import (
    HazardDraws,
    Plan,
    TrialState,
    draws_from_fast,
    ppos_normal,
    predictive_probability,
    simulate_continuation,
)

RULE = Rule("success", "P(HR<1)", ">", 0.975)
CUTS = np.array([3.0, 6.0, 12.0, 18.0, 24.0])


def test_closed_form_matches_direct_simulation_of_its_model():
    """θ ~ N(m, v); future estimate θ̂_f ~ N(θ, 4/d); conjugate update; rule on P(θ<0)."""
    rng = np.random.default_rng(0)
    for m, sd, d in ((-0.2, 0.2, 100), (0.05, 0.15, 60), (-0.35, 0.25, 250)):
        n = 400_000
        theta = rng.normal(m, sd, n)
        est = rng.normal(theta, np.sqrt(4 / d))
        prec = 1 / sd**2 + d / 4
        mean = (m / sd**2 + est * d / 4) / prec
        success = special.ndtr(-mean * np.sqrt(prec)) > 0.975
        p_sim = success.mean()
        p = ppos_normal(m, sd, d)
        assert abs(p - p_sim) < 4 * np.sqrt(p * (1 - p) / n) + 1e-4
    # no future events: the current rule, 0 or 1
    assert ppos_normal(-0.5, 0.2, 0) == 1.0 and ppos_normal(0.0, 0.2, 0) == 0.0


@pytest.mark.parametrize("kind", ["weibull", "pwe"])
def test_residual_times_follow_the_conditional_distribution(kind):
    rng = np.random.default_rng(1)
    m_n, n = 4000, 3
    u = np.zeros((m_n, 2))
    if kind == "weibull":
        draws = HazardDraws("weibull", u, np.zeros(m_n), log_lam0=np.full(m_n, np.log(0.05)),
                            shape=np.full(m_n, 1.3), log_hr=np.full(m_n, -0.4))
        cum = lambda t, a: 0.05 * np.exp(-0.4 * a) * t**1.3  # noqa: E731
    else:
        bounds = np.array([0.0, 3.0, 9.0, np.inf])
        rates = np.array([0.08, 0.04, 0.02])
        log_rate = np.log(np.stack([rates, rates * 0.6]))[None].repeat(m_n, 0)
        draws = HazardDraws("pwe", u, np.zeros(m_n), log_rate=log_rate, bounds=bounds)

        def cum(t, a):
            scale = 0.6 if a else 1.0
            w = np.clip(np.minimum(t[..., None], bounds[1:]) - bounds[:-1], 0, None)
            return scale * (w * rates).sum(-1)
    since = np.array([0.0, 2.0, 10.0])
    arm = np.array([0, 1, 1])
    t = draws.residual_times(since, arm, np.array([0, 1, 0]), rng)
    assert t.shape == (m_n, n) and np.all(t > since)
    for i in range(n):
        # H(T) − H(since) ~ Exp(1) exactly when T has the conditional distribution
        e = cum(t[:, i], arm[i]) - cum(np.array(since[i]), arm[i])
        assert stats.kstest(e, "expon").pvalue > 0.001


def interim_state(seed, log_hr, n_events=100, n=400, sites=6):
    rng = np.random.default_rng(seed)
    tr = simulate_latent(n, 15.0, np.ones(sites), (1, 1), log_hr, 15.0, 1.0, 0.2, 0.0, rng)
    t_cut = event_calendar_times(tr)[n_events - 1]
    c = cut_latent(tr.entry, tr.event_time, tr.dropout_time, t_cut)
    en = c["enrolled"]
    return TrialState(time=c["time"], event=c["event"], followup_at_cut=t_cut - tr.entry[en],
                      withdrawn=np.zeros(en.sum(), bool), arm=tr.arm[en], site=tr.site[en])


def test_continuations_meet_the_planned_event_count_and_date():
    state = interim_state(3, -0.2)
    model = FastModel(CUTS, 6, -3.0, 2.0, 0.0, 1.0, np.array([0.3]))
    d, e = suff_stats(state.time[None], state.event[None], state.site, state.arm, CUTS, 6)
    fp = laplace(d, e, model)
    rng = np.random.default_rng(4)
    draws = draws_from_fast(fp, model, 300, rng)
    cont = simulate_continuation(state, draws, Plan(400, 15.0, np.ones(6), (1, 1), 0.01,
                                                    final_events=180), rng)
    assert np.all(cont.n_events_final == 180)
    assert np.all(cont.months_to_final > 0)
    # the known events and the censored patients' past stay as they were
    known = state.event == 1
    assert np.all(cont.time[:, : state.n][:, known] == state.time[known])
    assert np.all(cont.time[:, : state.n] >= state.time - 1e-12)
    by_date = simulate_continuation(state, draws, Plan(400, 15.0, np.ones(6), (1, 1), 0.01,
                                                       months_to_final_date=12.0), rng)
    assert np.all(by_date.months_to_final == 12.0)
    assert np.all(by_date.n_enrolled_final <= 400)
    assert np.all(by_date.time[:, : state.n] <= state.followup_at_cut + 12.0 + 1e-9)


@pytest.mark.parametrize(("seed", "log_hr"), [(4, -0.2), (8, -0.2)])
def test_simulated_fast_ppos_agrees_with_closed_form(seed, log_hr):
    """Known number of future events (final at 200 events, 100 now), normal prior on log HR:
    the simulation-based PPoS (Laplace draws → continuations → Laplace at the final analysis)
    against :func:`ppos_normal`. Tolerance: 3 MC SE plus 0.02 for the closed form's
    approximations (4/d information per event, fixed final information)."""
    state = interim_state(seed, log_hr)
    model = FastModel(CUTS, 6, -3.0, 2.0, 0.0, 1.0, np.array([0.1, 0.3, 0.6]))
    d, e = suff_stats(state.time[None], state.event[None], state.site, state.arm, CUTS, 6)
    fp = laplace(d, e, model)
    rng = np.random.default_rng(seed)
    res = predictive_probability(state, draws_from_fast(fp, model, 3000, rng),
                                 Plan(400, 15.0, np.ones(6), (1, 1), 0.0, final_events=200),
                                 model, RULE, rng)
    closed = ppos_normal(float(fp.log_hr_mean[0]), float(fp.log_hr_sd[0]), 100)
    assert 0.1 < closed < 0.9  # an informative comparison, not two zeros
    assert abs(res.ppos - closed) < 3 * res.mcse + 0.02
    assert res.mcse == pytest.approx(np.sqrt(res.ppos * (1 - res.ppos) / 3000))


def _fake_fit(variables, constant=None):
    import xarray as xr

    post = xr.Dataset({k: (dims, np.asarray(v, float)) for k, (dims, v) in variables.items()},
                      coords={"chain": [0], "draw": np.arange(4), "treatment": ["b"],
                              "site": ["S2", "S1"]})
    tree = {"posterior": post}
    if constant is not None:
        tree["constant_data"] = xr.Dataset(constant)
    return xr.DataTree.from_dict(tree)


def test_draws_from_weibull_and_pwe_posteriors():
    from types import SimpleNamespace

    from bayes_ablation.workflows.monitoring.ppos import draws_from_posterior

    u = np.array([[[0.1, -0.2], [0.3, 0.0], [0.2, 0.1], [-0.1, 0.4]]])
    common = {"log_hr": (("chain", "draw", "treatment"), [[[-0.1], [-0.2], [-0.3], [-0.4]]]),
              "u_site": (("chain", "draw", "site"), u),
              "sigma_site": (("chain", "draw"), [[0.5, 0.5, 0.5, 0.5]])}
    weibull = _fake_fit({**common,
                         "weibull_shape": (("chain", "draw"), [[1.0, 1.1, 1.2, 1.3]]),
                         "log_cumhaz_ref": (("chain", "draw"), [[-1.0, -1.0, -1.0, -1.0]])})
    spec = SimpleNamespace(model="weibull", model_options={"time_ref_months": 12.0})
    rng = np.random.default_rng(0)
    d = draws_from_posterior(weibull, spec, ("S2", "S1"), ("S1", "S2", "S3"), 4, rng)
    order = np.argsort(d.log_hr)[::-1]            # thinning permutes draws: realign by log HR
    assert np.allclose(d.log_hr[order], [-0.1, -0.2, -0.3, -0.4])
    assert np.allclose(d.u_site[order, 1], u[0, :, 0])   # S2 is the data's first site
    assert np.allclose(d.u_site[order, 0], u[0, :, 1])
    assert np.allclose(d.log_lam0, -1.0 - d.shape * np.log(12.0))
    assert np.all(d.u_site[:, 2] != 0)             # unplanned-for-data site: drawn N(0, σ²)

    pwe = _fake_fit({**common,
                     "log_hazard": (("chain", "draw", "interval"), np.full((1, 4, 3), -3.0)),
                     "log_hr_interval": (("chain", "draw", "treatment", "interval"),
                                         np.tile([-0.5, -0.2, 0.1], (1, 4, 1, 1)))},
                    {"interval_start": ("interval", [0.0, 6.0, 12.0])})
    spec = SimpleNamespace(model="piecewise_exponential", model_options={})
    d = draws_from_posterior(pwe, spec, ("S2", "S1"), ("S1", "S2"), 4, rng)
    assert np.allclose(d.bounds, [0.0, 6.0, 12.0, np.inf])
    assert np.allclose(d.log_rate[:, 0], -3.0)
    assert np.allclose(d.log_rate[:, 1], [-3.5, -3.2, -2.9])   # time-varying HR per interval
