"""Interim-monitoring design: parse and validate ``models/interim_design.toml``.

A design is data (parsed with :mod:`tomllib`, nothing evaluated): the analysis spec it uses
(a path relative to the design file; that spec's canonical hash is part of the design hash),
the planned accrual, the trigger of the final analysis, the interim looks, the decision rules,
the predictive-probability settings, the fast posterior path and the operating-characteristics
scenarios.

Decision rules are ``{kind, quantity, op, threshold}`` records:

* ``kind``: ``efficacy`` / ``futility`` (applied at interim looks) or ``success`` (the final
  analysis; exactly one, on a posterior probability);
* ``quantity``: ``"P(HR<c)"`` (posterior probability that the experimental arm's HR is below a
  number c > 0) or ``"PPoS"`` (predictive probability of success at the final analysis);
* ``op``: one of ``>``, ``>=``, ``<``, ``<=``; ``threshold`` in [0, 1];
* optional ``looks = [1, 2]``: interim look numbers the rule applies at (default: all).

At an interim look the decision is *stop for efficacy* if any efficacy rule holds, else *stop
for futility* if any futility rule holds, else *continue*. At the final analysis it is
*success* if the success rule holds, else *no success*.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_ablation.errors import SpecError
from bayes_ablation.spec.plan import (
    AnalysisSpec,
    Collector,
    PriorSpec,
    canonical_sha256,
    load_spec,
    number_field,
    parse_prior,
    subtable,
    unknown_keys,
)

RULE_KINDS = ("efficacy", "futility", "success")
OPS = (">", ">=", "<", "<=")
_PROB = re.compile(r"^P\(HR<(\d+(?:\.\d+)?)\)$")
SITE_SD_MODES = ("integrate", "fixed")


@dataclass(frozen=True)
class Rule:
    """One decision rule (see module docstring)."""

    kind: str
    quantity: str
    op: str
    threshold: float
    looks: tuple[int, ...] | None = None

    @property
    def hr_cutoff(self) -> float | None:
        """c for a ``P(HR<c)`` quantity, None for ``PPoS``."""
        m = _PROB.match(self.quantity)
        return float(m.group(1)) if m else None

    def holds(self, value: float) -> bool:
        match self.op:
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold
            case "<":
                return value < self.threshold
            case _:
                return value <= self.threshold

    def applies_at(self, look: int) -> bool:
        return self.looks is None or look in self.looks

    def describe(self) -> str:
        return f"{self.kind}: {self.quantity} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Look:
    """A planned interim look: at a number of events or on a calendar date."""

    events: int | None = None
    date: dt.date | None = None

    def describe(self) -> str:
        return f"{self.events} events" if self.events is not None else f"on {self.date}"


@dataclass(frozen=True)
class Accrual:
    rate_per_month: float
    total_n: int
    sites: tuple[str, ...]
    site_weights: tuple[float, ...]
    allocation: tuple[float, float]
    dropout_per_month: float


@dataclass(frozen=True)
class FastSpec:
    """Fast posterior path: PWE on sufficient statistics, Laplace approximation.

    ``site_sd``: ``integrate`` (σ_site on ``site_sd_nodes`` quantile nodes of its prior, the
    conditional Laplace approximations mixed with weights ∝ their marginal likelihoods) or
    ``fixed`` at ``site_sd_value``.
    """

    cuts_months: tuple[float, ...]
    baseline: PriorSpec
    site_sd: str = "integrate"
    site_sd_nodes: int = 3
    site_sd_value: float = 0.0
    #: borrowing: quantile nodes of the commensurability precision τ
    precision_nodes: int = 7


@dataclass(frozen=True)
class Scenario:
    """A truth to simulate whole trials under (operating characteristics)."""

    name: str
    log_hr: float
    median_ref_months: float = 18.0
    weibull_shape: float = 1.0
    sigma_site: float = 0.3
    dropout_per_month: float | None = None
    accrual_rate_per_month: float | None = None
    #: external controls' log cumulative hazard minus the internal control arm's (borrowing
    #: designs; 0 = exchangeable, > 0 external controls do worse: borrowing then favours the
    #: experimental arm)
    external_log_cumhaz_offset: float = 0.0


@dataclass(frozen=True)
class ExternalControls:
    """``[external_controls]``: the external (historical) control sample simulated in each
    trial of the operating characteristics (borrowing designs): ``n_patients`` control
    patients with the scenario's Weibull shape and control median shifted by the scenario's
    ``external_log_cumhaz_offset``, administratively censored uniformly between
    ``follow_up_months`` [min, max], with the planned dropout hazard."""

    n_patients: int
    follow_up_months: tuple[float, float] = (12.0, 48.0)


@dataclass(frozen=True)
class Design:
    """A parsed, validated interim-monitoring design."""

    name: str
    description: str
    spec: AnalysisSpec
    start_date: dt.date
    seed: int
    accrual: Accrual
    final_events: int | None
    final_date: dt.date | None
    looks: tuple[Look, ...]
    rules: tuple[Rule, ...]
    ppos_draws: int
    fast: FastSpec
    scenarios: dict[str, Scenario]
    external_controls: ExternalControls | None = None
    source_path: str = "<memory>"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def sha256(self) -> str:
        """Canonical hash of the design's content and of the analysis spec's content."""
        return canonical_sha256({"design": self.raw, "analysis_spec_sha256": self.spec.sha256})

    @property
    def success_rule(self) -> Rule:
        return next(r for r in self.rules if r.kind == "success")

    def interim_rules(self, look: int) -> list[Rule]:
        return [r for r in self.rules if r.kind != "success" and r.applies_at(look)]

    @property
    def needs_ppos(self) -> bool:
        return any(r.quantity == "PPoS" for r in self.rules)

    @property
    def hr_cutoffs(self) -> tuple[float, ...]:
        cut = {r.hr_cutoff for r in self.rules if r.hr_cutoff is not None}
        return tuple(sorted(cut | {1.0}))

    def final_description(self) -> str:
        return (f"{self.final_events} events" if self.final_events is not None
                else f"on {self.final_date}")

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)


def load_design(path: str | Path) -> Design:
    """Read and validate a design TOML file (and the analysis spec it names)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [f"not valid TOML: {exc}"]) from exc
    return parse_design(raw, str(path), base_dir=path.parent)


