"""Validation adapter for the random-effects meta-analysis of log HRs (family ``normal_normal``).

Data-generating process = the model: θ_i = μ + τ z_i, z_i ~ N(0, 1), y_i ~ N(θ_i, s_i²) for K
studies with known standard errors s_i (design: ``n_studies`` standard errors evenly spaced from
``se_min`` to ``se_max``, the range of published CRLM trials' log-HR standard errors), and the
effect in a new study θ_new = μ + τ z_new. τ's prior is whatever the spec says (for a
``lognormal_variance`` prior the draw is √τ², as the model's ``tau``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_ablation.endpoints.sbc import FamilyAdapter, Simulated, scalar_draws
from bayes_ablation.spec.plan import AnalysisSpec


class NormalNormalAdapter(FamilyAdapter):
    family = "normal_normal"
    design_defaults: Mapping[str, float | int] = {"n_studies": 6, "se_min": 0.1, "se_max": 0.4}

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        return ["mu", "tau"]

    def key_parameters(self, spec: AnalysisSpec) -> list[str]:
        return ["mu", "tau", "theta[study1]", "theta_new"]

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        from bayes_ablation.data.studies import studies_from_arrays

        k = int(design["n_studies"])
        se = np.linspace(float(design["se_min"]), float(design["se_max"]), k)
        mu, tau = float(params["mu"]), float(params["tau"])
        theta = mu + tau * rng.normal(size=k)
        y = rng.normal(theta, se)
        theta_new = mu + tau * rng.normal()
        studies = studies_from_arrays(y, se, source="<simulated>")
        truth = {"mu": mu, "tau": tau, "theta": theta.tolist(), "theta_new": theta_new}
        summary = {"n_studies": float(k), "mean_y": float(y.mean()),
                   "i2_like": float(np.var(y, ddof=1) / np.mean(se**2))}
        return Simulated(data=studies, truth=truth, summary=summary)

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        return {"mu": scalar_draws(posterior, "mu"), "tau": scalar_draws(posterior, "tau"),
                "theta[study1]": scalar_draws(posterior, "theta", study="study1"),
                "theta_new": scalar_draws(posterior, "theta_new")}

    def truth_values(self, truth: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, float]:
        return {"mu": float(truth["mu"]), "tau": float(truth["tau"]),
                "theta[study1]": float(truth["theta"][0]),
                "theta_new": float(truth["theta_new"])}


ADAPTER = NormalNormalAdapter()
