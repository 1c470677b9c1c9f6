"""The implementation side of the family table, and one entry per endpoint.

A model family registers **once**, in :data:`bayes_ablation.spec.families.MODEL_REGISTRY`
(PyMC-free: priors, options, checks), naming its :class:`Family` object here by dotted path
(``implementation = "bayes_ablation.endpoints.pfs.entry:WEIBULL"``). The :class:`Family`
gathers what the rest of the package needs of the family, all defined in its endpoint's
folder: the PyMC graph, the log cumulative hazard the survival estimands use, the posterior
predictive simulator, the pointwise log-likelihood, the optional cached log-density kernel and
the SBC adapter. Objects are imported only when asked for (``family("weibull")``), so parsing
a spec or ``--help`` never loads PyMC.

An :class:`Endpoint` (``pfs``, ``local_recurrence``, ``meta``) says how the generic fit
pipeline (:func:`bayes_ablation.workflows.fit.fit`) turns validated tables into model data,
estimands, probabilities and checks, so the composer has no ``if endpoint == ...`` branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from bayes_ablation.errors import BayesAblationError


@dataclass(frozen=True)
class KernelParts:
    """A family's disk-cached log-density kernel (see :mod:`bayes_ablation.inference.kernels`):
    ``plan(model, spec, point) -> KernelPlan``, ``buffer(plan, model) -> ndarray`` and
    ``cfuncs() -> (logp, expand)`` numba cfuncs."""

    plan: Callable[..., Any]
    buffer: Callable[..., Any]
    cfuncs: Callable[[], tuple[Any, Any]]


@dataclass(frozen=True)
class Family:
    """What the package needs of one model family (``None``: the family has no such part).

    * ``build(spec, data) -> pm.Model``: the graph (models build graphs, nothing else);
    * ``log_cumhaz(posterior, times, spec)``: log H_a(t) (chain, draw, arm, time) at an
      average site and x = 0, the input of S(t), RMST and median estimands;
    * ``extra_estimands(posterior, spec) -> {name: draws}``: family-specific estimands;
    * ``simulate_event_times(thinned posterior, constant data, spec, rng)``: uncensored
      posterior predictive event times (sample, patient);
    * ``patient_loglik(thinned posterior, constant data, spec)``: ℓ_i (sample, patient);
    * ``kernel``: :class:`KernelParts` of a cached nutpie kernel;
    * ``sbc_adapter``: the :class:`~bayes_ablation.endpoints.sbc.FamilyAdapter` of
      simulation-based calibration and coverage studies.
    """

    name: str
    endpoint: str
    build: Callable[..., Any]
    log_cumhaz: Callable[..., Any] | None = None
    extra_estimands: Callable[..., Mapping[str, Any]] | None = None
    simulate_event_times: Callable[..., Any] | None = None
    patient_loglik: Callable[..., Any] | None = None
    kernel: KernelParts | None = None
    sbc_adapter: Any | None = None


@dataclass(frozen=True)
class Prepared:
    """Validated input of one fit, in the shape the endpoint's models take."""

    model_data: Any
    #: provenance entries describing the data (sources, SHA-256, sizes, arms, sites)
    provenance: dict[str, Any]
    summary: Any                 # pandas DataFrame shown as the report's "Data" table
    arms: tuple[str, ...]
    #: what else fixes the compiled model's shape (added to the compile cache key)
    compile_extra: tuple[Any, ...] = ()
    #: the raw tables (for checks that need them: lesion scans, censoring)
    tables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """How the generic fit pipeline analyses one endpoint.

    * ``prepare(spec, patients, lesions) -> Prepared``;
    * ``estimands(idata, spec) -> xr.Dataset`` of posterior draws;
    * ``probabilities(estimands) -> {label: probability}``;
    * ``checks(idata, spec, prepared, n_draws, seed) -> {name: xr.Dataset}``: posterior
      predictive checks;
    * ``summary_entries(result parts) -> dict``: the endpoint's further ``summary.json``
      entries (called with ``spec``, ``prepared``, ``checks``, ``model_details``);
    * ``headline(estimand_table) -> labels`` the command line prints;
    * ``pointwise_loglik``: whether fits store the pointwise ``log_likelihood`` group.
    """

    name: str
    prepare: Callable[..., Prepared]
    estimands: Callable[..., Any]
    probabilities: Callable[[Any], dict[str, float]]
    checks: Callable[..., dict[str, Any]] | None = None
    summary_entries: Callable[..., dict[str, Any]] | None = None
    headline: Callable[[Any], list[str]] | None = None
    pointwise_loglik: bool = False


#: endpoint name -> "module:attribute" of its :class:`Endpoint` (imported when needed)
ENDPOINTS: dict[str, str] = {
    "pfs": "bayes_ablation.endpoints.pfs.entry:ENDPOINT",
    "local_recurrence": "bayes_ablation.endpoints.local_recurrence.entry:ENDPOINT",
    "meta": "bayes_ablation.endpoints.meta.entry:ENDPOINT",
}


def load_object(path: str) -> Any:
    """The object at ``"package.module:attribute"``."""
    module, _, attribute = path.partition(":")
    return getattr(import_module(module), attribute)


def family(name: str) -> Family:
    """The :class:`Family` of model family ``name`` (as registered in the family table)."""
    from bayes_ablation.spec.families import MODEL_REGISTRY

    entry = MODEL_REGISTRY.get(name)
    if entry is None or not entry.implementation:
        raise BayesAblationError(f"no implementation registered for model family {name!r} "
                                 f"(known: {', '.join(sorted(MODEL_REGISTRY))})")
    return load_object(entry.implementation)


def endpoint(name: str) -> Endpoint:
    """The :class:`Endpoint` entry of ``name``."""
    if name not in ENDPOINTS:
        raise BayesAblationError(f"unknown endpoint {name!r} (known: {', '.join(ENDPOINTS)})")
    return load_object(ENDPOINTS[name])


def family_part(name: str, part: str) -> Any:
    """One part of a family (see :class:`Family`); a clear error when the family lacks it."""
    value = getattr(family(name), part)
    if value is None:
        raise KeyError(f"model family {name!r} has no {part.replace('_', ' ')}")
    return value