_TOP = {"design", "accrual", "final", "looks", "rules", "ppos", "fast", "scenarios",
        "external_controls"}


def _date(section: str, value: Any, key: str, errs: Collector) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value  # TOML local date
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    errs.add(f"[{section}] {key} must be an ISO date YYYY-MM-DD, got {value!r}")
    return None


def parse_design(raw: dict[str, Any], source: str = "<memory>", *,
                 base_dir: str | Path = ".", spec: AnalysisSpec | None = None) -> Design:
    """Validate a design given as a parsed TOML dictionary; all problems are reported together.

    ``spec`` overrides loading ``[design] analysis_spec`` (tests, in-memory designs).
    """
    raw = _plain(raw)  # TOML dates → ISO strings, so the canonical hash is defined
    errs = Collector()
    for key in sorted(set(raw) - _TOP):
        errs.add(f"unknown top-level section [{key}] (allowed: {', '.join(sorted(_TOP))})")

    d = subtable(raw, "design", errs, required=True)
    unknown_keys("design", d, {"name", "description", "analysis_spec", "start_date", "seed"}, errs)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        errs.add("[design] name must be a non-empty string")
        name = "unnamed"
    description = d.get("description", "")
    if not isinstance(description, str):
        errs.add("[design] description must be a string")
        description = ""
    if spec is None:
        ref = d.get("analysis_spec")
        if not isinstance(ref, str) or not ref:
            errs.add("[design] analysis_spec must be the path of an analysis spec (relative to "
                     "the design file)")
        else:
            try:
                spec = load_spec(Path(base_dir) / ref)
            except SpecError as exc:
                errs.add(f"[design] analysis_spec {ref!r} is invalid: "
                         + "; ".join(exc.messages))
    if spec is not None and spec.endpoint != "pfs":
        errs.add(f"[design] analysis_spec must be a PFS spec, got endpoint {spec.endpoint!r}")
    if spec is not None and spec.priors.get("log_hr") is not None \
            and spec.priors["log_hr"].family != "normal":
        errs.add("[design] the fast posterior path needs a normal prior on log_hr in the analysis "
                 f"spec, got {spec.priors['log_hr'].family!r}")
    start = _date("design", d.get("start_date"), "start_date", errs)
    seed = number_field("design", d, "seed", 1, errs, lo=0, hi=2**63 - 1, integer=True)

    a = subtable(raw, "accrual", errs, required=True)
    unknown_keys("accrual", a, {"rate_per_month", "total_n", "sites", "site_weights", "allocation",
                            "dropout_per_month"}, errs)
    sites = a.get("sites")
    if (not isinstance(sites, list) or not sites or not all(isinstance(s, str) and s for s in sites)
            or len(set(sites)) != len(sites)):
        errs.add(f"[accrual] sites must be a non-empty list of distinct site labels, got {sites!r}")
        sites = ["S1"]
    weights = a.get("site_weights", [1.0] * len(sites))
    if (not isinstance(weights, list) or len(weights) != len(sites)
            or not all(isinstance(w, int | float) and not isinstance(w, bool) and w > 0
                       for w in weights)):
        errs.add(f"[accrual] site_weights must be {len(sites)} numbers > 0 (one per site), "
                 f"got {weights!r}")
        weights = [1.0] * len(sites)
    allocation = a.get("allocation", [1, 1])
    if (not isinstance(allocation, list) or len(allocation) != 2
            or not all(isinstance(w, int | float) and not isinstance(w, bool) and w > 0
                       for w in allocation)):
        errs.add("[accrual] allocation must be two numbers > 0 (reference : experimental), "
                 f"got {allocation!r}")
        allocation = [1, 1]
    total_w = float(sum(weights))
    accrual = Accrual(
        rate_per_month=number_field("accrual", a, "rate_per_month", 10.0, errs, lo=0, lo_open=True),
        total_n=number_field("accrual", a, "total_n", 100, errs, lo=2, integer=True),
        sites=tuple(sites), site_weights=tuple(float(w) / total_w for w in weights),
        allocation=(float(allocation[0]), float(allocation[1])),
        dropout_per_month=number_field("accrual", a, "dropout_per_month", 0.0, errs, lo=0),
    )

    f = subtable(raw, "final", errs, required=True)
    unknown_keys("final", f, {"events", "date"}, errs)
    final_events = final_date = None
    if ("events" in f) == ("date" in f):
        errs.add("[final] needs exactly one trigger: events = N or date = YYYY-MM-DD")
    elif "events" in f:
        final_events = number_field("final", f, "events", 1, errs, lo=1, integer=True)
        if final_events > accrual.total_n:
            errs.add(f"[final] events ({final_events}) cannot exceed accrual total_n "
                     f"({accrual.total_n})")
    else:
        final_date = _date("final", f["date"], "date", errs)

    looks_raw = raw.get("looks", [])
    looks: list[Look] = []
    if not isinstance(looks_raw, list):
        errs.add("[[looks]] must be an array of tables ({events = N} or {date = ...})")
        looks_raw = []
    for k, item in enumerate(looks_raw, start=1):
        where = f"looks.{k}"
        if not isinstance(item, dict) or len(item) != 1 or not ({"events", "date"} & set(item)):
            errs.add(f"[{where}] must be exactly one of events = N or date = YYYY-MM-DD, "
                     f"got {item!r}")
            continue
        if "events" in item:
            n = number_field(where, item, "events", 1, errs, lo=1, integer=True)
            if final_events is not None and n >= final_events:
                errs.add(f"[{where}] events ({n}) must be below the final analysis' "
                         f"{final_events}")
            looks.append(Look(events=n))
        else:
            looks.append(Look(date=_date(where, item["date"], "date", errs)))
    kinds = {"events" if lk.events is not None else "date" for lk in looks}
    if len(kinds) > 1:
        errs.add("[[looks]] must all be by events or all by date (not mixed)")
    keys = [lk.events if lk.events is not None else lk.date for lk in looks]
    if len(kinds) == 1 and None not in keys and any(b <= a for a, b in itertools.pairwise(keys)):
        errs.add("[[looks]] must be in strictly increasing order")
    if final_date is not None and any(lk.date is not None and lk.date >= final_date
                                      for lk in looks):
        errs.add("[[looks]] dates must be before the final analysis date")

    rules = _parse_rules(raw.get("rules"), errs, len(looks))

    p = subtable(raw, "ppos", errs)
    unknown_keys("ppos", p, {"draws"}, errs)
    ppos_draws = number_field("ppos", p, "draws", 1000, errs, lo=50, hi=100_000, integer=True)

    fast = _parse_fast(subtable(raw, "fast", errs), spec, errs)

    scenarios: dict[str, Scenario] = {}
    sc = subtable(raw, "scenarios", errs)
    allowed = {"log_hr", "median_ref_months", "weibull_shape", "sigma_site",
               "dropout_per_month", "accrual_rate_per_month", "external_log_cumhaz_offset"}
    for sname, table in sc.items():
        where = f"scenarios.{sname}"
        if not isinstance(table, dict):
            errs.add(f"[{where}] must be a table")
            continue
        unknown_keys(where, table, allowed, errs)
        if "log_hr" not in table:
            errs.add(f"[{where}] needs the true log_hr")
        scenarios[sname] = Scenario(
            name=sname,
            log_hr=number_field(where, table, "log_hr", 0.0, errs),
            median_ref_months=number_field(where, table, "median_ref_months", 18.0, errs, lo=0,
                                      lo_open=True),
            weibull_shape=number_field(where, table, "weibull_shape", 1.0, errs, lo=0, lo_open=True),
            sigma_site=number_field(where, table, "sigma_site", 0.3, errs, lo=0),
            dropout_per_month=(number_field(where, table, "dropout_per_month", 0.0, errs, lo=0)
                               if "dropout_per_month" in table else None),
            accrual_rate_per_month=(number_field(where, table, "accrual_rate_per_month", 1.0, errs,
                                            lo=0, lo_open=True)
                                    if "accrual_rate_per_month" in table else None),
            external_log_cumhaz_offset=number_field(where, table, "external_log_cumhaz_offset",
                                                    0.0, errs, lo=-5.0, hi=5.0),
        )

    external_controls = None
    if "external_controls" in raw:
        x = subtable(raw, "external_controls", errs)
        unknown_keys("external_controls", x, {"n_patients", "follow_up_months"}, errs)
        if "n_patients" not in x:
            errs.add("[external_controls] needs n_patients (external control patients "
                     "simulated in each trial)")
        n_ext = number_field("external_controls", x, "n_patients", 100, errs, lo=1,
                             hi=100_000, integer=True)
        fu = x.get("follow_up_months", [12.0, 48.0])
        if (not isinstance(fu, list) or len(fu) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in fu)
                or not 0 < fu[0] <= fu[1]):
            errs.add("[external_controls] follow_up_months must be [min, max] months with "
                     f"0 < min <= max, got {fu!r}")
            fu = [12.0, 48.0]
        external_controls = ExternalControls(int(n_ext), (float(fu[0]), float(fu[1])))
    if spec is not None and spec.borrowing is not None and spec.borrowing.needs_external \
            and scenarios and external_controls is None:
        errs.add(f"the analysis spec borrows external controls ([borrowing] method "
                 f"{spec.borrowing.method!r}): operating characteristics need "
                 "[external_controls] n_patients (and follow_up_months) to simulate them")

    if errs.messages or spec is None or start is None:
        raise SpecError(source, errs.messages or ["[design] analysis_spec could not be loaded"])
    return Design(
        name=name, description=description, spec=spec, start_date=start, seed=seed,
        accrual=accrual, final_events=final_events, final_date=final_date, looks=tuple(looks),
        rules=tuple(rules), ppos_draws=ppos_draws, fast=fast, scenarios=scenarios,
        external_controls=external_controls, source_path=source, raw=raw)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return value


