"""``[borrowing]``: how historical or external evidence enters a trial's analysis (PyMC-free).

Methods (Weibull PFS family; the external patients are *control* patients):

* ``none`` — the internal data alone (external data, if given, are only described);
* ``full`` — external controls pooled with the internal control arm (same baseline);
* ``power`` — power prior with fixed ``a0`` ∈ [0, 1]: the external log-likelihood enters
  multiplied by a0 (Ibrahim & Chen 2000);
* ``commensurate`` — the external baseline α_ext = α + δ, δ ~ N(0, 1/τ), with the
  commensurability precision τ given a prior ``[borrowing.precision]`` (Hobbs et al. 2011);
* ``map`` — a meta-analytic-predictive prior (Schmidli et al. 2014) for ``target``
  (``log_cumhaz_ref``: the control arm's log cumulative hazard at ``time_ref_months``; or
  ``log_hr``) from a study table ``studies``: the normal–normal model's θ_new under the priors
  ``[borrowing.map_mu]`` and ``[borrowing.map_tau]``, approximated by a normal mixture (EM)
  plus a vague component of weight ``robust_weight`` and sd ``robust_sd``.

Example::

    [borrowing]
    method = "commensurate"
    [borrowing.precision]
    family = "gamma"
    alpha = 1.0
    beta = 0.01
    rationale = "..."
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METHODS = ("none", "full", "power", "commensurate", "map")
MAP_TARGETS = ("log_cumhaz_ref", "log_hr")
#: the sd of one unit of information (one event) on each MAP target: the log cumulative
#: hazard gains Fisher information 1 per event; a 1:1 log HR about 1/4 per event
UNIT_SD = {"log_cumhaz_ref": 1.0, "log_hr": 2.0}
#: methods that need external control patients (``fit --external``)
NEEDS_EXTERNAL = ("full", "power", "commensurate")

_KEYS = {
    "none": set(),
    "full": set(),
    "power": {"a0"},
    "commensurate": {"precision"},
    "map": {"studies", "target", "robust_weight", "robust_sd", "max_components", "map_mu",
            "map_tau", "map_draws"},
}


@dataclass(frozen=True)
class BorrowingSpec:
    """A parsed ``[borrowing]`` table (see the module docstring)."""

    method: str
    a0: float = 1.0
    precision: Any = None            # PriorSpec of τ (commensurate)
    studies: str | None = None       # MAP study table, relative to the spec's folder
    target: str = "log_cumhaz_ref"
    robust_weight: float = 0.2
    robust_sd: float | None = None   # default: UNIT_SD[target]
    max_components: int = 4
    map_mu: Any = None               # PriorSpec of μ (MAP meta model)
    map_tau: Any = None              # PriorSpec of τ (MAP meta model)
    map_draws: int = 20000

    @property
    def needs_external(self) -> bool:
        return self.method in NEEDS_EXTERNAL

    @property
    def robust_sd_value(self) -> float:
        return float(self.robust_sd if self.robust_sd is not None else UNIT_SD[self.target])

    def studies_path(self, spec_source: str) -> Path | None:
        """The MAP study table's path (relative paths are relative to the spec's folder)."""
        if self.studies is None:
            return None
        path = Path(self.studies)
        if path.is_absolute() or spec_source.startswith("<"):
            return path
        return Path(spec_source).parent / path


def parse_borrowing(raw: dict[str, Any], errs: Any, endpoint: Any, model: Any, *,
                    parse_prior: Callable[..., Any], number_field: Callable[..., Any]
                    ) -> BorrowingSpec | None:
    """Validate ``raw["borrowing"]`` (``None`` when absent); problems go to ``errs``.

    ``parse_prior`` and ``number_field`` are the plan parser's field validators (passed in, so
    this module does not import :mod:`bayes_ablation.spec.plan`, which imports it)."""
    from bayes_ablation.spec.families import POSITIVE_FAMILIES

    if "borrowing" not in raw:
        return None
    table = raw["borrowing"]
    if not isinstance(table, dict):
        errs.add(f"[borrowing] must be a table, got {type(table).__name__}")
        return None
    method = table.get("method")
    if method not in METHODS:
        errs.add(f"[borrowing] method must be one of {', '.join(METHODS)}, got {method!r}")
        return None
    allowed = {"method"} | _KEYS[method]
    for key in sorted(set(table) - allowed):
        errs.add(f"[borrowing] unknown key '{key}' for method {method!r} "
                 f"(allowed: {', '.join(sorted(allowed))})")
    if endpoint != "pfs" or model != "weibull":
        errs.add(f"[borrowing] is implemented for endpoint 'pfs' with model family 'weibull', "
                 f"got endpoint {endpoint!r}, family {model!r}")

    def positive_prior(key: str) -> Any:
        if key not in table:
            errs.add(f"[borrowing] method {method!r} needs a prior table "
                     f"[borrowing.{key}] (family, parameters, rationale)")
            return None
        prior = parse_prior(key, table[key], errs, section="borrowing")
        if prior is not None and prior.family not in POSITIVE_FAMILIES:
            errs.add(f"[borrowing.{key}] is a positive quantity: family must be one of "
                     f"{', '.join(POSITIVE_FAMILIES)}, got {prior.family!r}")
        return prior

    out: dict[str, Any] = {"method": method}
    if method == "power":
        if "a0" not in table:
            errs.add("[borrowing] method 'power' needs a0 (the fixed weight of the external "
                     "log-likelihood, 0 <= a0 <= 1)")
        else:
            out["a0"] = number_field("borrowing", table, "a0", 1.0, errs, lo=0.0, hi=1.0)
    elif method == "commensurate":
        out["precision"] = positive_prior("precision")
    elif method == "map":
        studies = table.get("studies")
        if not isinstance(studies, str) or not studies.strip():
            errs.add("[borrowing] method 'map' needs studies = \"path\" (the study table, "
                     "relative to the spec's folder)")
        else:
            out["studies"] = studies
        target = table.get("target", "log_cumhaz_ref")
        if target not in MAP_TARGETS:
            errs.add(f"[borrowing] target must be one of {', '.join(MAP_TARGETS)}, "
                     f"got {target!r}")
        else:
            out["target"] = target
        out["robust_weight"] = number_field("borrowing", table, "robust_weight", 0.2, errs,
                                            lo=0.0, hi=1.0)
        if "robust_sd" in table:
            out["robust_sd"] = number_field("borrowing", table, "robust_sd", 1.0, errs,
                                            lo=0.0, lo_open=True)
        out["max_components"] = number_field("borrowing", table, "max_components", 4, errs,
                                             lo=1, hi=8, integer=True)
        out["map_draws"] = number_field("borrowing", table, "map_draws", 20000, errs,
                                        lo=1000, hi=10**7, integer=True)
        if "map_mu" not in table:
            errs.add("[borrowing] method 'map' needs a prior table [borrowing.map_mu] "
                     "(the MAP meta model's mean; normal)")
        else:
            mu = parse_prior("map_mu", table["map_mu"], errs, section="borrowing")
            if mu is not None and mu.family != "normal":
                errs.add(f"[borrowing.map_mu] must be a normal prior (the MAP prior is "
                         f"computed by exact quadrature), got {mu.family!r}")
            out["map_mu"] = mu
        out["map_tau"] = positive_prior("map_tau")
    return BorrowingSpec(**out)
