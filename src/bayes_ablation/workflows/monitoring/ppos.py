"""Predictive probability of success (PPoS): simulate the rest of the trial, apply the final rule.

For each of M posterior draws θ_m (from the analysis model's MCMC, or from the fast Laplace
posterior) one continuation of the trial is simulated:

* **patients followed at the cut, no event, not withdrawn**: their event time T given survival
  to their last known event-free time t_i, by inverting the cumulative hazard,
  H_i(T) = H_i(t_i) + E, E ~ Exp(1) (``residual_times``); an event in the gap between the last
  visit and the cut is an event that happened but is not known yet;
* **future patients** (``total_n`` minus those randomised): a Poisson accrual process at the
  planned rate from the cut, sites drawn by the planned shares (a site without data draws its
  effect u ~ N(0, σ_site,m²)), arms by the planned allocation, covariates resampled from the
  randomised patients; event times from H_i(T) = E;
* **dropout** at the planned hazard from the cut (current patients) or entry (new ones);
* **the final analysis** when the planned number of events is reached (the k-th smallest
  calendar event time) or on the planned date; if fewer events can occur than planned, when
  the last one has occurred.

The final data set of each continuation is reduced to PWE sufficient statistics and analysed
with the *fast* posterior (:mod:`bayes_ablation.workflows.monitoring.fast`), and the design's success
rule applied. PPoS = mean success over the M continuations, MC standard error
√(PPoS (1 − PPoS) / M).

:func:`ppos_normal` is the closed form for a normal posterior on the log HR and a known number
of future events (the future events' log-HR estimate ~ N(θ, 1 / (d_f p (1 − p))), p the
allocation share; 4 / d_f for 1:1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from bayes_ablation.workflows.monitoring.fast import FastModel, FastPosterior, laplace, suff_stats

# ----------------------------------------------------------------------------- closed form

def ppos_normal(mean: float, sd: float, future_events: float, *, cutoff: float = 1.0,
                threshold: float = 0.975, op: str = ">",
                allocation: tuple[float, float] = (1.0, 1.0),
                info_per_event: float | None = None) -> float:
    """Closed-form PPoS: current posterior log HR ~ N(mean, sd²), ``future_events`` more events
    whose log-HR estimate is ~ N(θ, 1 / I_f), I_f = d_f p(1 − p); success if the final
    posterior P(HR < cutoff) ``op`` ``threshold``.

    Final precision P = 1/sd² + I_f; the final posterior mean has predictive distribution
    N(mean, (I_f / P)² (sd² + 1 / I_f)); success ⇔ final mean < log c − z_γ / √P.
    ``info_per_event`` replaces p(1 − p) (e.g. the information per event observed so far).
    """
    return float(ppos_normal_array(np.array([mean]), np.array([sd]), np.array([future_events]),
                                   cutoff=cutoff, threshold=threshold, op=op,
                                   allocation=allocation, info_per_event=info_per_event)[0])


def ppos_normal_array(mean: np.ndarray, sd: np.ndarray, future_events: np.ndarray, *,
                      cutoff: float = 1.0, threshold: float = 0.975, op: str = ">",
                      allocation: tuple[float, float] = (1.0, 1.0),
                      info_per_event: float | None = None) -> np.ndarray:
    """:func:`ppos_normal` elementwise over arrays."""
    mean, sd, future = (np.asarray(x, float) for x in (mean, sd, future_events))
    p = allocation[1] / (allocation[0] + allocation[1])
    info = np.maximum(future, 0.0) * (p * (1.0 - p) if info_per_event is None
                                      else info_per_event)
    v = sd**2
    now = _holds(op, special.ndtr((math.log(cutoff) - mean) / sd), threshold).astype(float)
    safe = np.where(info > 0, info, 1.0)
    precision = 1.0 / v + safe
    bound = math.log(cutoff) - stats.norm.ppf(threshold) / np.sqrt(precision)
    spread = (safe / precision) * np.sqrt(v + 1.0 / safe)
    above = special.ndtr((bound - mean) / spread)  # P(final probability > threshold)
    later = above if op in (">", ">=") else 1.0 - above
    return np.where(info > 0, later, now)


def _holds(op: str, value: Any, threshold: float) -> Any:
    return {">": np.greater, ">=": np.greater_equal, "<": np.less,
            "<=": np.less_equal}[op](value, threshold)


# ----------------------------------------------------------------------------- hazard draws

@dataclass
class HazardDraws:
    """M posterior draws of a two-arm PH model, in a form that can simulate event times.

    ``kind`` 'weibull': H(t) = exp(log_lam0 + η) t^k; 'pwe': H(t) = e^η Σ_j λ_aj w_j(t) with
    per-arm interval log rates ``log_rate`` (M, 2, J) on ``bounds`` (the arm effect, possibly
    time-varying, is inside log_rate). η = [log_hr for Weibull] + u_site + x β.
    """

    kind: str
    u_site: np.ndarray                      # (M, S) over the planned sites
    sigma_site: np.ndarray                  # (M,)
    log_lam0: np.ndarray | None = None      # weibull (M,)
    shape: np.ndarray | None = None         # weibull (M,)
    log_hr: np.ndarray | None = None        # weibull (M,)
    log_rate: np.ndarray | None = None      # pwe (M, 2, J)
    bounds: np.ndarray | None = None        # pwe (J + 1,)
    beta_cov: np.ndarray | None = None      # (M, p)

    @property
    def n_draws(self) -> int:
        return self.u_site.shape[0]

    def eta(self, arm: np.ndarray, site: np.ndarray, x: np.ndarray | None) -> np.ndarray:
        """Log-hazard shift (M, n) for patients given as (n,) or (M, n) arrays."""
        rows = np.arange(self.n_draws)[:, None]
        out = self.u_site[rows, site]
        if self.kind == "weibull":
            out = out + self.log_hr[:, None] * arm
        if self.beta_cov is not None and x is not None and x.shape[-1]:
            if x.ndim == 3:  # (M, n, p): resampled covariates of future patients
                out = out + np.einsum("mnp,mp->mn", x, self.beta_cov)
            else:            # (n, p)
                out = out + self.beta_cov @ x.T
        return out

    def residual_times(self, since: np.ndarray, arm: np.ndarray, site: np.ndarray,
                       rng: np.random.Generator, x: np.ndarray | None = None) -> np.ndarray:
        """Event times T (M, n) given T > ``since`` (broadcastable to (M, n))."""
        eta = self.eta(arm, site, x)
        e = rng.exponential(size=eta.shape)
        since = np.broadcast_to(since, eta.shape)
        if self.kind == "weibull":
            k = self.shape[:, None]
            log_rate = self.log_lam0[:, None] + eta
            return (since**k + e * np.exp(-log_rate)) ** (1.0 / k)
        return _pwe_inverse(self.log_rate, self.bounds, eta, np.broadcast_to(arm, eta.shape),
                            since, e)


def _pwe_inverse(log_rate: np.ndarray, bounds: np.ndarray, eta: np.ndarray, arm: np.ndarray,
                 since: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Solve Λ_a(T) = Λ_a(since) + E e^{−η} for piecewise-constant baseline rates λ_a,j."""
    m_n = eta.shape[0]
    rates = np.exp(log_rate)                                   # (M, 2, J)
    width = np.diff(bounds)[:-1]                               # finite widths (J − 1,)
    cum = np.concatenate([np.zeros((m_n, 2, 1)), np.cumsum(rates[..., :-1] * width, axis=-1)],
                         axis=-1)                              # Λ at lower bounds (M, 2, J)
    rows = np.arange(m_n)[:, None]
    r_pat = rates[rows, arm]                                    # (M, n, J)
    c_pat = cum[rows, arm]
    lower = bounds[:-1]
    j0 = np.clip(np.searchsorted(bounds[1:-1], since, side="right"), 0, len(lower) - 1)
    take = lambda a, j: np.take_along_axis(a, j[..., None], axis=-1)[..., 0]  # noqa: E731
    start = take(c_pat, j0) + take(r_pat, j0) * (since - lower[j0])
    target = start + e * np.exp(-eta)
    j = np.clip(np.sum(c_pat <= target[..., None], axis=-1) - 1, 0, len(lower) - 1)
    return lower[j] + (target - take(c_pat, j)) / take(r_pat, j)


