"""Validation adapter for the hierarchical Weibull PH model (family ``weibull``).

Parameters → :func:`bayes_ablation.data.simulate.simulate_trial`: the spec's α =
``log_cumhaz_ref`` (log H₀ at t_ref) and shape k give λ₀ = exp(α − k log t_ref) and the
simulator's reference median (log 2 / λ₀)^(1/k); ``log_hr``, ``sigma_site`` (0 without site
intercepts) and ``sigma_site_arm`` pass through; the simulator draws the site effects
u_s ~ N(0, σ_site²) itself, as the model's prior does. Patient times are taken unrounded from
the simulator's latent details (the CSV-style table rounds to 1e-4 months, which would move
very early events away from the model's likelihood).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_ablation.endpoints.sbc import (
    FamilyAdapter,
    Simulated,
    add_first_site,
    generative_draws,
    generative_truth,
    site_sd_parameters,
)
from bayes_ablation.spec.plan import AnalysisSpec

#: times below this (months) are raised to it so that log t stays finite (counted per data set)
MIN_TIME_MONTHS = 1e-12


#: default simulated trial of the patient-level PFS adapters (Weibull, piecewise exponential)
PFS_DESIGN_DEFAULTS: Mapping[str, float | int] = {
    "n_patients": 400,
    "n_sites": 8,
    "accrual_months": 24.0,
    "followup_months": 36.0,
    "dropout_per_month": 0.005,
}


class WeibullAdapter(FamilyAdapter):
    family = "weibull"
    design_defaults = PFS_DESIGN_DEFAULTS

    def check(self, spec: AnalysisSpec) -> list[str]:
        problems = []
        if spec.covariates:
            problems.append("covariates are not simulated by the Weibull validation adapter "
                            "(the model centres them at the sample mean; simulate_trial at "
                            "the population mean)")
        return problems

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = ["log_hr", "log_cumhaz_ref", "weibull_shape"]
        return names + site_sd_parameters(spec)

    def key_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = self.generative_parameters(spec)
        if spec.hierarchy.site_intercepts:
            names.append("u_site[S01]")
        return names

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        from bayes_ablation.data.schema import patients_from_frame
        from bayes_ablation.data.simulate import simulate_trial

        t_ref = float(spec.model_options.get("time_ref_months", 12.0))
        k = float(params["weibull_shape"])
        log_lam0 = float(params["log_cumhaz_ref"]) - k * np.log(t_ref)
        median = float(np.exp((np.log(np.log(2.0)) - log_lam0) / k))
        arms = (spec.reference_arm or "reference", "experimental")
        sim = simulate_trial(
            int(design["n_patients"]), int(design["n_sites"]), float(params["log_hr"]),
            seed=int(rng.integers(0, 2**63 - 1)), arms=arms, weibull_shape=k,
            median_ref_months=median, sigma_site=float(params.get("sigma_site", 0.0)),
            sigma_site_arm=float(params.get("sigma_site_arm", 0.0)),
            accrual_months=float(design["accrual_months"]),
            followup_months=float(design["followup_months"]),
            dropout_per_month=float(design["dropout_per_month"]), time_ref_months=t_ref)
        exact = np.minimum(sim.details["event_time_months"].to_numpy(),
                           sim.details["censor_time_months"].to_numpy())
        frame = sim.frame.copy()
        frame["time_months"] = np.maximum(exact, MIN_TIME_MONTHS)
        patients = patients_from_frame(frame, reference_arm=arms[0], source="<simulated>")
        event = frame["event"].to_numpy()
        summary = {
            "n_patients": float(len(frame)),
            "n_events": float(event.sum()),
            "events_reference": float(event[frame["arm"].to_numpy() == arms[0]].sum()),
            "events_experimental": float(event[frame["arm"].to_numpy() == arms[1]].sum()),
            "median_time_months": float(np.median(exact)),
            "times_raised_to_minimum": float(np.sum(exact < MIN_TIME_MONTHS)),
        }
        return Simulated(data=patients, truth=dict(sim.truth), summary=summary)

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        return add_first_site(generative_draws(self, posterior, spec), spec, posterior=posterior)

    def truth_values(self, truth: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, float]:
        return add_first_site(generative_truth(self, truth, spec), spec, truth=truth)


ADAPTER = WeibullAdapter()
