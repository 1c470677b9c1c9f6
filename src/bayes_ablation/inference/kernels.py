"""nutpie without per-process compilation: a disk-cached kernel, checked against PyMC.

The PyMC model stays the single definition of the model. For a model family with a kernel in
:class:`~bayes_ablation.endpoints.registry.KernelParts` (e.g. the Weibull kernel of
:mod:`bayes_ablation.endpoints.pfs.numba_kernels`), :func:`kernel_model` reads the PyMC model (free variables,
their transforms, the spec's priors, the ``pm.Data`` values) into a numeric plan, loads the
kernel's machine code from numba's disk cache, and then *checks* the kernel against the PyMC
model at random points of the unconstrained space: log density and gradient (PyTensor's
Python linker, no rewrites: ~0.3 s) and every traced value (constrained parameters and
deterministics). Any structural mismatch or numeric disagreement beyond 1e-8 (relative)
returns ``None`` with the reason, and the caller compiles the model with nutpie as usual.
A passed check is recorded on disk under the SHA-256 of everything it depends on (package
source, library versions, plan, data, check points): a later process with the same digest
reads the record instead of repeating the identical computation (``kernel_check`` in the
facts says which: ``run``, ``cached (sha256 …)`` or ``in this process``).

The result is a regular ``nutpie`` compiled model: same sampler, same initial points (PyMC's
``support_point`` with jitter, as ``nutpie.compile_pymc_model``), same trace layout.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from functools import wraps
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from bayes_ablation.endpoints.kernel import KernelPlan, KernelUnavailable
from bayes_ablation.endpoints.registry import family
from bayes_ablation.spec.plan import AnalysisSpec

#: relative tolerance of the per-process kernel check (values and gradients)
CHECK_RTOL = 1e-8
#: number of random points of the per-process check
CHECK_POINTS = 2


# ------------------------------------------------------------------------------ the plan


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


def _flat_initial_points(fn: Any, names: list[str], seen: dict[Any, np.ndarray] | None = None
                         ) -> Any:
    """``fn``'s points as flat float64 vectors; each one also filed in ``seen`` by its seed
    (what a fit record keeps, :mod:`bayes_ablation.inference.fit_records`)."""
    lock = threading.Lock()

    @wraps(fn)
    def flat(seed: Any = None) -> np.ndarray:
        with lock:
            point = fn(seed)
        out = np.ascontiguousarray(np.concatenate([np.ravel(point[k]).astype("float64")
                                                   for k in names]))
        if seen is not None:
            seen[seed_key(seed)] = out.copy()
        return out
    return flat


def seed_key(seed: Any) -> str:
    """A recorded initial point's key: the seed nutpie asked for, as text."""
    return repr(seed if not isinstance(seed, np.integer) else int(seed))


def _dims_and_coords(model: Any, plan: KernelPlan) -> tuple[dict, dict]:
    """nutpie's dims and coords of the traced variables only: a per-patient coordinate (10⁶
    labels) would cost nutpie ~1.2 s per fit to index and is relabelled afterwards anyway."""
    import pandas as pd

    traced = {d for name in plan.names for d in (model.named_vars_to_dims.get(name) or ())}
    coords = {name: pd.Index(vals) for name, vals in model.coords.items()
              if vals is not None and name in traced}
    value_names = plan.names[:len(model.free_RVs)]
    flat_names = []
    for name, shape in zip(value_names, plan.shapes, strict=False):
        if shape:
            flat_names.extend(f"{name}_{'.'.join(map(str, idx))}" for idx in np.ndindex(shape))
        else:
            flat_names.append(name)
    coords["unconstrained_parameter"] = pd.Index(flat_names)
    dims = {k: tuple(v) for k, v in model.named_vars_to_dims.items() if v and k in plan.names}
    return dims, coords


