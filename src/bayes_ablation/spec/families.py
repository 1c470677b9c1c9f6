"""What each model family needs from a spec: priors, options and their checks.

Kept free of PyMC imports so that parsing a spec (and ``bayes-ablation --help``) stays fast.
This is the package's one family table. A new model family registers one :class:`ModelEntry`
here; its ``implementation`` names the family's
:class:`~bayes_ablation.endpoints.registry.Family` (graph, estimand inputs, simulator,
log-likelihood, kernel, SBC adapter), defined in its endpoint's folder and imported only when
a fit or a study needs it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: the CRLM ablation follow-up standard: every 3 months for two years, then every 6 months
#: (a spec may give its own ``scan_protocol_months``; see :mod:`bayes_ablation.data.imaging`)
DEFAULT_SCAN_PROTOCOL_MONTHS: tuple[float, ...] = (3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0,
                                                   30.0)

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
    #: options that change only the model's data, never its graph (a compiled model of the
    #: same structure can be reused with new values)
    data_options: tuple[str, ...] = ()
    #: whether the spec's [hierarchy] (site effects) applies; False for aggregate-data models
    site_hierarchy: bool = True
    #: "module:attribute" of the family's :class:`~bayes_ablation.endpoints.registry.Family`
    implementation: str = ""

    def required_priors(self, hierarchy: Any, covariates: Sequence[str],
                        options: dict[str, Any], subgroups: Sequence[str] = ()) -> list[str]:
        names = list(self.base_priors)
        if self.site_hierarchy and getattr(hierarchy, "site_intercepts", False):
            names.append("sigma_site")
        if self.site_hierarchy and getattr(hierarchy, "site_arm_slopes", False):
            names.append("sigma_site_arm")
        if covariates:
            names.append("beta_covariates")
        if subgroups and "meta" not in self.endpoints:
            # subgroup main effects and the sd of the treatment-by-subgroup interactions
            names.extend(SUBGROUP_PRIORS)
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
POSITIVE_PRIORS = ("weibull_shape", "sigma_site", "sigma_site_arm", "sigma_patient", "tau",
                   "death_weibull_shape")

#: priors every model with ``[analysis] subgroups`` needs: ``beta_subgroup`` (main effect of
#: each subgroup indicator on the log hazard) and ``sigma_subgroup`` (τ_sub, the sd of the
#: treatment-by-subgroup log-HR differences δ_g ~ N(0, τ_sub²); a positive quantity)
SUBGROUP_PRIORS = ("beta_subgroup", "sigma_subgroup")

MODEL_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    MODEL_REGISTRY[entry.family] = entry
    return entry


register(ModelEntry(
    family="weibull",
    implementation="bayes_ablation.endpoints.pfs.entry:WEIBULL",
    endpoints=("pfs",),
    base_priors=("log_hr", "log_cumhaz_ref", "weibull_shape"),
    options={"time_ref_months": (12.0, positive_number),
             "parameterisation": ("auto", one_of("auto", "non_centred", "centred"))},
    # site-effect centring weights are pm.Data
    data_options=("parameterisation",),
))


def _increasing_positive_list(value: Any) -> bool:
    return (isinstance(value, list) and len(value) >= 1
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                    for v in value)
            and all(b > a for a, b in itertools.pairwise(value)))


def increasing_positive_numbers(value: Any) -> str | None:
    if _increasing_positive_list(value):
        return None
    return ("must be a non-empty list of cut points in months, > 0 and strictly increasing, "
            f"got {value!r}")


def scan_protocol(value: Any) -> str | None:
    if _increasing_positive_list(value):
        return None
    return ("must be a non-empty list of nominal scan times in months after the ablation, > 0 "
            f"and strictly increasing (the protocol continues at its last spacing), got {value!r}")


def quantile_cuts_table(value: Any) -> str | None:
    expected = ("must be a table { method = \"quantiles\", count = N } with N ≥ 2 intervals "
                f"(N − 1 cut points at quantiles of the observed event times), got {value!r}")
    if not isinstance(value, dict) or set(value) != {"method", "count"}:
        return expected
    count = value["count"]
    ok = (value["method"] == "quantiles" and isinstance(count, int) and not isinstance(count, bool)
          and 2 <= count <= 100)
    return None if ok else expected


def _pwe_check(options: dict[str, Any]) -> list[str]:
    given = [k for k in ("cuts_months", "cuts") if options.get(k) is not None]
    if len(given) != 1:
        return ["piecewise_exponential needs exactly one of cuts_months = [...] (fixed cut points) "
                "or cuts = { method = \"quantiles\", count = N }"
                + (f" (got both: {', '.join(given)})" if given else "")]
    return []


register(ModelEntry(
    family="piecewise_exponential",
    implementation="bayes_ablation.endpoints.pfs.entry:PIECEWISE_EXPONENTIAL",
    endpoints=("pfs",),
    # log_hr: common (interval-average) log HR; log_hazard_mean: mean over intervals of the log
    # baseline hazard per month; sigma_log_hazard_rw: sd of the random-walk steps between
    # adjacent intervals' log hazards (a prior, so the data choose how smooth the baseline is)
    base_priors=("log_hr", "log_hazard_mean", "sigma_log_hazard_rw"),
    options={
        "cuts_months": (None, increasing_positive_numbers),
        "cuts": (None, quantile_cuts_table),
        "time_varying_hr": (False, boolean),
        "parameterisation": ("auto", one_of("auto", "non_centred", "centred")),
    },
    check=_pwe_check,
    # sd of the random-walk steps of the per-interval log HR around the common log HR
    option_priors={"time_varying_hr": ("sigma_log_hr_rw",)},
    # cut points enter as data (the number of intervals is part of the structure key) and the
    # centring weights are pm.Data
    data_options=("cuts_months", "cuts", "parameterisation"),
))


def lesion_description(value: Any) -> str | None:
    """A table of lesion covariate values, e.g. ``{ size_cm = 2.0, margin_mm = 10.0 }``."""
    if not isinstance(value, dict) or not value:
        return f"must be a non-empty table of lesion covariate values, got {value!r}"
    for key, v in value.items():
        ok = isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool))
        if not ok:
            return f"{key} must be a number or a label, got {v!r}"
    return None


register(ModelEntry(
    family="lr_weibull",
    implementation="bayes_ablation.endpoints.local_recurrence.entry:LR_WEIBULL",
    endpoints=("local_recurrence",),
    base_priors=("log_hr", "log_cumhaz_ref", "weibull_shape", "death_log_hr",
                 "death_log_cumhaz_ref", "death_weibull_shape"),
    options={"time_ref_months": (12.0, positive_number),
             "patient_frailty": (True, boolean),
             "reference_lesion": ({"size_cm": 2.0, "margin_mm": 10.0}, lesion_description),
             "scan_protocol_months": (list(DEFAULT_SCAN_PROTOCOL_MONTHS), scan_protocol),
             "parameterisation": ("auto", one_of("auto", "non_centred", "centred"))},
    option_priors={"patient_frailty": ("sigma_patient",)},
    # site-effect centring weights are pm.Data
    data_options=("parameterisation",),
))


register(ModelEntry(
    family="lr_pwe",
    implementation="bayes_ablation.endpoints.local_recurrence.entry:LR_PWE",
    endpoints=("local_recurrence",),
    base_priors=("log_hr", "log_hazard_baseline", "death_log_hr", "death_log_cumhaz_ref",
                 "death_weibull_shape"),
    options={"cuts_months": ([3.0, 6.0, 12.0, 24.0], increasing_positive_numbers),
             "time_ref_months": (12.0, positive_number),
             "patient_frailty": (True, boolean),
             "reference_lesion": ({"size_cm": 2.0, "margin_mm": 10.0}, lesion_description),
             "scan_protocol_months": (list(DEFAULT_SCAN_PROTOCOL_MONTHS), scan_protocol),
             "parameterisation": ("auto", one_of("auto", "non_centred", "centred"))},
    option_priors={"patient_frailty": ("sigma_patient",)},
    # site-effect centring weights are pm.Data
    data_options=("parameterisation",),
))


# Evidence pooling (endpoint "meta"): study effects θ_i ~ N(μ, τ²), see models/meta.py.
register(ModelEntry(
    family="normal_normal",
    implementation="bayes_ablation.endpoints.meta.entry:NORMAL_NORMAL",
    endpoints=("meta",),
    base_priors=("mu", "tau"),
    options={"parameterisation": ("non_centred", one_of("non_centred", "marginal"))},
    site_hierarchy=False,
))

register(ModelEntry(
    family="weibull_ipd_ad",
    implementation="bayes_ablation.endpoints.meta.entry:WEIBULL_IPD_AD",
    endpoints=("meta",),
    base_priors=("mu", "tau", "log_cumhaz_ref", "weibull_shape"),
    options={"time_ref_months": (12.0, positive_number),
             "ipd_effects": ("non_centred", one_of("non_centred", "centred"))},
))
