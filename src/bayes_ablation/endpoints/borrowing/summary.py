"""What a borrowing analysis borrowed, and whether the borrowed evidence conflicts with the trial.

Target θ: the control arm's log cumulative hazard at t_ref (``log_cumhaz_ref``; the MAP prior
may target ``log_hr`` instead). Four distributions of θ are set side by side:

* *prior*: the spec's prior of θ (``map``: the robust MAP mixture);
* *external*: what the external controls alone say, the normal approximation
  N(θ̂_ext, se_ext²) of their Weibull likelihood (maximum likelihood, observed information;
  ``map``: the MAP mixture without its robust component);
* *internal*: the same approximation for the trial's own patients (all arms, no site effects);
* *posterior*: the borrowing analysis's draws.

Amount borrowed, in external events (one event carries Fisher information 1 on a log
cumulative hazard; patients = events × n_ext / D_ext): ``full`` D_ext, ``power`` a0 D_ext,
``commensurate`` the posterior mean of D_ext τ/(D_ext + τ) — the precision the external
information keeps after passing through δ ~ N(0, 1/τ) — and ``map`` the ELIR effective
sample size of the prior. A model-free check: the variance ratio
D_int (se_int² / Var(θ | all) − 1), the events the posterior gained over the internal data.

Prior-data conflict: Box's (1980) p-value of the internal estimate under the prior
predictive of the borrowed evidence, p = P(f(Y) ≤ f(θ̂_int)) with Y ~ f, f the borrowed
prior of θ (``full``/``none``: N(θ̂_ext, se_ext²); ``power``: N(θ̂_ext, se_ext²/a0);
``commensurate``: N(θ̂_ext, se_ext² + 1/τ), τ from its prior; ``map``: the robust MAP)
convolved with N(0, se_int²). Small p: the trial disagrees with the borrowed evidence;
``box_p_pooled`` is the same p under pooling (f = N(θ̂_ext, se_ext²)), whatever the method. For
``commensurate`` also the posterior of τ and of δ = α_ext − α.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bayes_ablation.endpoints.borrowing.mixture import NormalMixture
from bayes_ablation.endpoints.prior_draws import positive_prior_quantile
from bayes_ablation.spec.plan import AnalysisSpec, PriorSpec


def weibull_mle(time: np.ndarray, event: np.ndarray, arm_idx: np.ndarray, n_arms: int,
                x: np.ndarray, t_ref: float) -> tuple[np.ndarray, np.ndarray]:
    """ML estimates of (α, log k, β_1..β_{A−1}, γ) of the Weibull PH model without site effects,
    and their covariance (inverse observed information, central differences)."""
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    log_t = np.log(time)
    x = np.asarray(x, float).reshape(time.size, -1)
    n_t = n_arms - 1
    onehot = np.zeros((time.size, n_t))
    for a in range(1, n_arms):
        onehot[:, a - 1] = arm_idx == a
    design = np.hstack([onehot, x])

    def nll(p: np.ndarray) -> float:
        alpha, logk, rest = p[0], p[1], p[2:]
        k = np.exp(logk)
        eta = alpha + design @ rest
        log_h_cum = eta + k * (log_t - np.log(t_ref))
        ll = event * (log_h_cum + logk - log_t) - np.exp(log_h_cum)
        return -float(ll.sum())

    d = max(event.sum(), 1.0)
    start = np.zeros(2 + design.shape[1])
    start[0] = np.log(d / np.sum(time / t_ref))
    res = optimize.minimize(nll, start, method="BFGS", options={"gtol": 1e-8})
    p = res.x
    h = 1e-4
    n = p.size
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            e_i = np.eye(n)[i] * h
            e_j = np.eye(n)[j] * h
            v = (nll(p + e_i + e_j) - nll(p + e_i - e_j) - nll(p - e_i + e_j)
                 + nll(p - e_i - e_j)) / (4 * h * h)
            hess[i, j] = hess[j, i] = v
    return p, np.linalg.pinv(hess)


def normal(mean: float, sd: float) -> NormalMixture:
    return NormalMixture((1.0,), (float(mean),), (float(sd),))


def prior_distribution(prior: PriorSpec) -> NormalMixture | None:
    if prior.family == "normal":
        return normal(prior.params["mu"], prior.params["sigma"])
    return None


def box_p(predictive: NormalMixture, observed: float, n: int = 20000, seed: int = 0) -> float:
    """Box's p: P(f(Y) ≤ f(y_obs)), Y ~ f (Monte Carlo, ``n`` draws)."""
    rng = np.random.default_rng(seed)
    y = predictive.sample(n, rng)
    return float(np.mean(predictive.logpdf(y) <= predictive.logpdf(np.array(observed))))


