"""The Weibull family's cached-kernel plan: reads a PyMC Weibull model (free variables,
transforms, priors, data) into the numeric buffer :mod:`bayes_ablation.endpoints.pfs.numba_kernels`
evaluates (see :mod:`bayes_ablation.inference.kernels` for the check against PyMC)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayes_ablation.endpoints.kernel import (
    PARAM_ORDER,
    TRANSFORM_NAMES,
    KernelPlan,
    KernelUnavailable,
    transform_code,
)
from bayes_ablation.spec.plan import AnalysisSpec

_WEIBULL_ROLES = {"log_cumhaz_ref": 0, "weibull_shape": 1, "log_hr": 2, "sigma_site": 3,
                  "z_site": 4, "sigma_site_arm": 5, "z_site_arm": 6, "beta_covariates": 7}


def weibull_plan(model: Any, spec: AnalysisSpec, point: dict | None = None) -> KernelPlan:
    """Read the Weibull PyMC model into a kernel plan (raises :class:`KernelUnavailable`).

    ``point``: any point of the model's value variables (for their shapes); default PyMC's
    initial point."""
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    if spec.model != "weibull":
        raise KernelUnavailable(f"no cached kernel for model family {spec.model!r}")
    if getattr(spec, "subgroups", ()):
        raise KernelUnavailable("the Weibull kernel has no subgroup effects (subgroups "
                                f"{', '.join(spec.subgroups)}): the PyMC graph is compiled")
    point = model.initial_point() if point is None else point
    rows, names, shapes, reparameterized = [], [], [], []
    block_of_rv: dict[str, int] = {}
    offset = 0
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        name = rv.name
        base = name[:-3] if name.endswith("_sq") else name
        if base not in _WEIBULL_ROLES:
            raise KernelUnavailable(f"free variable {name!r} is not part of the Weibull kernel")
        if base.startswith("z_"):
            family, params = "normal", {"mu": 0.0, "sigma": 1.0}
        else:
            prior = spec.priors.get(base)
            if prior is None:
                raise KernelUnavailable(f"no prior in the spec for {base!r}")
            family, params = prior.family, prior.params
            if (family == "lognormal_variance") != (name != base):
                raise KernelUnavailable(f"{name!r} does not match prior family {family!r}")
        transform = transform_code(family)
        actual = type(model.rvs_to_transforms.get(rv)).__name__
        if actual not in TRANSFORM_NAMES[transform]:
            raise KernelUnavailable(f"{name!r} has transform {actual}, kernel expects "
                                    f"{TRANSFORM_NAMES[transform][0]}")
        shape = tuple(int(s) for s in np.shape(point[value.name]))
        size = math.prod(shape)
        p = [float(params[k]) for k in PARAM_ORDER[family]] + [0.0] * 3
        rows.append([_WEIBULL_ROLES[base], nk.FAMILIES.index(family), transform, offset, size,
                     *p[:3]])
        block_of_rv[name] = len(rows) - 1
        names.append(value.name)
        shapes.append(shape)
        if transform:
            reparameterized.append(value.name)
        offset += size
    roles = {int(r[0]) for r in rows}
    for needed in (0, 1, 2):
        if needed not in roles:
            raise KernelUnavailable("the Weibull kernel needs log_cumhaz_ref, weibull_shape "
                                    "and log_hr")
    n_dim = offset
    role_block = {int(r[0]): i for i, r in enumerate(rows)}
    items = []
    for var in model.unobserved_value_vars:
        if var.name in names:
            continue
        vname = var.name
        if vname in block_of_rv:
            code, block = nk.E_CONSTRAINED, block_of_rv[vname]
            shape = shapes[block]
        elif f"{vname}_sq" in block_of_rv:
            code, block = nk.E_SQRT, block_of_rv[f"{vname}_sq"]
            shape = shapes[block]
        elif vname == "log_lambda0":
            code, block, shape = nk.E_LOG_LAMBDA0, -1, ()
        elif vname == "hr":
            code, block = nk.E_HR, role_block[2]
            shape = shapes[block]
        elif vname == "u_site" and 4 in role_block:
            code, block = nk.E_U_SITE, role_block[4]
            shape = shapes[block]
        elif vname == "v_site_arm" and 6 in role_block:
            code, block = nk.E_V_SITE, role_block[6]
            shape = shapes[block]
        else:
            raise KernelUnavailable(f"traced variable {vname!r} is not known to the kernel")
        size = math.prod(shape)
        items.append([code, block, offset, size])
        names.append(vname)
        shapes.append(tuple(shape))
        offset += size
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    return KernelPlan(family="weibull", blocks=np.array(rows, float).reshape(-1, nk.BLOCK_WIDTH),
                      expand=np.array(items, float).reshape(-1, nk.EXPAND_WIDTH),
                      n_dim=n_dim, n_expanded=offset, names=names, shapes=shapes,
                      reparameterized=reparameterized, log_t_ref=math.log(t_ref))


def weibull_buffer(plan: KernelPlan, model: Any) -> np.ndarray:
    """The kernel's input buffer: header, plan and the model's current ``pm.Data`` values."""
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    data = {var.name: np.asarray(var.get_value()) for var in model.data_vars}
    needed = {"time_months", "event", "arm_idx", "site_idx", "x"}
    if not needed <= set(data):
        raise KernelUnavailable(f"model data lacks {sorted(needed - set(data))}")
    observed = [rv.name for rv in model.observed_RVs]
    if observed != ["y"]:
        raise KernelUnavailable(f"expected one observed variable 'y', found {observed}")
    time = np.asarray(data["time_months"], float)
    event = np.asarray(data["event"], float)
    arm = np.asarray(data["arm_idx"], int)
    site = np.asarray(data["site_idx"], int)
    x = np.asarray(data["x"], float).reshape(time.size, -1)
    n_sites = len(model.coords["site"])
    n_treat = len(model.coords["treatment"])
    groups = np.zeros((0, nk.GROUP_WIDTH))
    if x.shape[1] == 0:  # one log λ per (site, arm) cell: patients sorted by cell
        cell = site * (n_treat + 1) + arm
        order = np.argsort(cell, kind="stable")
        time, event, arm, site, cell = (time[order], event[order], arm[order], site[order],
                                        cell[order])
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        ends = np.r_[starts[1:], cell.size]
        dlogt = event * np.log(time)
        groups = np.array([[site[a], arm[a], a, b, event[a:b].sum(), dlogt[a:b].sum()]
                           for a, b in zip(starts, ends, strict=True)], float)
    w_site = np.asarray(data.get("centring_site", np.zeros(n_sites)), float).ravel()
    w_slope = np.asarray(data.get("centring_site_arm", np.zeros((n_sites, n_treat))),
                         float).ravel()
    parts = [plan.blocks.ravel(), np.log(time), event, arm.astype(float),
             site.astype(float), x.ravel(), plan.expand.ravel(), groups.ravel(), w_site,
             w_slope]
    header = np.zeros(nk.HEADER)
    offsets = np.cumsum([nk.HEADER] + [p.size for p in parts])
    header[nk.H_LEN] = offsets[-1]
    header[nk.H_N] = time.size
    header[nk.H_NBLOCKS] = plan.blocks.shape[0]
    header[nk.H_NDIM] = plan.n_dim
    header[nk.H_NSITES] = n_sites
    header[nk.H_NTREAT] = n_treat
    header[nk.H_NCOV] = x.shape[1]
    header[nk.H_LOGTREF] = plan.log_t_ref
    (header[nk.H_OFF_BLOCKS], header[nk.H_OFF_LOGT], header[nk.H_OFF_EVENT],
     header[nk.H_OFF_ARM], header[nk.H_OFF_SITE], header[nk.H_OFF_X],
     header[nk.H_OFF_EXPAND], header[nk.H_OFF_GROUPS], header[nk.H_OFF_WSITE],
     header[nk.H_OFF_WSLOPE]) = offsets[:-1]
    header[nk.H_NEXPANDED] = plan.n_expanded
    header[nk.H_NEXPAND] = plan.expand.shape[0]
    header[nk.H_NGROUPS] = groups.shape[0]
    buf = np.ascontiguousarray(np.concatenate([header, *parts]))
    buf.flags.writeable = False
    return buf
