"""Simulate multi-site two-arm (or multi-arm) trials with proportional or time-varying hazards.

Model (time in months):  h_i(t) = h₀(t) exp(β_arm(i)(t) + x_i γ + u_site(i) [+ v_site,arm]),
u_site ~ N(0, σ_site²). Baseline h₀ is Weibull by default, h₀(t) = λ₀ k t^(k−1) with
λ₀ = log 2 / median_ref^k (median PFS of the reference arm at an average site), or piecewise
constant (``baseline_cuts_months`` + ``baseline_hazards``: λ_j per month on
(b_j, b_{j+1}]). The log HR β is constant by default, or piecewise constant in time
(``hr_cuts_months``; ``log_hr`` then gives one value per interval, per non-reference arm).
Event times invert the cumulative hazard exactly, segment by segment.
Patients enter uniformly over ``accrual_months``, are followed until the administrative cut
at ``accrual_months + followup_months`` and may drop out earlier (exponential dropout hazard).
Randomisation uses permuted blocks within site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CovariateSim:
    """A simulated covariate: ``kind`` 'normal' (mean, sd) or 'binary' (p); its log-HR effect.

    ``arm_interaction``: added to the log HR of every non-reference arm per unit of the
    covariate (for a binary one: log HR(value 1) − log HR(value 0), an effect modifier)."""

    kind: str
    effect: float
    mean: float = 0.0
    sd: float = 1.0
    p: float = 0.5
    arm_interaction: float = 0.0


@dataclass(frozen=True)
class SimulatedTrial:
    """A simulated trial: the analysable patient table, latent details and the truth."""

    frame: pd.DataFrame
    details: pd.DataFrame
    truth: dict[str, Any] = field(default_factory=dict)


def simulate_trial(
    n_patients: int = 400,
    n_sites: int = 8,
    log_hr: float | Sequence[float] = -0.25,
    *,
    seed: int = 1,
    arms: Sequence[str] = ("postoperative", "perioperative"),
    weibull_shape: float = 1.2,
    median_ref_months: float = 18.0,
    sigma_site: float = 0.3,
    sigma_site_arm: float = 0.0,
    accrual_months: float = 24.0,
    followup_months: float = 36.0,
    dropout_per_month: float = 0.005,
    covariates: Mapping[str, CovariateSim] | None = None,
    time_ref_months: float = 12.0,
    site_weights: Sequence[float] | None = None,
    baseline_cuts_months: Sequence[float] | None = None,
    baseline_hazards: Sequence[float] | None = None,
    hr_cuts_months: Sequence[float] | None = None,
) -> SimulatedTrial:
    """Simulate one trial; same arguments and seed give the same table.

    ``log_hr`` is one value per non-reference arm (a scalar for two arms); with
    ``hr_cuts_months`` (C cut points) it is per interval: C + 1 values for two arms, or an
    array (non-reference arm, interval). ``arms[0]`` is the reference. ``baseline_cuts_months``
    with ``baseline_hazards`` (one hazard per month per interval, reference arm, average site)
    replaces the Weibull baseline. Returned ``truth`` holds the parameters in the models'
    parameterisations: ``log_hr`` (with a time-varying effect: the unweighted mean over its
    intervals; per interval in ``log_hr_by_interval``), the baseline (Weibull:
    ``weibull_shape``, ``log_cumhaz_ref`` = log H₀(time_ref); piecewise: ``log_hazard``),
    ``sigma_site``, ``u_site``, ``beta_covariates``.
    """
    if n_patients < 2 or n_sites < 1:
        raise ValueError("need at least 2 patients and 1 site")
    rng = np.random.default_rng(seed)
    arms = tuple(arms)
    piecewise = _piecewise_baseline(baseline_cuts_months, baseline_hazards)
    hr_cuts = None if hr_cuts_months is None else _increasing(hr_cuts_months, "hr_cuts_months")
    if hr_cuts is None:
        effects = np.atleast_1d(np.asarray(log_hr, dtype=float))
        if effects.size != len(arms) - 1:
            raise ValueError(f"log_hr needs {len(arms) - 1} value(s), one per non-reference arm")
        effects_by_interval = effects[:, None]
        hr_cuts = np.zeros(0)
    else:
        effects_by_interval = np.asarray(log_hr, dtype=float).reshape(len(arms) - 1, -1)
        if effects_by_interval.shape[1] != hr_cuts.size + 1:
            raise ValueError(f"with {hr_cuts.size} hr_cuts_months, log_hr needs "
                             f"{hr_cuts.size + 1} values per non-reference arm")
        effects = effects_by_interval.mean(axis=1)
    time_varying = effects_by_interval.shape[1] > 1
    covariates = dict(covariates or {})

    weights = np.full(n_sites, 1.0 / n_sites) if site_weights is None else \
        np.asarray(site_weights, float) / np.sum(site_weights)
    site_idx = np.sort(rng.choice(n_sites, size=n_patients, p=weights))
    # every site gets at least one patient so the declared sites all appear
    site_idx[:n_sites] = np.arange(min(n_sites, n_patients))
    site_idx = np.sort(site_idx)

    arm_idx = np.empty(n_patients, dtype=np.int64)
    n_arms = len(arms)
    for s in range(n_sites):
        members = np.flatnonzero(site_idx == s)
        n_blocks = -(-len(members) // (2 * n_arms))
        blocks = np.concatenate([rng.permutation(np.repeat(np.arange(n_arms), 2))
                                 for _ in range(n_blocks)])
        arm_idx[members] = blocks[: len(members)]

    u_site = rng.normal(0.0, sigma_site, n_sites) if sigma_site > 0 else np.zeros(n_sites)
    v_site_arm = (rng.normal(0.0, sigma_site_arm, (n_sites, n_arms - 1))
                  if sigma_site_arm > 0 else np.zeros((n_sites, n_arms - 1)))

    cov_values: dict[str, np.ndarray] = {}
    eta = u_site[site_idx].copy()
    treated = arm_idx > 0
    if not time_varying:  # a time-varying effect enters the cumulative hazard per segment
        eta[treated] += effects[arm_idx[treated] - 1]
    eta[treated] += v_site_arm[site_idx[treated], arm_idx[treated] - 1]
    beta_cov = []
    interactions: dict[str, float] = {}
    for name, cov in covariates.items():
        if cov.kind == "normal":
            values = rng.normal(cov.mean, cov.sd, n_patients)
            eta += cov.effect * (values - cov.mean)
        elif cov.kind == "binary":
            values = rng.binomial(1, cov.p, n_patients).astype(float)
            eta += cov.effect * values
        else:
            raise ValueError(f"covariate kind must be 'normal' or 'binary', got {cov.kind!r}")
        if cov.arm_interaction:
            eta[treated] += cov.arm_interaction * values[treated]
            interactions[name] = float(cov.arm_interaction)
        cov_values[name] = values
        beta_cov.append(cov.effect)

    k = weibull_shape
    lam0 = np.log(2.0) / median_ref_months**k
    # S(t) = exp(-lam0 t^k e^eta)  =>  T = (E / (lam0 e^eta))^(1/k), E ~ Exp(1)
    exp_draws = rng.exponential(size=n_patients)
    if piecewise is None and not time_varying:
        event_time = (exp_draws / (lam0 * np.exp(eta))) ** (1.0 / k)
    else:
        event_time = _invert_cumhaz(exp_draws * np.exp(-eta), arm_idx, piecewise, (lam0, k),
                                    hr_cuts, effects_by_interval if time_varying else None)
    entry = rng.uniform(0.0, accrual_months, n_patients)
    admin = accrual_months + followup_months - entry
    dropout = (rng.exponential(1.0 / dropout_per_month, n_patients)
               if dropout_per_month > 0 else np.full(n_patients, np.inf))
    censor = np.minimum(admin, dropout)
    time = np.minimum(event_time, censor)
    event = (event_time <= censor).astype(np.int64)

    width = len(str(n_patients))
    frame = pd.DataFrame({
        "patient_id": [f"P{i + 1:0{width}d}" for i in range(n_patients)],
        "site": [f"S{s + 1:02d}" for s in site_idx],
        "arm": [arms[a] for a in arm_idx],
        "time_months": np.round(time, 4),
        "event": event,
    })
    frame.loc[frame["time_months"] <= 0, "time_months"] = 1e-4
    for name, values in cov_values.items():
        frame[name] = values
    details = pd.DataFrame({
        "patient_id": frame["patient_id"],
        "entry_months": entry,
        "event_time_months": event_time,
        "censor_time_months": censor,
        "dropped_out": dropout < admin,
        "eta": eta,
    })
    truth: dict[str, Any] = {
        "log_hr": effects.tolist() if effects.size > 1 else float(effects[0]),
        "sigma_site": float(sigma_site),
        "sigma_site_arm": float(sigma_site_arm),
        "u_site": u_site.tolist(),
        "beta_covariates": beta_cov,
        "time_ref_months": float(time_ref_months),
    }
    if piecewise is None:
        truth.update({
            "weibull_shape": float(k),
            "log_cumhaz_ref": float(np.log(lam0) + k * np.log(time_ref_months)),
            "log_lambda0": float(np.log(lam0)),
            "median_ref_months": float(median_ref_months),
        })
    else:
        truth.update({"baseline_cuts_months": piecewise[0].tolist(),
                      "log_hazard": np.log(piecewise[1]).tolist()})
    if interactions:  # log HR(level 1) − log HR(level 0) per effect modifier
        truth["log_hr_interaction"] = interactions
    if time_varying:
        truth.update({"hr_cuts_months": hr_cuts.tolist(),
                      "log_hr_by_interval": effects_by_interval.tolist()})
    return SimulatedTrial(frame=frame, details=details, truth=truth)


def _increasing(values: Sequence[float], name: str) -> np.ndarray:
    out = np.asarray(values, dtype=float).reshape(-1)
    if out.size == 0 or not np.all(np.isfinite(out)) or out[0] <= 0 or np.any(np.diff(out) <= 0):
        raise ValueError(f"{name} must be non-empty, finite, > 0 and strictly increasing")
    return out


def _piecewise_baseline(cuts: Sequence[float] | None, hazards: Sequence[float] | None
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    if cuts is None and hazards is None:
        return None
    if cuts is None or hazards is None:
        raise ValueError("baseline_cuts_months and baseline_hazards go together")
    c = _increasing(cuts, "baseline_cuts_months")
    h = np.asarray(hazards, dtype=float).reshape(-1)
    if h.size != c.size + 1 or np.any(h <= 0) or not np.all(np.isfinite(h)):
        raise ValueError(f"baseline_hazards needs {c.size + 1} finite values > 0 (per month)")
    return c, h


def baseline_cumhaz(t: np.ndarray, piecewise: tuple[np.ndarray, np.ndarray] | None,
                    weibull: tuple[float, float]) -> np.ndarray:
    """H₀(t): Weibull λ₀ t^k, or the piecewise-linear integral of the piecewise hazard."""
    t = np.asarray(t, dtype=float)
    if piecewise is None:
        lam0, k = weibull
        return lam0 * t**k
    cuts, haz = piecewise
    bounds = np.concatenate([[0.0], cuts])
    at_bounds = np.concatenate([[0.0], np.cumsum(haz[:-1] * np.diff(bounds))])
    j = np.searchsorted(cuts, t, side="left")
    return at_bounds[j] + haz[j] * (t - bounds[j])


def _baseline_inverse(h: np.ndarray, piecewise: tuple[np.ndarray, np.ndarray] | None,
                      weibull: tuple[float, float]) -> np.ndarray:
    if piecewise is None:
        lam0, k = weibull
        return (h / lam0) ** (1.0 / k)
    cuts, haz = piecewise
    bounds = np.concatenate([[0.0], cuts])
    at_bounds = np.concatenate([[0.0], np.cumsum(haz[:-1] * np.diff(bounds))])
    j = np.searchsorted(at_bounds, h, side="right") - 1
    return bounds[j] + (h - at_bounds[j]) / haz[j]


def _invert_cumhaz(target: np.ndarray, arm_idx: np.ndarray,
                   piecewise: tuple[np.ndarray, np.ndarray] | None, weibull: tuple[float, float],
                   hr_cuts: np.ndarray, effects_by_interval: np.ndarray | None) -> np.ndarray:
    """Solve Σ_m e^{δ_arm,m} [H₀(min(t, s_{m+1})) − H₀(s_m)] = target for t, per patient, over
    the segments s_m between all cut points (baseline and HR); δ = 0 for the reference arm."""
    knots = np.unique(np.concatenate([hr_cuts, piecewise[0] if piecewise is not None else []]))
    starts = np.concatenate([[0.0], knots])
    h_starts = baseline_cumhaz(starts, piecewise, weibull)
    increments = np.diff(h_starts)                                     # finite segments
    out = np.empty_like(target)
    for a in np.unique(arm_idx):
        if effects_by_interval is None or a == 0:
            delta = np.zeros(starts.size)
        else:
            delta = effects_by_interval[a - 1][np.searchsorted(hr_cuts, starts, side="right")]
        cum = np.concatenate([[0.0], np.cumsum(np.exp(delta[:-1]) * increments)])
        members = arm_idx == a
        m = np.searchsorted(cum, target[members], side="right") - 1
        h0 = h_starts[m] + (target[members] - cum[m]) * np.exp(-delta[m])
        out[members] = _baseline_inverse(h0, piecewise, weibull)
    return out
