"""Validation adapter for the hierarchical piecewise-exponential model (family
``piecewise_exponential``).

Fixed cut points. With ``cuts = {method = "quantiles", count = J}`` the model's intervals depend
on the observed event times, which is not a generative model (the parameters' meaning would
change with the data). Every simulation of a study therefore fits the spec with *fixed* cut
points (:meth:`study_spec`, recorded in the bundle's ``spec.toml``): the J-quantiles of the
event times of a large template trial with the design's accrual, follow-up and dropout and a
constant hazard exp(prior median of ``log_hazard_mean``) in both arms — where the spec's rule
would put them on typical data. Given the cuts, the model is validated exactly as specified.

Parameters → :func:`bayes_ablation.data.simulate.simulate_trial` with a piecewise-constant
baseline: the random-walk steps z_j ~ N(0, 1) of the baseline (and of the log HR, with a
time-varying effect) are drawn here as the model's prior does; log λ_j = μ + σ_λ (w_j − w̄),
log HR_j = β + σ_δ (w^δ_j − w̄^δ), passed as ``baseline_hazards`` and (time-varying) per-interval
``log_hr`` on the same cut points. Unrounded times as in the Weibull adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_ablation.endpoints.pfs.sbc import MIN_TIME_MONTHS, PFS_DESIGN_DEFAULTS
from bayes_ablation.endpoints.sbc import (
    FamilyAdapter,
    Simulated,
    add_first_site,
    generative_draws,
    generative_truth,
    scalar_draws,
    site_sd_parameters,
)
from bayes_ablation.spec.plan import AnalysisSpec

TEMPLATE_PATIENTS = 20000
TEMPLATE_SEED = 20261130


def _centred_walk(sigma: float, steps: np.ndarray) -> np.ndarray:
    walk = np.concatenate([np.zeros((*steps.shape[:-1], 1)), np.cumsum(steps, axis=-1)], axis=-1)
    return sigma * (walk - walk.mean(axis=-1, keepdims=True))


class PiecewiseExponentialAdapter(FamilyAdapter):
    family = "piecewise_exponential"
    design_defaults = PFS_DESIGN_DEFAULTS

    def check(self, spec: AnalysisSpec) -> list[str]:
        return ["covariates are not simulated by the piecewise-exponential validation adapter"] \
            if spec.covariates else []

    def study_spec(self, spec: AnalysisSpec, design: Mapping[str, float | int]) -> AnalysisSpec:
        if spec.model_options.get("cuts_months") is not None:
            return spec
        from bayes_ablation.data.aggregate import quantile_cuts
        from bayes_ablation.data.schema import patients_from_frame
        from bayes_ablation.data.simulate import simulate_trial

        count = int(spec.model_options["cuts"]["count"])
        hazard = float(np.exp(_prior_median(spec.priors["log_hazard_mean"])))
        template = simulate_trial(
            TEMPLATE_PATIENTS, 1, 0.0, seed=TEMPLATE_SEED, weibull_shape=1.0,
            median_ref_months=float(np.log(2.0) / hazard), sigma_site=0.0,
            accrual_months=float(design["accrual_months"]),
            followup_months=float(design["followup_months"]),
            dropout_per_month=float(design["dropout_per_month"]))
        patients = patients_from_frame(template.frame, reference_arm="postoperative")
        cuts = [round(float(c), 3) for c in quantile_cuts(patients, count)]
        return spec.updated(model={"cuts": None, "cuts_months": cuts})

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = ["log_hr", "log_hazard_mean", "sigma_log_hazard_rw"]
        if spec.model_options.get("time_varying_hr", False):
            names.append("sigma_log_hr_rw")
        return names + site_sd_parameters(spec)

    def key_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = [*self.generative_parameters(spec), "log_hazard[first]", "log_hazard[last]"]
        if spec.model_options.get("time_varying_hr", False):
            names.append("log_hr_interval[last]")
        if spec.hierarchy.site_intercepts:
            names.append("u_site[S01]")
        return names

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        from bayes_ablation.data.schema import patients_from_frame
        from bayes_ablation.data.simulate import simulate_trial

        cuts = np.asarray(spec.model_options["cuts_months"], dtype=float)
        n_int = cuts.size + 1
        log_hazard = float(params["log_hazard_mean"]) + _centred_walk(
            float(params["sigma_log_hazard_rw"]), rng.normal(size=n_int - 1))
        time_varying = bool(spec.model_options.get("time_varying_hr", False))
        if time_varying:
            log_hr: Any = (float(params["log_hr"]) + _centred_walk(
                float(params["sigma_log_hr_rw"]), rng.normal(size=n_int - 1))).tolist()
        else:
            log_hr = float(params["log_hr"])
        arms = (spec.reference_arm or "reference", "experimental")
        sim = simulate_trial(
            int(design["n_patients"]), int(design["n_sites"]), log_hr,
            seed=int(rng.integers(0, 2**63 - 1)), arms=arms,
            sigma_site=float(params.get("sigma_site", 0.0)),
            sigma_site_arm=float(params.get("sigma_site_arm", 0.0)),
            accrual_months=float(design["accrual_months"]),
            followup_months=float(design["followup_months"]),
            dropout_per_month=float(design["dropout_per_month"]),
            baseline_cuts_months=cuts, baseline_hazards=np.exp(log_hazard),
            hr_cuts_months=cuts if time_varying else None)
        exact = np.minimum(sim.details["event_time_months"].to_numpy(),
                           sim.details["censor_time_months"].to_numpy())
        frame = sim.frame.copy()
        frame["time_months"] = np.maximum(exact, MIN_TIME_MONTHS)
        patients = patients_from_frame(frame, reference_arm=arms[0], source="<simulated>")
        event = frame["event"].to_numpy()
        truth = {**sim.truth, **params}
        summary = {
            "n_patients": float(len(frame)),
            "n_events": float(event.sum()),
            "events_reference": float(event[frame["arm"].to_numpy() == arms[0]].sum()),
            "events_experimental": float(event[frame["arm"].to_numpy() == arms[1]].sum()),
            "events_last_interval": float(np.sum(event[exact > cuts[-1]])),
            "median_time_months": float(np.median(exact)),
        }
        return Simulated(data=patients, truth=truth, summary=summary)

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        out = generative_draws(self, posterior, spec)
        n_int = posterior.sizes["interval"]
        out["log_hazard[first]"] = scalar_draws(posterior.isel(interval=0), "log_hazard")
        out["log_hazard[last]"] = scalar_draws(posterior.isel(interval=n_int - 1), "log_hazard")
        if spec.model_options.get("time_varying_hr", False):
            out["log_hr_interval[last]"] = scalar_draws(posterior.isel(interval=n_int - 1),
                                                        "log_hr_interval")
        return add_first_site(out, spec, posterior=posterior)

    def truth_values(self, truth: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, float]:
        out = generative_truth(self, truth, spec)
        out["log_hazard[first]"] = float(truth["log_hazard"][0])
        out["log_hazard[last]"] = float(truth["log_hazard"][-1])
        if spec.model_options.get("time_varying_hr", False):
            out["log_hr_interval[last]"] = float(np.asarray(truth["log_hr_by_interval"])[0, -1])
        return add_first_site(out, spec, truth=truth)


def _prior_median(prior: Any) -> float:
    """Median of a normal / Student-t prior (its location)."""
    if prior.family not in ("normal", "studentt"):
        raise ValueError(f"log_hazard_mean prior family {prior.family!r}: expected normal")
    return float(prior.params["mu"])


ADAPTER = PiecewiseExponentialAdapter()
