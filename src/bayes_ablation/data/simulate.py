"""Simulate multi-site two-arm (or multi-arm) trials with Weibull proportional hazards.

Model (time in months):  h_i(t) = λ₀ k t^(k−1) exp(β·treated_i + x_i γ + u_site(i)),
u_site ~ N(0, σ_site²), λ₀ = log 2 / median_ref^k (median PFS of the reference arm at an
average site). Patients enter uniformly over ``accrual_months``, are followed until the
administrative cut at ``accrual_months + followup_months`` and may drop out earlier
(exponential dropout hazard). Randomisation uses permuted blocks within site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CovariateSim:
    """A simulated covariate: ``kind`` 'normal' (mean, sd) or 'binary' (p); its log-HR effect."""

    kind: str
    effect: float
    mean: float = 0.0
    sd: float = 1.0
    p: float = 0.5


@dataclass(frozen=True)
class SimulatedTrial:
    """A simulated trial: the analysable patient table, latent details and the truth."""

    frame: pd.DataFrame
    details: pd.DataFrame
    truth: dict[str, float | list[float]] = field(default_factory=dict)


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
) -> SimulatedTrial:
    """Simulate one trial; same arguments and seed give the same table.

    ``log_hr`` is one value per non-reference arm (a scalar for two arms). ``arms[0]`` is the
    reference. Returned ``truth`` holds the parameters in the model's parameterisation
    (``log_hr``, ``weibull_shape``, ``log_cumhaz_ref`` = log H₀(time_ref), ``sigma_site``,
    ``u_site``, ``beta_covariates``).
    """
    if n_patients < 2 or n_sites < 1:
        raise ValueError("need at least 2 patients and 1 site")
    rng = np.random.default_rng(seed)
    arms = tuple(arms)
    effects = np.atleast_1d(np.asarray(log_hr, dtype=float))
    if effects.size != len(arms) - 1:
        raise ValueError(f"log_hr needs {len(arms) - 1} value(s), one per non-reference arm")
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
    eta[treated] += effects[arm_idx[treated] - 1] + v_site_arm[site_idx[treated], arm_idx[treated] - 1]
    beta_cov = []
    for name, cov in covariates.items():
        if cov.kind == "normal":
            values = rng.normal(cov.mean, cov.sd, n_patients)
            eta += cov.effect * (values - cov.mean)
        elif cov.kind == "binary":
            values = rng.binomial(1, cov.p, n_patients).astype(float)
            eta += cov.effect * values
        else:
            raise ValueError(f"covariate kind must be 'normal' or 'binary', got {cov.kind!r}")
        cov_values[name] = values
        beta_cov.append(cov.effect)

    k = weibull_shape
    lam0 = np.log(2.0) / median_ref_months**k
    # S(t) = exp(-lam0 t^k e^eta)  =>  T = (E / (lam0 e^eta))^(1/k), E ~ Exp(1)
    event_time = (rng.exponential(size=n_patients) / (lam0 * np.exp(eta))) ** (1.0 / k)
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
    truth: dict[str, float | list[float]] = {
        "log_hr": effects.tolist() if effects.size > 1 else float(effects[0]),
        "weibull_shape": float(k),
        "log_cumhaz_ref": float(np.log(lam0) + k * np.log(time_ref_months)),
        "log_lambda0": float(np.log(lam0)),
        "sigma_site": float(sigma_site),
        "sigma_site_arm": float(sigma_site_arm),
        "u_site": u_site.tolist(),
        "beta_covariates": beta_cov,
        "median_ref_months": float(median_ref_months),
        "time_ref_months": float(time_ref_months),
    }
    return SimulatedTrial(frame=frame, details=details, truth=truth)