def _parse_rules(items: Any, errs: Collector, n_looks: int) -> list[Rule]:
    if not isinstance(items, list) or not items:
        errs.add("[[rules]] must list the decision rules (at least the final success rule)")
        return []
    rules = []
    for k, item in enumerate(items, start=1):
        where = f"rules.{k}"
        if not isinstance(item, dict):
            errs.add(f"[{where}] must be a table")
            continue
        unknown_keys(where, item, {"kind", "quantity", "op", "threshold", "looks"}, errs)
        kind, quantity, op = item.get("kind"), item.get("quantity"), item.get("op")
        ok = True
        if kind not in RULE_KINDS:
            errs.add(f"[{where}] kind must be one of {', '.join(RULE_KINDS)}, got {kind!r}")
            ok = False
        if not isinstance(quantity, str) or not (quantity == "PPoS" or _PROB.match(quantity)):
            errs.add(f"[{where}] quantity must be \"P(HR<c)\" with a number c > 0 (e.g. "
                     f"\"P(HR<1)\") or \"PPoS\", got {quantity!r}")
            ok = False
        elif quantity != "PPoS" and float(_PROB.match(quantity).group(1)) <= 0:  # type: ignore[union-attr]
            errs.add(f"[{where}] the HR cut-off in {quantity!r} must be > 0")
            ok = False
        if op not in OPS:
            errs.add(f"[{where}] op must be one of {', '.join(OPS)}, got {op!r}")
            ok = False
        if "threshold" not in item:
            errs.add(f"[{where}] needs a threshold")
        threshold = number_field(where, item, "threshold", 0.5, errs, lo=0, hi=1)
        looks = item.get("looks")
        if looks is not None:
            if (not isinstance(looks, list) or not looks
                    or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= n_looks
                               for v in looks)):
                errs.add(f"[{where}] looks must be a list of interim look numbers 1..{n_looks}, "
                         f"got {looks!r}")
                looks = None
            elif kind == "success":
                errs.add(f"[{where}] a success rule applies at the final analysis; looks is not "
                         "allowed")
        if kind == "success" and quantity == "PPoS":
            errs.add(f"[{where}] the success rule must be on a posterior probability P(HR<c)")
            ok = False
        if ok:
            rules.append(Rule(kind, quantity, op, float(threshold),
                              tuple(looks) if looks is not None else None))
    n_success = sum(r.kind == "success" for r in rules)
    if n_success != 1 and not any("kind must be" in m for m in errs.messages):
        errs.add(f"[[rules]] need exactly one rule of kind 'success' (the final analysis), "
                 f"got {n_success}")
    return rules


