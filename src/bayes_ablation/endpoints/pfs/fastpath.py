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
    borrowing = getattr(spec, "borrowing", None)
    if borrowing is not None and borrowing.method != "none":
        raise KernelUnavailable(f"the Weibull kernel has no [borrowing] terms (method "
                                f"{borrowing.method!r})")
    if model.potentials:
        raise KernelUnavailable("the Weibull kernel has no extra log-density terms; the model "
                                f"has {[p.name for p in model.potentials]}")
    if getattr(spec, "subgroups", ()):
        raise KernelUnavailable("the Weibull kernel has no subgroup effects (subgroups "
                                f"{', '.join(spec.subgroups)}): the PyMC graph is compiled")
    point = model.initial_point() if point is None else point
    rows, names, shapes, reparameterized, block_of_rv = free_variable_blocks(
        model, spec, point, _WEIBULL_ROLES)
    roles = {int(r[0]) for r in rows}
    for needed in (0, 1, 2):
        if needed not in roles:
            raise KernelUnavailable("the Weibull kernel needs log_cumhaz_ref, weibull_shape "
                                    "and log_hr")
    n_dim = sum(math.prod(shape) for shape in shapes)
    role_block = {int(r[0]): i for i, r in enumerate(rows)}
    deterministic = {"log_lambda0": (nk.E_LOG_LAMBDA0, -1), "hr": (nk.E_HR, role_block[2]),
                     **({"u_site": (nk.E_U_SITE, role_block[4])} if 4 in role_block else {}),
                     **({"v_site_arm": (nk.E_V_SITE, role_block[6])} if 6 in role_block else {})}
    items = traced_items(model, names, shapes, block_of_rv, deterministic, nk.E_CONSTRAINED,
                         nk.E_SQRT)
    offset = sum(math.prod(shape) for shape in shapes)
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


# ----------------------------------------------------------------------- shared plan reading

def free_variable_blocks(model: Any, spec: AnalysisSpec, point: dict, roles: dict[str, int],
                         prior_of: dict[str, str] | None = None, families: tuple[str, ...] = (),
                         standard: tuple[str, ...] = ()
                         ) -> tuple[list[list[float]], list[str], list[tuple[int, ...]],
                                    list[str], dict[str, int]]:
    """One kernel block per free variable: (rows, value names, shapes, reparameterized names,
    block of each free variable name). ``roles``: free variable (base) name → role code;
    ``prior_of``: base name → the spec prior it draws from (default: itself); names starting
    with ``z_`` and those in ``standard`` get a standard normal block (partial centring or a
    prior depending on other parameters is the kernel's). A variable, prior
    family or transform the kernel does not know raises :class:`KernelUnavailable`."""
    prior_of = prior_of or {}
    rows, names, shapes, reparameterized = [], [], [], []
    block_of_rv: dict[str, int] = {}
    offset = 0
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        name = rv.name
        base = name[:-3] if name.endswith("_sq") else name
        if base not in roles:
            raise KernelUnavailable(f"free variable {name!r} is not part of the "
                                    f"{spec.model} kernel")
        if base.startswith("z_") or base in standard:
            family, params = "normal", {"mu": 0.0, "sigma": 1.0}
        else:
            prior = spec.priors.get(prior_of.get(base, base))
            if prior is None:
                raise KernelUnavailable(f"no prior in the spec for {base!r}")
            family, params = prior.family, prior.params
            if (family == "lognormal_variance") != (name != base):
                raise KernelUnavailable(f"{name!r} does not match prior family {family!r}")
            if families and family not in families:
                raise KernelUnavailable(f"{name!r}: prior family {family!r} is not one of "
                                        f"{families}")
        transform = transform_code(family)
        actual = type(model.rvs_to_transforms.get(rv)).__name__
        if actual not in TRANSFORM_NAMES[transform]:
            raise KernelUnavailable(f"{name!r} has transform {actual}, kernel expects "
                                    f"{TRANSFORM_NAMES[transform][0]}")
        shape = tuple(int(s) for s in np.shape(point[value.name]))
        size = math.prod(shape)
        from bayes_ablation.endpoints.pfs import numba_kernels as nk

        p = [float(params[k]) for k in PARAM_ORDER[family]] + [0.0] * 3
        rows.append([roles[base], nk.FAMILIES.index(family), transform, offset, size, *p[:3]])
        block_of_rv[name] = len(rows) - 1
        names.append(value.name)
        shapes.append(shape)
        if transform:
            reparameterized.append(value.name)
        offset += size
    return rows, names, shapes, reparameterized, block_of_rv


def var_shape(model: Any, name: str) -> tuple[int, ...]:
    """Shape of a model variable from its named dims (() for a scalar)."""
    dims = model.named_vars_to_dims.get(name) or ()
    if any(d is None or model.coords.get(d) is None for d in dims):
        raise KernelUnavailable(f"{name!r} has a dimension without coordinates")
    return tuple(len(model.coords[d]) for d in dims)