def describe(dist: NormalMixture | np.ndarray) -> dict[str, float]:
    if isinstance(dist, NormalMixture):
        return {"mean": dist.mean(), "sd": dist.sd(), "q2.5": dist.quantile(0.025),
                "q97.5": dist.quantile(0.975)}
    d = np.asarray(dist, float).ravel()
    q = np.quantile(d, [0.025, 0.975])
    return {"mean": float(d.mean()), "sd": float(d.std(ddof=1)), "q2.5": float(q[0]),
            "q97.5": float(q[1])}


def _draws(idata: Any, name: str) -> np.ndarray:
    return np.asarray(idata.posterior[name].values, float).reshape(-1)


def borrowing_summary(spec: AnalysisSpec, data: Any, idata: Any) -> dict[str, Any]:
    """``summary.json["borrowing"]`` and the report's inputs (module docstring)."""
    b = spec.borrowing
    method = b.method
    patients, ext, map_prior = data.patients, data.external, data.map_prior
    target = b.target if method == "map" else "log_cumhaz_ref"
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    x_int, _, _ = patients.design_matrix()
    p_int, cov_int = weibull_mle(patients.time, patients.event, patients.arm_idx,
                                 len(patients.arms), x_int, t_ref)
    t_index = 0 if target == "log_cumhaz_ref" else 2
    internal = normal(p_int[t_index], np.sqrt(cov_int[t_index, t_index]))
    d_int = float(patients.event.sum())
    external = None
    out: dict[str, Any] = {"method": method, "target": target, "time_ref_months": t_ref}
    if ext is not None:
        x_ext, _, _ = ext.design_matrix()
        p_ext, cov_ext = weibull_mle(ext.time, ext.event, np.zeros(ext.n_patients, int), 1,
                                     x_ext, t_ref)
        external = normal(p_ext[0], np.sqrt(cov_ext[0, 0]))
        out["external"] = {"source": ext.source, "sha256": ext.sha256,
                           "n_patients": ext.n_patients, "n_events": int(ext.event.sum()),
                           "weibull_shape_estimate": float(np.exp(p_ext[1]))}
    out["internal"] = {"n_patients": patients.n_patients, "n_events": int(d_int)}
    if method == "map":
        prior = map_prior.robust
        external = map_prior.mixture
        out["map"] = map_prior.to_dict()
    else:
        prior = prior_distribution(spec.priors[target])
    posterior = _draws(idata, target if target == "log_cumhaz_ref" else "log_hr")

    rows = {"prior": prior, "external": external, "internal": internal, "posterior": posterior}
    out["side_by_side"] = {k: describe(v) for k, v in rows.items() if v is not None}

    # amount borrowed
    var_post = float(np.var(posterior, ddof=1))
    unit = 1.0 if target == "log_cumhaz_ref" else 2.0
    amount: dict[str, Any] = {
        "variance_ratio_events": float(d_int * (internal.sd() ** 2 / var_post - 1.0)),
        "unit": "events (Fisher information 1 per event on the log cumulative hazard"
                + ("" if unit == 1.0 else "; 1/4 per event on a 1:1 log HR") + ")"}
    if ext is not None:
        d_ext = float(ext.event.sum())
        per_event = ext.n_patients / max(d_ext, 1.0)
        if method == "full":
            frac = np.ones(1)
        elif method == "power":
            frac = np.full(1, b.a0)
        elif method == "commensurate":
            tau = _draws(idata, "commensurate_precision")
            frac = tau / (tau + d_ext)
        else:
            frac = np.zeros(1)
        amount.update({
            "external_events": d_ext, "external_patients": ext.n_patients,
            "effective_external_events": float(d_ext * frac.mean()),
            "effective_external_events_q2.5": float(d_ext * np.quantile(frac, 0.025)),
            "effective_external_events_q97.5": float(d_ext * np.quantile(frac, 0.975)),
            "effective_external_patients": float(d_ext * frac.mean() * per_event),
            "fraction_borrowed": float(frac.mean())})
    if method == "map":
        amount.update({"prior_ess_elir_events": map_prior.ess_robust,
                       "map_ess_elir_events": map_prior.ess_map})
    out["amount_borrowed"] = amount

    # prior-data conflict
    conflict: dict[str, Any] = {"internal_estimate": internal.mean(),
                                "internal_se": internal.sd()}
    borrowed = None
    if method == "map":
        borrowed = map_prior.robust
    elif external is not None:
        m, s = external.mean(), external.sd()
        if method == "power":
            borrowed = normal(m, s / np.sqrt(b.a0)) if b.a0 > 0 else None
        elif method == "commensurate":
            tau_prior = positive_prior_quantile(b.precision, (np.arange(400) + 0.5) / 400)
            borrowed = NormalMixture(tuple(np.full(tau_prior.size, 1 / tau_prior.size)),
                                     tuple(np.full(tau_prior.size, m)),
                                     tuple(np.sqrt(s**2 + 1 / tau_prior)))
        else:
            borrowed = normal(m, s)
    if borrowed is not None:
        pred = NormalMixture(borrowed.weights, borrowed.means,
                             tuple(np.sqrt(borrowed.s**2 + internal.sd() ** 2)))
        conflict["box_p"] = box_p(pred, internal.mean(), seed=spec.sampler.seed)
        conflict["box_p_definition"] = ("P(f(Y) <= f(internal estimate)), f the borrowed "
                                        "prior's predictive of the internal estimate")
    if external is not None and method != "map":
        # were the two sources exchangeable (pooled), how surprising is the internal estimate
        conflict["box_p_pooled"] = 2 * float(stats.norm.sf(
            abs(internal.mean() - external.mean()) / np.hypot(internal.sd(), external.sd())))
    if method == "commensurate":
        tau = _draws(idata, "commensurate_precision")
        delta = _draws(idata, "external_offset")
        conflict["commensurate_precision"] = describe(tau) | {"median": float(np.median(tau))}
        conflict["external_offset"] = describe(delta)
        conflict["p_external_offset_positive"] = float(np.mean(delta > 0))
    out["conflict"] = conflict
    return out