def _parse_fast(f: dict[str, Any], spec: AnalysisSpec | None, errs: Collector) -> FastSpec:
    unknown_keys("fast", f, {"cuts_months", "baseline_log_hazard", "site_sd", "site_sd_nodes",
                         "site_sd_value", "precision_nodes"}, errs)
    cuts = f.get("cuts_months")
    if cuts is None and spec is not None and spec.model_options.get("cuts_months") is not None:
        cuts = spec.model_options["cuts_months"]
    if (not isinstance(cuts, list) or not cuts
            or not all(isinstance(c, int | float) and not isinstance(c, bool) and c > 0
                       for c in cuts)
            or any(b <= a for a, b in itertools.pairwise(cuts))):
        errs.add("[fast] cuts_months must be a list of interval cut points (months, > 0, "
                 f"increasing) for the piecewise-exponential fast path, got {cuts!r}")
        cuts = [12.0]
    base_raw = f.get("baseline_log_hazard")
    if base_raw is None and spec is not None and "log_hazard_mean" in spec.priors:
        baseline = spec.priors["log_hazard_mean"]
    elif base_raw is None:
        errs.add("[fast] baseline_log_hazard must give the prior of each interval's log hazard "
                 "per month: { family = \"normal\", mu = …, sigma = …, rationale = \"…\" }")
        baseline = PriorSpec("normal", {"mu": 0.0, "sigma": 1.0}, "")
    else:
        baseline = parse_prior("fast.baseline_log_hazard", base_raw, errs) or \
            PriorSpec("normal", {"mu": 0.0, "sigma": 1.0}, "")
    if baseline.family != "normal":
        errs.add(f"[fast] baseline_log_hazard must be a normal prior, got {baseline.family!r}")
    mode = f.get("site_sd", "integrate")
    if mode not in SITE_SD_MODES:
        errs.add(f"[fast] site_sd must be one of {', '.join(SITE_SD_MODES)}, got {mode!r}")
        mode = "integrate"
    has_sigma = spec is not None and spec.hierarchy.site_intercepts
    if mode == "integrate" and spec is not None and has_sigma and \
            spec.priors["sigma_site"].family not in ("halfnormal", "lognormal", "exponential",
                                                     "gamma", "halfcauchy", "halfstudentt"):
        errs.add("[fast] site_sd = \"integrate\" needs a sigma_site prior family with quantiles")
    value = number_field("fast", f, "site_sd_value", 0.0, errs, lo=0)
    if not math.isfinite(value):
        value = 0.0
    return FastSpec(
        cuts_months=tuple(float(c) for c in cuts), baseline=baseline,
        site_sd=mode if has_sigma else "fixed",
        site_sd_nodes=number_field("fast", f, "site_sd_nodes", 3, errs, lo=1, hi=15, integer=True),
        site_sd_value=value if has_sigma else 0.0,
        precision_nodes=number_field("fast", f, "precision_nodes", 7, errs, lo=1, hi=25,
                                     integer=True),
    )
