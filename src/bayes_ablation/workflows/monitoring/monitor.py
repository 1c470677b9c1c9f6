"""One interim look: cut → full analysis → posterior probabilities → PPoS → decision.

The look's result is a deterministic JSON-able dictionary (no timings, no timestamps): the
same design, data, cut date and seed give the same numbers in any process (the CLI fixes
``PYTHONHASHSEED``; see :mod:`bayes_ablation.inference.sampling`), which is what lets the ledger accept
an identical re-run as a no-op and refuse anything else.

Posterior probabilities come from the analysis spec's full MCMC fit. The PPoS simulates the
rest of the trial from that posterior (:mod:`bayes_ablation.workflows.monitoring.ppos`) and applies the
success rule with the fast posterior at each simulated final analysis; its random stream is
``rng_for(design seed, "ppos", cut date)``. The fast posterior of the look's own data is
reported next to the MCMC numbers as a check of the approximation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayes_ablation.data.cut import CutData, DatedTable, cut, months_between
from bayes_ablation.errors import DataValidationError, Problem
from bayes_ablation.spec.design import Design
from bayes_ablation.workflows.monitoring.decision import Decision, decide, prob_key
from bayes_ablation.workflows.monitoring.ppos import PPoSResult, TrialState

RESULT_FORMAT = "bayes_ablation.monitoring.look/1"


@dataclass
class LookResult:
    """Everything one look produced; ``result`` is what the ledger stores."""

    look: int
    cut: CutData
    is_final: bool
    probabilities: dict[str, float]
    ppos: PPoSResult | None
    decision: Decision
    result: dict[str, Any]
    fit: Any = None

    @property
    def p_hr_lt_1(self) -> float:
        return self.probabilities[prob_key(1.0)]


def is_final_analysis(design: Design, cut_data: CutData) -> bool:
    if design.final_events is not None:
        return cut_data.n_events >= design.final_events
    return cut_data.cut_date >= design.final_date  # type: ignore[operator]


def trial_state(cut_data: CutData, design: Design) -> TrialState:
    """The cut as arrays indexed by the design's planned sites."""
    p = cut_data.patients
    pos = {s: i for i, s in enumerate(design.accrual.sites)}
    x, _, _ = p.design_matrix()
    return TrialState(time=p.time, event=p.event, followup_at_cut=cut_data.followup_at_cut,
                      withdrawn=cut_data.withdrawn, arm=p.arm_idx,
                      site=np.array([pos[s] for s in p.frame["site"]], dtype=np.int64),
                      x=x if x.shape[1] else None)


def check_against_design(cut_data: CutData, design: Design) -> None:
    """Sites must be planned ones and arms the spec's two arms."""
    p = cut_data.patients
    problems = []
    unknown = sorted(set(p.sites) - set(design.accrual.sites))
    for s in unknown:
        problems.append(Problem(p.source, None, "site", s,
                                f"one of the design's sites {list(design.accrual.sites)}"))
    if len(p.arms) != 2:
        problems.append(Problem(p.source, None, "arm", list(p.arms),
                                "exactly two arms (interim monitoring compares two arms)"))
    if problems:
        raise DataValidationError(problems)


def look_fast_model(design: Design, external: Any = None, patients: Any = None) -> Any:
    """The fast model of a look's final analyses: the design's, with the analysis spec's
    borrowing (the fixed ``external`` control patients; a MAP prior from its study table)."""
    from bayes_ablation.workflows.monitoring.fast import FastModel, fast_borrowing

    base = FastModel.from_design(design)
    b = design.spec.borrowing
    if b is None or b.method == "none":
        return base
    map_prior = None
    if b.method == "map":
        from bayes_ablation.workflows.borrowing import build_map_prior

        map_prior = build_map_prior(design.spec, patients)
    t_ref = float(design.spec.model_options.get("time_ref_months", 12.0))
    fb = fast_borrowing(b, base.cuts_months, t_ref, base.baseline_mu, base.baseline_sd,
                        map_prior=map_prior, external=external,
                        precision_nodes=design.fast.precision_nodes)
    from dataclasses import replace

    return replace(base, borrowing=fb)


def borrowing_record(spec: Any, external: Any, fit: Any) -> dict[str, Any] | None:
    """What a look borrowed (``result["borrowing"]``): method, the external file's SHA-256 and
    size, and the fit's borrowing summary (effective external events, conflict)."""
    b = spec.borrowing
    if b is None and external is None:
        return None
    out: dict[str, Any] = {"method": b.method if b is not None else "none"}
    if b is not None and b.method == "power":
        out["a0"] = b.a0
    if external is not None:
        out["external"] = {"source": external.source, "sha256": external.sha256,
                           "n_patients": external.n_patients,
                           "n_events": int(external.event.sum())}
    summary = dict(getattr(fit, "summary_entries", {}) or {}).get("borrowing")
    if summary is not None:
        out["summary"] = summary
    return out


