"""Family adapters: what a validation study needs to know about one model family.

An adapter maps the spec's parameters to the family's trial simulator and reads the same
parameters back from a posterior. A family's adapter (a :class:`FamilyAdapter` subclass,
defined in its endpoint's folder, e.g. :mod:`bayes_ablation.endpoints.pfs.sbc`) is the
``sbc_adapter`` of its :class:`~bayes_ablation.endpoints.registry.Family`.

The data-generating process an adapter simulates must be *exactly* the model's (same
parameterisation, same conditional distribution of the data given the parameters; censoring
and design may be anything non-informative): simulation-based calibration checks the model and
sampler against that process, so any difference shows up as miscalibration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_ablation.errors import BayesAblationError
from bayes_ablation.spec.plan import AnalysisSpec


class ValidationSetupError(BayesAblationError):
    """A validation study cannot be set up (unsupported family or option, bad --truth/--design)."""

    exit_code = 2


@dataclass
class Simulated:
    """One simulated data set: what the model builder takes, the full truth and a summary."""

    data: Any
    truth: dict[str, Any]
    summary: dict[str, float] = field(default_factory=dict)


class FamilyAdapter:
    """Base class; subclasses set ``family`` and ``design_defaults`` and implement the rest."""

    family: str = ""
    #: design settings of the simulated trials (overridable with ``--design key=value``)
    design_defaults: Mapping[str, float | int] = {}

    def check(self, spec: AnalysisSpec) -> list[str]:
        """Why this spec cannot be validated by this adapter (empty: it can)."""
        return []

    def study_spec(self, spec: AnalysisSpec, design: Mapping[str, float | int]) -> AnalysisSpec:
        """The spec every simulation fits. A family whose model depends on the data beyond the
        likelihood (e.g. cut points at quantiles of the observed event times) fixes that here,
        so that the model is one generative model for all simulated trials."""
        return spec

    def generative_parameters(self, spec: AnalysisSpec) -> list[str]:
        """Names of the parameters the simulator takes (what ``--truth`` must give)."""
        raise NotImplementedError

    def draw_parameters(self, spec: AnalysisSpec, rng: np.random.Generator) -> dict[str, float]:
        """One draw of :meth:`generative_parameters` from the spec's priors."""
        from bayes_ablation.endpoints.prior_draws import draw_prior

        return {name: draw_prior(spec.priors[name], rng)
                for name in self.generative_parameters(spec)}

    def simulate(self, spec: AnalysisSpec, params: Mapping[str, float],
                 design: Mapping[str, float | int], rng: np.random.Generator) -> Simulated:
        """A data set from the model's data-generating process given ``params``."""
        raise NotImplementedError

    def build(self, spec: AnalysisSpec, data: Any) -> Any:
        """The PyMC model (by default the package's builder for the spec's family)."""
        from bayes_ablation.endpoints.build import build_model

        return build_model(spec, data)

    def key_parameters(self, spec: AnalysisSpec) -> list[str]:
        """Labels of the scalar parameters whose calibration is checked."""
        raise NotImplementedError

    def posterior_draws(self, posterior: Any, spec: AnalysisSpec) -> dict[str, np.ndarray]:
        """label → draws (chain, draw) of each key parameter, from an xarray posterior."""
        raise NotImplementedError

    def truth_values(self, truth: Mapping[str, Any], spec: AnalysisSpec) -> dict[str, float]:
        """label → true value of each key parameter, from :attr:`Simulated.truth`."""
        raise NotImplementedError

    def design(self, overrides: Mapping[str, Any]) -> dict[str, float | int]:
        """The design defaults with ``overrides`` applied (unknown keys are an error)."""
        unknown = sorted(set(overrides) - set(self.design_defaults))
        if unknown:
            raise ValidationSetupError(
                f"unknown design setting(s) {unknown} for family {self.family!r}; known: "
                + ", ".join(f"{k} (default {v})" for k, v in self.design_defaults.items()))
        out: dict[str, float | int] = dict(self.design_defaults)
        for key, value in overrides.items():
            kind = type(self.design_defaults[key])
            try:
                out[key] = kind(value)
            except (TypeError, ValueError) as exc:
                raise ValidationSetupError(f"design setting {key} must be a {kind.__name__}, "
                                           f"got {value!r}") from exc
        return out


def site_sd_parameters(spec: AnalysisSpec) -> list[str]:
    """The site-effect sd parameters of the spec's hierarchy (site intercepts, site × arm
    slopes), in the order the PFS families name them."""
    return ((["sigma_site"] if spec.hierarchy.site_intercepts else [])
            + (["sigma_site_arm"] if spec.hierarchy.site_arm_slopes else []))


def generative_draws(adapter: FamilyAdapter, posterior: Any, spec: AnalysisSpec
                     ) -> dict[str, np.ndarray]:
    """Draws of the adapter's generative (scalar) parameters."""
    return {name: scalar_draws(posterior, name) for name in adapter.generative_parameters(spec)}


def generative_truth(adapter: FamilyAdapter, truth: Mapping[str, Any], spec: AnalysisSpec
                     ) -> dict[str, float]:
    """True values of the adapter's generative (scalar) parameters."""
    return {name: float(np.asarray(truth[name]).reshape(-1)[0])
            for name in adapter.generative_parameters(spec)}


def add_first_site(out: dict[str, Any], spec: AnalysisSpec, *, posterior: Any = None,
                   truth: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Add the first site's effect ``u_site[S01]`` (draws or truth) when the spec has site
    intercepts."""
    if spec.hierarchy.site_intercepts:
        out["u_site[S01]"] = (scalar_draws(posterior, "u_site", site="S01") if truth is None
                              else float(truth["u_site"][0]))
    return out


def scalar_draws(posterior: Any, var: str, **sel: Any) -> np.ndarray:
    """Draws (chain, draw) of one scalar element of a posterior variable."""
    da = posterior[var]
    if sel:
        da = da.sel(**sel)
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if extra:
        if any(da.sizes[d] != 1 for d in extra):
            raise ValueError(f"{var} is not scalar after selecting {sel}: dims {da.dims}")
        da = da.isel({d: 0 for d in extra})
    return np.asarray(da.transpose("chain", "draw").values, dtype=float)


def get_adapter(spec: AnalysisSpec) -> FamilyAdapter:
    """The adapter for the spec's family; raises when there is none or the spec is unsupported."""
    from bayes_ablation.endpoints.registry import family
    from bayes_ablation.spec.families import MODEL_REGISTRY

    adapter: FamilyAdapter | None = family(spec.model).sbc_adapter
    borrowing = getattr(spec, "borrowing", None)
    if borrowing is not None and borrowing.method != "none":
        from bayes_ablation.endpoints.registry import load_object

        # by name, as the family table does (the borrowing package imports this module)
        adapter = load_object("bayes_ablation.endpoints.borrowing.sbc:ADAPTER")
    if adapter is None:
        available = sorted(name for name, entry in MODEL_REGISTRY.items()
                           if entry.implementation and family(name).sbc_adapter is not None)
        raise ValidationSetupError(
            f"no validation adapter for model family {spec.model!r} (available: "
            f"{', '.join(available)}); see FamilyAdapter in bayes_ablation/endpoints/sbc.py")
    problems = adapter.check(spec)
    if getattr(spec, "subgroups", ()):
        problems.append("subgroups (effect modifiers) are not simulated by the validation "
                        "adapters; validate the spec without [analysis] subgroups")
    if problems:
        raise ValidationSetupError(f"{spec.source_path}: cannot validate this spec:\n"
                                   + "\n".join(f"  - {p}" for p in problems))
    return adapter
