"""Operating characteristics: simulate whole trials under scenarios and apply the design."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LatentTrial:
    """One simulated trial's latent truth (months from the first randomisation)."""

    entry: np.ndarray
    event_time: np.ndarray
    dropout_time: np.ndarray
    arm: np.ndarray
    site: np.ndarray


def simulate_latent(n: int, rate_per_month: float, site_weights: np.ndarray,
                    allocation: tuple[float, float], log_hr: float, median_ref_months: float,
                    weibull_shape: float, sigma_site: float, dropout_per_month: float,
                    rng: np.random.Generator) -> LatentTrial:
    """Poisson accrual at ``rate_per_month``; sites by ``site_weights``; arms by
    ``allocation`` (Bernoulli); Weibull PH event times, h(t) = λ₀ k t^{k−1} e^{β a + u_s},
    λ₀ = log 2 / median^k, u_s ~ N(0, σ²); exponential dropout."""
    w = np.asarray(site_weights, float)
    entry = np.cumsum(rng.exponential(1.0 / rate_per_month, n))
    site = rng.choice(len(w), size=n, p=w / w.sum())
    arm = (rng.uniform(size=n) < allocation[1] / sum(allocation)).astype(np.int64)
    u = rng.normal(0.0, sigma_site, len(w)) if sigma_site > 0 else np.zeros(len(w))
    k = weibull_shape
    lam0 = np.log(2.0) / median_ref_months**k
    eta = log_hr * arm + u[site]
    event_time = (rng.exponential(size=n) / (lam0 * np.exp(eta))) ** (1.0 / k)
    dropout = rng.exponential(1.0 / dropout_per_month, n) if dropout_per_month > 0 \
        else np.full(n, np.inf)
    return LatentTrial(entry=entry, event_time=event_time, dropout_time=dropout, arm=arm,
                       site=site)


def event_calendar_times(trial: LatentTrial) -> np.ndarray:
    """Sorted calendar times of observable events (event before dropout)."""
    seen = trial.event_time <= trial.dropout_time
    return np.sort(trial.entry[seen] + trial.event_time[seen])
