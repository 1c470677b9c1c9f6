"""Operating characteristics: simulate whole trials under scenarios and apply the design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class LatentTrial:
    """One simulated trial's latent truth (months from the first randomisation)."""

    entry: np.ndarray
    event_time: np.ndarray
    dropout_time: np.ndarray
    arm: np.ndarray
    site: np.ndarray


def simulate_latent(n: int, rate_per_month: float, site_weights: np.ndarray,
                    allocation: tuple[float, float], log_hr: float, median_ref_months: float,
                    weibull_shape: float, sigma_site: float, dropout_per_month: float,
                    rng: np.random.Generator) -> LatentTrial:
    """Poisson accrual at ``rate_per_month``; sites by ``site_weights``; arms by
    ``allocation`` (Bernoulli); Weibull PH event times, h(t) = λ₀ k t^{k−1} e^{β a + u_s},
    λ₀ = log 2 / median^k, u_s ~ N(0, σ²); exponential dropout."""
    w = np.asarray(site_weights, float)
    entry = np.cumsum(rng.exponential(1.0 / rate_per_month, n))
    site = rng.choice(len(w), size=n, p=w / w.sum())
    arm = (rng.uniform(size=n) < allocation[1] / sum(allocation)).astype(np.int64)
    u = rng.normal(0.0, sigma_site, len(w)) if sigma_site > 0 else np.zeros(len(w))
    k = weibull_shape
    lam0 = np.log(2.0) / median_ref_months**k
    eta = log_hr * arm + u[site]
    event_time = (rng.exponential(size=n) / (lam0 * np.exp(eta))) ** (1.0 / k)
    dropout = rng.exponential(1.0 / dropout_per_month, n) if dropout_per_month > 0 \
        else np.full(n, np.inf)
    return LatentTrial(entry=entry, event_time=event_time, dropout_time=dropout, arm=arm,
                       site=site)


def event_calendar_times(trial: LatentTrial) -> np.ndarray:
    """Sorted calendar times of observable events (event before dropout)."""
    seen = trial.event_time <= trial.dropout_time
    return np.sort(trial.entry[seen] + trial.event_time[seen])


# ------------------------------------------------------------------------------ one trial

@dataclass(frozen=True)
class OCTask:
    """One simulated trial: its identity fixes its random stream (see :mod:`..parallel`)."""

    design_sha256: str
    scenario: str
    scenario_digest: str
    ppos_method: str
    index: int


def analysis_times(trial: LatentTrial, design: Any) -> tuple[list[float], float]:
    """Calendar months (from the design's start date) of the interim looks that happen before
    the final analysis, and of the final analysis."""
    from bayes_ablation.data.cut import months_between

    cal = event_calendar_times(trial)
    if design.final_events is not None:
        final = float(cal[design.final_events - 1]) if cal.size >= design.final_events \
            else float(cal[-1]) if cal.size else float(trial.entry[-1])
    else:
        final = months_between(design.start_date, design.final_date)
    looks = []
    for look in design.looks:
        if look.events is not None:
            if cal.size < look.events:
                continue
            t = float(cal[look.events - 1])
        else:
            t = months_between(design.start_date, look.date)
        if t < final:
            looks.append(t)
    return looks, final


