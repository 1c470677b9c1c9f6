"""Sampling: backend choice (nutpie by default, PyMC NUTS as fallback), seeds, progress, timings.

Reproducibility. Same seed + same inputs give the same draws *within one Python hash seed*:
PyTensor's graph rewrites iterate over sets, so with a random ``PYTHONHASHSEED`` two processes
can compile algebraically equal but differently ordered floating-point graphs, and NUTS
amplifies the last-bit differences into different draws (measured: nutpie, 2 processes,
PYTHONHASHSEED=1 vs 2 → different draws; =0 twice → identical). The CLI therefore re-executes
itself with ``PYTHONHASHSEED=0`` when it is unset, and every result records the hash seed.

Compiled models are cached per process, keyed by the model's structure: a second fit of the
same structure swaps data into the compiled model (``with_data``) instead of recompiling.

Cached kernels. nutpie's compilation of a PyMC model (a ``numba.cfunc`` that cannot be cached
on disk) costs 8–20 s in every new process. When the analysis spec is passed and its model
family has a kernel (:mod:`bayes_ablation.inference.kernels`), nutpie samples with that disk-cached
kernel instead, after checking that it reproduces the PyMC model's log density, gradient
and traced values (or reading the record of that identical check from an earlier process:
:mod:`bayes_ablation.inference.kernels`); otherwise (or if the check fails) nutpie compiles the
PyMC model as before. Draws from the kernel do not depend on ``PYTHONHASHSEED`` (nothing is
compiled by PyTensor's set-ordered rewrites).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bayes_ablation.errors import SamplingError
from bayes_ablation.inference.nutpie_import import nutpie_module
from bayes_ablation.spec.plan import AnalysisSpec, SamplerSpec

if TYPE_CHECKING:   # PyMC is imported where a model is built or sampled by PyMC
    import pymc as pm

_COMPILED: dict[Any, Any] = {}


@dataclass
class SamplingResult:
    """Posterior draws plus how they were obtained."""

    idata: xr.DataTree
    sampler: str
    settings: dict[str, Any]
    timings: dict[str, float]
    fallback_reason: str | None = None
    notes: list[str] = field(default_factory=list)
    #: how the log density was evaluated (``logp_kernel``) and the kernel check's facts
    details: dict[str, Any] = field(default_factory=dict)


def data_values(model: pm.Model) -> dict[str, np.ndarray]:
    """The current values of the model's ``pm.Data`` containers."""
    return {var.name: np.asarray(var.get_value()) for var in model.data_vars}


def _structure_key(model: pm.Model, cache_key: Any) -> Any:
    sizes = tuple(sorted((k, len(v)) for k, v in model.coords.items() if v is not None
                         and k != "patient" and k != "lesion" and k != "cell"))
    return (cache_key, sizes)


def import_sampling_libraries(backend: str, pymc: bool = True) -> float:
    """Import PyMC (unless ``pymc=False``: a fit from a record) and, for
    ``backend='nutpie'``, nutpie (with ArviZ deferred:
    :mod:`bayes_ablation.inference.nutpie_import`); the seconds it took (recorded as the
    fit's ``imports``, so that they are not booked as compile time)."""
    start = time.perf_counter()
    if pymc:
        import pymc as pm  # noqa: F401
    if backend == "nutpie":
        nutpie_module()
    return time.perf_counter() - start


def compiled_nutpie_model(model: pm.Model, cache_key: Any = None) -> tuple[Any, float, bool]:
    """A nutpie ``CompiledModel`` for ``model``; reused (with new data) when cached.

    Returns (compiled model, compile seconds, cache hit).
    """
    nutpie = nutpie_module()
    key = _structure_key(model, cache_key) if cache_key is not None else None
    start = time.perf_counter()
    if key is not None and key in _COMPILED:
        cached = _COMPILED[key]
        # nutpie keys ``shared_data`` by random ids; the names live in ``shared_var_keys``.
        # Only data the compiled functions read can (and must) be swapped in; data outside
        # the likelihood (e.g. per-patient data of an aggregated model) are not inputs.
        known = {var.name for var in getattr(cached, "shared_var_keys", {})}
        updates = {k: v for k, v in data_values(model).items() if k in known}
        compiled = cached.with_data(**updates)
        return compiled, time.perf_counter() - start, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # BLAS link warning of the pip wheels
        compiled = nutpie.compile_pymc_model(model)
    if key is not None:
        _COMPILED[key] = compiled
    return compiled, time.perf_counter() - start, False