def run_look(design: Design, dated: DatedTable, cut_date: dt.date, *, look: int = 1,
             progress: bool = False, say: Any = None, external: Any = None) -> LookResult:
    """Compute look number ``look`` on the data as known on ``cut_date``.

    ``external``: the analysis spec's external control patients (a validated
    :class:`~bayes_ablation.data.schema.PatientTable`; ``[borrowing]`` methods full, power,
    commensurate). They are historical, hence the same at every look: the interim posterior
    borrows them, and so does every simulated final analysis of the PPoS."""
    from bayes_ablation.core.parallel import rng_for
    from bayes_ablation.workflows import fit as analysis
    from bayes_ablation.workflows.monitoring.fast import fast_posterior
    from bayes_ablation.workflows.monitoring.ppos import (
        Plan,
        draws_from_posterior,
        predictive_probability,
    )

    say = say or (lambda msg: None)
    spec = design.spec
    cut_data = cut(dated, cut_date, reference_arm=spec.reference_arm,
                   start_date=design.start_date)
    check_against_design(cut_data, design)
    say(cut_data.describe())
    final = is_final_analysis(design, cut_data)
    patients = cut_data.patients
    say(f"fitting {spec.name} ({spec.model}, {spec.sampler.chains}x{spec.sampler.draws} draws)")
    fit = analysis.fit(spec, patients, progress=progress, run_ppc=False, external=external)
    log_hr = fit.idata.posterior["log_hr"].isel(treatment=0).values.ravel()
    probs = {prob_key(c): float(np.mean(log_hr < np.log(c))) for c in design.hr_cutoffs}
    treatment = patients.treatments[0]

    fast_model = look_fast_model(design, external, patients)
    fp = fast_posterior(patients, fast_model, design.accrual.sites)
    fast = {"log_hr_mean": float(fp.log_hr_mean[0]), "log_hr_sd": float(fp.log_hr_sd[0]),
            **{prob_key(c): float(fp.prob_hr_below(c)[0]) for c in design.hr_cutoffs}}

    ppos = None
    if not final:
        say(f"predictive probability of success ({design.ppos_draws} simulated continuations)")
        rng = rng_for(design.seed, "ppos", cut_data.cut_date.isoformat())
        draws = draws_from_posterior(fit.idata, spec, patients.sites, design.accrual.sites,
                                     design.ppos_draws, rng)
        to_final = (months_between(cut_data.cut_date, design.final_date)
                    if design.final_date is not None else None)
        ppos = predictive_probability(trial_state(cut_data, design), draws,
                                      Plan.from_design(design, to_final), fast_model,
                                      design.success_rule, rng)
    decision = decide(design, look, probs, None if ppos is None else ppos.ppos, final)

    q = np.quantile(log_hr, [0.025, 0.5, 0.975])
    summary = patients.summary()
    result = {
        "format": RESULT_FORMAT,
        "look": look,
        "analysis": "final" if final else "interim",
        "cut_date": cut_data.cut_date.isoformat(),
        "data": {
            "patients": patients.n_patients, "events": cut_data.n_events,
            "randomised_after_cut": cut_data.n_randomised_after,
            "progressions_after_cut": cut_data.n_progressions_after,
            "withdrawn": int(cut_data.withdrawn.sum()),
            "by_arm": {str(a): {"patients": int(r["patients"]), "events": int(r["events"])}
                       for a, r in summary.iterrows()},
            "cut_table_sha256": patients.sha256,
            **({"input_mapping": dated.extra["input_mapping"]}
               if "input_mapping" in dated.extra else {}),
        },
        "comparison": f"{treatment} vs {patients.reference_arm}",
        "posterior": {
            **probs,
            "log_hr_mean": float(np.mean(log_hr)), "log_hr_sd": float(np.std(log_hr, ddof=1)),
            "hr_median": float(np.exp(q[1])), "hr_q2.5": float(np.exp(q[0])),
            "hr_q97.5": float(np.exp(q[2])),
            "diagnostics_passed": bool(fit.diagnostics.passed),
            "diagnostics_failures": list(fit.diagnostics.failures),
            "sampler": fit.provenance["sampler"], "seed": spec.sampler.seed,
        },
        "fast_posterior": fast,
        "ppos": None if ppos is None else ppos.to_dict(),
        "decision": decision.to_dict(),
        "analysis_spec_sha256": spec.sha256,
    }
    borrowed = borrowing_record(spec, external, fit)
    if borrowed is not None:
        result["borrowing"] = borrowed
    return LookResult(look=look, cut=cut_data, is_final=final, probabilities=probs, ppos=ppos,
                      decision=decision, result=result, fit=fit)
