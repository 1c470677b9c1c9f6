"""nutpie without per-process compilation: a disk-cached kernel, checked against PyMC each time.

The PyMC model stays the single definition of the model. For a model family with a kernel in
:mod:`bayes_ablation.numba_kernels`, :func:`kernel_model` reads the PyMC model (free variables,
their transforms, the spec's priors, the ``pm.Data`` values) into a numeric plan, loads the
kernel's machine code from numba's disk cache, and then *checks* the kernel against the PyMC
model at random points of the unconstrained space: log density and gradient (PyTensor's
Python linker, no rewrites: ~0.3 s) and every traced value (constrained parameters and
deterministics). Any structural mismatch or numeric disagreement beyond 1e-8 (relative)
returns ``None`` with the reason, and the caller compiles the model with nutpie as usual.

The result is a regular ``nutpie`` compiled model: same sampler, same initial points (PyMC's
``support_point`` with jitter, as ``nutpie.compile_pymc_model``), same trace layout.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import wraps
from itertools import pairwise
from typing import Any

import numpy as np

from bayes_ablation.spec import AnalysisSpec

#: relative tolerance of the per-process kernel check (values and gradients)
CHECK_RTOL = 1e-8
#: number of random points of the per-process check
CHECK_POINTS = 2

_WEIBULL_ROLES = {"log_cumhaz_ref": 0, "weibull_shape": 1, "log_hr": 2, "sigma_site": 3,
                  "z_site": 4, "sigma_site_arm": 5, "z_site_arm": 6, "beta_covariates": 7}
_LOG_FAMILIES = ("halfnormal", "halfcauchy", "halfstudentt", "lognormal", "exponential",
                 "gamma", "lognormal_variance")
_TRANSFORM_NAMES = {0: ("NoneType",), 1: ("LogTransform",), 2: ("Interval", "IntervalTransform")}
_PARAM_ORDER = {"normal": ("mu", "sigma"), "studentt": ("nu", "mu", "sigma"),
                "halfnormal": ("sigma",), "halfcauchy": ("beta",),
                "halfstudentt": ("nu", "sigma"), "lognormal": ("mu", "sigma"),
                "exponential": ("lam",), "gamma": ("alpha", "beta"),
                "uniform": ("lower", "upper"), "lognormal_variance": ("mu", "sigma")}


class KernelUnavailable(Exception):
    """The model cannot use a cached kernel (the message says why)."""


@dataclass
class KernelPlan:
    """What the kernel needs to know about one model structure (data excluded)."""

    family: str
    blocks: np.ndarray          # (n_blocks, BLOCK_WIDTH)
    expand: np.ndarray          # (n_items, EXPAND_WIDTH)
    n_dim: int
    n_expanded: int
    names: list[str]            # trace variables: value vars, then the rest
    shapes: list[tuple[int, ...]]
    reparameterized: list[str]
    log_t_ref: float


# ------------------------------------------------------------------------------ the plan

def _transform_code(family: str) -> int:
    return 2 if family == "uniform" else 1 if family in _LOG_FAMILIES else 0


def weibull_plan(model: Any, spec: AnalysisSpec, point: dict | None = None) -> KernelPlan:
    """Read the Weibull PyMC model into a kernel plan (raises :class:`KernelUnavailable`).

    ``point``: any point of the model's value variables (for their shapes); default PyMC's
    initial point."""
    from bayes_ablation import numba_kernels as nk

    if spec.model != "weibull":
        raise KernelUnavailable(f"no cached kernel for model family {spec.model!r}")
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
        transform = _transform_code(family)
        actual = type(model.rvs_to_transforms.get(rv)).__name__
        if actual not in _TRANSFORM_NAMES[transform]:
            raise KernelUnavailable(f"{name!r} has transform {actual}, kernel expects "
                                    f"{_TRANSFORM_NAMES[transform][0]}")
        shape = tuple(int(s) for s in np.shape(point[value.name]))
        size = math.prod(shape)
        p = [float(params[k]) for k in _PARAM_ORDER[family]] + [0.0] * 3
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
    from bayes_ablation import numba_kernels as nk

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
    parts = [plan.blocks.ravel(), np.log(time), event, arm.astype(float),
             site.astype(float), x.ravel(), plan.expand.ravel(), groups.ravel()]
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
     header[nk.H_OFF_EXPAND], header[nk.H_OFF_GROUPS]) = offsets[:-1]
    header[nk.H_NEXPANDED] = plan.n_expanded
    header[nk.H_NEXPAND] = plan.expand.shape[0]
    header[nk.H_NGROUPS] = groups.shape[0]
    buf = np.ascontiguousarray(np.concatenate([header, *parts]))
    buf.flags.writeable = False
    return buf


# ------------------------------------------------------------------- evaluate and check

def kernel_logp_grad(cfuncs: tuple[Any, Any], buf: np.ndarray, position: np.ndarray
                     ) -> tuple[float, np.ndarray, int]:
    """Call the compiled C logp callback: (log density, gradient, return code)."""
    import ctypes

    pos = np.ascontiguousarray(position, float)
    grad = np.zeros_like(pos)
    logp = np.zeros(1)
    dbl = ctypes.POINTER(ctypes.c_double)
    code = cfuncs[0].ctypes(pos.size, pos.ctypes.data_as(dbl), grad.ctypes.data_as(dbl),
                            logp.ctypes.data_as(dbl), ctypes.c_void_p(buf.ctypes.data))
    return float(logp[0]), grad, int(code)


def kernel_expand(cfuncs: tuple[Any, Any], buf: np.ndarray, plan: KernelPlan,
                  position: np.ndarray) -> np.ndarray:
    """Call the compiled C expand callback: the flat trace vector at ``position``."""
    import ctypes

    pos = np.ascontiguousarray(position, float)
    out = np.zeros(plan.n_expanded)
    dbl = ctypes.POINTER(ctypes.c_double)
    code = cfuncs[1].ctypes(pos.size, plan.n_expanded, pos.ctypes.data_as(dbl),
                            out.ctypes.data_as(dbl), ctypes.c_void_p(buf.ctypes.data))
    if code != 0:
        raise KernelUnavailable(f"kernel expand returned code {code}")
    return out


def pymc_reference(model: Any, plan: KernelPlan) -> Any:
    """PyMC's log density, gradient and traced values as a function of the flat position,
    compiled with PyTensor's Python linker and no graph rewrites (fast to build)."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode

    values = [model.rvs_to_values[rv] for rv in model.free_RVs]
    logp = model.logp()
    grads = pytensor.grad(logp, values)
    remaining = [v for v in model.unobserved_value_vars if v.name not in
                 {x.name for x in values}]
    fn = pytensor.function(values, [logp, *grads, *[pt.as_tensor(v) for v in remaining]],
                           mode=Mode(linker="py", optimizer=None), on_unused_input="ignore")
    sizes = [math.prod(s) for s in plan.shapes[:len(values)]]
    bounds = np.cumsum([0, *sizes])

    def evaluate(position: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        args = [position[bounds[i]:bounds[i + 1]].reshape(plan.shapes[i])
                for i in range(len(values))]
        out = fn(*args)
        grad = np.concatenate([np.ravel(g) for g in out[1:1 + len(values)]])
        trace = np.concatenate([position, *[np.ravel(v) for v in out[1 + len(values):]]])
        return float(out[0]), grad, trace

    return evaluate


def check_kernel(model: Any, plan: KernelPlan, buf: np.ndarray, cfuncs: tuple[Any, Any],
                 points: np.ndarray, rtol: float = CHECK_RTOL) -> float:
    """Largest relative disagreement between kernel and PyMC over ``points`` (rows).

    Raises :class:`KernelUnavailable` when it exceeds ``rtol``.
    """
    reference = pymc_reference(model, plan)
    worst = 0.0
    for position in points:
        lp_ref, grad_ref, trace_ref = reference(position)
        lp, grad, code = kernel_logp_grad(cfuncs, buf, position)
        trace = kernel_expand(cfuncs, buf, plan, position)
        scale_g = max(1.0, float(np.max(np.abs(grad_ref))))
        errors = {
            "log density": abs(lp - lp_ref) / max(1.0, abs(lp_ref)),
            "gradient": float(np.max(np.abs(grad - grad_ref))) / scale_g,
            "traced values": float(np.max(np.abs(trace - trace_ref)
                                          / np.maximum(1.0, np.abs(trace_ref)))),
        }
        if code != 0 or not all(np.isfinite(v) for v in errors.values()):
            raise KernelUnavailable(f"kernel returned code {code} or non-finite values")
        for what, err in errors.items():
            if not err <= rtol:
                raise KernelUnavailable(f"kernel {what} differs from PyMC by {err:.2e} "
                                        f"(relative) > {rtol:g}")
            worst = max(worst, err)
    return worst


def check_points(model: Any, plan: KernelPlan, n: int = CHECK_POINTS, seed: int = 0,
                 point: dict | None = None) -> np.ndarray:
    """Random unconstrained points near ``point`` (default PyMC's initial point), ± N(0, 1)."""
    point = model.initial_point() if point is None else point
    base = np.concatenate([np.ravel(point[name]) for name in plan.names[:len(model.free_RVs)]])
    rng = np.random.default_rng(seed)
    return base[None, :] + rng.normal(size=(n, base.size))


# ---------------------------------------------------------------------- nutpie model

def _pymc_point_function(model: Any) -> Any:
    """PyMC's initial points as ``nutpie.compile_pymc_model`` makes them (support point plus
    jitter, seeded per chain), as a dict of transformed values."""
    from pymc.initial_point import make_initial_point_fn

    return make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs),
                                 default_strategy="support_point", return_transformed=True)


