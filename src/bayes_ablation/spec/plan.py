"""Pre-specified analysis plans: parse and validate ``models/*.toml`` into a typed object.

A spec is *data*: it is parsed with :mod:`tomllib`, never executed. Its canonical SHA-256 (of the
parsed content serialised as sorted, compact JSON) is recorded in every result, so formatting and
comments do not change the hash but any change of meaning does.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_ablation.errors import SpecError

#: Prior families and their parameters (all required). Values must be finite; scales > 0.
PRIOR_FAMILIES: dict[str, tuple[str, ...]] = {
    "normal": ("mu", "sigma"),
    "studentt": ("nu", "mu", "sigma"),
    "halfnormal": ("sigma",),
    "halfcauchy": ("beta",),
    "halfstudentt": ("nu", "sigma"),
    "lognormal": ("mu", "sigma"),
    "exponential": ("lam",),
    "gamma": ("alpha", "beta"),
    "uniform": ("lower", "upper"),
    # heterogeneity priors on a variance, stated for tau^2 (Turner et al. 2012 style):
    "lognormal_variance": ("mu", "sigma"),
}
_POSITIVE_PARAMS = {"sigma", "beta", "nu", "lam", "alpha"}

ENDPOINTS = ("pfs", "local_recurrence", "meta")
SAMPLER_BACKENDS = ("nutpie", "pymc")
#: nutpie mass-matrix adaptation: diagonal, or low-rank-modified diagonal (captures strong
#: linear posterior correlations, e.g. a level vs the mean of many well-informed site effects)
SAMPLER_ADAPTATIONS = ("diag", "low_rank")


@dataclass(frozen=True)
class PriorSpec:
    """A prior: ``family`` from :data:`PRIOR_FAMILIES`, its parameters and a one-line rationale."""

    family: str
    params: dict[str, float]
    rationale: str

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.family}({args})"


@dataclass(frozen=True)
class HierarchySpec:
    """Site-level structure: random intercepts and optional site x arm random slopes."""

    site_intercepts: bool = True
    site_arm_slopes: bool = False


@dataclass(frozen=True)
class EstimandSpec:
    """Which posterior quantities to report."""

    times_months: tuple[float, ...] = (12.0, 24.0, 36.0)
    rmst_tau_months: float = 36.0
    hr_thresholds: tuple[float, ...] = (1.0,)
    interval_prob: float = 0.95


@dataclass(frozen=True)
class SamplerSpec:
    """MCMC settings; ``seed`` makes a run reproducible."""

    backend: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    target_accept: float = 0.9
    seed: int = 20261130
    adaptation: str = "diag"


@dataclass(frozen=True)
class DiagnosticsSpec:
    """Convergence gate thresholds."""

    rhat_max: float = 1.01
    ess_bulk_min: float = 400.0
    ess_tail_min: float = 400.0
    max_divergences: int = 0
    ebfmi_min: float = 0.3


@dataclass(frozen=True)
class AnalysisSpec:
    """A parsed, validated analysis plan."""

    name: str
    description: str
    endpoint: str
    model: str
    reference_arm: str | None
    covariates: tuple[str, ...]
    model_options: dict[str, Any]
    hierarchy: HierarchySpec
    priors: dict[str, PriorSpec]
    estimands: EstimandSpec
    sampler: SamplerSpec
    diagnostics: DiagnosticsSpec
    time_unit: str = "months"
    source_path: str = "<memory>"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    #: pre-specified alternative priors: parameter -> label -> prior (``[sensitivity.<param>.<label>]``)
    sensitivity: dict[str, dict[str, PriorSpec]] = field(default_factory=dict)
    #: the arm labels the data must use (``[analysis] arms``; None: any, checked for near-duplicates)
    arms: tuple[str, ...] | None = None
    #: fewest patients an arm may have (``[analysis] min_patients_per_arm``)
    min_patients_per_arm: int = 5
    #: largest plausible follow-up time in months (``[analysis] max_time_months``)
    max_time_months: float = 600.0
    #: ``[analysis] design``: ``"randomised"`` (default) or ``"cohort"`` (treatment chosen by
    #: clinicians: confounding-adjusted causal estimands and design diagnostics)
    design: str = "randomised"
    #: ``[borrowing]``: external/historical evidence in the analysis
    #: (:class:`~bayes_ablation.spec.borrowing.BorrowingSpec`; None: no such section)
    borrowing: Any = None
    #: ``[analysis] subgroups``: pre-specified binary (0/1) effect modifiers; each gets a main
    #: effect and a treatment interaction shrunk towards 0 across subgroups (empty: none)
    subgroups: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        """Canonical SHA-256 of the spec's content (independent of formatting and comments)."""
        return canonical_sha256(self.raw)

    def with_sampler(self, **changes: Any) -> AnalysisSpec:
        """A copy with sampler settings changed (the hash changes accordingly)."""
        return self.updated(sampler=changes)

    def with_changes(self, section: str, **changes: Any) -> AnalysisSpec:
        """A copy with keys of one top-level section changed (re-validated, re-hashed)."""
        return self.updated(**{section: changes})

    def updated(self, **sections: dict[str, Any]) -> AnalysisSpec:
        """A copy with sections deep-merged (a value of ``None`` removes a key); re-validated.

        >>> spec.updated(hierarchy={"site_arm_slopes": True},
        ...              priors={"sigma_site_arm": {"family": "halfnormal", "sigma": 0.3,
        ...                                         "rationale": "..."}})
        """
        raw = json.loads(json.dumps(self.raw))
        _merge(raw, sections)
        return parse_spec(raw, self.source_path)

    def to_toml_text(self) -> str:
        """The spec as TOML text (what a result bundle stores next to the posterior)."""
        return _to_toml(self.raw)


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))


