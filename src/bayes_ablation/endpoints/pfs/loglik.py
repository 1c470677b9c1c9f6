"""Pointwise log-likelihoods for LOO, NumPy over posterior draws (model-free: works on bundles).

Per patient i (time t_i in months, status d_i) every PFS family contributes

    ℓ_i = log[ f(t_i)^{d_i} S(t_i)^{1−d_i} ] = d_i log h_i(t_i) − H_i(t_i),

a density on the same scale (months) whatever the family, so PSIS-LOO values of a Weibull and
a piecewise-exponential fit of the *same patients* are comparable. An aggregated PWE model is
fitted on cells; its per-cell contribution D_c log-rate − μ_c equals Σ_{i∈c} ℓ_i exactly, so
the cell values are sums of patient values (tested) — but leaving out a cell (a whole
site × arm × interval × pattern block) is a different cross-validation question from leaving
out a patient, and cell-level LOO values are only comparable between models with the same cells.

``log_likelihood_group`` returns the ``log_likelihood`` group stored in a fit's DataTree:
``y`` (chain, draw, patient) and, for aggregated models, ``events`` (chain, draw, cell). The
group is bounded (``max_values`` pointwise values in all, default 1.5·10⁶ = 12 MB): beyond it,
every k-th draw of each chain is kept (PSIS-LOO on ≥ :data:`MIN_LOO_DRAWS` draws is as
reliable, its Pareto-k threshold min(1 − 1/log₁₀ S, 0.7) barely moves), and ``y`` is left out
when even that many draws do not fit (e.g. 10⁶ patients; the cells remain). The group's
``draw_thinning`` attribute records k; ``max_values=None`` stores everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from bayes_ablation.endpoints.pfs.predictive import linear_predictor, pwe_log_rates
from bayes_ablation.endpoints.registry import family
from bayes_ablation.spec.plan import AnalysisSpec

#: family -> fn(stacked posterior (dim sample), constant data, spec) -> ℓ (sample, patient)
PatientLogLik = Callable[[xr.Dataset, xr.Dataset, AnalysisSpec], np.ndarray]
#: default cap on stored pointwise values (draws × (patients + cells)): 1.5e6 float64 = 12 MB
MAX_VALUES = 1_500_000
#: fewest draws the log-likelihood is thinned to (PSIS-LOO's usual minimum)
MIN_LOO_DRAWS = 1000
_CHUNK = 250


def weibull_patient_loglik(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec) -> np.ndarray:
    """ℓ_i = d_i (log k + (k−1) log t_i + log λ_i) − λ_i t_i^k."""
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    k = post["weibull_shape"].values[:, None]
    log_lam = post["log_cumhaz_ref"].values[:, None] - k * np.log(t_ref) + \
        linear_predictor(post, cdata)
    log_t = np.log(np.asarray(cdata["time_months"].values, float))[None, :]
    d = np.asarray(cdata["event"].values, float)[None, :]
    return d * (np.log(k) + (k - 1.0) * log_t + log_lam) - np.exp(k * log_t + log_lam)


def pwe_patient_loglik(post: xr.Dataset, cdata: xr.Dataset, spec: AnalysisSpec) -> np.ndarray:
    """ℓ_i = d_i (log rate_{arm(i), j(i)} + η_i) − e^{η_i} Σ_j rate_{arm(i), j} e_ij."""
    from bayes_ablation.data.aggregate import exit_interval, exposure_matrix

    start = np.asarray(cdata["interval_start"].values, float)
    cuts = start[1:]
    time = np.asarray(cdata["time_months"].values, float)
    d = np.asarray(cdata["event"].values, float)
    arm = np.asarray(cdata["arm_idx"].values, dtype=int)
    eta = linear_predictor(post, cdata)
    log_rate = pwe_log_rates(post, int(arm.max()) + 1)                      # (s, arm, J)
    exposure = exposure_matrix(time, cuts)                                   # (patient, J)
    j = exit_interval(time, cuts)
    out = np.empty_like(eta)
    for a in np.unique(arm):
        members = arm == a
        cumhaz = np.exp(log_rate[:, a, :]) @ exposure[members].T              # (s, n_a)
        out[:, members] = d[members] * (log_rate[:, a, j[members]] + eta[:, members]) - \
            np.exp(eta[:, members]) * cumhaz
    return out


def pwe_cell_loglik(post: xr.Dataset, cdata: xr.Dataset) -> np.ndarray:
    """Cell contributions D_c (log λ_j + η_c) − exp(log λ_j + η_c) E_c, (sample, cell)."""
    cells = xr.Dataset({
        "arm_idx": cdata["cell_arm_idx"], "site_idx": cdata["cell_site_idx"],
        **({"x": cdata["cell_x"]} if "cell_x" in cdata else {}),
        **({"subgroup_indicator": cdata["cell_subgroup_indicator"],
            "subgroup_mean": cdata["subgroup_mean"]}
           if "cell_subgroup_indicator" in cdata else {}),
    })
    arm = np.asarray(cdata["cell_arm_idx"].values, dtype=int)
    interval = np.asarray(cdata["cell_interval_idx"].values, dtype=int)
    n_arms = post.sizes.get("treatment", 0) + 1
    log_rate = pwe_log_rates(post, n_arms)[:, arm, interval] + linear_predictor(post, cells)
    events = np.asarray(cdata["cell_events"].values, float)
    log_e = np.asarray(cdata["cell_log_exposure"].values, float)
    return events * log_rate - np.exp(log_rate + log_e)


def _by_chunks(fn: Callable[[xr.Dataset], np.ndarray], post: xr.Dataset, n_obs: int
               ) -> np.ndarray:
    """Apply ``fn`` to draws in chunks (bounded memory); returns (chain, draw, obs)."""
    stacked = post.stack(sample=("chain", "draw"))
    n = stacked.sizes["sample"]
    out = np.empty((n, n_obs))
    for lo in range(0, n, _CHUNK):
        chunk = stacked.isel(sample=slice(lo, lo + _CHUNK))
        out[lo:lo + _CHUNK] = fn(chunk.transpose("sample", ...))
    return out.reshape(post.sizes["chain"], post.sizes["draw"], n_obs)


def log_likelihood_group(idata: Any, spec: AnalysisSpec, *, max_values: int | None = MAX_VALUES
                         ) -> tuple[xr.Dataset, list[str]]:
    """The ``log_likelihood`` group of a fit (see module docstring) and notes on what was
    left out or thinned and why."""
    post = idata.posterior.to_dataset() if hasattr(idata.posterior, "to_dataset") \
        else idata.posterior
    cdata = idata.constant_data.to_dataset() if hasattr(idata.constant_data, "to_dataset") \
        else idata.constant_data
    post = post[[v for v in post.data_vars if not str(v).startswith("z_")]]
    notes: list[str] = []
    n_patients = cdata.sizes.get("patient", 0)
    n_cells = cdata.sizes.get("cell", 0) if "cell_events" in cdata else 0
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    patient_loglik = family(spec.model).patient_loglik
    per_patient = patient_loglik is not None and n_patients > 0
    cap = np.inf if max_values is None else max_values
    fewest = min(n_draws, MIN_LOO_DRAWS)
    if per_patient and (n_patients + n_cells) * fewest > cap:
        per_patient = False
        notes.append(f"per-patient log-likelihood not stored: {n_patients} patients × "
                     f"{fewest} draws > {max_values:g} values (fit --log-likelihood all, "
                     f"or max_values=None, stores it)")
    n_obs = (n_patients if per_patient else 0) + n_cells
    step = 1
    if n_obs and n_obs * n_draws > cap:
        step = max(1, min(int(np.ceil(n_obs * n_draws / cap)), n_draws // fewest))
        post = post.isel(draw=slice(None, None, step))
        notes.append(f"log-likelihood stored for every {step}th draw of each chain "
                     f"({post.sizes['chain'] * post.sizes['draw']} of {n_draws} draws): "
                     f"{n_obs} pointwise values × {n_draws} draws > {max_values:g}")
    coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    variables: dict[str, xr.DataArray] = {}
    if per_patient:
        values = _by_chunks(lambda p: patient_loglik(p, cdata, spec), post, n_patients)
        variables["y"] = xr.DataArray(
            values, dims=("chain", "draw", "patient"),
            coords={**coords, "patient": cdata["patient"].values})
    if n_cells:
        values = _by_chunks(lambda p: pwe_cell_loglik(p, cdata), post, cdata.sizes["cell"])
        variables["events"] = xr.DataArray(values, dims=("chain", "draw", "cell"),
                                           coords={**coords, "cell": cdata["cell"].values})
    ds = xr.Dataset(variables)
    ds.attrs["units"] = json_units(variables)
    ds.attrs["draw_thinning"] = step
    return ds, notes


def json_units(variables: dict[str, Any]) -> str:
    """What one pointwise value is, per variable (stored in the group's attrs)."""
    import json

    meaning = {"y": "patient", "events": "cell (site x arm x interval x covariate pattern)"}
    return json.dumps({k: meaning.get(k, k) for k in variables})