def traced_items(model: Any, names: list[str], shapes: list[tuple[int, ...]],
                 block_of_rv: dict[str, int], deterministic: dict[str, tuple[int, int]],
                 constrained_code: int, sqrt_code: int) -> list[list[float]]:
    """Expand items (code, block, out offset, size) of every traced variable after the value
    variables, in PyMC's order; ``deterministic``: name → (code, block) of the kernel's
    deterministics. Appends their names and shapes to ``names``/``shapes``."""
    offset = sum(math.prod(s) for s in shapes)
    items = []
    for var in model.unobserved_value_vars:
        vname = var.name
        if vname in names:
            continue
        if vname in block_of_rv:
            code, block = constrained_code, block_of_rv[vname]
            shape = shapes[block]
        elif f"{vname}_sq" in block_of_rv:
            code, block = sqrt_code, block_of_rv[f"{vname}_sq"]
            shape = shapes[block]
        elif vname in deterministic:
            code, block = deterministic[vname]
            shape = var_shape(model, vname)
        else:
            raise KernelUnavailable(f"traced variable {vname!r} is not known to the kernel")
        size = math.prod(shape)
        items.append([code, block, offset, size])
        names.append(vname)
        shapes.append(tuple(shape))
        offset += size
    return items


# ------------------------------------------------------------------- piecewise exponential

def _pwe_roles() -> dict[str, int]:
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    return {"sigma_log_hazard_rw": nk.PR_SIG_HAZ, "z_log_hazard": nk.PR_Z_HAZ,
            "log_hazard_mean": nk.PR_LEVEL, "log_hazard_anchor": nk.PR_LEVEL_ANCHOR,
            "sigma_log_hr_rw": nk.PR_SIG_HR, "z_log_hr": nk.PR_Z_HR, "log_hr": nk.PR_LOGHR,
            "log_hr_anchor": nk.PR_LOGHR_ANCHOR, "sigma_site": nk.PR_SIGMA,
            "z_site": nk.PR_Z, "sigma_site_arm": nk.PR_SIGMA2, "z_site_arm": nk.PR_Z2,
            "beta_covariates": nk.PR_BETA}


def pwe_plan(model: Any, spec: AnalysisSpec, point: dict | None = None) -> KernelPlan:
    """Read the piecewise-exponential PyMC model into a kernel plan (raises
    :class:`KernelUnavailable` for a structure the kernel does not know)."""
    from bayes_ablation.endpoints.pfs import numba_kernels as nk
    from bayes_ablation.endpoints.priors import LOCATION_FAMILIES

    if spec.model != "piecewise_exponential":
        raise KernelUnavailable(f"no cached kernel for model family {spec.model!r}")
    point = model.initial_point() if point is None else point
    prior_of = {"log_hazard_anchor": "log_hazard_mean", "log_hr_anchor": "log_hr"}
    rows, names, shapes, reparameterized, block_of_rv = free_variable_blocks(
        model, spec, point, _pwe_roles(), prior_of)
    role_block = {int(r[0]): i for i, r in enumerate(rows)}
    for anchor in (nk.PR_LEVEL_ANCHOR, nk.PR_LOGHR_ANCHOR):
        if anchor in role_block and nk.FAMILIES[int(rows[role_block[anchor]][1])] \
                not in LOCATION_FAMILIES:
            raise KernelUnavailable("an anchored level needs a location-family prior")
    required = [(nk.PR_SIG_HAZ,), (nk.PR_Z_HAZ,), (nk.PR_LEVEL, nk.PR_LEVEL_ANCHOR),
                (nk.PR_LOGHR, nk.PR_LOGHR_ANCHOR)]
    if any(not any(r in role_block for r in alternatives) for alternatives in required):
        raise KernelUnavailable("the piecewise-exponential kernel needs the baseline walk, "
                                "its level and the log HR")
    if (nk.PR_Z_HR in role_block) != (nk.PR_SIG_HR in role_block) or \
            (nk.PR_LOGHR_ANCHOR in role_block and nk.PR_Z_HR not in role_block):
        raise KernelUnavailable("unexpected time-varying log-HR structure")
    for sigma, z in ((nk.PR_SIGMA, nk.PR_Z), (nk.PR_SIGMA2, nk.PR_Z2)):
        if (sigma in role_block) != (z in role_block):
            raise KernelUnavailable("site effects need both their sd and their z block")
    deterministic = {"log_hazard_mean": (nk.X_LEVEL, -1), "log_hazard": (nk.X_LOG_HAZARD, -1),
                     "log_hr": (nk.X_LOG_HR, -1), "hr": (nk.X_HR, -1),
                     "u_site": (nk.X_U_SITE, -1), "v_site_arm": (nk.X_V_SITE, -1),
                     "log_hr_interval": (nk.X_LOG_HR_INTERVAL, -1),
                     "hr_interval": (nk.X_HR_INTERVAL, -1)}
    n_dim = sum(math.prod(s) for s in shapes)
    items = traced_items(model, names, shapes, block_of_rv, deterministic,
                         nk.X_CONSTRAINED, nk.X_SQRT)
    return KernelPlan(family="piecewise_exponential",
                      blocks=np.array(rows, float).reshape(-1, nk.BLOCK_WIDTH),
                      expand=np.array(items, float).reshape(-1, nk.EXPAND_WIDTH),
                      n_dim=n_dim, n_expanded=sum(math.prod(s) for s in shapes), names=names,
                      shapes=shapes, reparameterized=reparameterized, log_t_ref=0.0)