def model_coords(model: pm.Model) -> dict[str, list[Any]]:
    """The model's coordinate labels (dims without labels left out)."""
    return {k: list(v) for k, v in model.coords.items() if v is not None}


def _relabel(idata: xr.DataTree, coords: dict[str, list[Any]]) -> None:
    """Give the posterior these coordinate labels (the model's): a cached compiled model swaps
    in new data but keeps the labels of the model it was compiled from (site names, arm names,
    interval labels of other data)."""
    post = idata.posterior.to_dataset()
    labels = {k: v for k, v in coords.items() if k in post.dims and len(v) == post.sizes[k]}
    idata["posterior"] = post.assign_coords(labels)


INDEXED_COORD_MAX = 20_000
"""Coordinates of ``constant_data`` / ``observed_data`` longer than this (per-patient labels of
a large trial) are kept as labels without a pandas index: ``.sel`` by patient is not offered
there, and building the index of 10⁶ labels would cost ~0.8 s in every fit."""


def data_groups(model: pm.Model) -> tuple[xr.Dataset, xr.Dataset]:
    """(``constant_data``, ``observed_data``) of ``model``: every ``pm.Data`` is in
    ``constant_data`` (also those PyMC files under observed data), the observed values of the
    likelihood terms in ``observed_data``."""
    dims = model.named_vars_to_dims
    constant = {}
    for var in model.data_vars:
        d = dims.get(var.name)
        value = np.asarray(var.get_value())
        constant[var.name] = xr.Variable(d if d else [f"{var.name}_dim_{i}" for i in
                                                      range(value.ndim)], value)
    observed = {}
    for rv in model.observed_RVs:
        obs = model.rvs_to_values[rv]
        value = np.asarray(obs.get_value() if hasattr(obs, "get_value") else obs.data)
        d = dims.get(rv.name)
        observed[rv.name] = xr.Variable(d if d else [f"{rv.name}_dim_{i}" for i in
                                                     range(value.ndim)], value)

    def coords_for(variables: dict[str, xr.Variable]) -> xr.Coordinates:
        used = {d for v in variables.values() for d in v.dims}
        labels = {k: v for k, v in model.coords.items() if k in used and v is not None}
        short = {k: list(v) for k, v in labels.items() if len(v) <= INDEXED_COORD_MAX}
        long = {k: np.asarray(v, dtype=object) for k, v in labels.items() if k not in short}
        # per-patient labels at scale: kept, not indexed (a 10⁶-label index costs ~0.8 s)
        return xr.Coordinates(short).merge(xr.Coordinates(long, indexes={})).coords

    return (xr.Dataset(constant, coords=coords_for(constant)),
            xr.Dataset(observed, coords=coords_for(observed)))


def attach_data_groups(idata: xr.DataTree, constant: xr.Dataset, observed: xr.Dataset
                       ) -> xr.DataTree:
    """Attach ``constant_data`` and ``observed_data`` (nutpie returns neither; PyMC's own
    ``constant_data`` leaves out data used as observed values, e.g. ``time_months``: added)."""
    if "constant_data" not in idata.children:
        idata["constant_data"] = constant
    else:
        have = idata.constant_data.to_dataset()
        missing = [k for k in constant.data_vars if k not in have]
        if missing:
            idata["constant_data"] = have.merge(constant[missing])
    if "observed_data" not in idata.children:
        idata["observed_data"] = observed
    return idata


def add_data_groups(idata: xr.DataTree, model: pm.Model) -> xr.DataTree:
    """Attach the ``constant_data`` and ``observed_data`` groups of ``model``
    (:func:`data_groups`)."""
    return attach_data_groups(idata, *data_groups(model))


def settings_record(settings: SamplerSpec, cores: int) -> dict[str, Any]:
    """The sampler settings a result records (``SamplingResult.settings``)."""
    return {"draws": settings.draws, "tune": settings.tune, "chains": settings.chains,
            "target_accept": settings.target_accept, "seed": settings.seed, "cores": cores,
            "adaptation": settings.adaptation}