def draws_from_fast(fp: FastPosterior, model: FastModel, n_draws: int,
                    rng: np.random.Generator) -> HazardDraws:
    """Hazard draws from the fast Laplace posterior (θ = α, β, u)."""
    theta = fp.draw(n_draws, rng)
    j = model.n_intervals
    alpha, beta = theta[:, :j], theta[:, j]
    n_u = theta.shape[1] - j - 1 - int(fp.offset)   # θ = (α, β, u, [δ])
    u = theta[:, j + 1:j + 1 + n_u] if n_u else np.zeros((n_draws, model.n_sites))
    nodes = model.site_sd_nodes
    sigma = np.full(n_draws, float(np.sum(fp.weights[0] * nodes)))
    log_rate = np.stack([alpha, alpha + beta[:, None]], axis=1)
    return HazardDraws(kind="pwe", u_site=u, sigma_site=sigma, log_rate=log_rate,
                       bounds=model.bounds)


def draws_from_posterior(idata: Any, spec: Any, data_sites: tuple[str, ...],
                         planned_sites: tuple[str, ...], n_draws: int,
                         rng: np.random.Generator) -> HazardDraws:
    """Hazard draws from an analysis model's fit (a DataTree with ``posterior`` and
    ``constant_data``), thinned to ``n_draws``.

    Site effects are mapped onto ``planned_sites``; a planned site without data gets
    u ~ N(0, σ_site²) per draw. Weibull: λ₀ = exp(α − k log t_ref); piecewise exponential:
    ``log_hazard`` per interval (starting at ``constant_data.interval_start``) plus the
    per-interval log HR ``log_hr_interval`` when the HR is time-varying.
    """
    from bayes_ablation.survival.predictive import thin

    ds = idata.posterior.to_dataset()
    th = thin(ds, n_draws, int(rng.integers(2**31)))
    m_n = th.sizes["sample"]
    if m_n < n_draws:
        idx = rng.choice(m_n, size=n_draws, replace=True)
        th = th.isel(sample=idx)
    treatment = th["log_hr"].transpose("sample", "treatment").values
    if treatment.shape[1] != 1:
        raise ValueError("predictive probabilities are defined for two-arm trials")
    sigma = th["sigma_site"].values if "sigma_site" in th else np.zeros(n_draws)
    u = rng.standard_normal((n_draws, len(planned_sites))) * sigma[:, None]
    if "u_site" in th:
        u_data = th["u_site"].transpose("sample", "site").values
        pos = {s: i for i, s in enumerate(planned_sites)}
        for k, s in enumerate(data_sites):
            u[:, pos[s]] = u_data[:, k]
    if "v_site_arm" in th:
        raise ValueError("predictive probabilities do not support site x arm random slopes yet")
    if "delta_subgroup" in th:
        raise ValueError("predictive probabilities do not support subgroup effects yet")
    beta = th["beta_covariates"].transpose("sample", "covariate").values \
        if "beta_covariates" in th else None
    if spec.model == "weibull":
        t_ref = float(spec.model_options.get("time_ref_months", 12.0))
        k = th["weibull_shape"].values
        return HazardDraws(kind="weibull", u_site=u, sigma_site=sigma, shape=k,
                           log_lam0=th["log_cumhaz_ref"].values - k * np.log(t_ref),
                           log_hr=treatment[:, 0], beta_cov=beta)
    if spec.model == "piecewise_exponential":
        log_h = th["log_hazard"].transpose("sample", "interval").values
        starts = np.asarray(idata.constant_data["interval_start"].values, float)
        if "log_hr_interval" in th:
            per_interval = th["log_hr_interval"].transpose("sample", "treatment", "interval")\
                .values[:, 0]
        else:
            per_interval = treatment[:, :1] * np.ones_like(log_h)
        log_rate = np.stack([log_h, log_h + per_interval], axis=1)
        return HazardDraws(kind="pwe", u_site=u, sigma_site=sigma, log_rate=log_rate,
                           bounds=np.concatenate([starts, [np.inf]]), beta_cov=beta)
    raise ValueError(f"no predictive simulator for model family {spec.model!r}")


