"""Compose one analysis: spec + validated tables → model → posterior → estimands + diagnostics.

This is the only module that wires the layers together; the CLI, monitoring and validation
studies all call :func:`fit`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.data.lesions import LesionTable
from bayes_ablation.data.schema import PatientTable
from bayes_ablation.diagnostics import ConvergenceReport
from bayes_ablation.errors import BayesAblationError
from bayes_ablation.spec import AnalysisSpec

DEPENDENCIES = ("pymc", "pytensor", "arviz", "arviz-base", "arviz-stats", "nutpie", "numba",
                "numpy", "scipy", "pandas", "xarray", "lifelines", "matplotlib", "h5netcdf")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("bayes_ablation", *DEPENDENCIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["bayes_ablation_source"] = source_revision()
    return versions


@functools.lru_cache(maxsize=1)
def source_revision() -> str:
    """The git commit of the package's source when it runs from a checkout (``+modified`` when
    the package's files differ from it), else ``"not a git checkout"``: the package version alone
    does not pin the code that produced a result during development."""
    import subprocess

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True,
                             timeout=10, check=True)
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        modified = bool(git("status", "--porcelain", "--untracked-files=no", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return commit + ("+modified" if modified else "")


@dataclass
class Result:
    """Everything one analysis produced. ``save`` writes it as a result bundle.

    ``idata`` and ``diagnostics`` are None when the posterior was computed without sampling
    (exact quadrature of a meta-analysis); ``estimands`` then holds posterior densities on grids.
    """

    spec: AnalysisSpec
    idata: xr.DataTree | None
    estimands: xr.Dataset
    estimand_table: pd.DataFrame
    probabilities: dict[str, float]
    diagnostics: ConvergenceReport | None
    provenance: dict[str, Any]
    data_summary: pd.DataFrame
    ppc: dict[str, xr.Dataset] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def posterior(self) -> xr.DataTree:
        if self.idata is None:
            raise AttributeError("this result has no posterior draws (computed by quadrature)")
        return self.idata.posterior

    @property
    def gate_passed(self) -> bool:
        """The convergence gate passed, or there was nothing to converge (no sampling)."""
        return self.diagnostics is None or self.diagnostics.passed

    def summary(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        stats = ["mean", "sd", "median", *[c for c in self.estimand_table.columns
                                            if c.startswith("q")]]
        estimands = {}
        for _, row in self.estimand_table.iterrows():
            entry = {k: _json_value(row[k]) for k in self.estimand_table.columns
                     if k not in ("label",) and not _missing(row[k])}
            entry.update({k: _json_value(row[k]) for k in stats})
            estimands[row["label"]] = entry
        diag = self.diagnostics.to_dict() if self.diagnostics is not None else {}
        return {
            "analysis": {"name": self.spec.name, "endpoint": self.spec.endpoint,
                         "model": self.spec.model, "reference_arm": self.spec.reference_arm,
                         "time_unit": self.spec.time_unit},
            "estimands": estimands,
            "probabilities": self.probabilities,
            "diagnostics": {k: _json_value(v) for k, v in diag.items()},
            "posterior_predictive": {
                name: {str(g): {"km_band_coverage": float(ds["coverage"].sel(group=g)),
                                "events_p_value": float(ds["events_p_value"].sel(group=g))}
                       for g in ds["group"].values}
                for name, ds in self.ppc.items()},
            "provenance": self.provenance,
            **self.extras.get("summary", {}),
        }

    def save(self, out: str | Path, *, force: bool = False, posterior_format: str = "netcdf",
             spec_text: str | None = None, progress: bool = False) -> Path:
        """Write the result bundle atomically (see :mod:`bayes_ablation.bundle`)."""
        from bayes_ablation.bundle import write_bundle

        return write_bundle(self, out, force=force, posterior_format=posterior_format,
                            spec_text=spec_text, progress=progress)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def prepare_outputs() -> None:
    """One-time set-up of the post-processing libraries (cached numba estimand kernel,
    xarray's array-type discovery, NetCDF writer, matplotlib fonts): done while the sampler's
    threads run, so it costs no wall time on a machine with a free core."""
    from bayes_ablation.survival_kernels import gh_tables, mixed_survival

    mixed_survival(np.zeros((1, 1, 1)), np.zeros((1, 1)), np.ones(1), np.ones((1, 1)),
                   *gh_tables())
    xr.DataArray(np.zeros(1), dims="x").to_dataset(name="x")
    import h5netcdf  # noqa: F401  (the bundle's posterior writer)

    from bayes_ablation.report.plots import plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title("–")
    fig.canvas.draw()
    plt.close(fig)


def _compile_key(spec: AnalysisSpec, cache_key: Any, *extra: Any,
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


def compiled_model_key(spec: AnalysisSpec, cache_key: Any = "default") -> Any:
    """The compiled-model cache key :func:`fit` uses for a patient-level (PFS) spec: the model
    family, graph-changing model options (not options that only change the data), hierarchy,
    priors and ``cache_key`` (None: no caching); not the sampler settings."""
    from bayes_ablation.models.registry import MODEL_REGISTRY

    data_options = getattr(MODEL_REGISTRY.get(spec.model), "data_options", ())
    graph_options = {k: v for k, v in spec.raw.get("model", {}).items() if k not in data_options}
    return _compile_key(spec, cache_key, model_options=graph_options)


class _Stopwatch:
    """Wall seconds per named stage: ``with clock("estimands"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = time.perf_counter() - t0


def _sampled_provenance(spec: AnalysisSpec, data: dict[str, Any], sampled: Any,
                        timings: dict[str, Any]) -> dict[str, Any]:
    """Provenance of a sampled fit: spec, ``data`` (its sources, hashes and sizes), sampler,
    hash-seed status, package versions and ``timings`` (stage → seconds)."""
    from bayes_ablation.inference import hash_seed_status

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


def _estimands_and_gate(idata: xr.DataTree, spec: AnalysisSpec, clock: _Stopwatch,
                        compute: Callable[[xr.DataTree, AnalysisSpec], xr.Dataset],
                        probabilities: Callable[[xr.Dataset], dict[str, float]]
                        ) -> tuple[xr.Dataset, pd.DataFrame, dict[str, float], ConvergenceReport]:
    """The endpoint's estimands (``compute``), their summary table and probabilities, and the
    convergence gate, each stage timed on ``clock``."""
    from bayes_ablation import diagnostics as diag
    from bayes_ablation import estimands as est

    with clock("estimands"):
        estimands = compute(idata, spec)
        table = est.summarise(estimands, spec.estimands.interval_prob)
        probs = probabilities(estimands)
    with clock("diagnostics"):
        report = diag.convergence(idata, spec.diagnostics)
    return estimands, table, probs, report


def _sampling_timings(sampled: Any) -> dict[str, Any]:
    return {"compile": sampled.timings["compile_seconds"],
            "compile_cache_hit": bool(sampled.timings.get("compile_cache_hit")),
            "sampling": sampled.timings["sampling_seconds"]}


def fit(spec: AnalysisSpec, patients: PatientTable, *, lesions: LesionTable | None = None,
        progress: bool = False, ppc_draws: int = 100, cache_key: Any = "default",
        run_ppc: bool = True, log_likelihood: bool = True) -> Result:
    """Run the analysis the spec pre-specifies on validated tables.

    Patient-level endpoints (PFS) use ``patients``; the ``local_recurrence`` endpoint needs
    ``lesions`` as well (a :class:`~bayes_ablation.data.lesions.LesionTable` validated against
    this patient table, e.g. from :func:`~bayes_ablation.data.lesions.read_lr_data`).
    ``log_likelihood`` adds the pointwise ``log_likelihood`` group (per patient; per cell too
    for aggregated models) that LOO model comparison needs (see :mod:`bayes_ablation.loglik`).
    """
    if spec.endpoint == "local_recurrence":
        return _fit_local_recurrence(spec, patients, lesions, progress=progress,
                                     ppc_draws=ppc_draws, cache_key=cache_key, run_ppc=run_ppc)
    from bayes_ablation import diagnostics as diag
    from bayes_ablation import estimands as est
    from bayes_ablation.inference import sample
    from bayes_ablation.loglik import log_likelihood_group
    from bayes_ablation.models.build import build_model
    from bayes_ablation.timing import import_modules, process_age_seconds

    started = time.perf_counter()
    process_age_at_fit = process_age_seconds()
    # the heavy libraries this analysis uses, imported up front so their cost is on record
    heavy = ("pymc", "arviz", *(("nutpie",) if spec.sampler.backend == "nutpie" else ()))
    imports_s = import_modules(heavy)
    clock = _Stopwatch()
    with clock("build_model"):
        model = build_model(spec, patients)
    key = compiled_model_key(spec, cache_key)
    sampled = sample(model, spec.sampler, progress=progress, cache_key=key, spec=spec,
                     while_sampling=prepare_outputs)
    idata = sampled.idata
    idata.posterior.attrs["arms"] = json.dumps(list(patients.arms))
    idata.posterior.attrs["spec_sha256"] = spec.sha256
    model_details: dict[str, Any] = {}
    if "interval_start" in idata.constant_data:  # piecewise models: the cut points used
        cuts = [float(c) for c in idata.constant_data["interval_start"].values[1:]]
        idata.posterior.attrs["cuts_months"] = json.dumps(cuts)
        model_details["cuts_months"] = cuts
    if "cell" in idata.constant_data.dims:
        model_details["aggregated_cells"] = int(idata.constant_data.sizes["cell"])

    loglik_notes: list[str] = []
    with clock("log_likelihood"):
        if log_likelihood:
            group, loglik_notes = log_likelihood_group(idata, spec)
            if group.data_vars:
                idata["log_likelihood"] = group

    estimands, table, probs, report = _estimands_and_gate(
        idata, spec, clock, est.compute_estimands, est.probabilities)

    ppc = {}
    with clock("posterior_predictive"):
        if run_ppc:
            ppc = diag.survival_ppc(idata, spec, patients.frame["arm"].to_numpy(),
                                    patients.frame["site"].to_numpy(), n_draws=ppc_draws,
                                    seed=spec.sampler.seed, arm_order=list(patients.arms))

    data = {"data_source": patients.source, "data_sha256": patients.sha256,
            "n_patients": patients.n_patients, "arms": list(patients.arms),
            "sites": list(patients.sites)}
    stages = clock.seconds
    timings = {"process_start_to_fit": process_age_at_fit, "imports": imports_s,
               "build_model": stages["build_model"], **_sampling_timings(sampled),
               **{k: stages[k] for k in ("estimands", "diagnostics", "posterior_predictive",
                                         "log_likelihood")},
               "fit_total": time.perf_counter() - started}
    provenance = _sampled_provenance(spec, data, sampled, timings)
    if loglik_notes:
        model_details["log_likelihood_notes"] = loglik_notes
    extras: dict[str, Any] = {"summary": {"model_details": model_details}} if model_details else {}
    return Result(spec=spec, idata=idata, estimands=estimands, estimand_table=table,
                  probabilities=probs, diagnostics=report, provenance=provenance,
                  data_summary=patients.summary(), ppc=ppc, extras=extras)


def _fit_local_recurrence(spec: AnalysisSpec, patients: PatientTable,
                          lesions: LesionTable | None, *, progress: bool, ppc_draws: int,
                          cache_key: Any, run_ppc: bool) -> Result:
    """Lesion-level LR analysis: model → posterior → competing-risk estimands → checks."""
    from bayes_ablation import diagnostics_lr as dlr
    from bayes_ablation import estimands_lr as elr
    from bayes_ablation.inference import sample
    from bayes_ablation.models.build import build_model
    from bayes_ablation.report.lr import lr_report_extras

    if lesions is None:
        raise BayesAblationError("the local_recurrence endpoint needs a lesion table: "
                                 "fit(spec, patients, lesions=...)")
    if lesions.patients is not patients and lesions.patients.sha256 != patients.sha256:
        raise BayesAblationError("the lesion table was validated against another patient "
                                 "table; read both with data.lesions.read_lr_data")
    started = time.perf_counter()
    clock = _Stopwatch()
    with clock("build_model"):
        model = build_model(spec, lesions)
    # z_patient has one element per patient: the compiled model's shape depends on it (the
    # number of lesions may change: lesion data are swapped in with ``with_data``)
    key = _compile_key(spec, cache_key, spec.covariates, patients.n_patients)
    sampled = sample(model, spec.sampler, progress=progress, cache_key=key)
    idata = sampled.idata
    idata.posterior.attrs["arms"] = json.dumps(list(patients.arms))
    idata.posterior.attrs["spec_sha256"] = spec.sha256

    estimands, table, probs, report = _estimands_and_gate(
        idata, spec, clock, elr.compute_lr_estimands, elr.lr_probabilities)

    with clock("posterior_predictive"):
        checks = dlr.lr_ppc(idata, spec, lesions, n_draws=max(ppc_draws, 200),
                            seed=spec.sampler.seed) if run_ppc else {}

    data = {
        "data_source": f"{patients.source} + {lesions.source}",
        "data_sha256": hashlib.sha256(f"{patients.sha256}{lesions.sha256}".encode()).hexdigest(),
        "patients_source": patients.source,
        "patients_sha256": patients.sha256,
        "lesions_source": lesions.source,
        "lesions_sha256": lesions.sha256,
        "n_patients": patients.n_patients,
        "n_lesions": lesions.n_lesions,
        "arms": list(patients.arms),
        "sites": list(patients.sites),
    }
    stages = clock.seconds
    timings = {"build_model": stages["build_model"], **_sampling_timings(sampled),
               **{k: stages[k] for k in ("estimands", "diagnostics", "posterior_predictive")},
               "fit_total": time.perf_counter() - started}
    provenance = _sampled_provenance(spec, data, sampled, timings)
    result = Result(spec=spec, idata=idata, estimands=estimands, estimand_table=table,
                    probabilities=probs, diagnostics=report, provenance=provenance,
                    data_summary=lesions.summary())
    result.extras.update(lr_report_extras(result, lesions, checks))
    result.extras["lr_checks"] = checks  # the PPC datasets (xarray), e.g. for custom plots
    return result


# --------------------------------------------------------------------------------------------
# evidence pooling (endpoint "meta")

META_METHODS = ("mcmc", "quadrature")


def check_meta_inputs(spec: AnalysisSpec, studies: Any, method: str) -> None:
    """Refuse combinations of spec, study table and method that cannot be analysed."""
    from bayes_ablation.errors import BayesAblationError, DataValidationError, Problem

    if spec.endpoint != "meta":
        raise BayesAblationError(f"spec {spec.name!r} has endpoint {spec.endpoint!r}; pooling "
                                 "studies needs endpoint 'meta'")
    if method not in META_METHODS:
        raise BayesAblationError(f"method must be one of {', '.join(META_METHODS)}, "
                                 f"got {method!r}")
    frame = studies.frame
    if spec.model == "normal_normal" and studies.has_ipd:
        rows = frame.index[frame["evidence"] == "ipd"]
        raise DataValidationError([
            Problem(studies.source, int(i) + 1, "ipd_file", frame.loc[i, "ipd_file"],
                    "an aggregate estimate (log_hr/se or hr/CI): model normal_normal pools "
                    "published estimates; use model family weibull_ipd_ad for patient data")
            for i in rows])
    if spec.model == "weibull_ipd_ad" and not studies.has_ipd:
        raise DataValidationError([Problem(
            studies.source, None, "ipd_file", None, "at least one study with patient data "
            "(ipd_file, reference_arm) for model weibull_ipd_ad; use normal_normal otherwise")])
    if method == "quadrature" and spec.model != "normal_normal":
        err = BayesAblationError(
            f"the exact quadrature covers the normal-normal model of aggregate data; model "
            f"{spec.model} has patient data: use --method mcmc (its report also shows the "
            "two-stage result by quadrature)")
        err.exit_code = 2
        raise err


def fit_meta(spec: AnalysisSpec, studies: Any, *, method: str = "mcmc",
             progress: bool = False, cache_key: Any = "default",
             stage1_method: str = "weibull") -> Result:
    """Pool the studies' hazard ratios as the spec pre-specifies (endpoint ``meta``).

    ``method='quadrature'``: the exact posterior of the normal–normal model (no sampling; needs
    a normal prior on μ). ``method='mcmc'``: NUTS on :mod:`bayes_ablation.models.meta`
    (``normal_normal`` or, with patient data, ``weibull_ipd_ad``); for ``normal_normal`` the
    exact posterior is computed as well and the MCMC–exact gaps are reported in Monte Carlo
    standard errors. Either way the τ-prior sensitivity table is computed exactly (IPD studies
    enter it through their stage-1 estimates: the two-stage approach).
    """
    from bayes_ablation.meta import estimands as mest
    from bayes_ablation.meta import sensitivity as sens
    from bayes_ablation.meta import two_stage
    from bayes_ablation.meta.quadrature import ExactPosterior, densities
    from bayes_ablation.report import meta as report_meta

    check_meta_inputs(spec, studies, method)
    started = time.perf_counter()
    interval = spec.estimands.interval_prob
    thresholds = spec.estimands.hr_thresholds
    timings: dict[str, Any] = {}

    t0 = time.perf_counter()
    stage1 = two_stage.stage1(studies, stage1_method) if studies.has_ipd else {}
    pooled_view = studies.with_estimates(stage1)     # every study as (log HR, SE)
    timings["stage1"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mu_normal = spec.priors["mu"].family == "normal"
    exact = exact_table = None
    if mu_normal:
        exact = ExactPosterior(y=pooled_view.y, se=pooled_view.se, mu_prior=spec.priors["mu"],
                               tau_prior=spec.priors["tau"], studies=pooled_view.studies)
        exact_table = exact.summary(interval)
    elif method == "quadrature":
        from bayes_ablation.meta.quadrature import QuadratureUnsupported
        raise QuadratureUnsupported(
            f"exact quadrature needs a normal prior on mu, the spec has "
            f"{spec.priors['mu'].describe()}; use --method mcmc")
    timings["exact"] = time.perf_counter() - t0

    sampled = None
    comparison = None
    exact_grids = densities(exact) if exact is not None else None
    if method == "quadrature":
        idata, report = None, None
        table, probs = exact_table, exact.probabilities(thresholds)
        estimands = exact_grids
    else:   # PyMC is imported only here: the exact path stays light
        from bayes_ablation import diagnostics as diag
        from bayes_ablation.inference import sample
        from bayes_ablation.models.build import build_model

        t0 = time.perf_counter()
        model = build_model(spec, studies)
        timings["build_model"] = time.perf_counter() - t0
        sampled = sample(model, spec.sampler, progress=progress,
                         cache_key=_compile_key(spec, cache_key))
        idata = sampled.idata
        idata.posterior.attrs["spec_sha256"] = spec.sha256
        timings.update(_sampling_timings(sampled))
        t0 = time.perf_counter()
        estimands = mest.meta_estimands(idata)
        table = mest.summarise(estimands, interval)
        probs = mest.probabilities(estimands, thresholds)
        report = diag.convergence(idata, spec.diagnostics)
        if exact_table is not None and not studies.has_ipd:
            comparison = mest.compare_with_exact(idata, exact_table)
        timings["estimands_diagnostics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    panel, panel_source = sens.tau_panel(spec)
    sens_table = sens_posts = None
    if mu_normal:
        sens_posts = sens.sensitivity_posteriors(pooled_view.y, pooled_view.se,
                                                 spec.priors["mu"], panel, pooled_view.studies)
        sens_table = sens.sensitivity_table(sens_posts, panel, interval, thresholds[0])
    timings["sensitivity"] = time.perf_counter() - t0
    timings["fit_total"] = time.perf_counter() - started

    meta_info = {
        "method": method,
        "stage1": {k: {"log_hr": v[0], "se": v[1], "method": stage1_method}
                   for k, v in stage1.items()},
        "exact_table": exact_table,
        "exact_densities": exact_grids,
        "exact_notes": list(exact.notes) if exact is not None else [],
        "comparison": comparison,
        "sensitivity": sens_table,
        "sensitivity_source": panel_source,
        "sensitivity_densities": sens.tau_densities(sens_posts) if sens_posts else None,
        "studies": pooled_view.frame,
        "warnings": list(studies.warnings) + ([] if mu_normal else [
            f"no exact posterior and no prior-sensitivity table: both need a normal prior on "
            f"mu (the spec has {spec.priors['mu'].describe()})"]),
    }
    provenance = {
        "spec_name": spec.name,
        "spec_path": spec.source_path,
        "spec_sha256": spec.sha256,
        "data_source": studies.source,
        "data_sha256": studies.data_sha256,
        "study_table_sha256": studies.sha256,
        "ipd_files": {name: {"source": p.source, "sha256": p.sha256,
                             "n_patients": p.n_patients}
                      for name, p in studies.ipd.items()},
        "n_studies": studies.n_studies,
        "studies": list(studies.studies),
        "method": method,
        "seed": spec.sampler.seed if sampled else None,
        "sampler": sampled.sampler if sampled else None,
        "sampler_settings": sampled.settings if sampled else None,
        "sampler_fallback_reason": sampled.fallback_reason if sampled else None,
        **_hash_seed_status(sampled is not None),
        "versions": package_versions(),
        "timings_seconds": timings,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    result = Result(spec=spec, idata=idata, estimands=estimands, estimand_table=table,
                    probabilities=probs, diagnostics=report, provenance=provenance,
                    data_summary=studies.summary(stage1), extras={"meta": meta_info})
    report_meta.attach(result)
    return result


def _hash_seed_status(sampled: bool) -> dict[str, Any]:
    """Reproducibility of draws across processes (see inference.py); an exact computation is
    deterministic whatever the hash seed."""
    if sampled:
        from bayes_ablation.inference import hash_seed_status

        return hash_seed_status()
    import os

    return {"python_hash_seed": os.environ.get("PYTHONHASHSEED"),
            "reproducible_across_processes": True}