def compiled_kernel_model(plan: KernelPlan, buf: np.ndarray, cfuncs: tuple[Any, Any],
                          dims: dict, coords: dict, initial_points: Any) -> Any:
    """nutpie's compiled-model object around the kernel's cfuncs, its data buffer and a
    function seed → flat initial point (no PyMC needed)."""
    from bayes_ablation.inference.nutpie_import import nutpie_module

    nutpie_module()   # ArviZ deferred
    from nutpie.compile_pymc import CompiledPyMCModel

    bounds = np.cumsum([0, *[math.prod(s) for s in plan.shapes]])
    shape_info = (list(plan.names), [slice(int(a), int(b)) for a, b in pairwise(bounds)],
                  [tuple(s) for s in plan.shapes])
    return CompiledPyMCModel(
        _n_dim=plan.n_dim, dims=dims, _coords=coords,
        _shapes={n: tuple(s) for n, s in zip(plan.names, plan.shapes, strict=True)},
        compiled_logp_func=cfuncs[0], compiled_expand_func=cfuncs[1],
        initial_point_func=initial_points, shared_data={},
        shared_var_keys={}, user_data=buf, n_expanded=plan.n_expanded, shape_info=shape_info,
        logp_func=None, expand_func=None, reparameterized_names=list(plan.reparameterized))


# ------------------------------------------------------------- checks recorded on disk
#
# A check is a deterministic computation: the same package code, library versions, kernel
# plan, data buffer and check points give the same numbers. Its result (only a passed check)
# is therefore recorded on disk under the SHA-256 of all of these, and a later process whose
# digest is the same reads the record instead of repeating the check (provenance says
# ``kernel_check: "cached (sha256 …)"``). Any edit of the package's source, another version
# of PyMC/PyTensor/numba/nutpie/NumPy, another structure or other data: another digest, so
# the check runs again.

#: libraries whose versions enter the check digest
CHECK_LIBRARIES = ("pymc", "pytensor", "numba", "nutpie", "numpy", "llvmlite")