def run_trial(task: OCTask, design: Any) -> dict[str, Any]:
    """Simulate one whole trial under ``task.scenario`` and apply the design with the fast
    posterior path. Returns a JSON-able record."""
    from bayes_ablation.data.cut import cut_latent
    from bayes_ablation.monitoring.decision import STOP_EFFICACY, SUCCESS, decide, prob_key
    from bayes_ablation.monitoring.fast import FastModel, laplace, suff_stats
    from bayes_ablation.monitoring.ppos import (
        Plan,
        TrialState,
        draws_from_fast,
        expected_future_events,
        ppos_normal,
        predictive_probability,
    )
    from bayes_ablation.parallel import rng_for

    sc = design.scenarios[task.scenario]
    a = design.accrual
    rng = rng_for(design.seed, "oc", task.scenario, task.index)
    rate = sc.accrual_rate_per_month or a.rate_per_month
    dropout = a.dropout_per_month if sc.dropout_per_month is None else sc.dropout_per_month
    trial = simulate_latent(a.total_n, rate, np.asarray(a.site_weights), a.allocation, sc.log_hr,
                            sc.median_ref_months, sc.weibull_shape, sc.sigma_site, dropout, rng)
    model = FastModel.from_design(design)
    looks, final = analysis_times(trial, design)
    success = design.success_rule
    record: dict[str, Any] = {"looks_held": len(looks)}
    for k, t in enumerate([*looks, final], start=1):
        is_final = k == len(looks) + 1
        c = cut_latent(trial.entry, trial.event_time, trial.dropout_time, t)
        en = c["enrolled"]
        d, e = suff_stats(c["time"][None], c["event"][None], trial.site[en], trial.arm[en],
                          model.cuts_months, model.n_sites)
        fp = laplace(d, e, model)
        probs = {prob_key(cut): float(fp.prob_hr_below(cut)[0]) for cut in design.hr_cutoffs}
        ppos = None
        if not is_final and design.needs_ppos:
            events_now = int(c["event"].sum())
            if task.ppos_method == "normal":
                if design.final_events is not None:
                    future = design.final_events - events_now
                else:
                    state = TrialState(c["time"], c["event"], t - trial.entry[en],
                                       np.zeros(en.sum(), bool), trial.arm[en], trial.site[en])
                    plan = Plan(a.total_n, a.rate_per_month, np.asarray(a.site_weights),
                                a.allocation, a.dropout_per_month, None, final - t)
                    future = expected_future_events(state, draws_from_fast(fp, model, 200, rng),
                                                    plan, rng)
                ppos = ppos_normal(float(fp.log_hr_mean[0]), float(fp.log_hr_sd[0]), future,
                                   cutoff=success.hr_cutoff, threshold=success.threshold,
                                   op=success.op, allocation=a.allocation)
            else:
                state = TrialState(c["time"], c["event"], t - trial.entry[en],
                                   np.zeros(en.sum(), bool), trial.arm[en], trial.site[en])
                plan = Plan(a.total_n, a.rate_per_month, np.asarray(a.site_weights),
                            a.allocation, a.dropout_per_month, design.final_events,
                            None if design.final_events is not None else final - t)
                ppos = predictive_probability(state, draws_from_fast(fp, model, design.ppos_draws,
                                                                     rng),
                                              plan, model, success, rng).ppos
        decision = decide(design, k, probs, ppos, is_final)
        if decision.stops:
            record.update({
                "analysis": k, "final": is_final, "action": decision.action,
                "reject": decision.action in (STOP_EFFICACY, SUCCESS),
                "n_enrolled": int(en.sum()), "events": int(c["event"].sum()),
                "duration_months": float(t), "p_hr_lt_1": probs[prob_key(1.0)],
                "ppos": ppos,
            })
            return record
    raise AssertionError("the final analysis always stops")  # pragma: no cover


# ------------------------------------------------------------------------------ summaries

def _prop(x: np.ndarray) -> dict[str, float]:
    p = float(np.mean(x))
    return {"p": p, "mcse": float(np.sqrt(p * (1 - p) / len(x)))}


def _mean(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(x)), "mcse": float(np.std(x, ddof=1) / np.sqrt(len(x)))
            if len(x) > 1 else float("nan")}


def summarise(records: list[dict[str, Any]], n_looks: int, scenario: Any) -> dict[str, Any]:
    """Operating characteristics of one scenario, each with its Monte Carlo standard error."""
    from bayes_ablation.monitoring.decision import STOP_EFFICACY, STOP_FUTILITY, SUCCESS

    analysis = np.array([r["analysis"] for r in records])
    final = np.array([r["final"] for r in records])
    action = np.array([r["action"] for r in records])
    reject = np.array([r["reject"] for r in records])
    label = "type I error" if scenario.log_hr >= 0 else "power"
    return {
        "scenario": scenario.name, "true_log_hr": scenario.log_hr, "n_trials": len(records),
        "reject": _prop(reject), "reject_label": label,
        "stop_efficacy": [_prop((analysis == k) & ~final & (action == STOP_EFFICACY))
                          for k in range(1, n_looks + 1)],
        "stop_futility": [_prop((analysis == k) & ~final & (action == STOP_FUTILITY))
                          for k in range(1, n_looks + 1)],
        "reached_final": _prop(final),
        "final_success": _prop(final & (action == SUCCESS)),
        "expected_n": _mean(np.array([r["n_enrolled"] for r in records], float)),
        "expected_duration_months": _mean(np.array([r["duration_months"] for r in records])),
        "expected_events": _mean(np.array([r["events"] for r in records], float)),
    }


