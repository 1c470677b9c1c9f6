"""Validation adapter for the lesion-level local recurrence models (``lr_weibull``, ``lr_pwe``).

Simulator: :func:`bayes_ablation.data.simulate_lr.simulate_lr_trial` (lesions nested in
patients nested in sites, interval censoring at jittered and missed scans, death competing).
Its LR hazard is written for a reference lesion (2 cm, margin ≥ 5 mm, MWA); the models' α (or
log λ_j) refer to x = 0 with numeric covariates centred at their *realised* means. The adapter
therefore simulates twice with the same seed: the first pass gives the lesions' covariate means
(drawn before any event time, so identical in both passes), the second uses the reference-lesion
baseline that makes the model's parameter equal to the prior draw:

    log λ₀,ref = α − k log t_ref − γ_size (mean size − 2) − γ_margin · mean(margin < 5 mm)

(``lr_pwe``: log λ_j,ref = log λ_j − the same shift). The second pass's truth is checked against
the draw. Death: Weibull with α_D, k_D, β_D from the priors (median passed to the simulator).
The spec's covariates must be the simulator's (``size_cm``, ``margin_lt_5mm``, ``modality``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_ablation.endpoints.sbc import FamilyAdapter, Simulated, scalar_draws
from bayes_ablation.spec.plan import AnalysisSpec

SIM_COVARIATES = {"size_cm": "beta_size_per_cm", "margin_lt_5mm": "beta_margin_lt_5mm",
                  "modality[RFA]": "beta_rfa"}


class LocalRecurrenceAdapter(FamilyAdapter):
    design_defaults: Mapping[str, float | int] = {
        "n_patients": 200,
        "n_sites": 6,
        "accrual_months": 24.0,
        "followup_months": 36.0,
        "dropout_per_month": 0.003,
    }

    def __init__(self, family: str) -> None:
        self.family = family

    @property
    def piecewise(self) -> bool:
        return self.family == "lr_pwe"

    def check(self, spec: AnalysisSpec) -> list[str]:
        problems = []
        if sorted(spec.covariates) != ["margin_lt_5mm", "modality", "size_cm"]:
            problems.append("the LR validation adapter simulates exactly the covariates "
                            f"size_cm, margin_lt_5mm, modality; the spec has {spec.covariates}")
        if spec.hierarchy.site_arm_slopes:
            problems.append("site x arm slopes are not simulated by simulate_lr_trial")
        if not spec.hierarchy.site_intercepts:
            problems.append("simulate_lr_trial always has site intercepts")
        return problems

    def _frailty(self, spec: AnalysisSpec) -> bool:
        return bool(spec.model_options.get("patient_frailty", True))

    def _cuts(self, spec: AnalysisSpec) -> tuple[float, ...]:
        from bayes_ablation.survival.piecewise import DEFAULT_CUTS_MONTHS

        return tuple(spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS))

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = ["log_hr"]
        if self.piecewise:
            names += [f"log_hazard_baseline[{j}]" for j in range(len(self._cuts(spec)) + 1)]
        else:
            names += ["log_cumhaz_ref", "weibull_shape"]
        names += [f"beta_covariates[{c}]" for c in SIM_COVARIATES]
        if self._frailty(spec):
            names.append("sigma_patient")
        names += ["sigma_site", "death_log_hr", "death_log_cumhaz_ref", "death_weibull_shape"]
        return names

    def draw_parameters(self, spec: AnalysisSpec, rng: np.random.Generator) -> dict[str, float]:
        from bayes_ablation.endpoints.prior_draws import draw_prior

        out = {}
        for name in self.generative_parameters(spec):
            base = name.split("[")[0]
            out[name] = draw_prior(spec.priors[base], rng)
        return out

    def key_parameters(self, spec: AnalysisSpec) -> list[str]:
        names = ["log_hr"]
        names += (["log_hazard_baseline[0]", f"log_hazard_baseline[{len(self._cuts(spec))}]"]
                  if self.piecewise else ["log_cumhaz_ref", "weibull_shape"])
        names += ["beta_covariates[margin_lt_5mm]"]
        if self._frailty(spec):
            names.append("sigma_patient")
        names += ["sigma_site", "death_log_hr", "death_weibull_shape"]
        return names

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        from bayes_ablation.data.lesions import lr_data_from_frames
        from bayes_ablation.data.simulate_lr import simulate_lr_trial

        t_ref = float(spec.model_options.get("time_ref_months", 12.0))
        beta = {arg: float(params[f"beta_covariates[{c}]"]) for c, arg in SIM_COVARIATES.items()}
        k_d = float(params["death_weibull_shape"])
        log_lam_d = float(params["death_log_cumhaz_ref"]) - k_d * np.log(t_ref)
        arms = (spec.reference_arm or "reference", "experimental")
        common: dict[str, Any] = dict(
            n_patients=int(design["n_patients"]), n_sites=int(design["n_sites"]),
            log_hr=float(params["log_hr"]), seed=int(rng.integers(0, 2**63 - 1)), arms=arms,
            **beta, sigma_patient=float(params.get("sigma_patient", 0.0)),
            sigma_site=float(params["sigma_site"]), death_log_hr=float(params["death_log_hr"]),
            death_weibull_shape=k_d,
            death_median_months=float(np.exp((np.log(np.log(2.0)) - log_lam_d) / k_d)),
            accrual_months=float(design["accrual_months"]),
            followup_months=float(design["followup_months"]),
            dropout_per_month=float(design["dropout_per_month"]), time_ref_months=t_ref)
        if self.piecewise:
            cuts = self._cuts(spec)
            log_rates = np.array([params[f"log_hazard_baseline[{j}]"]
                                  for j in range(len(cuts) + 1)])
            first = simulate_lr_trial(**common, lr_baseline_cuts_months=cuts,
                                      lr_baseline_hazards=np.ones(len(cuts) + 1))
            shift = self._shift(first.truth, beta)
            sim = simulate_lr_trial(**common, lr_baseline_cuts_months=cuts,
                                    lr_baseline_hazards=np.exp(log_rates - shift))
            reached = np.asarray(sim.truth["log_hazard_baseline"])
            wanted = log_rates
        else:
            k = float(params["weibull_shape"])
            first = simulate_lr_trial(**common, weibull_shape=k, lr_log_lambda0=0.0)
            log_lam0 = float(params["log_cumhaz_ref"]) - k * np.log(t_ref) \
                - self._shift(first.truth, beta)
            sim = simulate_lr_trial(**common, weibull_shape=k, lr_log_lambda0=log_lam0)
            reached = np.asarray([sim.truth["log_cumhaz_ref"]])
            wanted = np.asarray([params["log_cumhaz_ref"]])
        if not (first.lesions[["size_cm", "margin_mm", "modality"]]
                .equals(sim.lesions[["size_cm", "margin_mm", "modality"]])
                and np.allclose(reached, wanted, rtol=0, atol=1e-9)):
            raise RuntimeError("simulate_lr_trial drew different lesions in the two passes; "
                               "the LR adapter's baseline shift is invalid")
        lesions = lr_data_from_frames(sim.patients, sim.lesions, reference_arm=arms[0],
                                      covariates=spec.covariates, source="<simulated>")
        upper = sim.lesions["lr_upper_months"].to_numpy()
        truth = {**sim.truth, **params}
        summary = {
            "n_patients": float(len(sim.patients)),
            "n_lesions": float(len(sim.lesions)),
            "lr_observed": float(np.isfinite(upper).sum()),
            "deaths": float(sim.patients["died"].sum()),
            "median_followup_months": float(sim.patients["followup_months"].median()),
        }
        return Simulated(data=lesions, truth=truth, summary=summary)

    @staticmethod
    def _shift(truth: Mapping[str, Any], beta: Mapping[str, float]) -> float:
        return (beta["beta_size_per_cm"] * (float(truth["size_mean_cm"]) - 2.0)
                + beta["beta_margin_lt_5mm"] * float(truth["margin_lt_5mm_mean"]))

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        out = {}
        for name in self.key_parameters(spec):
            base, _, index = name.partition("[")
            index = index.rstrip("]")
            if base == "beta_covariates":
                out[name] = scalar_draws(posterior, base, covariate=index)
            elif base == "log_hazard_baseline":
                out[name] = scalar_draws(posterior.isel(interval=int(index)), base)
            else:
                out[name] = scalar_draws(posterior, base)
        return out

    def truth_values(self, truth: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, float]:
        return {name: float(truth[name]) for name in self.key_parameters(spec)}


ADAPTER_WEIBULL = LocalRecurrenceAdapter("lr_weibull")
ADAPTER_PWE = LocalRecurrenceAdapter("lr_pwe")
