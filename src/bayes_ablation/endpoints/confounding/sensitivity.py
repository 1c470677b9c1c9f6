"""Sensitivity of a hazard ratio to an unmeasured binary confounder U.

Bias formula (the classic one for a ratio measure; e.g. Lin, Psaty & Kronmal 1998): with
p₁, p₀ the prevalence of U in the treatment and the reference arm and γ = log HR of U on the
outcome (the same in both arms),

    log HR_adj = log HR_obs − log[(1 + p₁ (e^γ − 1)) / (1 + p₀ (e^γ − 1))].

Applied draw by draw to the posterior of log HR_obs, with (p₁, p₀, γ) drawn from their priors
(a probabilistic bias analysis whose result is the posterior of the adjusted log HR), and over
a grid of (γ, p₁ − p₀) at a fixed mean prevalence (p₁ + p₀)/2. With γ = 0 or p₁ = p₀ the
bias term is exactly 0 (log1p/expm1 keep it exact).

E-value (VanderWeele & Ding 2017): the minimum strength of association, on the risk-ratio
scale, that U would need with both treatment and outcome to explain the estimate away:
E = RR + √(RR (RR − 1)) for RR ≥ 1 (RR < 1: use 1/RR). A hazard ratio is turned into a risk
ratio exactly for a rare outcome (RR ≈ HR) and, for a common one (> 15% with the event by the
end of follow-up), by RR ≈ (1 − 0.5^√HR) / (1 − 0.5^√(1/HR)) (VanderWeele 2017). The E-value
of the interval is that of the limit closer to 1 (1 when the interval contains 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

#: share of patients with the event above which the outcome counts as common (E-value)
COMMON_OUTCOME = 0.15


def log_bias(p1: np.ndarray | float, p0: np.ndarray | float,
             gamma: np.ndarray | float) -> np.ndarray:
    """log[(1 + p₁(e^γ − 1)) / (1 + p₀(e^γ − 1))]: the log HR an unmeasured binary
    confounder adds to the observed one."""
    g = np.expm1(np.asarray(gamma, float))
    return np.log1p(np.asarray(p1, float) * g) - np.log1p(np.asarray(p0, float) * g)


def adjusted_log_hr(log_hr: np.ndarray, p1: np.ndarray | float, p0: np.ndarray | float,
                    gamma: np.ndarray | float) -> np.ndarray:
    """log HR_adj = log HR_obs − log_bias(p₁, p₀, γ), elementwise (broadcast)."""
    return np.asarray(log_hr, float) - log_bias(p1, p0, gamma)


@dataclass(frozen=True)
class BiasPriors:
    """Priors of the bias parameters: U's prevalence in the treatment arm p₁ ~
    Beta(a1, b1), in the reference arm p₀ ~ Beta(a0, b0) (independent), and its log HR on the
    outcome γ ~ Normal(gamma_mean, gamma_sd). ``gamma_sd = 0`` fixes γ; prevalences are fixed
    by a or b = 0 with ``p1_fixed``/``p0_fixed``.

    Default: the direction of confounding unknown — γ centred at 0 with 95% of U's HR in
    (0.46, 2.2), prevalences around 0.4 in both arms (Beta(2, 3)) — which widens the interval
    without moving it. An analyst who believes U is, say, frailty that both raises the hazard
    and drives treatment choice puts gamma_mean > 0 and a1/(a1+b1) > a0/(a0+b0).
    """

    a1: float = 2.0
    b1: float = 3.0
    a0: float = 2.0
    b0: float = 3.0
    gamma_mean: float = 0.0
    gamma_sd: float = 0.4
    p1_fixed: float | None = None
    p0_fixed: float | None = None

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n draws of (p₁, p₀, γ)."""
        p1 = np.full(n, self.p1_fixed) if self.p1_fixed is not None else rng.beta(self.a1, self.b1, n)
        p0 = np.full(n, self.p0_fixed) if self.p0_fixed is not None else rng.beta(self.a0, self.b0, n)
        gamma = np.full(n, self.gamma_mean) if self.gamma_sd == 0 else \
            rng.normal(self.gamma_mean, self.gamma_sd, n)
        return p1, p0, gamma

    def describe(self) -> str:
        p1 = f"{self.p1_fixed:g}" if self.p1_fixed is not None else f"Beta({self.a1:g}, {self.b1:g})"
        p0 = f"{self.p0_fixed:g}" if self.p0_fixed is not None else f"Beta({self.a0:g}, {self.b0:g})"
        g = f"{self.gamma_mean:g}" if self.gamma_sd == 0 else \
            f"Normal({self.gamma_mean:g}, {self.gamma_sd:g})"
        return f"p1 (prevalence of U, treatment arm) ~ {p1}; p0 (reference arm) ~ {p0}; " \
               f"gamma (log HR of U on the outcome) ~ {g}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "description": self.describe()}