def sample(model: pm.Model, settings: SamplerSpec, *, progress: bool = False,
           cache_key: Any = None, cores: int | None = None, spec: AnalysisSpec | None = None,
           logp_kernel: str = "auto", while_sampling: Callable[[], Any] | None = None,
           record_digest: str | None = None) -> SamplingResult:
    """Draw from the posterior of ``model`` with the spec's sampler settings.

    ``backend='nutpie'``: with ``spec`` given and ``logp_kernel='auto'``, nutpie samples with
    the model family's disk-cached kernel when one exists and passes its check against the
    PyMC model; otherwise (or with ``logp_kernel='pytensor'``) nutpie compiles the PyMC model.
    If nutpie fails, PyMC's NUTS is used; the fallback and its reason are recorded.
    ``cache_key`` enables compiled-model reuse within the process. ``while_sampling`` is
    called once while nutpie's threads sample (preparation work that needs no draws, using
    the interpreter while it would otherwise wait); its errors are ignored.
    ``settings.adaptation`` (mass matrix) applies to nutpie; PyMC's NUTS always adapts a
    diagonal one (recorded as such). ``record_digest``: after a cached-kernel fit, what it
    took from the PyMC model is recorded under this digest
    (:mod:`bayes_ablation.inference.fit_records`; :func:`sample_recorded` reads it).
    """
    if logp_kernel not in ("auto", "pytensor"):
        raise ValueError(f"logp_kernel must be 'auto' or 'pytensor', got {logp_kernel!r}")
    cores = cores or min(settings.chains, os.cpu_count() or 1)
    common = settings_record(settings, cores)
    fallback_reason = None
    if settings.backend == "nutpie":
        kernel_reason = "not requested" if logp_kernel == "pytensor" else "no spec given"
        if spec is not None and logp_kernel == "auto":
            try:
                return _sample_kernel(model, spec, settings, progress, cache_key, cores, common,
                                      while_sampling, record_digest)
            except Exception as exc:
                kernel_reason = f"{type(exc).__name__}: {exc}"
        try:
            result = _sample_nutpie(model, settings, progress, cache_key, cores, common,
                                    while_sampling)
            result.details["cached_kernel_unavailable"] = kernel_reason
            return result
        except Exception as exc:
            fallback_reason = f"nutpie failed: {type(exc).__name__}: {exc}"
    result = _sample_pymc(model, settings, progress, cores, common)
    result.fallback_reason = fallback_reason
    return result


def _nutpie_draws(compiled: Any, settings: SamplerSpec, progress: bool, cores: int,
                  while_sampling: Callable[[], Any] | None = None) -> tuple[xr.DataTree, float]:
    nutpie = nutpie_module()
    start = time.perf_counter()
    sampler = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune,
                            chains=settings.chains, cores=cores, seed=settings.seed,
                            target_accept=settings.target_accept, progress_bar=progress,
                            save_warmup=False, blocking=False,
                            adaptation=settings.adaptation)
    if while_sampling is not None:
        try:
            while_sampling()
        except Exception:  # preparation only: never a reason to lose the draws
            pass
    idata = sampler.wait()
    return idata, time.perf_counter() - start


def _sample_kernel(model: pm.Model, spec: AnalysisSpec, settings: SamplerSpec, progress: bool,
                   cache_key: Any, cores: int, common: dict[str, Any],
                   while_sampling: Callable[[], Any] | None = None,
                   record_digest: str | None = None) -> SamplingResult:
    from bayes_ablation.inference.kernels import kernel_model

    start = time.perf_counter()
    record: dict[str, Any] = {}
    compiled, facts = kernel_model(model, spec, cache_key, record)
    compile_s = time.perf_counter() - start
    groups: dict[str, Any] = {}

    def during_sampling() -> None:
        """The data groups while nutpie samples: at 10⁶ patients they take ~0.3 s of the
        interpreter, which would otherwise wait. (Not the fit record: the initial points
        nutpie asks for are added to it as the chains start.)"""
        groups["coords"] = model_coords(model)
        groups["data"] = data_groups(model)
        if while_sampling is not None:
            while_sampling()

    idata, sampling_s = _nutpie_draws(compiled, settings, progress, cores, during_sampling)
    if "data" not in groups:  # the preparation failed (its errors are ignored): now
        groups["coords"], groups["data"] = model_coords(model), data_groups(model)
    _relabel(idata, groups["coords"])
    attach_data_groups(idata, *groups["data"])
    if record_digest is not None:
        from bayes_ablation.inference.fit_records import save_record_in_background

        constant, observed = groups["data"]
        # the labels the posterior is relabelled with (per-patient ones are in constant_data)
        labels = {k: v for k, v in groups["coords"].items() if len(v) <= INDEXED_COORD_MAX}
        save_record_in_background(record_digest, {
            **record, "model_coords": labels, "constant_data": constant,
            "observed_data": observed})
        facts["model_record"] = f"recorded (sha256 {record_digest[:16]})"
    return SamplingResult(idata=idata, sampler="nutpie", settings=common,
                          timings={"compile_seconds": compile_s, "sampling_seconds": sampling_s,
                                   "compile_cache_hit": float(facts["kernel_cache_hit"])},
                          details=facts)


