"""Stage 1 of the two-stage approach: a trial's log HR and its standard error from patient data.

``weibull`` (default): maximum likelihood for the Weibull proportional-hazards model, the same
likelihood family the one-stage IPD + aggregate model uses, with sites as fixed effects
(lifelines ``WeibullAFTFitter``). The AFT fit S(t) = exp(−(t/λ)^ρ), log λ = x β, is the PH model
with log HR = −ρ β_treated; its SE follows by the delta method.
``cox``: stratified (by site) Cox partial likelihood (lifelines ``CoxPHFitter``).
The stage-2 pooling of these estimates with other studies is the exact normal–normal posterior
(:mod:`bayes_ablation.endpoints.meta.quadrature`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bayes_ablation.data.schema import PatientTable
from bayes_ablation.data.studies import StudyTable

METHODS = ("weibull", "cox")


def _design(patients: PatientTable) -> pd.DataFrame:
    f = patients.frame
    df = pd.DataFrame({"time": f["time_months"].to_numpy(float),
                       "event": f["event"].to_numpy(int),
                       "treated": (patients.arm_idx > 0).astype(float)})
    df["site"] = f["site"].astype(str).to_numpy()
    return df


def ipd_log_hr(patients: PatientTable, method: str = "weibull") -> tuple[float, float]:
    """(log HR, SE) of the experimental vs the reference arm of a two-arm trial."""
    from lifelines import CoxPHFitter, WeibullAFTFitter

    if len(patients.arms) != 2:
        raise ValueError(f"stage 1 needs a two-arm trial, got arms {list(patients.arms)}")
    df = _design(patients)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "cox":
            strata = ["site"] if df["site"].nunique() > 1 else None
            cols = ["time", "event", "treated"] + (["site"] if strata else [])
            fit = CoxPHFitter().fit(df[cols], "time", "event", strata=strata)
            return float(fit.params_["treated"]), float(fit.standard_errors_["treated"])
        if method != "weibull":
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        x = df[["time", "event", "treated"]].copy()
        sites = sorted(df["site"].unique())
        for s in sites[1:]:
            x[f"site_{s}"] = (df["site"] == s).astype(float)
        fit = WeibullAFTFitter().fit(x, "time", "event")
    beta = float(fit.params_[("lambda_", "treated")])
    log_rho = float(fit.params_[("rho_", "Intercept")])
    rho = np.exp(log_rho)
    cov = fit.variance_matrix_
    keys = [("lambda_", "treated"), ("rho_", "Intercept")]
    v = cov.loc[keys, keys].to_numpy()
    grad = np.array([-rho, -rho * beta])        # d(−ρβ)/dβ, d(−ρβ)/d log ρ
    return float(-rho * beta), float(np.sqrt(grad @ v @ grad))


def stage1(studies: StudyTable, method: str = "weibull") -> dict[str, tuple[float, float]]:
    """Stage-1 (log HR, SE) of every IPD study in the table."""
    return {name: ipd_log_hr(patients, method) for name, patients in studies.ipd.items()}


def two_stage_table(studies: StudyTable, method: str = "weibull") -> StudyTable:
    """The study table with every IPD study replaced by its stage-1 estimate."""
    return studies.with_estimates(stage1(studies, method))