def canonical_sha256(raw: dict[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_spec(path: str | Path) -> AnalysisSpec:
    """Read and validate an analysis spec from a TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [f"not valid TOML: {exc}"]) from exc
    return parse_spec(raw, str(path))


def parse_prior_tables(tables: dict[str, Any], source: str, section: str = "priors"
                       ) -> dict[str, PriorSpec]:
    """Parse a table of named prior tables (e.g. a packaged panel of alternative priors)."""
    errs = Collector()
    out = {}
    for name, table in tables.items():
        prior = parse_prior(name, table, errs, section=section)
        if prior is not None:
            out[name] = prior
    if errs.messages:
        raise SpecError(source, errs.messages)
    return out


# --------------------------------------------------------------------------------------------
# validation

_TOP_LEVEL = {"analysis", "model", "hierarchy", "priors", "estimands", "sampler", "diagnostics",
              "sensitivity", "borrowing"}
_ANALYSIS_KEYS = {"name", "description", "endpoint", "reference_arm", "covariates", "time_unit",
                  "arms", "min_patients_per_arm", "max_time_months", "design", "subgroups"}

#: study designs an analysis plan may declare
DESIGNS = ("randomised", "cohort")


class Collector:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, msg: str) -> None:
        self.messages.append(msg)


def subtable(raw: dict[str, Any], key: str, errs: Collector, required: bool = False) -> dict:
    value = raw.get(key)
    if value is None:
        if required:
            errs.add(f"[{key}] section is missing")
        return {}
    if not isinstance(value, dict):
        errs.add(f"[{key}] must be a table, got {type(value).__name__}")
        return {}
    return value


def unknown_keys(section: str, table: dict, allowed: set[str], errs: Collector) -> None:
    for key in sorted(set(table) - allowed):
        errs.add(f"[{section}] unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")


def number_field(section: str, table: dict, key: str, default: float, errs: Collector, *,
            lo: float | None = None, hi: float | None = None, integer: bool = False,
            lo_open: bool = False) -> Any:
    value = table.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        errs.add(f"[{section}] {key} must be a finite {'integer' if integer else 'number'}, "
                 f"got {value!r}")
        return default
    if lo is not None and (value <= lo if lo_open else value < lo):
        errs.add(f"[{section}] {key} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        errs.add(f"[{section}] {key} must be <= {hi}, got {value!r}")
    return int(value) if integer else float(value)


def parse_prior(name: str, table: Any, errs: Collector, section: str = "priors"
                 ) -> PriorSpec | None:
    where = f"[{section}.{name}]"
    if not isinstance(table, dict):
        errs.add(f"{where} must be a table with 'family', its parameters and 'rationale'")
        return None
    family = table.get("family")
    if not isinstance(family, str) or family not in PRIOR_FAMILIES:
        errs.add(f"{where} family {family!r} is not one of {', '.join(PRIOR_FAMILIES)}")
        return None
    needed = PRIOR_FAMILIES[family]
    rationale = table.get("rationale")
    if not isinstance(rationale, str) or not rationale.strip():
        errs.add(f"{where} needs a one-line 'rationale' (why this prior)")
        rationale = ""
    params: dict[str, float] = {}
    for key in sorted(set(table) - {"family", "rationale", *needed}):
        errs.add(f"{where} unknown key '{key}' for family {family} "
                 f"(parameters: {', '.join(needed)})")
    for key in needed:
        if key not in table:
            errs.add(f"{where} family {family} needs parameter '{key}'")
            continue
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errs.add(f"{where} {key} must be a finite number, got {value!r}")
            continue
        if key in _POSITIVE_PARAMS and value <= 0:
            errs.add(f"{where} {key} must be > 0, got {value!r}")
            continue
        params[key] = float(value)
    if family == "uniform" and {"lower", "upper"} <= set(params):
        if params["lower"] >= params["upper"]:
            errs.add(f"{where} lower must be < upper, got {params['lower']} >= {params['upper']}")
    return PriorSpec(family=family, params=params, rationale=rationale.strip())


def _check_positive(where: str, name: str, prior: PriorSpec, errs: Collector,
                    positive_priors: tuple[str, ...], positive_families: tuple[str, ...]) -> None:
    """Scales and heterogeneity sds need a prior on (0, ∞) — or a uniform with lower >= 0."""
    if not (name in positive_priors or name.startswith("sigma_")):
        return
    if prior.family == "uniform":
        if prior.params.get("lower", 0.0) < 0:
            errs.add(f"{where} is a positive quantity: a uniform prior needs lower >= 0, "
                     f"got lower = {prior.params['lower']:g}")
    elif prior.family not in positive_families:
        errs.add(f"{where} is a positive quantity: family must be one of "
                 f"{', '.join(positive_families)} (or uniform with lower >= 0), "
                 f"got {prior.family!r}")


def parse_spec(raw: dict[str, Any], source: str = "<memory>") -> AnalysisSpec:
    """Validate a spec given as a parsed TOML dictionary; all problems are reported together."""
    from bayes_ablation.spec.families import MODEL_REGISTRY, POSITIVE_FAMILIES, POSITIVE_PRIORS

    errs = Collector()
    for key in sorted(set(raw) - _TOP_LEVEL):
        errs.add(f"unknown top-level section [{key}] (allowed: {', '.join(sorted(_TOP_LEVEL))})")

    analysis = subtable(raw, "analysis", errs, required=True)
    unknown_keys("analysis", analysis, _ANALYSIS_KEYS, errs)
    name = analysis.get("name")
    if not isinstance(name, str) or not name:
        errs.add("[analysis] name must be a non-empty string")
        name = "unnamed"
    description = analysis.get("description", "")
    if not isinstance(description, str):
        errs.add("[analysis] description must be a string")
        description = ""
    endpoint = analysis.get("endpoint")
    if endpoint not in ENDPOINTS:
        errs.add(f"[analysis] endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}")
    reference_arm = analysis.get("reference_arm")
    if endpoint != "meta" and (not isinstance(reference_arm, str) or not reference_arm):
        errs.add("[analysis] reference_arm must name the control arm as it appears in the data")
    covariates = analysis.get("covariates", [])
    if not isinstance(covariates, list) or not all(isinstance(c, str) for c in covariates):
        errs.add("[analysis] covariates must be a list of column names")
        covariates = []
    if len(set(covariates)) != len(covariates):
        errs.add(f"[analysis] covariates are listed twice: {covariates}")
    subgroups = parse_subgroups(analysis, covariates, endpoint, errs)
    arms = analysis.get("arms")
    if arms is not None:
        labels_ok = isinstance(arms, list) and all(
            isinstance(a, str) and a and a.strip() == a for a in arms)
        if not labels_ok or len(arms) < 2 or len(set(arms)) < len(arms):
            errs.add(f"[analysis] arms must list at least two distinct arm labels, got {arms!r}")
            arms = None
        elif isinstance(reference_arm, str) and reference_arm not in arms:
            errs.add(f"[analysis] reference_arm {reference_arm!r} must be one of arms {arms}")
    min_per_arm = number_field("analysis", analysis, "min_patients_per_arm", 5, errs, lo=1,
                               integer=True)
    max_time = number_field("analysis", analysis, "max_time_months", 600.0, errs, lo=0,
                            lo_open=True)
    design = analysis.get("design", "randomised")
    if design not in DESIGNS:
        errs.add(f"[analysis] design must be one of {', '.join(DESIGNS)}, got {design!r}")
    time_unit = analysis.get("time_unit", "months")
    if time_unit != "months":
        errs.add(f"[analysis] time_unit must be 'months' (the package's unit), got {time_unit!r}")

    model_table = subtable(raw, "model", errs, required=True)
    model = model_table.get("family")
    entry = MODEL_REGISTRY.get(model) if isinstance(model, str) else None
    if entry is None:
        errs.add(f"[model] family must be one of {', '.join(MODEL_REGISTRY)}, got {model!r}")
        model_options: dict[str, Any] = {}
    else:
        if endpoint in ENDPOINTS and endpoint not in entry.endpoints:
            errs.add(f"[model] family {model!r} does not fit endpoint {endpoint!r} "
                     f"(fits: {', '.join(entry.endpoints)})")
        model_options = {k: v for k, v in model_table.items() if k != "family"}
        for msg in entry.validate_options(model_options):
            errs.add(f"[model] {msg}")

    h = subtable(raw, "hierarchy", errs)
    unknown_keys("hierarchy", h, {"site_intercepts", "site_arm_slopes"}, errs)
    for key in ("site_intercepts", "site_arm_slopes"):
        if key in h and not isinstance(h[key], bool):
            errs.add(f"[hierarchy] {key} must be true or false, got {h[key]!r}")
    hierarchy = HierarchySpec(
        site_intercepts=bool(h.get("site_intercepts", True)),
        site_arm_slopes=bool(h.get("site_arm_slopes", False)),
    )
    if hierarchy.site_arm_slopes and not hierarchy.site_intercepts:
        errs.add("[hierarchy] site_arm_slopes needs site_intercepts = true")

    priors_table = subtable(raw, "priors", errs, required=True)
    priors: dict[str, PriorSpec] = {}
    for pname, ptable in priors_table.items():
        prior = parse_prior(pname, ptable, errs)
        if prior is not None:
            priors[pname] = prior
            _check_positive(f"[priors.{pname}]", pname, prior, errs, POSITIVE_PRIORS,
                            POSITIVE_FAMILIES)
    if entry is not None:
        needed = set(entry.required_priors(hierarchy, covariates, model_options,
                                           subgroups=subgroups))
        allowed = needed | set(entry.optional_priors)
        for missing in sorted(needed - set(priors_table)):
            errs.add(f"[priors] model {model!r} needs a prior for '{missing}'")
        for extra in sorted(set(priors_table) - allowed):
            errs.add(f"[priors] '{extra}' is not a parameter of model {model!r} with this "
                     f"hierarchy (parameters: {', '.join(sorted(allowed))})")

    if endpoint == "meta" and covariates:
        errs.add("[analysis] covariates are not used by endpoint 'meta' (study effects are "
                 "pooled as reported); remove them")
    if entry is not None and not entry.site_hierarchy and "hierarchy" in raw:
        errs.add(f"[hierarchy] does not apply to model family {model!r} (it has no sites); "
                 "remove the section")

    sensitivity = _parse_sensitivity(raw, priors, errs, POSITIVE_PRIORS, POSITIVE_FAMILIES)
    if sensitivity and endpoint != "meta":
        errs.add("[sensitivity] prior panels are run only for endpoint 'meta' so far; "
                 "remove the section (it would be ignored)")

    e = subtable(raw, "estimands", errs)
    unknown_keys("estimands", e, {"times_months", "rmst_tau_months", "hr_thresholds",
                              "interval_prob"}, errs)
    times = e.get("times_months", [12.0, 24.0, 36.0])
    if (not isinstance(times, list) or not times
            or not all(isinstance(t, int | float) and not isinstance(t, bool) and t > 0
                       for t in times)):
        errs.add(f"[estimands] times_months must be a non-empty list of times > 0, got {times!r}")
        times = [12.0]
    thresholds = e.get("hr_thresholds", [1.0])
    if (not isinstance(thresholds, list) or not thresholds
            or not all(isinstance(c, int | float) and not isinstance(c, bool) and c > 0
                       for c in thresholds)):
        errs.add(f"[estimands] hr_thresholds must be a list of hazard ratios > 0, got {thresholds!r}")
        thresholds = [1.0]
    estimands = EstimandSpec(
        times_months=tuple(float(t) for t in sorted(times)),
        rmst_tau_months=number_field("estimands", e, "rmst_tau_months", 36.0, errs, lo=0, lo_open=True),
        hr_thresholds=tuple(float(c) for c in thresholds),
        interval_prob=number_field("estimands", e, "interval_prob", 0.95, errs, lo=0.5, hi=0.999),
    )

    s = subtable(raw, "sampler", errs)
    unknown_keys("sampler", s, {"backend", "chains", "draws", "tune", "target_accept", "seed",
                            "adaptation"}, errs)
    backend = s.get("backend", "nutpie")
    if backend not in SAMPLER_BACKENDS:
        errs.add(f"[sampler] backend must be one of {', '.join(SAMPLER_BACKENDS)}, got {backend!r}")
        backend = "nutpie"
    adaptation = s.get("adaptation", "diag")
    if adaptation not in SAMPLER_ADAPTATIONS:
        errs.add(f"[sampler] adaptation must be one of {', '.join(SAMPLER_ADAPTATIONS)}, "
                 f"got {adaptation!r}")
        adaptation = "diag"
    sampler = SamplerSpec(
        backend=backend,
        chains=number_field("sampler", s, "chains", 4, errs, lo=1, hi=64, integer=True),
        draws=number_field("sampler", s, "draws", 1000, errs, lo=10, integer=True),
        tune=number_field("sampler", s, "tune", 1000, errs, lo=0, integer=True),
        target_accept=number_field("sampler", s, "target_accept", 0.9, errs, lo=0.5, hi=0.999),
        seed=number_field("sampler", s, "seed", 20261130, errs, lo=0, hi=2**32 - 1, integer=True),
        adaptation=adaptation,
    )

    from bayes_ablation.spec.borrowing import parse_borrowing

    borrowing = parse_borrowing(raw, errs, endpoint, model, parse_prior=parse_prior,
                                number_field=number_field)

    d = subtable(raw, "diagnostics", errs)
    unknown_keys("diagnostics", d, {"rhat_max", "ess_bulk_min", "ess_tail_min", "max_divergences",
                                "ebfmi_min"}, errs)
    diagnostics = DiagnosticsSpec(
        rhat_max=number_field("diagnostics", d, "rhat_max", 1.01, errs, lo=1.0),
        ess_bulk_min=number_field("diagnostics", d, "ess_bulk_min", 400, errs, lo=0),
        ess_tail_min=number_field("diagnostics", d, "ess_tail_min", 400, errs, lo=0),
        max_divergences=number_field("diagnostics", d, "max_divergences", 0, errs, lo=0, integer=True),
        ebfmi_min=number_field("diagnostics", d, "ebfmi_min", 0.3, errs, lo=0),
    )

    if errs.messages:
        raise SpecError(source, errs.messages)
    return AnalysisSpec(
        name=name, description=description, endpoint=endpoint, model=model,
        reference_arm=reference_arm, covariates=tuple(covariates), model_options=model_options,
        hierarchy=hierarchy, priors=priors, estimands=estimands, sampler=sampler,
        diagnostics=diagnostics, time_unit=time_unit, source_path=source, raw=raw,
        sensitivity=sensitivity, arms=tuple(arms) if arms else None,
        min_patients_per_arm=int(min_per_arm), max_time_months=float(max_time),
        design=str(design), borrowing=borrowing, subgroups=tuple(subgroups),
    )


def parse_subgroups(analysis: dict[str, Any], covariates: Any, endpoint: Any,
                    errs: Collector) -> list[str]:
    """``[analysis] subgroups``: distinct column names of binary (0/1) effect modifiers, not
    also covariates (a subgroup gets its own main effect), not for endpoint ``meta``."""
    subgroups = analysis.get("subgroups", [])
    if not isinstance(subgroups, list) or not all(isinstance(g, str) and g.strip() == g and g
                                                  for g in subgroups):
        errs.add(f"[analysis] subgroups must be a list of column names (binary 0/1 columns), "
                 f"got {subgroups!r}")
        return []
    twice = sorted({g for g in subgroups if subgroups.count(g) > 1})
    if twice:
        errs.add(f"[analysis] subgroups are listed twice: {', '.join(twice)}")
    both = [g for g in subgroups if isinstance(covariates, list) and g in covariates]
    if both:
        errs.add(f"[analysis] {', '.join(both)} listed both as covariates and as subgroups: a "
                 "subgroup gets its own main effect besides its interaction with treatment; "
                 "list it under subgroups only")
    if subgroups and endpoint == "meta":
        errs.add("[analysis] subgroups are not available for endpoint 'meta' (study effects are "
                 "pooled as reported); remove them")
    return list(dict.fromkeys(subgroups))


def _parse_sensitivity(raw: dict[str, Any], priors: dict[str, PriorSpec], errs: Collector,
                       positive_priors: tuple[str, ...], positive_families: tuple[str, ...]
                       ) -> dict[str, dict[str, PriorSpec]]:
    """``[sensitivity.<parameter>.<label>]``: alternative priors for a parameter of the model,
    each a prior table like ``[priors.*]`` (family, parameters, rationale)."""
    table = subtable(raw, "sensitivity", errs)
    out: dict[str, dict[str, PriorSpec]] = {}
    for pname, alternatives in table.items():
        if pname not in priors:
            errs.add(f"[sensitivity.{pname}] is not a prior of this spec "
                     f"(priors: {', '.join(sorted(priors))})")
            continue
        if not isinstance(alternatives, dict) or not alternatives:
            errs.add(f"[sensitivity.{pname}] must hold one table per alternative prior, e.g. "
                     f"[sensitivity.{pname}.halfnormal_1]")
            continue
        out[pname] = {}
        for label, ptable in alternatives.items():
            where = f"[sensitivity.{pname}.{label}]"
            prior = parse_prior(f"{pname}.{label}", ptable, errs, section="sensitivity")
            if prior is None:
                continue
            _check_positive(where, pname, prior, errs, positive_priors, positive_families)
            out[pname][label] = prior
    return out


# --------------------------------------------------------------------------------------------
# minimal TOML writer (tomllib reads only); nested tables become dotted headers.

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _to_toml(raw: dict[str, Any], prefix: str = "") -> str:
    lines: list[str] = []
    scalars = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    for k, v in scalars.items():
        lines.append(f"{k} = {_toml_value(v)}")
    if scalars:
        lines.append("")
    for k, v in tables.items():
        name = f"{prefix}.{k}" if prefix else k
        sub = _to_toml(v, name)
        if not any(not isinstance(x, dict) for x in v.values()) and not v:
            sub = f"[{name}]\n"
        lines.append(sub)
    return "\n".join(lines)