def sample_recorded(record: dict[str, Any], spec: AnalysisSpec, *, build: Callable[[], Any],
                    progress: bool = False, cores: int | None = None,
                    while_sampling: Callable[[], Any] | None = None) -> SamplingResult:
    """Draw as :func:`sample` does through the cached kernel, from a fit record
    (:mod:`bayes_ablation.inference.fit_records`): no PyMC model unless ``build`` is needed
    for an initial point the record lacks. If anything fails, the PyMC model is built and
    :func:`sample` runs as without a record (the reason is recorded)."""
    from bayes_ablation.inference.fit_records import recorded_model

    settings = spec.sampler
    cores = cores or min(settings.chains, os.cpu_count() or 1)
    common = settings_record(settings, cores)
    try:
        start = time.perf_counter()
        compiled, facts = recorded_model(record, spec, build)
        compile_s = time.perf_counter() - start
        idata, sampling_s = _nutpie_draws(compiled, settings, progress, cores, while_sampling)
    except Exception as exc:
        result = sample(build(), settings, progress=progress, cores=cores, spec=spec,
                        while_sampling=while_sampling)
        result.details["model_record"] = f"not usable ({type(exc).__name__}: {exc})"
        return result
    _relabel(idata, record["model_coords"])
    attach_data_groups(idata, record["constant_data"], record["observed_data"])
    return SamplingResult(idata=idata, sampler="nutpie", settings=common,
                          timings={"compile_seconds": compile_s, "sampling_seconds": sampling_s,
                                   "compile_cache_hit": float(facts["kernel_cache_hit"])},
                          details=facts)


def _sample_nutpie(model: pm.Model, settings: SamplerSpec, progress: bool, cache_key: Any,
                   cores: int, common: dict[str, Any],
                   while_sampling: Callable[[], Any] | None = None) -> SamplingResult:
    compiled, compile_s, hit = compiled_nutpie_model(model, cache_key)
    idata, sampling_s = _nutpie_draws(compiled, settings, progress, cores, while_sampling)
    _relabel(idata, model_coords(model))
    add_data_groups(idata, model)
    return SamplingResult(idata=idata, sampler="nutpie", settings=common,
                          timings={"compile_seconds": compile_s, "sampling_seconds": sampling_s,
                                   "compile_cache_hit": float(hit)},
                          details={"logp_kernel": "pytensor (nutpie.compile_pymc_model)"})


def _sample_pymc(model: pm.Model, settings: SamplerSpec, progress: bool, cores: int,
                 common: dict[str, Any]) -> SamplingResult:
    import pymc as pm

    start = time.perf_counter()
    try:
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() warning, see notes
            idata = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                              cores=cores, random_seed=settings.seed, nuts_sampler="pymc",
                              target_accept=settings.target_accept, progressbar=progress,
                              compute_convergence_checks=False)
    except Exception as exc:
        raise SamplingError(f"PyMC NUTS failed: {type(exc).__name__}: {exc}") from exc
    total = time.perf_counter() - start
    sampling_s = float(idata.posterior.attrs.get("sampling_time", total))
    add_data_groups(idata, model)
    return SamplingResult(idata=idata, sampler="pymc", settings={**common, "adaptation": "diag"},
                          timings={"compile_seconds": max(total - sampling_s, 0.0),
                                   "sampling_seconds": sampling_s, "compile_cache_hit": 0.0},
                          details={"logp_kernel": "pytensor (PyMC NUTS)"})
