"""bayes_ablation: Bayesian analysis of thermal-ablation trials for colorectal liver metastases.

The public API is imported lazily so that ``import bayes_ablation`` (and the CLI's ``--help``)
does not pay for PyMC and ArviZ.

    >>> from bayes_ablation import load_spec, read_patients, fit
    >>> spec = load_spec("models/pfs_weibull_site.toml")
    >>> result = fit(spec, read_patients("examples/pfs_trial.csv", spec))
    >>> result.save("results/pfs")
    >>> from bayes_ablation import fit_meta, read_studies      # evidence pooling
    >>> meta = fit_meta(load_spec("models/meta_loghr.toml"),
    ...                 read_studies("examples/meta/crlm_pfs_hr.csv"), method="quadrature")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_spec": "bayes_ablation.spec.plan",
    "AnalysisSpec": "bayes_ablation.spec.plan",
    "read_patients": "bayes_ablation.data.schema",
    "patients_from_frame": "bayes_ablation.data.schema",
    "PatientTable": "bayes_ablation.data.schema",
    "simulate_trial": "bayes_ablation.data.simulate",
    "read_lr_data": "bayes_ablation.data.lesions",
    "LesionTable": "bayes_ablation.data.lesions",
    "simulate_lr_trial": "bayes_ablation.data.simulate_lr",
    "fit": "bayes_ablation.workflows.fit",
    "fit_meta": "bayes_ablation.workflows.meta",
    "AnalysisResult": "bayes_ablation.results.contract",
    "interim_look": "bayes_ablation.workflows.monitoring.api",
    "operating_characteristics": "bayes_ablation.workflows.monitoring.api",
    "read_dated": "bayes_ablation.data.cut",
    "load_design": "bayes_ablation.spec.design",
    "Result": "bayes_ablation.workflows.fit",
    "read_studies": "bayes_ablation.data.studies",
    "StudyTable": "bayes_ablation.data.studies",
    "ExactPosterior": "bayes_ablation.endpoints.meta.quadrature",
    "BayesAblationError": "bayes_ablation.errors",
    "DataValidationError": "bayes_ablation.errors",
    "SpecError": "bayes_ablation.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bayes_ablation' has no attribute {name!r}")