def pwe_buffer(plan: KernelPlan, model: Any) -> np.ndarray:
    """The PWE kernel's input buffer: header, plan, cells and weights from ``pm.Data``."""
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    data = {var.name: np.asarray(var.get_value()) for var in model.data_vars}
    needed = {"cell_site_idx", "cell_arm_idx", "cell_interval_idx", "cell_events",
              "cell_log_exposure", "cell_x", "centring_log_hazard", "centring_site",
              "centring_site_arm", "centring_log_hr", "anchor_log_hazard"}
    if not needed <= set(data):
        raise KernelUnavailable(f"model data lacks {sorted(needed - set(data))}")
    observed = [rv.name for rv in model.observed_RVs]
    if observed != ["events"] or model.potentials:
        raise KernelUnavailable(f"expected one observed variable 'events' and no potentials, "
                                f"found {observed} and {len(model.potentials)} potentials")
    n_sites = len(model.coords["site"])
    n_treat = len(model.coords["treatment"])
    n_int = len(model.coords["interval"])
    events = np.asarray(data["cell_events"], float)
    x = np.asarray(data["cell_x"], float).reshape(events.size, -1)
    anchor_hr = np.asarray(data.get("anchor_log_hr", np.zeros((n_treat, n_int))), float)
    parts = [plan.blocks.ravel(), data["cell_site_idx"].astype(float),
             data["cell_arm_idx"].astype(float), data["cell_interval_idx"].astype(float),
             events, np.asarray(data["cell_log_exposure"], float), x.ravel(),
             plan.expand.ravel(), data["centring_log_hazard"].astype(float).ravel(),
             data["centring_site"].astype(float).ravel(),
             data["centring_site_arm"].astype(float).ravel(),
             data["centring_log_hr"].astype(float).ravel(),
             data["anchor_log_hazard"].astype(float).ravel(), anchor_hr.ravel()]
    sizes = {"centring_log_hazard": n_int - 1, "centring_site": n_sites,
             "centring_site_arm": n_sites * n_treat, "centring_log_hr": n_treat * (n_int - 1),
             "anchor_log_hazard": n_int}
    for name, size in sizes.items():
        if data[name].size != size:
            raise KernelUnavailable(f"{name} has {data[name].size} values, expected {size}")
    if anchor_hr.size != n_treat * n_int:
        raise KernelUnavailable("anchor_log_hr has the wrong size")
    header = np.zeros(nk.Q_HEADER)
    offsets = np.cumsum([nk.Q_HEADER] + [p.size for p in parts])
    header[nk.Q_LEN] = offsets[-1]
    header[nk.Q_NCELLS] = events.size
    header[nk.Q_NBLOCKS] = plan.blocks.shape[0]
    header[nk.Q_NDIM] = plan.n_dim
    header[nk.Q_NSITES] = n_sites
    header[nk.Q_NTREAT] = n_treat
    header[nk.Q_NCOV] = x.shape[1]
    header[nk.Q_NINT] = n_int
    (header[nk.Q_OFF_BLOCKS], header[nk.Q_OFF_CSITE], header[nk.Q_OFF_CARM],
     header[nk.Q_OFF_CINT], header[nk.Q_OFF_CEVENTS], header[nk.Q_OFF_CLOGE],
     header[nk.Q_OFF_CX], header[nk.Q_OFF_EXPAND], header[nk.Q_OFF_WHAZ],
     header[nk.Q_OFF_WSITE], header[nk.Q_OFF_WSLOPE], header[nk.Q_OFF_WHR],
     header[nk.Q_OFF_AHAZ], header[nk.Q_OFF_AHR]) = offsets[:-1]
    header[nk.Q_NEXPAND] = plan.expand.shape[0]
    header[nk.Q_NEXPANDED] = plan.n_expanded
    buf = np.ascontiguousarray(np.concatenate([header, *parts]))
    buf.flags.writeable = False
    return buf