def side_by_side_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = [{"source": k, **v} for k, v in summary["side_by_side"].items()]
    return pd.DataFrame(rows)


def density_grid(data: Any, spec: AnalysisSpec, idata: Any, summary: dict[str, Any],
                 n: int = 300) -> dict[str, Any]:
    """Densities of prior, external, internal and posterior on a common grid (figure data)."""
    method = summary["method"]
    target = summary["target"]
    internal = normal(summary["side_by_side"]["internal"]["mean"],
                      summary["side_by_side"]["internal"]["sd"])
    curves: dict[str, NormalMixture | None] = {"internal": internal}
    if method == "map":
        curves["prior"] = data.map_prior.robust
        curves["external"] = data.map_prior.mixture
    else:
        curves["prior"] = prior_distribution(spec.priors[target])
        if "external" in summary["side_by_side"]:
            e = summary["side_by_side"]["external"]
            curves["external"] = normal(e["mean"], e["sd"])
    posterior = _draws(idata, target)
    # the range of the data sources and the posterior (a vague prior is shown clipped)
    shown = [c for k, c in curves.items() if c is not None and (k != "prior" or method == "map")]
    lo = min(np.quantile(posterior, 0.001), *(c.quantile(0.001) for c in shown))
    hi = max(np.quantile(posterior, 0.999), *(c.quantile(0.999) for c in shown))
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    grid = np.linspace(lo, hi, n)
    dens = {k: c.pdf(grid) for k, c in curves.items() if c is not None}
    dens["posterior"] = stats.gaussian_kde(posterior)(grid)
    return {"grid": grid, "densities": dens, "target": target, "method": method}