def _flat_initial_points(fn: Any, names: list[str]) -> Any:
    lock = threading.Lock()

    @wraps(fn)
    def flat(seed: Any = None) -> np.ndarray:
        with lock:
            point = fn(seed)
        return np.ascontiguousarray(np.concatenate([np.ravel(point[k]).astype("float64")
                                                    for k in names]))
    return flat


def _dims_and_coords(model: Any, plan: KernelPlan) -> tuple[dict, dict]:
    import pandas as pd

    coords = {name: pd.Index(vals) for name, vals in model.coords.items() if vals is not None}
    value_names = plan.names[:len(model.free_RVs)]
    flat_names = []
    for name, shape in zip(value_names, plan.shapes, strict=False):
        if shape:
            flat_names.extend(f"{name}_{'.'.join(map(str, idx))}" for idx in np.ndindex(shape))
        else:
            flat_names.append(name)
    coords["unconstrained_parameter"] = pd.Index(flat_names)
    dims = {k: tuple(v) for k, v in model.named_vars_to_dims.items() if v}
    return dims, coords


def nutpie_model(model: Any, plan: KernelPlan, buf: np.ndarray, cfuncs: tuple[Any, Any],
                 point_function: Any = None) -> Any:
    """A ``nutpie`` compiled model that calls the cached kernel."""
    from nutpie.compile_pymc import CompiledPyMCModel

    point_function = point_function or _pymc_point_function(model)

    dims, coords = _dims_and_coords(model, plan)
    bounds = np.cumsum([0, *[math.prod(s) for s in plan.shapes]])
    shape_info = (list(plan.names), [slice(int(a), int(b)) for a, b in pairwise(bounds)],
                  [tuple(s) for s in plan.shapes])
    return CompiledPyMCModel(
        _n_dim=plan.n_dim, dims=dims, _coords=coords,
        _shapes={n: tuple(s) for n, s in zip(plan.names, plan.shapes, strict=True)},
        compiled_logp_func=cfuncs[0], compiled_expand_func=cfuncs[1],
        initial_point_func=_flat_initial_points(point_function,
                                                plan.names[:len(model.free_RVs)]),
        shared_data={},
        shared_var_keys={}, user_data=buf, n_expanded=plan.n_expanded, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=list(plan.reparameterized))


