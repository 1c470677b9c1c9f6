"""Compose an evidence-pooling analysis (endpoint ``meta``): stage-1 estimates of IPD
studies, the exact posterior by quadrature, MCMC when asked, and the τ-prior sensitivity."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bayes_ablation.core.console import interactive
from bayes_ablation.core.provenance import package_versions
from bayes_ablation.data.studies import StudyTable, read_studies
from bayes_ablation.errors import InputError
from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.workflows.result import (
    Result,
    as_spec,
    describe_self,
    sampling_timings,
    structure_key,
)

META_METHODS = ("mcmc", "quadrature")


def check_meta_inputs(spec: AnalysisSpec, studies: Any, method: str) -> None:
    """Refuse combinations of spec, study table and method that cannot be analysed."""
    from bayes_ablation.errors import DataValidationError, Problem

    if spec.endpoint != "meta":
        raise InputError(f"spec {spec.name!r} has endpoint {spec.endpoint!r}; pooling "
                                 "studies needs endpoint 'meta'")
    if method not in META_METHODS:
        raise InputError(f"method must be one of {', '.join(META_METHODS)}, "
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
        raise InputError(
            f"the exact quadrature covers the normal-normal model of aggregate data; model "
            f"{spec.model} has patient data: use --method mcmc (its report also shows the "
            "two-stage result by quadrature)")


def fit_meta(spec: AnalysisSpec | str | Path, studies: Any, *, method: str = "mcmc",
             progress: bool | None = None, cache_key: Any = "default",
             stage1_method: str = "weibull", seed: int | None = None) -> Result:
    """Pool the studies' hazard ratios as the spec pre-specifies (endpoint ``meta``).

    ``method='quadrature'``: the exact posterior of the normal–normal model (no sampling; needs
    a normal prior on μ). ``method='mcmc'``: NUTS on :mod:`bayes_ablation.endpoints.meta.model`
    (``normal_normal`` or, with patient data, ``weibull_ipd_ad``); for ``normal_normal`` the
    exact posterior is computed as well and the MCMC–exact gaps are reported in Monte Carlo
    standard errors. Either way the τ-prior sensitivity table is computed exactly (IPD studies
    enter it through their stage-1 estimates: the two-stage approach).

    ``spec``: a spec or its TOML path; ``studies``: a
    :class:`~bayes_ablation.data.studies.StudyTable`, a DataFrame or a CSV/Parquet path;
    ``seed`` overrides the spec's sampler seed; ``progress`` defaults to interactive sessions.
    """
    from bayes_ablation.endpoints.meta import estimands as mest
    from bayes_ablation.endpoints.meta import sensitivity as sens
    from bayes_ablation.endpoints.meta import two_stage
    from bayes_ablation.endpoints.meta.quadrature import ExactPosterior, densities

    spec = as_spec(spec)
    if seed is not None:
        spec = spec.with_sampler(seed=int(seed))
    progress = interactive() if progress is None else progress
    if not isinstance(studies, StudyTable):
        studies = read_studies(studies)
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
        from bayes_ablation.endpoints.meta.quadrature import QuadratureUnsupported
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
        from bayes_ablation.endpoints.build import build_model
        from bayes_ablation.inference import convergence as diag
        from bayes_ablation.inference.sampling import import_sampling_libraries, sample

        # the heavy libraries, imported up front so that their cost is on record (not as compile)
        timings["imports"] = import_sampling_libraries(spec.sampler.backend)
        t0 = time.perf_counter()
        model = build_model(spec, studies)
        timings["build_model"] = time.perf_counter() - t0
        sampled = sample(model, spec.sampler, progress=progress,
                         cache_key=structure_key(spec, cache_key), spec=spec)
        idata = sampled.idata
        idata.posterior.attrs["spec_sha256"] = spec.sha256
        timings.update(sampling_timings(sampled))
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
        "sampler_details": sampled.details if sampled else None,
        **_hash_seed_status(sampled is not None),
        "versions": package_versions(),
        "timings_seconds": timings,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if idata is not None:
        describe_self(idata, spec, provenance)
    return Result(spec=spec, idata=idata, estimands=estimands, estimand_table=table,
                  probabilities=probs, diagnostics=report, provenance=provenance,
                  data_summary=studies.summary(stage1), details={"meta": meta_info},
                  summary_entries=meta_summary_entries(meta_info),
                  tables=meta_tables(meta_info),
                  groups=({"exact": exact_grids} if idata is not None and exact_grids is not None
                          else {}),
                  headline=tuple(table[table["estimand"].isin(["hr_mu", "hr_theta_new"])]
                                 ["label"]) if "estimand" in table else ())


def meta_summary_entries(meta: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``'s ``meta`` entry: method, stage-1 estimates, warnings, the τ-prior
    sensitivity and the MCMC–exact comparison."""
    entry: dict[str, Any] = {"method": meta["method"], "stage1": meta["stage1"],
                             "warnings": list(meta["warnings"]) + list(meta["exact_notes"])}
    if meta["sensitivity"] is not None:
        entry["prior_sensitivity"] = meta["sensitivity"].drop(
            columns=["rationale"]).to_dict(orient="records")
    if meta["comparison"] is not None:
        entry["mcmc_vs_exact"] = meta["comparison"].to_dict(orient="records")
    return {"meta": entry}


def meta_tables(meta: dict[str, Any]) -> dict[str, Any]:
    """Further CSV tables of a meta-analysis bundle."""
    tables = {}
    if meta["sensitivity"] is not None:
        tables["prior_sensitivity"] = meta["sensitivity"]
    if meta["comparison"] is not None:
        tables["mcmc_vs_exact"] = meta["comparison"]
    return tables


def _hash_seed_status(sampled: bool) -> dict[str, Any]:
    """Reproducibility of draws across processes (see inference.py); an exact computation is
    deterministic whatever the hash seed."""
    if sampled:
        from bayes_ablation.core.provenance import hash_seed_status

        return hash_seed_status()
    import os

    return {"python_hash_seed": os.environ.get("PYTHONHASHSEED"),
            "reproducible_across_processes": True}