def check_cache_dir() -> Path:
    """``$BAYES_ABLATION_CACHE_DIR/kernel_checks`` (default ``~/.cache/bayes_ablation``)."""
    root = os.environ.get("BAYES_ABLATION_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "bayes_ablation")
    return Path(root) / "kernel_checks"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """SHA-256 of every Python file of the package and the installed versions of
    :data:`CHECK_LIBRARIES`."""
    from importlib import metadata

    import bayes_ablation

    h = hashlib.sha256()
    package = Path(bayes_ablation.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    for name in CHECK_LIBRARIES:   # installed versions (nothing imported for this)
        h.update(f"{name}={metadata.version(name)}".encode())
    return h.hexdigest()


def check_digest(family_name: str, plan: KernelPlan, buf: np.ndarray, points: np.ndarray
                 ) -> str | None:
    """The digest a recorded check is filed under (see above); None when the plan holds
    something other than numbers (nothing is recorded then)."""
    arrays = [np.ascontiguousarray(a) for a in (plan.blocks, plan.expand, buf, points)]
    if any(a.dtype.kind not in "biuf" for a in arrays):
        return None
    h = hashlib.sha256(_code_digest().encode())
    h.update(json.dumps([family_name, plan.family, plan.names, [list(s) for s in plan.shapes],
                         plan.reparameterized, plan.n_dim, plan.n_expanded, repr(plan.log_t_ref),
                         CHECK_RTOL]).encode())
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def recorded_check(digest: str) -> float | None:
    """The largest relative error of the passed check filed under ``digest``, or None."""
    try:
        record = json.loads((check_cache_dir() / f"{digest}.json").read_text())
        worst = float(record["max_rel_error"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return worst if record.get("digest") == digest and worst <= CHECK_RTOL else None


def record_check(digest: str, worst: float, family_name: str) -> None:
    """File a passed check under ``digest`` (atomically; a read-only cache is no error)."""
    from bayes_ablation.core.files import atomic_write_text

    record = {"digest": digest, "family": family_name, "max_rel_error": worst,
              "rtol": CHECK_RTOL, "points": CHECK_POINTS}
    try:
        atomic_write_text(check_cache_dir() / f"{digest}.json", json.dumps(record))
    except OSError:
        pass


_CHECKED: dict[Any, float] = {}
#: the kernels' cfunc pairs loaded in this process (by id of the logp cfunc)
_LOADED: dict[int, tuple[Any, Any]] = {}


def kernel_model(model: Any, spec: AnalysisSpec, cache_key: Any = None,
                 record: dict[str, Any] | None = None) -> tuple[Any, dict]:
    """A checked, cache-compiled nutpie model for ``model``, and facts for provenance.

    Raises :class:`KernelUnavailable` (with the reason) when no kernel applies or the check
    fails. ``cache_key`` (a model-structure key) skips the re-check of a structure already
    checked in this process; the data are always the model's current ``pm.Data`` values.
    ``record``: filled with what the fit took from the PyMC model (plan, buffer, dims and
    coords, and — as nutpie asks for them — initial points by seed), for a fit record.
    """
    import time

    kernel = family(spec.model).kernel
    if kernel is None:
        raise KernelUnavailable(f"no cached kernel for model family {spec.model!r}")
    t0 = time.perf_counter()
    point_function = _pymc_point_function(model)
    point = point_function(0)
    plan = kernel.plan(model, spec, point)
    buf = kernel.buffer(plan, model)
    t1 = time.perf_counter()
    cfuncs, cache_hits = load_cfuncs(spec.model)
    t2 = time.perf_counter()
    key = (cache_key, tuple(plan.names), tuple(plan.shapes)) if cache_key is not None else None
    if key is not None and key in _CHECKED:
        worst, how = _CHECKED[key], "in this process (same structure checked before)"
    else:
        points = check_points(model, plan, point=point)
        digest = check_digest(spec.model, plan, buf, points)
        worst = recorded_check(digest) if digest is not None else None
        if worst is None or digest is None:
            worst = check_kernel(model, plan, buf, cfuncs, points)
            if digest is not None:
                record_check(digest, worst, spec.model)
            how = "run"
        else:
            how = f"cached (sha256 {digest[:16]})"
        if key is not None:
            _CHECKED[key] = worst
    t3 = time.perf_counter()
    seen: dict[Any, np.ndarray] = {}
    dims, coords = _dims_and_coords(model, plan)
    n_free = len(model.free_RVs)
    compiled = compiled_kernel_model(
        plan, buf, cfuncs, dims, coords,
        _flat_initial_points(point_function, plan.names[:n_free], seen))
    if record is not None:
        record.update(plan=plan, buffer=buf, dims=dims, coords=coords, initial_points=seen,
                      check_max_rel_error=worst, n_free=n_free)
    return compiled, kernel_facts(plan, cache_hits, how, worst,
                                  plan_s=t1 - t0, load_s=t2 - t1, check_s=t3 - t2)


def load_cfuncs(family_name: str) -> tuple[tuple[Any, Any], tuple[bool, bool]]:
    """The family's kernel cfuncs and (loaded from numba's disk cache, already in memory from
    an earlier fit of this process)."""
    cfuncs = family(family_name).kernel.cfuncs()
    from_disk = all(getattr(f, "cache_hits", 0) > 0 for f in cfuncs)
    in_memory = id(cfuncs[0]) in _LOADED
    _LOADED[id(cfuncs[0])] = cfuncs
    return cfuncs, (from_disk, in_memory)


def kernel_facts(plan: KernelPlan, cache_hits: tuple[bool, bool], check: str, worst: float,
                 plan_s: float, load_s: float, check_s: float) -> dict[str, Any]:
    """The provenance facts of a cached-kernel fit (``sampler_details``)."""
    from_disk, in_memory = cache_hits
    return {"logp_kernel": f"numba cached ({plan.family})",
            "kernel_loaded_from_disk_cache": from_disk,
            # nothing compiled for this fit: machine code from disk or already in memory
            "kernel_cache_hit": from_disk or in_memory,
            "kernel_check": check,
            "kernel_check_max_rel_error": worst,
            "kernel_plan_seconds": plan_s, "kernel_load_seconds": load_s,
            "kernel_check_seconds": check_s}