# ------------------------------------------------------------------------------ trial state

@dataclass
class TrialState:
    """An interim data set as arrays (months; arm 0 = reference; site = planned-site index).

    ``time``/``event``: as known at the cut; ``followup_at_cut``: potential follow-up on the
    cut date; ``withdrawn``: no further follow-up.
    """

    time: np.ndarray
    event: np.ndarray
    followup_at_cut: np.ndarray
    withdrawn: np.ndarray
    arm: np.ndarray
    site: np.ndarray
    x: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.time)

    @property
    def n_events(self) -> int:
        return int(np.sum(self.event))


@dataclass(frozen=True)
class Plan:
    """What the rest of the trial will do (from the design)."""

    total_n: int
    rate_per_month: float
    site_weights: np.ndarray
    allocation: tuple[float, float]
    dropout_per_month: float
    final_events: int | None = None
    months_to_final_date: float | None = None    # from the cut

    @classmethod
    def from_design(cls, design: Any, months_to_final_date: float | None = None) -> Plan:
        a = design.accrual
        return cls(total_n=a.total_n, rate_per_month=a.rate_per_month,
                   site_weights=np.asarray(a.site_weights), allocation=a.allocation,
                   dropout_per_month=a.dropout_per_month, final_events=design.final_events,
                   months_to_final_date=months_to_final_date)


