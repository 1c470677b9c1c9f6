"""The result a workflow returns (the contract plus ``save`` and ``report``) and the pieces
every composer shares: spec input, compile-cache keys, sampled provenance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import xarray as xr

from bayes_ablation.core.files import json_default
from bayes_ablation.core.provenance import (
    hash_seed_status,
    package_versions,
)
from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.spec.plan import AnalysisSpec, load_spec

SpecLike = AnalysisSpec | str | Path


@dataclass(frozen=True)
class Result(AnalysisResult):
    """An :class:`~bayes_ablation.results.contract.AnalysisResult` that can write itself:
    ``save(dir)`` (the result bundle) and ``report(path)`` (the HTML report alone)."""

    def save(self, out: str | Path, *, force: bool = False, posterior_format: str = "netcdf",
             spec_text: str | None = None, progress: bool = False,
             figure_format: str = "png") -> Path:
        """Write the result bundle atomically (see :mod:`bayes_ablation.results.bundle`);
        ``figure_format`` ``svg``/``pdf``: the figures also in that format."""
        from bayes_ablation.workflows.save import save_bundle

        return save_bundle(self, out, force=force, posterior_format=posterior_format,
                           spec_text=spec_text, progress=progress, figure_format=figure_format)

    def report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (figures embedded) to ``path``."""
        from bayes_ablation.workflows.save import save_report

        return save_report(self, path)


def as_spec(spec: SpecLike) -> AnalysisSpec:
    """A parsed spec, given one or the path of its TOML file."""
    return spec if isinstance(spec, AnalysisSpec) else load_spec(spec)


def structure_key(spec: AnalysisSpec, cache_key: Any, *extra: Any,
                  model_options: dict[str, Any] | None = None) -> Any:
    """The compiled-model cache key of ``spec``'s model structure (None: no caching).

    ``model_options`` replaces the spec's ``[model]`` table (e.g. without data-only options);
    ``extra`` adds what else fixes the compiled model's shape.
    """
    if cache_key is None:
        return None
    options = spec.raw.get("model") if model_options is None else model_options
    return (spec.model, json.dumps(options, sort_keys=True),
            json.dumps(spec.raw.get("hierarchy"), sort_keys=True),
            json.dumps(spec.raw.get("priors"), sort_keys=True), *extra, cache_key)


def compiled_model_key(spec: AnalysisSpec, cache_key: Any = "default", *extra: Any) -> Any:
    """The compiled-model cache key :func:`fit` uses: the model family, graph-changing model
    options (not options that only change the data), hierarchy, priors, ``extra`` (what else
    fixes the compiled shape) and ``cache_key`` (None: no caching); not the sampler settings."""
    from bayes_ablation.spec.families import MODEL_REGISTRY

    data_options = getattr(MODEL_REGISTRY.get(spec.model), "data_options", ())
    graph_options = {k: v for k, v in spec.raw.get("model", {}).items() if k not in data_options}
    return structure_key(spec, cache_key, *extra, model_options=graph_options)


def sampled_provenance(spec: AnalysisSpec, data: dict[str, Any], sampled: Any,
                       timings: dict[str, Any]) -> dict[str, Any]:
    """Provenance of a sampled fit: spec, ``data`` (its sources, hashes and sizes), sampler,
    hash-seed status, package versions and ``timings`` (stage → seconds)."""
    provenance = {
        "spec_name": spec.name,
        "spec_path": spec.source_path,
        "spec_sha256": spec.sha256,
        **data,
        "seed": spec.sampler.seed,
        "sampler": sampled.sampler,
        "sampler_settings": sampled.settings,
        "sampler_fallback_reason": sampled.fallback_reason,
        "sampler_details": sampled.details,
    }
    provenance.update(hash_seed_status())
    provenance.update({
        "versions": package_versions(),
        "timings_seconds": timings,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    return provenance


def sampling_timings(sampled: Any) -> dict[str, Any]:
    return {"compile": sampled.timings["compile_seconds"],
            "compile_cache_hit": bool(sampled.timings.get("compile_cache_hit")),
            "sampling": sampled.timings["sampling_seconds"]}


def describe_self(idata: xr.DataTree, spec: AnalysisSpec, provenance: dict[str, Any]) -> None:
    """Spec hash and provenance in the posterior's attrs: the posterior describes itself."""
    idata.posterior.attrs["spec_name"] = spec.name
    idata.posterior.attrs["spec_sha256"] = spec.sha256
    idata.posterior.attrs["provenance"] = json.dumps(provenance, default=json_default,
                                                     sort_keys=True)
