"""One validation simulation (draw or fix parameters → simulate a trial → fit → summarise), and
many of them through :func:`bayes_ablation.core.parallel.run_tasks`.

Seeds: simulation i of a study draws everything random — prior draw, data set, sampler seed —
from ``SeedSequence(entropy=seed, spawn_key=(study, i))`` (:func:`bayes_ablation.core.parallel.
rng_for`), so a simulation's result depends on neither the worker count, the chunking nor a
resumption. Every worker compiles the model once and swaps each new data set into the compiled
model (:func:`bayes_ablation.inference.sampling.sample` with a ``cache_key``): the design, hence the
model's structure (arms, sites), is the same in every simulation.

A simulation never raises: a failure is returned as a record with ``status = "error"``, the
stage and the message, so failed fits are counted, never dropped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from bayes_ablation.spec.plan import AnalysisSpec, parse_spec

#: posterior quantiles stored per parameter and simulation (central 50/80/90/95% intervals)
QUANTILE_PROBS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)


@dataclass(frozen=True)
class SimulationTask:
    """Everything one simulation depends on (its ``repr`` is its checkpoint identity)."""

    study: str                                  # "sbc" or "coverage"
    index: int
    seed: int
    spec_json: str                              # the spec's content, canonical JSON
    spec_path: str
    design: tuple[tuple[str, Any], ...]
    rank_draws: int
    truth: tuple[tuple[str, float], ...] | None = None   # fixed parameters (coverage)


def make_tasks(spec: AnalysisSpec, study: str, n_sims: int, *, design: Mapping[str, Any],
               rank_draws: int, seed: int | None = None,
               truth: Mapping[str, float] | None = None) -> list[SimulationTask]:
    spec_json = json.dumps(spec.raw, sort_keys=True, separators=(",", ":"))
    base = spec.sampler.seed if seed is None else int(seed)
    fixed = tuple(sorted((k, float(v)) for k, v in truth.items())) if truth is not None else None
    return [SimulationTask(study=study, index=i, seed=base, spec_json=spec_json,
                           spec_path=spec.source_path, design=tuple(sorted(design.items())),
                           rank_draws=rank_draws, truth=fixed) for i in range(n_sims)]


@lru_cache(maxsize=8)
def _spec(spec_json: str, path: str) -> AnalysisSpec:
    return parse_spec(json.loads(spec_json), path)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def summarise_draws(draws: np.ndarray, truth: float, rank_draws: int) -> dict[str, Any]:
    """Rank of ``truth`` among ``rank_draws`` thinned draws, plus posterior mean, sd and
    quantiles from all draws."""
    from bayes_ablation.inference.uniformity import rank_of, thin

    flat = np.asarray(draws, dtype=float).reshape(-1)
    return {
        "truth": float(truth),
        "rank": rank_of(truth, thin(flat, rank_draws)),
        "mean": float(flat.mean()),
        "sd": float(flat.std(ddof=1)),
        "quantiles": [float(q) for q in np.quantile(flat, QUANTILE_PROBS)],
    }


def _diagnostics(idata: Any, spec: AnalysisSpec, draws: Mapping[str, np.ndarray],
                 rank_draws: int) -> dict[str, Any]:
    import arviz as az
    import xarray as xr

    from bayes_ablation.inference.convergence import convergence

    gate = convergence(idata, spec.diagnostics)
    key = xr.Dataset({name.replace("[", "_").replace("]", ""): (("chain", "draw"), d)
                      for name, d in draws.items()})
    ess_bulk = az.ess(key, method="bulk")
    ess_tail = az.ess(key, method="tail")
    rhat = az.rhat(key)

    def extreme(ds: Any, fn: Any) -> float | None:
        values = np.array([float(ds[v]) for v in ds.data_vars])
        return _finite(fn(values)) if values.size else None

    return {
        "divergences": int(gate.divergences),
        "rhat_max": _finite(gate.rhat_max),
        "ess_bulk_min": _finite(gate.ess_bulk_min),
        "ess_tail_min": _finite(gate.ess_tail_min),
        "ebfmi_min": _finite(gate.ebfmi_min),
        "gate_passed": bool(gate.passed),
        "gate_failures": list(gate.failures),
        "key_rhat_max": extreme(rhat, np.max),
        "key_ess_bulk_min": extreme(ess_bulk, np.min),
        "key_ess_tail_min": extreme(ess_tail, np.min),
    }


def compiled_model_key(spec: AnalysisSpec) -> tuple[Any, ...]:
    """The compiled-model cache key of :func:`bayes_ablation.workflows.fit.fit` for PFS models
    (graph-changing model options, hierarchy, priors; not the sampler settings nor options that
    are only data), so validation fits and analyses of one model structure in a process share
    one compiled model."""
    from bayes_ablation.workflows.result import compiled_model_key as fit_key

    return fit_key(spec, "default")


def flags_for(diag: Mapping[str, Any], spec: AnalysisSpec, rank_draws: int) -> list[str]:
    """Problems of one fit that SBC counts (ranks are kept; see :mod:`sbc`)."""
    flags = []
    if diag["divergences"] > spec.diagnostics.max_divergences:
        flags.append("divergences")
    rhat = diag.get("rhat_max")
    if rhat is None or rhat > spec.diagnostics.rhat_max:
        flags.append("rhat")
    ess = diag.get("key_ess_bulk_min")
    if ess is None or ess < rank_draws:
        flags.append("low_ess")
    return flags


def run_simulation(task: SimulationTask, *, cores: int = 1) -> dict[str, Any]:
    """Run one simulation; returns a JSON-serialisable record (module docstring)."""
    from bayes_ablation.core.parallel import rng_for
    from bayes_ablation.core.provenance import hash_seed_status
    from bayes_ablation.endpoints.sbc import get_adapter

    started = time.perf_counter()
    record: dict[str, Any] = {"index": task.index, "status": "ok", "stage": None, "error": None,
                              "flags": [], **hash_seed_status()}
    stage = "setup"
    try:
        spec = _spec(task.spec_json, task.spec_path)
        adapter = get_adapter(spec)
        rng = rng_for(task.seed, task.study, task.index)
        stage = "draw"
        params = dict(task.truth) if task.truth is not None else \
            adapter.draw_parameters(spec, rng)
        record["parameters"] = params
        stage = "simulate"
        sim = adapter.simulate(spec, params, dict(task.design), rng)
        record["data"] = sim.summary
        sampler_seed = int(rng.integers(0, 2**31 - 1))
        record["sampler_seed"] = sampler_seed
        stage = "fit"
        from bayes_ablation.inference.sampling import sample

        model = adapter.build(spec, sim.data)
        settings = dataclasses.replace(spec.sampler, seed=sampler_seed)
        fitted = sample(model, settings, cache_key=compiled_model_key(spec), cores=cores,
                        spec=spec)  # the analysis' own path (cached logp kernel when one exists)
        record["sampler"] = fitted.sampler
        record["fallback_reason"] = fitted.fallback_reason
        record["logp_kernel"] = fitted.details.get("logp_kernel")
        record["kernel_unavailable"] = fitted.details.get("cached_kernel_unavailable")
        record["timings"] = {k: float(v) for k, v in fitted.timings.items()}
        stage = "summarise"
        posterior = fitted.idata.posterior.to_dataset()
        draws = adapter.posterior_draws(posterior, spec)
        truth = adapter.truth_values(sim.truth, spec)
        record["params"] = {name: summarise_draws(draws[name], truth[name], task.rank_draws)
                            for name in adapter.key_parameters(spec)}
        record["diagnostics"] = _diagnostics(fitted.idata, spec, draws, task.rank_draws)
        record["flags"] = flags_for(record["diagnostics"], spec, task.rank_draws)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # nutpie panics (Rust) are BaseExceptions
        record.update(status="error", stage=stage, error=f"{type(exc).__name__}: {exc}"[:2000])
    record["seconds"] = time.perf_counter() - started
    return record


def run_study(tasks: Sequence[SimulationTask], *, scheduler: str | None = None,
              workers: int | None = None, checkpoint_dir: str | Path | None = None,
              progress: bool = True, desc: str = "simulations",
              chunk_size: int | None = None,
              simulate: Callable[..., dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Run ``tasks`` in parallel (local processes, or Dask with ``scheduler``), resumable from
    ``checkpoint_dir``. Each fit samples its chains on one core when several workers run.
    ``simulate(task, cores=…)`` replaces :func:`run_simulation` (tests)."""
    from bayes_ablation.core.parallel import default_workers, run_tasks

    n_workers = workers or default_workers()
    cores = 1 if (scheduler is not None or n_workers > 1) else max(1, default_workers())
    if chunk_size is None:  # small chunks: an interruption loses little work
        chunk_size = max(1, min(10, -(-len(tasks) // (4 * n_workers)))) if tasks else 1
    return run_tasks(partial(simulate or run_simulation, cores=cores), list(tasks),
                     scheduler=scheduler,
                     checkpoint_dir=checkpoint_dir, progress=progress, workers=n_workers,
                     chunk_size=chunk_size, desc=desc)


@dataclass
class Study:
    """The records of a validation study and how they were produced."""

    spec: AnalysisSpec
    study: str
    records: list[dict[str, Any]]
    key_parameters: list[str]
    design: dict[str, Any]
    rank_draws: int
    provenance: dict[str, Any]


def run_validation(spec: AnalysisSpec, study: str, n_sims: int, *,
                   truth: Mapping[str, float] | None = None,
                   design: Mapping[str, Any] | None = None, rank_draws: int = 99,
                   seed: int | None = None, scheduler: str | None = None,
                   workers: int | None = None, checkpoint_dir: str | Path | None = None,
                   progress: bool = True, command: str | None = None) -> Study:
    """Set up and run ``n_sims`` simulations of ``study`` ("sbc": parameters from the prior;
    "coverage": parameters fixed at ``truth``) for ``spec``."""
    from datetime import UTC, datetime

    from bayes_ablation.core.parallel import load_checkpoints
    from bayes_ablation.core.provenance import hash_seed_status, package_versions
    from bayes_ablation.endpoints.sbc import ValidationSetupError, get_adapter

    if n_sims < 1:
        raise ValidationSetupError(f"--n-sims must be at least 1, got {n_sims}")
    n_draws = spec.sampler.chains * spec.sampler.draws
    if not 1 <= rank_draws <= n_draws:
        raise ValidationSetupError(f"--rank-draws must be in 1 … chains × draws = {n_draws}, "
                                   f"got {rank_draws}")
    adapter = get_adapter(spec)
    full_design = adapter.design(design or {})
    spec = adapter.study_spec(spec, full_design)
    tasks = make_tasks(spec, study, n_sims, design=full_design, rank_draws=rank_draws,
                       seed=seed, truth=truth)
    resumed = len(load_checkpoints(checkpoint_dir, tasks)) if checkpoint_dir else 0
    started = time.perf_counter()
    records = run_study(tasks, scheduler=scheduler, workers=workers,
                        checkpoint_dir=checkpoint_dir, progress=progress,
                        desc=f"{study} {spec.name}")
    base_seed = tasks[0].seed
    provenance = {
        "study": study,
        "spec_name": spec.name,
        "spec_path": spec.source_path,
        "spec_sha256": spec.sha256,
        "model": spec.model,
        "n_simulations": n_sims,
        "seed": base_seed,
        "seeding": (f"simulation i: numpy SeedSequence(entropy={base_seed}, spawn_key=("
                    f"key_int('{study}'), i)) draws the parameters, the data set and the "
                    "sampler seed, in that order"),
        "design": full_design,
        "truth": dict(truth) if truth is not None else None,
        "sampler_settings": dataclasses.asdict(spec.sampler),
        "rank_draws": rank_draws,
        "key_parameters": adapter.key_parameters(spec),
        "scheduler": scheduler,
        "workers": workers,
        "resumed_from_checkpoint": resumed,
        "command": command,
        "wall_seconds_this_run": time.perf_counter() - started,
        "worker_python_hash_seeds": sorted({str(r.get("python_hash_seed")) for r in records}),
        **hash_seed_status(),
        "versions": package_versions(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return Study(spec=spec, study=study, records=records,
                 key_parameters=adapter.key_parameters(spec), design=full_design,
                 rank_draws=rank_draws, provenance=provenance)


#: per-simulation records inside a validation bundle (gzip-compressed JSON lines)
RECORDS_FILE = "simulations.jsonl.gz"


def write_records(path: str | Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Records as gzip-compressed JSON lines (byte-identical for identical records)."""
    import gzip

    from bayes_ablation.core.files import json_default

    text = "".join(json.dumps(r, default=json_default) + "\n" for r in records)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(text.encode())


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records from JSON lines, gzip-compressed (``.gz``) or plain (bundles written before
    compression was introduced)."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_study(bundle: str | Path) -> Study:
    """A validation study back from its bundle (manifest checked), e.g. to re-summarise it."""
    from bayes_ablation.results.bundle import read_summary
    from bayes_ablation.spec.plan import load_spec

    bundle = Path(bundle)
    summary = read_summary(bundle)
    prov = summary["provenance"]
    return Study(spec=load_spec(bundle / "spec.toml"), study=prov["study"],
                 records=read_records(_records_path(bundle)),
                 key_parameters=list(prov["key_parameters"]), design=dict(prov["design"]),
                 rank_draws=int(prov["rank_draws"]), provenance=prov)


def _records_path(bundle: Path) -> Path:
    for name in (RECORDS_FILE, "simulations.jsonl"):
        if (bundle / name).is_file():
            return bundle / name
    raise FileNotFoundError(f"{bundle}: no {RECORDS_FILE} (not a validation bundle?)")
