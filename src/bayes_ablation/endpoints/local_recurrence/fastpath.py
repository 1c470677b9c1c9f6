"""The LR families' cached-kernel plan: reads a PyMC LR model (Weibull or piecewise-exponential
baseline; free variables, transforms, priors, data) into the numeric buffer
:mod:`bayes_ablation.endpoints.local_recurrence.numba_kernels` evaluates (see
:mod:`bayes_ablation.inference.kernels` for the check against PyMC)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayes_ablation.endpoints.kernel import (
    KernelPlan,
    KernelUnavailable,
)
from bayes_ablation.endpoints.pfs.fastpath import free_variable_blocks, traced_items
from bayes_ablation.spec.plan import AnalysisSpec

_ROLES = {"log_cumhaz_ref": 0, "weibull_shape": 1, "log_hr": 2, "sigma_site": 3, "z_site": 4,
          "sigma_site_arm": 5, "z_site_arm": 6, "beta_covariates": 7, "sigma_patient": 8,
          "z_patient": 9, "log_hazard_baseline": 10, "death_log_cumhaz_ref": 11,
          "death_weibull_shape": 12, "death_log_hr": 13}
_NEEDED = {"lr_weibull": ("log_cumhaz_ref", "weibull_shape"), "lr_pwe": ("log_hazard_baseline",)}
_NOT_IN = {"lr_weibull": "log_hazard_baseline", "lr_pwe": "weibull_shape"}
#: deterministics: name -> (expand code, role of its source block)
_DETERMINISTICS = {"hr": (2, 2), "death_hr": (2, 13), "u_site": (3, 4), "v_site_arm": (4, 6)}


def lr_plan(model: Any, spec: AnalysisSpec, point: dict | None = None) -> KernelPlan:
    """Read an LR PyMC model into a kernel plan (raises :class:`KernelUnavailable`).

    ``point``: any point of the model's value variables (for their shapes); default PyMC's
    initial point."""
    from bayes_ablation.endpoints.local_recurrence import numba_kernels as nk

    if spec.model not in _NEEDED:
        raise KernelUnavailable(f"no cached LR kernel for model family {spec.model!r}")
    point = model.initial_point() if point is None else point
    roles = {k: v for k, v in _ROLES.items() if k != _NOT_IN[spec.model]}
    rows, names, shapes, reparameterized, block_of_rv = free_variable_blocks(
        model, spec, point, roles)
    offset = sum(math.prod(shape) for shape in shapes)
    role_block = {int(r[0]): i for i, r in enumerate(rows)}
    needed = (*_NEEDED[spec.model], "log_hr", "death_log_cumhaz_ref", "death_weibull_shape",
              "death_log_hr")
    missing = [n for n in needed if _ROLES[n] not in role_block]
    for sigma, z in (("sigma_site", "z_site"), ("sigma_site_arm", "z_site_arm"),
                     ("sigma_patient", "z_patient")):
        if (_ROLES[sigma] in role_block) != (_ROLES[z] in role_block):
            missing.append(sigma if _ROLES[sigma] not in role_block else z)
    if missing:
        raise KernelUnavailable(f"the {spec.model} kernel needs {missing}")
    n_dim = offset
    codes = (nk.E_EXP, nk.E_U_SITE, nk.E_V_SITE)
    deterministic = {name: (codes[code - 2], role_block[role])
                     for name, (code, role) in _DETERMINISTICS.items() if role in role_block}
    items = traced_items(model, names, shapes, block_of_rv, deterministic,
                         nk.E_CONSTRAINED, nk.E_SQRT)
    offset = sum(math.prod(shape) for shape in shapes)
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    return KernelPlan(family=spec.model,
                      blocks=np.array(rows, float).reshape(-1, nk.BLOCK_WIDTH),
                      expand=np.array(items, float).reshape(-1, nk.EXPAND_WIDTH),
                      n_dim=n_dim, n_expanded=offset, names=names, shapes=shapes,
                      reparameterized=reparameterized, log_t_ref=math.log(t_ref))


def lr_buffer(plan: KernelPlan, model: Any) -> np.ndarray:
    """The kernel's input buffer: header, plan and the model's current ``pm.Data`` values."""
    from bayes_ablation.endpoints.local_recurrence import numba_kernels as nk

    data = {var.name: np.asarray(var.get_value()) for var in model.data_vars}
    pwe = plan.family == "lr_pwe"
    lesion_data = ("lr_exposure_lower", "lr_exposure_between") if pwe else ("lr_upper_safe",)
    needed = {"lesion_patient_idx", "lesion_arm_idx", "lesion_site_idx", "x", "lr_interval",
              "lr_lower", "arm_idx", "died", "followup_months", *lesion_data}
    if not needed <= set(data):
        raise KernelUnavailable(f"model data lacks {sorted(needed - set(data))}")
    observed = [rv.name for rv in model.observed_RVs]
    if observed != ["lr", "death"]:
        raise KernelUnavailable(f"expected observed variables ['lr', 'death'], found {observed}")
    lower = np.asarray(data["lr_lower"], float)
    n_lesions = lower.size
    positive = lower > 0
    if pwe:
        e_lower = np.asarray(data["lr_exposure_lower"], float).reshape(n_lesions, -1)
        d_exp = np.asarray(data["lr_exposure_between"], float).reshape(n_lesions, -1)
        n_int = e_lower.shape[1]
        base = plan.blocks[plan.blocks[:, 0] == nk.ROLE_BASELINE]
        if n_int == 0 or int(base[0, 4]) != n_int:
            raise KernelUnavailable("baseline intervals of the data and the model differ")
        log_l = log_u = np.zeros(0)
    else:
        upper = np.asarray(data["lr_upper_safe"], float)
        if np.any(upper <= lower):
            raise KernelUnavailable("lr_upper_safe must exceed lr_lower on every lesion")
        log_u = np.log(upper)
        log_l = np.where(positive, np.log(np.where(positive, lower, 1.0)), log_u - 1.0)
        e_lower = d_exp = np.zeros((n_lesions, 0))
        n_int = 0
    followup = np.asarray(data["followup_months"], float)
    x = np.asarray(data["x"], float).reshape(n_lesions, -1)
    n_sites = len(model.coords["site"])
    n_treat = len(model.coords["treatment"])
    sizes = {int(r[0]): int(r[4]) for r in plan.blocks}
    expected = {nk.ROLE_Z_P: followup.size, nk.ROLE_Z: n_sites, nk.ROLE_Z2: n_sites * n_treat,
                nk.ROLE_LOGHR: n_treat, nk.ROLE_D_LOGHR: n_treat}
    problems = [f"role {role}: {sizes[role]} parameters for {size}"
                for role, size in expected.items() if role in sizes and sizes[role] != size]
    if sizes.get(nk.ROLE_BETA, 0) != x.shape[1]:
        problems.append(f"{sizes.get(nk.ROLE_BETA, 0)} covariate effects for {x.shape[1]} "
                        "covariates")
    if problems:
        raise KernelUnavailable(f"parameter blocks do not match the data: {problems}")
    w_site = np.asarray(data.get("centring_site", np.zeros(n_sites)), float).ravel()
    w_slope = np.asarray(data.get("centring_site_arm", np.zeros((n_sites, n_treat))),
                         float).ravel()
    w_patient = np.asarray(data.get("centring_patient", np.zeros(followup.size)),
                           float).ravel()
    columns = np.column_stack([
        np.asarray(data["lesion_patient_idx"], float), np.asarray(data["lesion_arm_idx"], float),
        np.asarray(data["lesion_site_idx"], float), np.asarray(data["lr_interval"], float),
        positive.astype(float), log_l.reshape(n_lesions, -1), log_u.reshape(n_lesions, -1),
        x, e_lower, d_exp])
    # identical lesions (same patient, scans, covariates) once, with their count
    rows, count = np.unique(columns, axis=0, return_counts=True)
    n_rows = rows.shape[0]
    pat, arm, site, interval, pos = (rows[:, j] for j in range(5))
    j = 5
    if pwe:
        log_l = log_u = np.zeros(0)
    else:
        log_l, log_u = rows[:, 5], rows[:, 6]
        j = 7
    n_cov = x.shape[1]
    x = rows[:, j:j + n_cov]
    e_lower = rows[:, j + n_cov:j + n_cov + n_int]
    d_exp = rows[:, j + n_cov + n_int:]
    parts = [plan.blocks.ravel(), pat, arm, site, x.ravel(), interval, pos, log_l, log_u,
             e_lower.ravel(), d_exp.ravel(), np.asarray(data["arm_idx"], float),
             np.asarray(data["died"], float), np.log(followup), plan.expand.ravel(), w_site,
             w_slope, count.astype(float), w_patient]
    header = np.zeros(nk.HEADER)
    offsets = np.cumsum([nk.HEADER] + [p.size for p in parts])
    header[nk.H_LEN] = offsets[-1]
    header[nk.H_NL] = n_rows
    header[nk.H_NP] = followup.size
    header[nk.H_NBLOCKS] = plan.blocks.shape[0]
    header[nk.H_NDIM] = plan.n_dim
    header[nk.H_NSITES] = n_sites
    header[nk.H_NTREAT] = n_treat
    header[nk.H_NCOV] = x.shape[1]
    header[nk.H_LOGTREF] = plan.log_t_ref
    header[nk.H_NINT] = n_int
    header[nk.H_NEXPANDED] = plan.n_expanded
    header[nk.H_NEXPAND] = plan.expand.shape[0]
    header[nk.H_OFF_BLOCKS:nk.H_OFF_WPAT + 1] = offsets[:-1]
    buf = np.ascontiguousarray(np.concatenate([header, *parts]))
    buf.flags.writeable = False
    return buf
