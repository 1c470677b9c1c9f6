"""What each model family needs from a spec: priors, options and their checks.

Kept free of PyMC imports so that parsing a spec (and ``bayes-ablation --help``) stays fast.
A new model family registers a :class:`ModelEntry` here and a builder in its own module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

OptionCheck = Callable[[Any], str | None]


def positive_number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return None if ok else f"must be a number > 0, got {value!r}"


def one_of(*choices: str) -> OptionCheck:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"
    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


@dataclass(frozen=True)
class ModelEntry:
    """Spec-level description of one model family."""

    family: str
    endpoints: tuple[str, ...]
    base_priors: tuple[str, ...]
    optional_priors: tuple[str, ...] = ()
    options: dict[str, tuple[Any, OptionCheck]] = field(default_factory=dict)
    #: extra cross-option validation; returns messages
    check: Callable[[dict[str, Any]], list[str]] | None = None
    #: priors needed only when an option is on: option name -> prior names
    option_priors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: whether the spec's [hierarchy] (site effects) applies; False for aggregate-data models
    site_hierarchy: bool = True

    def required_priors(self, hierarchy: Any, covariates: Sequence[str],
                        options: dict[str, Any]) -> list[str]:
        names = list(self.base_priors)
        if self.site_hierarchy and getattr(hierarchy, "site_intercepts", False):
            names.append("sigma_site")
        if self.site_hierarchy and getattr(hierarchy, "site_arm_slopes", False):
            names.append("sigma_site_arm")
        if covariates:
            names.append("beta_covariates")
        for option, prior_names in self.option_priors.items():
            if self.option_value(options, option):
                names.extend(prior_names)
        return names

    def option_value(self, options: dict[str, Any], name: str) -> Any:
        return options.get(name, self.options[name][0])

    def validate_options(self, options: dict[str, Any]) -> list[str]:
        msgs = []
        for key in sorted(set(options) - set(self.options)):
            allowed = ", ".join(sorted(self.options)) or "none"
            msgs.append(f"unknown option '{key}' for family {self.family} (allowed: {allowed})")
        for key, (_, check) in self.options.items():
            if key in options:
                msg = check(options[key])
                if msg:
                    msgs.append(f"{key} {msg}")
        if self.check is not None and not msgs:
            msgs.extend(self.check(options))
        return msgs


#: families whose support is (0, ∞): required for scales, shapes and heterogeneity sds
POSITIVE_FAMILIES = ("halfnormal", "halfcauchy", "halfstudentt", "lognormal", "exponential",
                     "gamma", "lognormal_variance")
#: prior names that must use a positive family, whatever the model
POSITIVE_PRIORS = ("weibull_shape", "sigma_site", "sigma_site_arm", "sigma_patient", "tau")

MODEL_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    MODEL_REGISTRY[entry.family] = entry
    return entry


register(ModelEntry(
    family="weibull",
    endpoints=("pfs",),
    base_priors=("log_hr", "log_cumhaz_ref", "weibull_shape"),
    options={"time_ref_months": (12.0, positive_number)},
))


# Evidence pooling (endpoint "meta"): study effects θ_i ~ N(μ, τ²), see models/meta.py.
register(ModelEntry(
    family="normal_normal",
    endpoints=("meta",),
    base_priors=("mu", "tau"),
    options={"parameterisation": ("non_centred", one_of("non_centred", "marginal"))},
    site_hierarchy=False,
))

register(ModelEntry(
    family="weibull_ipd_ad",
    endpoints=("meta",),
    base_priors=("mu", "tau", "log_cumhaz_ref", "weibull_shape"),
    options={"time_ref_months": (12.0, positive_number),
             "ipd_effects": ("non_centred", one_of("non_centred", "centred"))},
))
