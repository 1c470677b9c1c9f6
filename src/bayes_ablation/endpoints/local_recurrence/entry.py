"""The local recurrence (LR) endpoint and its model families (Weibull and piecewise-exponential
LR baseline hazards, Weibull death hazard competing): one entry each.

Per lesion j of patient i at site s: cause-specific LR hazard
h_ij(t) = h_0(t) exp(β_a(i) + x_ij γ + v_i + u_s), v_i ~ N(0, σ_patient²), observed only at
scans (interval-censored); per patient, a Weibull death hazard with an arm effect. See
:mod:`bayes_ablation.endpoints.local_recurrence.model`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import xarray as xr

from bayes_ablation.data.lesions import LesionTable
from bayes_ablation.data.schema import PatientTable, covariate_coding
from bayes_ablation.endpoints.local_recurrence import checks as lr_checks_module
from bayes_ablation.endpoints.local_recurrence import estimands
from bayes_ablation.endpoints.local_recurrence.sbc import ADAPTER_PWE, ADAPTER_WEIBULL
from bayes_ablation.endpoints.registry import Endpoint, Family, KernelParts, Prepared
from bayes_ablation.errors import InputError
from bayes_ablation.spec.plan import AnalysisSpec


def _build_lr_weibull(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """:func:`bayes_ablation.endpoints.local_recurrence.model.build_lr_weibull_model` (PyMC
    imported here: a fit from a record needs no model)."""
    from bayes_ablation.endpoints.local_recurrence import model

    return model.build_lr_weibull_model(spec, data, **kwargs)


def _build_lr_pwe(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """:func:`bayes_ablation.endpoints.local_recurrence.model.build_lr_pwe_model` (PyMC
    imported here)."""
    from bayes_ablation.endpoints.local_recurrence import model

    return model.build_lr_pwe_model(spec, data, **kwargs)


def _lr_cfuncs() -> tuple[Any, Any]:
    from bayes_ablation.endpoints.local_recurrence import numba_kernels

    return numba_kernels.lr_cfuncs()


def _lr_kernel() -> KernelParts:
    """One cached kernel for both LR families (the plan's buffer says which baseline)."""
    from bayes_ablation.endpoints.local_recurrence import fastpath

    return KernelParts(plan=fastpath.lr_plan, buffer=fastpath.lr_buffer, cfuncs=_lr_cfuncs)


LR_WEIBULL = Family(name="lr_weibull", endpoint="local_recurrence",
                    build=_build_lr_weibull, kernel=_lr_kernel(),
                    sbc_adapter=ADAPTER_WEIBULL)
LR_PWE = Family(name="lr_pwe", endpoint="local_recurrence", build=_build_lr_pwe,
                kernel=_lr_kernel(), sbc_adapter=ADAPTER_PWE)

#: the LR checks' replicated data sets (at least this many, whatever the caller asks)
MIN_CHECK_DRAWS = 200


def prepare(spec: AnalysisSpec, patients: PatientTable, lesions: LesionTable | None
            ) -> Prepared:
    if lesions is None:
        raise InputError("the local_recurrence endpoint needs a lesion table: "
                                 "fit(spec, patients, lesions=...)")
    if lesions.patients is not patients and lesions.patients.sha256 != patients.sha256:
        raise InputError("the lesion table was validated against another patient "
                                 "table; read both with data.lesions.read_lr_data")
    provenance = {
        "data_source": f"{patients.source} + {lesions.source}",
        "data_sha256": hashlib.sha256(f"{patients.sha256}{lesions.sha256}".encode()).hexdigest(),
        "patients_source": patients.source,
        "patients_sha256": patients.sha256,
        "lesions_source": lesions.source,
        "lesions_sha256": lesions.sha256,
        "n_patients": patients.n_patients,
        "n_lesions": lesions.n_lesions,
        "arms": list(patients.arms),
        "sites": list(patients.sites),
    }
    # z_patient has one element per patient: the compiled model's shape depends on it (the
    # number of lesions may change: lesion data are swapped in with ``with_data``)
    return Prepared(model_data=lesions, provenance=provenance, summary=lesions.summary(),
                    arms=tuple(patients.arms),
                    compile_extra=(spec.covariates, patients.n_patients),
                    tables={"patients": patients, "lesions": lesions})


def lr_checks(idata: xr.DataTree, spec: AnalysisSpec, prepared: Prepared, n_draws: int,
              seed: int) -> dict[str, xr.Dataset]:
    return lr_checks_module.lr_ppc(idata, spec, prepared.tables["lesions"],
                         n_draws=max(n_draws, MIN_CHECK_DRAWS), seed=seed)


def summary_entries(spec: AnalysisSpec, prepared: Prepared, checks: dict[str, xr.Dataset],
                    model_details: dict[str, Any]) -> dict[str, Any]:
    ref = spec.model_options.get("reference_lesion", {"size_cm": 2.0, "margin_mm": 10.0})
    out = {
        "posterior_predictive": {},
        "posterior_predictive_lr": {
            name: {str(g): {v: float(ds[v].sel(group=g)) for v in ds.data_vars
                            if ds[v].dims == ("group",)} for g in ds["group"].values}
            for name, ds in checks.items()},
        "reference_lesion": dict(ref),
        "estimand_notes": {
            "hr": "LR hazard ratio conditional on patient frailty and site",
            "cif_lr": "cumulative incidence of LR per lesion with death competing",
            "populations": "typical_patient: v=u=0; average_site: frailty integrated, u=0; "
                           "new_site: frailty and site integrated",
        },
    }
    if spec.design == "cohort":
        out["estimand_notes"].update({
            "ATE": "CIF of LR per lesion, every analysed lesion under each arm (frailty "
                   "integrated, own site), cluster Bayesian bootstrap over patients",
            "ATT": "the same over the lesions of the patients who received the treatment",
            "hr": "LR hazard ratio conditional on covariates, patient frailty and site"})
    if model_details:
        out["model_details"] = model_details
    lesions = prepared.tables["lesions"]
    if lesions.covariates:
        out["covariate_coding"] = covariate_coding(lesions.frame, lesions.covariates)
    return out


def headline(table: pd.DataFrame) -> list[str]:
    """The LR HR and the standardised, population-averaged CIF difference; in a cohort the
    ATE / ATT CIF differences instead of the latter."""
    causal = ["ate_cif_lr_difference", "att_cif_lr_difference"]
    if table["estimand"].isin(causal).any():
        return table[table["estimand"].isin(["hr", *causal])]["label"].tolist()
    return table[(table["estimand"] == "hr") | (
        (table["estimand"] == "cif_lr_difference")
        & (table.get("lesion_target") == "standardised")
        & (table.get("population") == "average_site"))]["label"].tolist()


ENDPOINT = Endpoint(name="local_recurrence", prepare=prepare,
                    estimands=estimands.compute_lr_estimands,
                    probabilities=estimands.lr_probabilities, checks=lr_checks,
                    summary_entries=summary_entries, headline=headline)
