"""Compose one analysis: spec + tables → model → posterior → estimands, gate and checks.

One pipeline for every sampled endpoint; what differs between endpoints (model data,
estimands, probabilities, posterior predictive checks, summary entries) comes from the
endpoint's :class:`~bayes_ablation.endpoints.registry.Endpoint` entry. Evidence pooling
(endpoint ``meta``, with its exact quadrature path) is :func:`bayes_ablation.workflows.meta.fit_meta`.

    >>> from bayes_ablation import fit
    >>> result = fit("models/pfs_weibull_site.toml", "examples/pfs_trial.csv", seed=7)
    >>> result.summary()                     # estimands (DataFrame, one row per label)
    >>> az.summary(result.posterior)         # ArviZ on the posterior DataTree
    >>> result.save("results/pfs")           # bundle: posterior, tables, report
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.core.console import interactive
from bayes_ablation.core.provenance import (
    Stopwatch,
    process_age_seconds,
)
from bayes_ablation.data.lesions import LesionTable, read_lr_data
from bayes_ablation.data.schema import PatientTable, read_patients
from bayes_ablation.endpoints.registry import Prepared, endpoint
from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.workflows.result import (
    Result,
    SpecLike,
    as_spec,
    compiled_model_key,
    describe_self,
    sampled_provenance,
    sampling_timings,
)

logger = logging.getLogger(__name__)

TableLike = PatientTable | pd.DataFrame | str | Path


def prepare_outputs() -> None:
    """One-time set-up of the post-processing libraries (cached numba estimand kernel,
    xarray's array-type discovery, NetCDF writer, matplotlib fonts): done while the sampler's
    threads run, so it costs no wall time on a machine with a free core."""
    from bayes_ablation.survival.kernels import (
        BIN_MIN_PATTERNS,
        gh_tables,
        mixed_survival,
        standardised_survival,
    )

    mixed_survival(np.zeros((1, 1, 1)), np.zeros((1, 1)), np.ones(1), np.ones((1, 1)),
                   *gh_tables())
    n = BIN_MIN_PATTERNS
    standardised_survival(np.zeros((1, 1, 1)), np.zeros((1, n)), np.full(n, 1 / n),
                          np.ones((1, 1)))
    xr.DataArray(np.zeros(1), dims="x").to_dataset(name="x")
    import h5netcdf  # noqa: F401  (the bundle's posterior writer)

    from bayes_ablation.report.plots import close_figure, subplots

    fig, ax = subplots(figsize=(1, 1))
    ax.set_title("–")
    fig.canvas.draw()
    close_figure(fig)


def recorded_fit(spec: AnalysisSpec, prepared: Prepared) -> tuple[str | None, dict | None]:
    """(digest, record) of a cached-kernel fit of ``spec`` on these data
    (:mod:`bayes_ablation.inference.fit_records`): the record when an earlier process wrote
    one, the digest to write it under otherwise; (None, None) when the fit cannot use the
    family's cached kernel (another backend, no kernel, data carrying their own builder)."""
    from bayes_ablation.endpoints.registry import family
    from bayes_ablation.inference import fit_records

    if (spec.sampler.backend != "nutpie" or family(spec.model).kernel is None
            or getattr(prepared.model_data, "model_builder", None) is not None):
        return None, None
    digest = fit_records.record_digest(spec, prepared.model_data)
    return digest, (fit_records.load_record(digest) if digest is not None else None)


def _tables(spec: AnalysisSpec, patients: TableLike | LesionTable | None,
            lesions: LesionTable | pd.DataFrame | str | Path | None
            ) -> tuple[PatientTable, LesionTable | None]:
    """Validated tables from tables, DataFrames or paths."""
    if isinstance(patients, LesionTable) and lesions is None:
        return patients.patients, patients
    if patients is None:
        raise TypeError("fit needs a patient table (PatientTable, DataFrame or path)")
    if lesions is not None and not isinstance(lesions, LesionTable):
        if isinstance(patients, PatientTable):
            raise TypeError("with lesions= a DataFrame or a path, give the patient table the "
                            "same way: both are validated together (see read_lr_data)")
        table = read_lr_data(patients, lesions, spec)
        return table.patients, table
    if not isinstance(patients, PatientTable):
        patients = read_patients(patients, spec)
    return patients, lesions


def fit(spec: SpecLike, patients: TableLike | None = None, *,
        lesions: LesionTable | pd.DataFrame | str | Path | None = None,
        seed: int | None = None, progress: bool | None = None, ppc_draws: int = 100,
        cache_key: Any = "default", run_ppc: bool = True,
        log_likelihood: bool | Literal["all"] = True,
        external: PatientTable | pd.DataFrame | str | Path | None = None) -> Result:
    """Run the analysis the spec pre-specifies.

    ``spec``: an :class:`~bayes_ablation.spec.plan.AnalysisSpec` or the path of its TOML file.
    ``patients``: a validated :class:`~bayes_ablation.data.schema.PatientTable`, a pandas
    DataFrame or a CSV/Parquet path (validated against the spec). The ``local_recurrence``
    endpoint needs ``lesions`` as well (a :class:`~bayes_ablation.data.lesions.LesionTable`
    validated against this patient table, a DataFrame or a path). ``seed`` overrides the
    spec's sampler seed (recorded: the spec as run, and its hash, carry the new seed).
    ``progress`` (default: when the session is interactive) shows the sampler's progress bar.
    ``log_likelihood`` adds the pointwise ``log_likelihood`` group (per patient; per cell too
    for aggregated models) that LOO model comparison needs, bounded in size (thinned draws, no
    per-patient values at 10⁶ patients: :func:`~bayes_ablation.endpoints.pfs.loglik.log_likelihood_group`);
    ``log_likelihood="all"`` stores every draw for every patient. A ``meta`` spec is handed to
    :func:`~bayes_ablation.workflows.meta.fit_meta` (``patients``: the study table).
    ``external``: external (historical) control patients for the spec's ``[borrowing]``
    (:mod:`bayes_ablation.workflows.borrowing`; a table, DataFrame or path).
    """
    spec = as_spec(spec)
    if seed is not None:
        spec = spec.with_sampler(seed=int(seed))
    progress = interactive() if progress is None else progress
    if spec.endpoint == "meta":
        from bayes_ablation.workflows.meta import fit_meta

        return fit_meta(spec, patients, progress=progress, cache_key=cache_key)
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs.loglik import log_likelihood_group
    from bayes_ablation.inference import convergence
    from bayes_ablation.inference.sampling import (
        import_sampling_libraries,
        sample,
        sample_recorded,
    )
    from bayes_ablation.survival.estimands import summarise

    started = time.perf_counter()
    process_age_at_fit = process_age_seconds()
    ep = endpoint(spec.endpoint)
    patient_table, lesion_table = _tables(spec, patients, lesions)
    prepared: Prepared = ep.prepare(spec, patient_table, lesion_table)
    if spec.borrowing is not None or external is not None:
        from bayes_ablation.workflows.borrowing import prepare_borrowing

        prepared = prepare_borrowing(spec, prepared, external)
    # a cached-kernel fit recorded by an earlier process: no PyMC model is built
    digest, record = recorded_fit(spec, prepared)
    # the heavy libraries, imported up front so that their cost is on record (not as compile)
    imports_s = import_sampling_libraries(spec.sampler.backend, pymc=record is None)
    clock = Stopwatch()
    logger.debug("fitting %s (%s, %s, %dx%d draws)", spec.name, spec.model,
                spec.sampler.backend, spec.sampler.chains, spec.sampler.draws)
    if record is not None:
        clock.seconds["build_model"] = 0.0
        sampled = sample_recorded(record, spec, progress=progress, while_sampling=prepare_outputs,
                                  build=lambda: build_model(spec, prepared.model_data))
    else:
        with clock("build_model"):
            model = build_model(spec, prepared.model_data)
        key = compiled_model_key(spec, cache_key, *prepared.compile_extra)
        sampled = sample(model, spec.sampler, progress=progress, cache_key=key, spec=spec,
                         while_sampling=prepare_outputs, record_digest=digest)
    idata = sampled.idata
    if spec.borrowing is not None:  # draws of what the sampler integrated out
        from bayes_ablation.endpoints.borrowing.precision import complete_posterior

        idata["posterior"] = complete_posterior(idata.posterior.to_dataset(), spec)
    idata.posterior.attrs["arms"] = json.dumps(list(prepared.arms))
    idata.posterior.attrs["spec_sha256"] = spec.sha256
    model_details: dict[str, Any] = {}
    if "interval_start" in idata.constant_data:  # piecewise models: the cut points used
        cuts = [float(c) for c in idata.constant_data["interval_start"].values[1:]]
        idata.posterior.attrs["cuts_months"] = json.dumps(cuts)
        model_details["cuts_months"] = cuts
    if "cell" in idata.constant_data.dims:
        model_details["aggregated_cells"] = int(idata.constant_data.sizes["cell"])

    # the gate's chain statistics need only the draws: computed in a thread (NumPy releases
    # the GIL in its sorts and FFTs; the estimand and check kernels are compiled ``nogil``)
    # while this thread computes the estimands and checks — on a second core, for free
    diagnostics = convergence.start_convergence(idata, spec.diagnostics)
    with clock("log_likelihood"):
        if log_likelihood and ep.pointwise_loglik:
            group, notes = (log_likelihood_group(idata, spec, max_values=None)
                            if log_likelihood == "all" else log_likelihood_group(idata, spec))
            if group.data_vars:
                idata["log_likelihood"] = group
            if notes:
                model_details["log_likelihood_notes"] = notes
    with clock("estimands"):
        estimands = ep.estimands(idata, spec)
        table = summarise(estimands, spec.estimands.interval_prob)
        probs = ep.probabilities(estimands)
    checks: dict[str, xr.Dataset] = {}
    with clock("posterior_predictive"):
        if run_ppc and ep.checks is not None:
            checks = ep.checks(idata, spec, prepared, ppc_draws, spec.sampler.seed)
    with clock("diagnostics_wait"):
        report, diagnostics_s = diagnostics()
    clock.seconds["diagnostics"] = diagnostics_s

    stages = clock.seconds
    timings = {"process_start_to_fit": process_age_at_fit, "imports": imports_s,
               "build_model": stages["build_model"], **sampling_timings(sampled),
               **{k: stages[k] for k in ("estimands", "diagnostics", "diagnostics_wait",
                                         "posterior_predictive", "log_likelihood")},
               "fit_total": time.perf_counter() - started}
    provenance = sampled_provenance(spec, prepared.provenance, sampled, timings)
    describe_self(idata, spec, provenance)
    entries = (ep.summary_entries(spec, prepared, checks, model_details)
               if ep.summary_entries is not None else {})
    entries = {**entries, "warnings": data_warnings(prepared)}
    if spec.subgroups:  # effect modification: summary.json["subgroups"]
        from bayes_ablation.endpoints.subgroups import subgroup_counts, summary_entry

        entries.update(summary_entry(estimands, spec, subgroup_counts(prepared.model_data)))
    extra: dict[str, Any] = {}
    if spec.borrowing is not None:
        from bayes_ablation.workflows.borrowing import borrowing_outputs

        borrowed, tables, details = borrowing_outputs(spec, prepared, idata)
        entries["borrowing"] = borrowed
        extra = {"tables": tables, "details": {"borrowing": details}}
    result = Result(spec=spec, idata=idata, estimands=estimands, estimand_table=table,
                    probabilities=probs, diagnostics=report, provenance=provenance,
                    data_summary=prepared.summary, checks=checks, summary_entries=entries,
                    headline=tuple(ep.headline(table)) if ep.headline else (), **extra)
    if spec.design == "cohort":  # design diagnostics and sensitivity analysis (issue 14)
        from bayes_ablation.workflows.confounding import with_confounding

        result = with_confounding(result, patient_table)
    return result


def data_warnings(prepared: Any) -> list[dict[str, Any]]:
    """Every input table's warnings as records (``summary.json["warnings"]``), once each."""
    seen: dict[str, dict[str, Any]] = {}
    for table in prepared.tables.values():
        for w in getattr(table, "warnings", ()):
            record = w.to_dict() if hasattr(w, "to_dict") else {"message": str(w), "text": str(w)}
            seen.setdefault(record["text"], record)
    return list(seen.values())
