"""Apply a design's decision rules to the numbers of one look (pure; no statistics computed).

Interim look: *stop for efficacy* if any efficacy rule holds, else *stop for futility* if any
futility rule holds, else *continue*. Final analysis: *success* if the success rule holds,
else *no success*. A rule whose quantity is unavailable (PPoS at a look where it was not
computed) does not hold, and the evaluation says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bayes_ablation.spec.design import Design, Rule

CONTINUE = "continue"
STOP_EFFICACY = "stop for efficacy"
STOP_FUTILITY = "stop for futility"
SUCCESS = "success"
NO_SUCCESS = "no success"


def prob_key(cutoff: float) -> str:
    """The name of a posterior probability, e.g. ``P(HR<1)``."""
    return f"P(HR<{cutoff:g})"


@dataclass
class RuleEvaluation:
    rule: str
    kind: str
    quantity: str
    value: float | None
    threshold: float
    holds: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Decision:
    action: str
    is_final: bool
    evaluations: list[RuleEvaluation] = field(default_factory=list)

    @property
    def stops(self) -> bool:
        return self.is_final or self.action != CONTINUE

    def reason(self) -> str:
        fired = [e.rule for e in self.evaluations if e.holds]
        return "; ".join(fired) if fired else "no rule holds"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "is_final": self.is_final, "reason": self.reason(),
                "rules": [e.to_dict() for e in self.evaluations]}


def _evaluate(rule: Rule, probs: dict[str, float], ppos: float | None) -> RuleEvaluation:
    if rule.quantity == "PPoS":
        value = ppos
    else:
        value = probs.get(prob_key(rule.hr_cutoff))  # type: ignore[arg-type]
    if value is None:
        return RuleEvaluation(rule.describe(), rule.kind, rule.quantity, None, rule.threshold,
                              False, "not computed at this look")
    return RuleEvaluation(rule.describe(), rule.kind, rule.quantity, float(value),
                          rule.threshold, bool(rule.holds(float(value))))


def decide(design: Design, look: int, probs: dict[str, float], ppos: float | None,
           is_final: bool) -> Decision:
    """The design's decision at interim look number ``look`` (1-based) or the final analysis."""
    if is_final:
        ev = _evaluate(design.success_rule, probs, None)
        return Decision(SUCCESS if ev.holds else NO_SUCCESS, True, [ev])
    evs = [_evaluate(r, probs, ppos) for r in design.interim_rules(look)]
    if any(e.holds and e.kind == "efficacy" for e in evs):
        action = STOP_EFFICACY
    elif any(e.holds and e.kind == "futility" for e in evs):
        action = STOP_FUTILITY
    else:
        action = CONTINUE
    return Decision(action, False, evs)