def run_oc(design: Any, scenarios: list[str], n_trials: int, *, ppos_method: str = "normal",
           scheduler: Any = None, checkpoint_dir: Any = None, workers: int | None = None,
           progress: bool = True, chunk_size: int | None = None) -> dict[str, Any]:
    """Simulate ``n_trials`` whole trials per scenario (in parallel; resumable) and summarise."""
    from functools import partial

    from bayes_ablation.parallel import run_tasks

    unknown = [s for s in scenarios if s not in design.scenarios]
    if unknown:
        from bayes_ablation.errors import SpecError

        raise SpecError(design.source_path, [f"scenario {s!r} is not defined in [scenarios] "
                                             f"(defined: {', '.join(design.scenarios) or 'none'})"
                                             for s in unknown])
    if ppos_method not in ("normal", "simulation"):
        raise ValueError(f"ppos_method must be 'normal' or 'simulation', got {ppos_method!r}")
    sha = design.sha256
    tasks = [OCTask(sha, s, _digest(design.scenarios[s]), ppos_method, i)
             for s in scenarios for i in range(n_trials)]
    results = run_tasks(partial(run_trial, design=design), tasks, scheduler=scheduler,
                        checkpoint_dir=checkpoint_dir, workers=workers, progress=progress,
                        chunk_size=chunk_size, desc="simulated trials")
    n_looks = len(design.looks)
    summaries = {}
    for s in scenarios:
        recs = [r for t, r in zip(tasks, results, strict=True) if t.scenario == s]
        summaries[s] = summarise(recs, n_looks, design.scenarios[s])
    return {"design": design.name, "design_sha256": sha, "ppos_method": ppos_method,
            "n_trials": n_trials, "looks": [lk.describe() for lk in design.looks],
            "final": design.final_description(), "scenarios": summaries}


def _digest(obj: Any) -> str:
    import hashlib

    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def oc_table(oc: dict[str, Any]) -> Any:
    """One row per scenario × quantity: estimate and MC standard error."""
    import pandas as pd

    rows = []
    for name, s in oc["scenarios"].items():
        rows.append({"scenario": name, "quantity": f"P(efficacy declared) = {s['reject_label']}",
                     "estimate": s["reject"]["p"], "mcse": s["reject"]["mcse"]})
        for k, (e, f) in enumerate(zip(s["stop_efficacy"], s["stop_futility"], strict=True), 1):
            rows.append({"scenario": name, "quantity": f"P(stop for efficacy at look {k})",
                         "estimate": e["p"], "mcse": e["mcse"]})
            rows.append({"scenario": name, "quantity": f"P(stop for futility at look {k})",
                         "estimate": f["p"], "mcse": f["mcse"]})
        rows.append({"scenario": name, "quantity": "P(reach the final analysis)",
                     "estimate": s["reached_final"]["p"], "mcse": s["reached_final"]["mcse"]})
        rows.append({"scenario": name, "quantity": "P(success at the final analysis)",
                     "estimate": s["final_success"]["p"], "mcse": s["final_success"]["mcse"]})
        for key, label in (("expected_n", "expected sample size"),
                           ("expected_duration_months", "expected duration (months)"),
                           ("expected_events", "expected events at the decision")):
            rows.append({"scenario": name, "quantity": label, "estimate": s[key]["mean"],
                         "mcse": s[key]["mcse"]})
    return pd.DataFrame(rows)