PLANNERS = {"weibull": weibull_plan}
BUFFERS = {"weibull": weibull_buffer}
_CHECKED: dict[Any, float] = {}


def kernel_model(model: Any, spec: AnalysisSpec, cache_key: Any = None) -> tuple[Any, dict]:
    """A checked, cache-compiled nutpie model for ``model``, and facts for provenance.

    Raises :class:`KernelUnavailable` (with the reason) when no kernel applies or the check
    fails. ``cache_key`` (a model-structure key) skips the re-check of a structure already
    checked in this process; the data are always the model's current ``pm.Data`` values.
    """
    import time

    from bayes_ablation import numba_kernels as nk

    if spec.model not in PLANNERS:
        raise KernelUnavailable(f"no cached kernel for model family {spec.model!r}")
    t0 = time.perf_counter()
    point_function = _pymc_point_function(model)
    point = point_function(0)
    plan = PLANNERS[spec.model](model, spec, point)
    buf = BUFFERS[spec.model](plan, model)
    t1 = time.perf_counter()
    cfuncs = nk.weibull_cfuncs()
    t2 = time.perf_counter()
    key = (cache_key, tuple(plan.names), tuple(plan.shapes)) if cache_key is not None else None
    if key is not None and key in _CHECKED:
        worst = _CHECKED[key]
    else:
        worst = check_kernel(model, plan, buf, cfuncs, check_points(model, plan, point=point))
        if key is not None:
            _CHECKED[key] = worst
    t3 = time.perf_counter()
    compiled = nutpie_model(model, plan, buf, cfuncs, point_function)
    facts = {"logp_kernel": f"numba cached ({plan.family})",
             "kernel_loaded_from_disk_cache": all(getattr(f, "cache_hits", 0) > 0
                                                  for f in cfuncs),
             "kernel_check_max_rel_error": worst,
             "kernel_plan_seconds": t1 - t0, "kernel_load_seconds": t2 - t1,
             "kernel_check_seconds": t3 - t2}
    return compiled, facts