@dataclass
class Continuation:
    """Simulated final data sets (M, n_total) and when the final analysis happens."""

    time: np.ndarray
    event: np.ndarray
    arm: np.ndarray
    site: np.ndarray
    enrolled: np.ndarray
    months_to_final: np.ndarray                  # (M,) from the cut
    n_events_final: np.ndarray                   # (M,)
    n_enrolled_final: np.ndarray                 # (M,)


def simulate_continuation(state: TrialState, draws: HazardDraws, plan: Plan,
                          rng: np.random.Generator) -> Continuation:
    """Simulate the rest of the trial once per draw (see the module docstring)."""
    m_n = draws.n_draws
    n_sites = draws.u_site.shape[1]
    at_risk = (state.event == 0) & ~state.withdrawn
    idx = np.flatnonzero(at_risk)
    t_cur = np.broadcast_to(state.time, (m_n, state.n)).copy()
    e_cur = np.broadcast_to(state.event, (m_n, state.n)).astype(float)
    drop_rate = plan.dropout_per_month
    x_cur = state.x[idx] if state.x is not None else None
    t_res = draws.residual_times(state.time[idx], state.arm[idx], state.site[idx], rng, x_cur)
    drop_cur = rng.exponential(1.0 / drop_rate, (m_n, idx.size)) if drop_rate > 0 \
        else np.full((m_n, idx.size), np.inf)
    fu_cut = state.followup_at_cut[idx]
    cal_cur = np.where(t_res <= fu_cut + drop_cur, t_res - fu_cut, np.inf)  # event calendar

    n_new = max(plan.total_n - state.n, 0)
    entry = np.cumsum(rng.exponential(1.0 / plan.rate_per_month, (m_n, n_new)), axis=1)
    site_new = rng.choice(n_sites, size=(m_n, n_new), p=plan.site_weights / plan.site_weights.sum())
    p_trt = plan.allocation[1] / sum(plan.allocation)
    arm_new = (rng.uniform(size=(m_n, n_new)) < p_trt).astype(np.int64)
    x_new = None
    if state.x is not None and state.x.shape[1]:
        x_new = state.x[rng.integers(state.n, size=(m_n, n_new))]
    t_new = draws.residual_times(np.zeros((m_n, n_new)), arm_new, site_new, rng, x_new)
    drop_new = rng.exponential(1.0 / drop_rate, (m_n, n_new)) if drop_rate > 0 \
        else np.full((m_n, n_new), np.inf)
    cal_new = np.where(t_new <= drop_new, entry + t_new, np.inf)

    if plan.final_events is not None:
        need = plan.final_events - state.n_events
        cal = np.concatenate([cal_cur, cal_new], axis=1)
        if need <= 0:
            final = np.zeros(m_n)
        else:
            finite = np.isfinite(cal).sum(axis=1)
            kth = min(need, cal.shape[1]) - 1
            final = np.partition(cal, kth, axis=1)[:, kth] if kth >= 0 else np.zeros(m_n)
            short = finite < need   # fewer events possible than planned: the last one
            if short.any():
                last = np.where(np.isfinite(cal[short]), cal[short], -np.inf).max(axis=1)
                final[short] = np.where(np.isfinite(last), last, 0.0)
            final = np.maximum(final, 0.0)
    else:
        final = np.full(m_n, max(plan.months_to_final_date or 0.0, 0.0))

    # events known at the final analysis: calendar time on or before it (the same numbers that
    # placed it, so the planned count is met exactly)
    ev_cur = cal_cur <= final[:, None]
    t_cur[:, idx] = np.where(ev_cur, t_res, fu_cut + np.minimum(final[:, None], drop_cur))
    e_cur[:, idx] = ev_cur
    enrolled_new = entry <= final[:, None]
    ev_new = (cal_new <= final[:, None]) & enrolled_new
    y_new = np.clip(np.where(ev_new, t_new, np.minimum(final[:, None] - entry, drop_new)),
                    1e-9, None)
    time = np.concatenate([t_cur, y_new], axis=1)
    event = np.concatenate([e_cur, ev_new], axis=1)
    arm = np.concatenate([np.broadcast_to(state.arm, (m_n, state.n)), arm_new], axis=1)
    site = np.concatenate([np.broadcast_to(state.site, (m_n, state.n)), site_new], axis=1)
    enrolled = np.concatenate([np.ones((m_n, state.n), bool), enrolled_new], axis=1)
    return Continuation(time=time, event=event, arm=arm, site=site, enrolled=enrolled,
                        months_to_final=final,
                        n_events_final=(event * enrolled).sum(axis=1),
                        n_enrolled_final=enrolled.sum(axis=1))


