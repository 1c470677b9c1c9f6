"""Validation adapter for the one-stage IPD + aggregate-data meta-analysis (``weibull_ipd_ad``).

Data-generating process = the model: θ_j = μ + τ z_j for every trial; an IPD trial j has its own
Weibull baseline (α_j, k_j from the spec's per-trial priors) and site effects u ~ N(0, σ_site²)
nested in it, and is simulated by :func:`bayes_ablation.data.simulate.simulate_trial` with log HR
θ_j (unrounded times, as in the Weibull adapter); an aggregate study i reports
y_i ~ N(θ_i, s_i²) with s_i evenly spaced from ``se_min`` to ``se_max``; θ_new = μ + τ z_new.
The per-trial baselines are drawn inside :meth:`simulate` (their number is a design setting),
so a coverage study fixes μ, τ and σ_site and redraws them, like the site effects, per trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_ablation.endpoints.pfs.sbc import MIN_TIME_MONTHS
from bayes_ablation.endpoints.sbc import FamilyAdapter, Simulated, generative_draws, scalar_draws
from bayes_ablation.spec.plan import AnalysisSpec


class WeibullIpdAdAdapter(FamilyAdapter):
    family = "weibull_ipd_ad"
    design_defaults: Mapping[str, float | int] = {
        "n_ipd": 2,
        "ipd_patients": 200,
        "ipd_sites": 4,
        "n_aggregate": 4,
        "se_min": 0.15,
        "se_max": 0.35,
        "accrual_months": 24.0,
        "followup_months": 36.0,
        "dropout_per_month": 0.005,
    }

    def check(self, spec: AnalysisSpec) -> list[str]:
        return ["site x arm slopes are not simulated by the IPD+AD validation adapter"] \
            if spec.hierarchy.site_arm_slopes else []

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = ["mu", "tau"]
        if spec.hierarchy.site_intercepts:
            names.append("sigma_site")
        return names

    def key_parameters(self, spec: AnalysisSpec) -> list[str]:
        return [*self.generative_parameters(spec), "theta[ipd1]", "theta[ad1]", "theta_new",
                "log_cumhaz_ref[ipd1]", "weibull_shape[ipd1]"]

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        import pandas as pd

        from bayes_ablation.data.schema import patients_from_frame
        from bayes_ablation.data.simulate import simulate_trial
        from bayes_ablation.data.studies import StudyTable
        from bayes_ablation.endpoints.prior_draws import draw_prior

        n_ipd, n_ad = int(design["n_ipd"]), int(design["n_aggregate"])
        mu, tau = float(params["mu"]), float(params["tau"])
        sigma_site = float(params.get("sigma_site", 0.0))
        t_ref = float(spec.model_options.get("time_ref_months", 12.0))
        ipd_names = [f"ipd{j + 1}" for j in range(n_ipd)]
        ad_names = [f"ad{i + 1}" for i in range(n_ad)]
        theta = mu + tau * rng.normal(size=n_ipd + n_ad)
        theta_new = mu + tau * rng.normal()
        alpha = [draw_prior(spec.priors["log_cumhaz_ref"], rng) for _ in ipd_names]
        shape = [draw_prior(spec.priors["weibull_shape"], rng) for _ in ipd_names]
        ipd, events = {}, 0.0
        arms = ("reference", "experimental")
        for j, name in enumerate(ipd_names):
            k = shape[j]
            log_lam0 = alpha[j] - k * np.log(t_ref)
            sim = simulate_trial(
                int(design["ipd_patients"]), int(design["ipd_sites"]), float(theta[j]),
                seed=int(rng.integers(0, 2**63 - 1)), arms=arms, weibull_shape=k,
                median_ref_months=float(np.exp((np.log(np.log(2.0)) - log_lam0) / k)),
                sigma_site=sigma_site, accrual_months=float(design["accrual_months"]),
                followup_months=float(design["followup_months"]),
                dropout_per_month=float(design["dropout_per_month"]), time_ref_months=t_ref)
            frame = sim.frame.copy()
            frame["time_months"] = np.maximum(np.minimum(
                sim.details["event_time_months"].to_numpy(),
                sim.details["censor_time_months"].to_numpy()), MIN_TIME_MONTHS)
            ipd[name] = patients_from_frame(frame, reference_arm=arms[0],
                                            source=f"<simulated {name}>")
            events += float(frame["event"].sum())
        se = np.linspace(float(design["se_min"]), float(design["se_max"]), n_ad)
        y = rng.normal(theta[n_ipd:], se)
        z95 = 1.959963984540054
        rows = [{"study": s, "evidence": "ipd", "log_hr": np.nan, "se": np.nan, "hr": np.nan,
                 "ci_low": np.nan, "ci_high": np.nan, "ci_level": np.nan, "ipd_file": "",
                 "reference_arm": arms[0]} for s in ipd_names]
        rows += [{"study": s, "evidence": "log_hr", "log_hr": yi, "se": si, "hr": np.exp(yi),
                  "ci_low": np.exp(yi - z95 * si), "ci_high": np.exp(yi + z95 * si),
                  "ci_level": 0.95, "ipd_file": "", "reference_arm": ""}
                 for s, yi, si in zip(ad_names, y, se, strict=True)]
        studies = StudyTable(frame=pd.DataFrame(rows), source="<simulated>", sha256="", ipd=ipd)
        names = ipd_names + ad_names
        truth: dict[str, Any] = {**params, "theta_new": float(theta_new)}
        truth.update({f"theta[{s}]": float(t) for s, t in zip(names, theta, strict=True)})
        truth.update({f"log_cumhaz_ref[{s}]": a for s, a in zip(ipd_names, alpha, strict=True)})
        truth.update({f"weibull_shape[{s}]": k for s, k in zip(ipd_names, shape, strict=True)})
        summary = {"ipd_events": events, "mean_y": float(y.mean()) if n_ad else float("nan")}
        return Simulated(data=studies, truth=truth, summary=summary)

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        out = generative_draws(self, posterior, spec)
        out["theta[ipd1]"] = scalar_draws(posterior, "theta", study="ipd1")
        out["theta[ad1]"] = scalar_draws(posterior, "theta", study="ad1")
        out["theta_new"] = scalar_draws(posterior, "theta_new")
        out["log_cumhaz_ref[ipd1]"] = scalar_draws(posterior, "log_cumhaz_ref", ipd_study="ipd1")
        out["weibull_shape[ipd1]"] = scalar_draws(posterior, "weibull_shape", ipd_study="ipd1")
        return out

    def truth_values(self, truth: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, float]:
        return {name: float(truth[name]) for name in self.key_parameters(spec)}


ADAPTER = WeibullIpdAdAdapter()
