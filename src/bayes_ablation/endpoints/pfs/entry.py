"""The PFS endpoint and its model families (Weibull, piecewise exponential): one entry each.

Per patient i at site s(i) in arm a(i) with covariates x_i, progression or death (whichever
first) at t_i months, right-censored: h_i(t) = h_0(t) exp(β_a(i) + u_s(i) [+ v_s(i),a(i)] + x_i γ),
u_s ~ N(0, σ_site²). See :mod:`bayes_ablation.endpoints.pfs.model` for the graphs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.data.schema import PatientTable, covariate_coding
from bayes_ablation.endpoints.pfs import checks as pfs_checks
from bayes_ablation.endpoints.pfs import estimands, loglik, predictive
from bayes_ablation.endpoints.pfs.sbc import ADAPTER as WEIBULL_ADAPTER
from bayes_ablation.endpoints.pfs.sbc_pwe import ADAPTER as PWE_ADAPTER
from bayes_ablation.endpoints.registry import Endpoint, Family, KernelParts, Prepared
from bayes_ablation.errors import InputError
from bayes_ablation.spec.plan import AnalysisSpec


def _build_weibull(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """:func:`bayes_ablation.endpoints.pfs.model.build_weibull_model` (PyMC imported here:
    a fit from a record needs no model)."""
    from bayes_ablation.endpoints.pfs import model

    return model.build_weibull_model(spec, data, **kwargs)


def _build_pwe(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """:func:`bayes_ablation.endpoints.pfs.model.build_pwe_model` (PyMC imported here)."""
    from bayes_ablation.endpoints.pfs import model

    return model.build_pwe_model(spec, data, **kwargs)


def _weibull_cfuncs() -> tuple[Any, Any]:
    from bayes_ablation.endpoints.pfs import numba_kernels

    return numba_kernels.weibull_cfuncs()


def _weibull_kernel() -> KernelParts:
    from bayes_ablation.endpoints.pfs import fastpath

    return KernelParts(plan=fastpath.weibull_plan, buffer=fastpath.weibull_buffer,
                       cfuncs=_weibull_cfuncs)


def _pwe_cfuncs() -> tuple[Any, Any]:
    from bayes_ablation.endpoints.pfs import numba_kernels

    return numba_kernels.pwe_cfuncs()


def _pwe_kernel() -> KernelParts:
    from bayes_ablation.endpoints.pfs import fastpath

    return KernelParts(plan=fastpath.pwe_plan, buffer=fastpath.pwe_buffer, cfuncs=_pwe_cfuncs)


WEIBULL = Family(
    name="weibull", endpoint="pfs", build=_build_weibull,
    log_cumhaz=estimands.weibull_log_cumhaz,
    simulate_event_times=predictive.weibull_event_times,
    patient_loglik=loglik.weibull_patient_loglik,
    kernel=_weibull_kernel(), sbc_adapter=WEIBULL_ADAPTER)

PIECEWISE_EXPONENTIAL = Family(
    name="piecewise_exponential", endpoint="pfs", build=_build_pwe,
    log_cumhaz=estimands.pwe_log_cumhaz, extra_estimands=estimands.pwe_extra_estimands,
    simulate_event_times=predictive.pwe_event_times,
    patient_loglik=loglik.pwe_patient_loglik, kernel=_pwe_kernel(), sbc_adapter=PWE_ADAPTER)


def prepare(spec: AnalysisSpec, patients: PatientTable, lesions: Any = None) -> Prepared:
    if lesions is not None:
        raise InputError(f"spec {spec.name!r} (endpoint pfs) is fitted on the patient "
                                 "table alone; lesions= is for the local_recurrence endpoint")
    return Prepared(
        model_data=patients,
        provenance={"data_source": patients.source, "data_sha256": patients.sha256,
                    "n_patients": patients.n_patients, "arms": list(patients.arms),
                    "sites": list(patients.sites),
                    **({"input_mapping": patients.extra["input_mapping"]}
                       if "input_mapping" in patients.extra else {})},
        summary=patients.summary(), arms=tuple(patients.arms), tables={"patients": patients})


def km_checks(idata: xr.DataTree, spec: AnalysisSpec, prepared: Prepared, n_draws: int,
              seed: int) -> dict[str, xr.Dataset]:
    patients = prepared.tables["patients"]
    cdata = idata.constant_data    # the labels as codes into the model's arms and sites
    arm = pd.Categorical.from_codes(np.asarray(cdata["arm_idx"].values), list(patients.arms))
    site = pd.Categorical.from_codes(np.asarray(cdata["site_idx"].values), list(patients.sites))
    return pfs_checks.survival_ppc(idata, spec, arm, site, n_draws=n_draws, seed=seed,
                                   arm_order=list(patients.arms))


def summary_entries(spec: AnalysisSpec, prepared: Prepared, checks: dict[str, xr.Dataset],
                    model_details: dict[str, Any]) -> dict[str, Any]:
    """``posterior_predictive``: per level and group, the share of the observed KM curve inside
    the predictive band and P(replicated events ≥ observed); ``posterior_predictive_sample``:
    how many patients the check used (a stratified subsample above 20,000); ``model_details``."""
    out: dict[str, Any] = {"posterior_predictive": {
        name: {str(g): {"km_band_coverage": float(ds["coverage"].sel(group=g)),
                        "events_p_value": float(ds["events_p_value"].sel(group=g))}
               for g in ds["group"].values}
        for name, ds in checks.items()}}
    sample = next(iter(checks.values())).attrs if checks else {}
    if "patients_checked" in sample:
        out["posterior_predictive_sample"] = {k: sample[k] for k in (
            "patients_checked", "patients_total", "patients_sampled")}
    if model_details:
        out["model_details"] = model_details
    if spec.design == "cohort":
        out["estimand_notes"] = dict(estimands.CAUSAL_NOTES)
    patients = prepared.tables["patients"]
    if patients.covariates:
        out["covariate_coding"] = covariate_coding(patients.frame, patients.covariates)
    return out


def headline(table: pd.DataFrame) -> list[str]:
    """The HR and the RMST difference; in a cohort, the causal (ATE, ATT) RMST differences
    next to the conditional HR."""
    causal = ["ate_rmst_difference", "att_rmst_difference"]
    wanted = ["hr", *causal] if table["estimand"].isin(causal).any() else ["hr",
                                                                           "rmst_difference"]
    return table[table["estimand"].isin(wanted)]["label"].tolist()


ENDPOINT = Endpoint(name="pfs", prepare=prepare, estimands=estimands.compute_estimands,
                    probabilities=estimands.probabilities, checks=km_checks,
                    summary_entries=summary_entries, headline=headline, pointwise_loglik=True)