#: bias parameters zero: the unadjusted answer
NO_BIAS = BiasPriors(gamma_mean=0.0, gamma_sd=0.0, p1_fixed=0.0, p0_fixed=0.0)


def probabilistic_bias(log_hr_draws: np.ndarray, priors: BiasPriors = BiasPriors(), *,
                       seed: int = 0) -> np.ndarray:
    """Adjusted log HR draws: each posterior draw of log HR_obs minus the bias of one prior
    draw of (p₁, p₀, γ) (same shape as ``log_hr_draws``)."""
    obs = np.asarray(log_hr_draws, float)
    p1, p0, gamma = priors.draw(obs.size, np.random.default_rng(seed))
    return adjusted_log_hr(obs.ravel(), p1, p0, gamma).reshape(obs.shape)


def sensitivity_grid(log_hr_draws: np.ndarray, *, hr_u: Sequence[float] | None = None,
                     prevalence_difference: Sequence[float] | None = None,
                     mean_prevalence: float = 0.5, interval_prob: float = 0.95) -> pd.DataFrame:
    """Adjusted HR over a grid of U's HR on the outcome (e^γ) and prevalence difference
    p₁ − p₀ at fixed (p₁ + p₀)/2 = ``mean_prevalence``: posterior median and central
    interval of the adjusted HR (the bias is a constant shift of every draw's log HR) and
    P(HR_adj < 1). One row per grid point."""
    obs = np.asarray(log_hr_draws, float).ravel()
    hr_u = np.geomspace(0.25, 4.0, 33) if hr_u is None else np.asarray(hr_u, float)
    limit = 2 * min(mean_prevalence, 1 - mean_prevalence)
    delta = np.linspace(-limit, limit, 33) if prevalence_difference is None \
        else np.asarray(prevalence_difference, float)
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    q = np.quantile(obs, [lo, 0.5, hi])
    sorted_obs = np.sort(obs)
    g, dp = np.meshgrid(np.log(hr_u), delta, indexing="ij")
    bias = log_bias(mean_prevalence + dp / 2, mean_prevalence - dp / 2, g)
    # P(log HR_obs − b < 0) = P(log HR_obs < b)
    p_below = np.searchsorted(sorted_obs, bias.ravel(), side="left") / obs.size
    return pd.DataFrame({
        "hr_u": np.exp(g).ravel(), "gamma": g.ravel(), "prevalence_difference": dp.ravel(),
        "p1": (mean_prevalence + dp / 2).ravel(), "p0": (mean_prevalence - dp / 2).ravel(),
        "log_bias": bias.ravel(),
        "hr_adjusted_median": np.exp(q[1] - bias).ravel(),
        "hr_adjusted_lower": np.exp(q[0] - bias).ravel(),
        "hr_adjusted_upper": np.exp(q[2] - bias).ravel(),
        "p_hr_adjusted_below_1": p_below,
    })


def hr_to_rr(hr: np.ndarray | float, common: bool) -> np.ndarray:
    """Risk ratio of a hazard ratio: HR itself (rare outcome) or
    (1 − 0.5^√HR) / (1 − 0.5^√(1/HR)) (common outcome)."""
    hr = np.asarray(hr, float)
    if not common:
        return hr
    return (1 - 0.5 ** np.sqrt(hr)) / (1 - 0.5 ** np.sqrt(1 / hr))


def e_value_rr(rr: np.ndarray | float) -> np.ndarray:
    """E-value of a risk ratio: RR* + √(RR* (RR* − 1)), RR* = max(RR, 1/RR)."""
    rr = np.asarray(rr, float)
    rr = np.where(rr < 1, 1 / rr, rr)
    return rr + np.sqrt(rr * (rr - 1))


def e_value_hr(hr: float, lower: float, upper: float, *, common: bool) -> dict[str, float]:
    """E-values of a hazard ratio estimate and of its interval limit closer to 1 (1 when the
    interval contains 1), with the risk ratios used."""
    rr, rr_lo, rr_hi = (float(hr_to_rr(v, common)) for v in (hr, lower, upper))
    if rr_lo <= 1 <= rr_hi:
        limit, e_limit = 1.0, 1.0
    else:
        limit = rr_lo if rr > 1 else rr_hi
        e_limit = float(e_value_rr(limit))
    return {"hr": hr, "hr_lower": lower, "hr_upper": upper, "rr": rr,
            "rr_limit_closest_to_1": limit, "e_value": float(e_value_rr(rr)),
            "e_value_interval": e_limit, "common_outcome": common}
