"""Validation adapter of a Weibull PFS spec with ``[borrowing]`` (methods ``full`` and
``commensurate``): the generative model includes the external controls.

Parameters: the Weibull adapter's (α, k, log HR, site sds) and, for ``commensurate``, the
precision τ ~ ``[borrowing.precision]`` and the offset δ ~ N(0, 1/τ) (``full``: δ = 0; the
fitted model integrates τ out and draws it given δ afterwards, as ``fit`` does). The
internal trial is simulated as by :class:`~bayes_ablation.endpoints.pfs.sbc.WeibullAdapter`;
``n_external`` external control patients (no site effects, as in the model) have baseline
α + δ, the same shape k and the same accrual, follow-up and dropout. ``power`` (a0-discounted
likelihood) and ``map`` (prior from a study table) have no data-generating model of this kind
and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_ablation.endpoints.pfs.sbc import MIN_TIME_MONTHS, PFS_DESIGN_DEFAULTS, WeibullAdapter
from bayes_ablation.endpoints.sbc import Simulated
from bayes_ablation.spec.plan import AnalysisSpec

_EXTRA = ("commensurate_precision", "external_offset")
#: the Weibull adapter's simulated trial plus this many external control patients
BORROWING_DESIGN_DEFAULTS: Mapping[str, float | int] = {**PFS_DESIGN_DEFAULTS, "n_external": 200}


class BorrowingAdapter(WeibullAdapter):
    family = "weibull"
    design_defaults = BORROWING_DESIGN_DEFAULTS

    def check(self, spec: AnalysisSpec) -> list[str]:
        problems = super().check(spec)
        method = spec.borrowing.method
        if method not in ("full", "commensurate"):
            problems.append(f"[borrowing] method {method!r} has no data-generating model for "
                            "simulation-based calibration (supported: full, commensurate)")
        return problems

    def _commensurate(self, spec: AnalysisSpec) -> bool:
        return spec.borrowing.method == "commensurate"

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        return super().generative_parameters(spec) + (list(_EXTRA) if self._commensurate(spec)
                                                      else [])

    def draw_parameters(self, spec: AnalysisSpec, rng: np.random.Generator) -> dict[str, float]:
        from bayes_ablation.endpoints.prior_draws import draw_prior

        params = {name: draw_prior(spec.priors[name], rng)
                  for name in super().generative_parameters(spec)}
        if self._commensurate(spec):
            tau = float(draw_prior(spec.borrowing.precision, rng))
            params["commensurate_precision"] = tau
            params["external_offset"] = float(rng.normal(0.0, 1.0 / np.sqrt(tau)))
        return params

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        from bayes_ablation.endpoints.borrowing.precision import complete_posterior

        if hasattr(posterior, "to_dataset"):  # a DataTree node
            posterior = posterior.to_dataset()
        return super().posterior_draws(complete_posterior(posterior, spec), spec)

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        from bayes_ablation.data.borrowing import read_external
        from bayes_ablation.data.simulate import simulate_trial
        from bayes_ablation.endpoints.borrowing.model import BorrowingData

        internal = super().simulate(spec, params, design, rng)
        t_ref = float(spec.model_options.get("time_ref_months", 12.0))
        k = float(params["weibull_shape"])
        offset = float(params.get("external_offset", 0.0))
        log_lam0 = float(params["log_cumhaz_ref"]) + offset - k * np.log(t_ref)
        median = float(np.exp((np.log(np.log(2.0)) - log_lam0) / k))
        n_ext = int(design["n_external"])
        arms = (spec.reference_arm or "reference", "other")
        sim = simulate_trial(
            2 * n_ext + 40, 1, 0.0, seed=int(rng.integers(0, 2**63 - 1)), arms=arms,
            weibull_shape=k, median_ref_months=median, sigma_site=0.0,
            accrual_months=float(design["accrual_months"]),
            followup_months=float(design["followup_months"]),
            dropout_per_month=float(design["dropout_per_month"]), time_ref_months=t_ref)
        exact = np.minimum(sim.details["event_time_months"].to_numpy(),
                           sim.details["censor_time_months"].to_numpy())
        frame = sim.frame.copy()
        frame["time_months"] = np.maximum(exact, MIN_TIME_MONTHS)
        frame = frame[frame["arm"] == arms[0]].head(n_ext).reset_index(drop=True)
        frame["patient_id"] = [f"X{i:05d}" for i in range(len(frame))]
        external = read_external(frame, spec)
        truth: dict[str, Any] = dict(internal.truth)
        for name in _EXTRA:
            if name in params:
                truth[name] = float(params[name])
        summary = {**internal.summary, "n_external": float(len(frame)),
                   "external_events": float(frame["event"].sum())}
        return Simulated(data=BorrowingData(internal.data, external), truth=truth,
                         summary=summary)


ADAPTER = BorrowingAdapter()
