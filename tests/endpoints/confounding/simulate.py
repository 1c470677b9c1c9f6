"""A small confounded cohort for the confounding tests: treatment more likely with node-positive
primaries, higher CEA, more lesions and at some sites; exponential PFS whose hazard rises with
the same covariates (true conditional log HR ``beta``). Truth of the sample-average causal
S(t) differences is known from each patient's two potential survival curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

ARMS = ("postoperative", "perioperative")


def confounded_cohort(n: int = 668, seed: int = 1, beta: float = -0.3, strength: float = 1.0
                      ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 6, n)
    node = rng.binomial(1, 0.4, n)
    log_cea = rng.normal(2.5, 1.0, n)
    lesions = rng.integers(1, 6, n)
    primary = rng.choice(["colon", "rectum", "sigmoid"], n)
    u_site = np.array([-0.8, -0.3, 0.0, 0.3, 0.6, 1.0])
    lp = strength * (0.8 * node + 0.4 * (log_cea - 2.5) + 0.3 * (lesions - 3)
                     + 0.5 * (primary == "rectum")) + u_site[site]
    a = rng.binomial(1, 1 / (1 + np.exp(-lp)))
    base = np.log(0.05) + 0.6 * node + 0.3 * (log_cea - 2.5) + 0.15 * (lesions - 3)
    rate = np.exp(base + beta * a)
    t = rng.exponential(1 / rate)
    c = rng.uniform(12, 60, n)
    frame = pd.DataFrame({
        "patient_id": [f"p{i}" for i in range(n)], "site": [f"S{s}" for s in site],
        "arm": np.where(a == 1, ARMS[1], ARMS[0]), "time_months": np.minimum(t, c),
        "event": (t <= c).astype(int), "node_positive": node, "cea": np.exp(log_cea),
        "n_lesions": lesions, "primary": primary})
    return frame, {"rate0": np.exp(base), "rate1": np.exp(base + beta), "treated": a}


def true_difference(truth: dict[str, np.ndarray], t: float, population: str) -> float:
    """Sample-average S₁(t) − S₀(t) over all patients (ATE) or the treated (ATT)."""
    keep = np.ones(truth["treated"].size, bool) if population == "ATE" \
        else truth["treated"] == 1
    return float(np.mean(np.exp(-truth["rate1"][keep] * t) - np.exp(-truth["rate0"][keep] * t)))