@dataclass
class PPoSResult:
    """Predictive probability of success with its Monte Carlo standard error and the numbers
    behind it."""

    ppos: float
    mcse: float
    n_draws: int
    success_rule: str
    final_months_after_cut: dict[str, float] = field(default_factory=dict)
    final_events: dict[str, float] = field(default_factory=dict)
    final_enrolled: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ppos": self.ppos, "mcse": self.mcse, "n_draws": self.n_draws,
                "success_rule": self.success_rule,
                "final_months_after_cut": self.final_months_after_cut,
                "final_events": self.final_events, "final_enrolled": self.final_enrolled}


def _quantiles(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return {"mean": float(np.mean(x)), "q5": float(q[0]), "median": float(q[1]),
            "q95": float(q[2])}


def predictive_probability(state: TrialState, draws: HazardDraws, plan: Plan, model: FastModel,
                           rule: Any, rng: np.random.Generator,
                           batch: int = 500,
                           external: tuple[np.ndarray, np.ndarray] | None = None) -> PPoSResult:
    """PPoS: continuations from ``draws``, fast posterior at each simulated final analysis,
    the success ``rule`` (a :class:`~bayes_ablation.spec.design.Rule`) applied.

    With borrowing (``model.borrowing``) every final analysis borrows the same, fixed
    external evidence (``external``: external controls' (D, E) per interval; default the
    model's own); only the internal patients are simulated."""
    cont = simulate_continuation(state, draws, plan, rng)
    cutoff = rule.hr_cutoff
    probs = np.empty(draws.n_draws)
    for start in range(0, draws.n_draws, batch):
        sl = slice(start, start + batch)
        d, e = suff_stats(cont.time[sl], cont.event[sl], cont.site[sl], cont.arm[sl],
                          model.cuts_months, model.n_sites, weight=cont.enrolled[sl])
        probs[sl] = laplace(d, e, model, external=external).prob_hr_below(cutoff)
    success = _holds(rule.op, probs, rule.threshold)
    p = float(np.mean(success))
    return PPoSResult(ppos=p, mcse=float(np.sqrt(p * (1 - p) / draws.n_draws)),
                      n_draws=draws.n_draws, success_rule=rule.describe(),
                      final_months_after_cut=_quantiles(cont.months_to_final),
                      final_events=_quantiles(cont.n_events_final),
                      final_enrolled=_quantiles(cont.n_enrolled_final))


def expected_future_events(state: TrialState, draws: HazardDraws, plan: Plan,
                           rng: np.random.Generator) -> float:
    """Mean number of events between the cut and the final analysis over continuations."""
    cont = simulate_continuation(state, draws, plan, rng)
    return float(np.mean(cont.n_events_final) - state.n_events)
