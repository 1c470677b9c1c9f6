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


def simulate_external(n: int, follow_up_months: tuple[float, float], median_ref_months: float,
                      weibull_shape: float, log_cumhaz_offset: float, dropout_per_month: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """External (historical) control patients (time, event): Weibull event times with the
    internal control arm's shape and λ₀ e^{offset} (log cumulative hazard shifted by
    ``log_cumhaz_offset`` at every t), censored at a follow-up ~ U(``follow_up_months``) or
    an exponential dropout, whichever comes first."""
    k = weibull_shape
    lam0 = np.log(2.0) / median_ref_months**k * np.exp(log_cumhaz_offset)
    event_time = (rng.exponential(size=n) / lam0) ** (1.0 / k)
    censor = rng.uniform(follow_up_months[0], follow_up_months[1], n)
    if dropout_per_month > 0:
        censor = np.minimum(censor, rng.exponential(1.0 / dropout_per_month, n))
    event = event_time <= censor
    return np.where(event, event_time, censor), event.astype(np.int64)


def event_calendar_times(trial: LatentTrial) -> np.ndarray:
    """Sorted calendar times of observable events (event before dropout)."""
    seen = trial.event_time <= trial.dropout_time
    return np.sort(trial.entry[seen] + trial.event_time[seen])


# ----------------------------------------------------------------------------- trial blocks

#: trials simulated together (vectorised fast posterior); part of each task's identity, so
#: results never depend on how blocks are chunked or distributed
BLOCK_SIZE = 50


@dataclass(frozen=True)
class OCBlock:
    """Trials ``start`` … ``stop − 1`` of one scenario; each trial's random stream is
    ``rng_for(design seed, "oc", scenario, trial index)`` (see :mod:`..parallel`)."""

    design_sha256: str
    scenario: str
    scenario_digest: str
    ppos_method: str
    start: int
    stop: int
    #: the final analysis's borrowing (a key of :func:`borrowing_models`); "none" = none
    borrowing: str = "none"


def analysis_times(trial: LatentTrial, design: Any) -> tuple[list[float], float]:
    """Calendar months (from the design's start date) of the interim looks that happen before
    the final analysis, and of the final analysis (event trigger: the planned event's time, or
    the last event's if fewer ever occur)."""
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


def run_block(block: OCBlock, design: Any, models: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
    """Simulate trials ``block.start`` … ``block.stop − 1`` under ``block.scenario`` and apply
    the design at each analysis with the fast posterior (vectorised over the block's trials).
    Returns one JSON-able record per trial: the analysis that stopped it, the action, whether
    efficacy was declared, patients randomised, events and calendar months at that analysis.

    Borrowing (``block.borrowing``, the fast model ``models[block.borrowing]``): when it uses
    external controls, each trial's external sample is simulated from its own stream
    ``rng_for(seed, "oc-external", scenario, index)`` (so the internal trials are the same
    for every method: paired comparisons) and enters every analysis of that trial."""
    from bayes_ablation.core.parallel import rng_for
    from bayes_ablation.data.cut import cut_latent
    from bayes_ablation.workflows.monitoring.decision import STOP_EFFICACY, SUCCESS, decide, prob_key
    from bayes_ablation.workflows.monitoring.fast import FastModel, laplace, suff_stats

    sc = design.scenarios[block.scenario]
    a = design.accrual
    rate = sc.accrual_rate_per_month or a.rate_per_month
    dropout = a.dropout_per_month if sc.dropout_per_month is None else sc.dropout_per_month
    model = models[block.borrowing] if models is not None else FastModel.from_design(design)
    uses_external = model.borrowing is not None and model.borrowing.uses_external
    rngs, trials, analyses, externals = [], [], [], []
    for i in range(block.start, block.stop):
        rng = rng_for(design.seed, "oc", block.scenario, i)
        tr = simulate_latent(a.total_n, rate, np.asarray(a.site_weights), a.allocation,
                             sc.log_hr, sc.median_ref_months, sc.weibull_shape, sc.sigma_site,
                             dropout, rng)
        looks, final = analysis_times(tr, design)
        rngs.append(rng)
        trials.append(tr)
        analyses.append([*looks, final])
        if uses_external:
            xc = design.external_controls
            t_x, e_x = simulate_external(xc.n_patients, xc.follow_up_months,
                                         sc.median_ref_months, sc.weibull_shape,
                                         sc.external_log_cumhaz_offset, dropout,
                                         rng_for(design.seed, "oc-external", block.scenario, i))
            dx, ex = suff_stats(t_x[None], e_x[None], np.zeros_like(e_x), np.zeros_like(e_x),
                                model.cuts_months, 1)
            externals.append((dx[0, 0, 0], ex[0, 0, 0]))
    records: list[dict[str, Any] | None] = [None] * len(trials)
    n = a.total_n
    step = 0
    while any(r is None for r in records):
        step += 1
        idx = [i for i, r in enumerate(records) if r is None]
        time = np.ones((len(idx), n))
        event = np.zeros((len(idx), n))
        weight = np.zeros((len(idx), n))
        site = np.stack([trials[i].site for i in idx])
        arm = np.stack([trials[i].arm for i in idx])
        cuts = []
        for row, i in enumerate(idx):
            tr = trials[i]
            c = cut_latent(tr.entry, tr.event_time, tr.dropout_time, analyses[i][step - 1])
            en = c["enrolled"]
            time[row, en], event[row, en], weight[row, en] = c["time"], c["event"], 1.0
            cuts.append(c)
        d, e = suff_stats(time, event, site, arm, model.cuts_months, model.n_sites, weight)
        ext = None
        if uses_external:
            ext = (np.stack([externals[i][0] for i in idx]),
                   np.stack([externals[i][1] for i in idx]))
        fp = laplace(d, e, model, external=ext)
        probs = {prob_key(cut): fp.prob_hr_below(cut) for cut in design.hr_cutoffs}
        ppos = _block_ppos(block, design, model, fp, idx, trials, analyses, cuts, rngs, step,
                           externals if uses_external else None)
        for row, i in enumerate(idx):
            is_final = step == len(analyses[i])
            p_row = {k: float(v[row]) for k, v in probs.items()}
            decision = decide(design, step, p_row,
                              None if ppos is None or is_final else float(ppos[row]), is_final)
            if decision.stops:
                records[i] = {
                    "analysis": step, "final": is_final, "action": decision.action,
                    "reject": decision.action in (STOP_EFFICACY, SUCCESS),
                    "looks_held": len(analyses[i]) - 1,
                    "n_enrolled": int(cuts[row]["enrolled"].sum()),
                    "events": int(cuts[row]["event"].sum()),
                    "duration_months": float(analyses[i][step - 1]),
                    "p_hr_lt_1": p_row[prob_key(1.0)],
                    "ppos": None if ppos is None or is_final else float(ppos[row]),
                }
    return records  # type: ignore[return-value]


def _block_ppos(block: OCBlock, design: Any, model: Any, fp: Any, idx: list[int],
                trials: list[LatentTrial], analyses: list[list[float]], cuts: list[dict],
                rngs: list[np.random.Generator], step: int,
                externals: list[tuple[np.ndarray, np.ndarray]] | None = None
                ) -> np.ndarray | None:
    """PPoS of each trial in the block at this analysis (None when no rule needs it)."""
    from bayes_ablation.workflows.monitoring.fast import FastPosterior
    from bayes_ablation.workflows.monitoring.ppos import (
        Plan,
        TrialState,
        draws_from_fast,
        expected_future_events,
        ppos_normal_array,
        predictive_probability,
    )

    if not design.needs_ppos:
        return None
    a = design.accrual
    success = design.success_rule
    events_now = np.array([c["event"].sum() for c in cuts], float)
    interim = np.array([step < len(analyses[i]) for i in idx])
    out = np.full(len(idx), np.nan)

    def one(row: int) -> tuple[TrialState, Plan, FastPosterior]:
        i = idx[row]
        tr, c, t = trials[i], cuts[row], analyses[i][step - 1]
        en = c["enrolled"]
        state = TrialState(c["time"], c["event"], t - tr.entry[en], np.zeros(en.sum(), bool),
                           tr.arm[en], tr.site[en])
        plan = Plan(a.total_n, a.rate_per_month, np.asarray(a.site_weights), a.allocation,
                    a.dropout_per_month, design.final_events,
                    None if design.final_events is not None else analyses[i][-1] - t)
        sub = FastPosterior(fp.mode[row:row + 1], fp.cov[row:row + 1], fp.weights[row:row + 1],
                            fp.n_intervals, fp.iterations, offset=fp.offset)
        return state, plan, sub

    if block.ppos_method == "normal":
        if design.final_events is not None:
            future = design.final_events - events_now
        else:
            future = np.zeros(len(idx))
            for row in np.flatnonzero(interim):
                state, plan, sub = one(row)
                rng = rngs[idx[row]]
                future[row] = expected_future_events(state, draws_from_fast(sub, model, 200, rng),
                                                     plan, rng)
        out = ppos_normal_array(fp.log_hr_mean, fp.log_hr_sd, future, cutoff=success.hr_cutoff,
                                threshold=success.threshold, op=success.op,
                                allocation=a.allocation)
    else:
        for row in np.flatnonzero(interim):
            state, plan, sub = one(row)
            rng = rngs[idx[row]]
            out[row] = predictive_probability(
                state, draws_from_fast(sub, model, design.ppos_draws, rng), plan, model,
                success, rng, external=None if externals is None else externals[idx[row]]).ppos
    return out


# ------------------------------------------------------------------------------ summaries

def _prop(x: np.ndarray) -> dict[str, float]:
    p = float(np.mean(x))
    return {"p": p, "mcse": float(np.sqrt(p * (1 - p) / len(x)))}


def _mean(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(x)), "mcse": float(np.std(x, ddof=1) / np.sqrt(len(x)))
            if len(x) > 1 else float("nan")}


def summarise(records: list[dict[str, Any]], n_looks: int, scenario: Any) -> dict[str, Any]:
    """Operating characteristics of one scenario, each with its Monte Carlo standard error."""
    from bayes_ablation.workflows.monitoring.decision import STOP_EFFICACY, STOP_FUTILITY, SUCCESS

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
           progress: bool = True, chunk_size: int | None = None,
           block_size: int = BLOCK_SIZE,
           borrowing: list[str] | None = None) -> dict[str, Any]:
    """Simulate ``n_trials`` whole trials per scenario (in parallel; resumable) and summarise.

    Trials run in blocks of ``block_size`` (vectorised); ``chunk_size`` blocks go to a worker
    at a time. Each trial's random stream depends only on (design seed, scenario, index).

    ``borrowing``: the borrowing methods whose operating characteristics are compared on the
    same simulated trials (:func:`borrowing_models`; default: the analysis spec's method and
    ``none`` when the spec has ``[borrowing]``). ``oc["scenarios"]`` holds the first method's
    summaries; ``oc["borrowing"]["by_method"]`` every method's.
    """
    from functools import partial

    from bayes_ablation.core.parallel import run_tasks

    unknown = [s for s in scenarios if s not in design.scenarios]
    if unknown:
        from bayes_ablation.errors import SpecError

        raise SpecError(design.source_path, [f"scenario {s!r} is not defined in [scenarios] "
                                             f"(defined: {', '.join(design.scenarios) or 'none'})"
                                             for s in unknown])
    if ppos_method not in ("normal", "simulation"):
        raise ValueError(f"ppos_method must be 'normal' or 'simulation', got {ppos_method!r}")
    sha = design.sha256
    models = borrowing_models(design, borrowing)
    methods = list(models)
    tasks = [OCBlock(sha, s, _digest(design.scenarios[s]), ppos_method, lo,
                     min(lo + block_size, n_trials), m)
             for m in methods for s in scenarios for lo in range(0, n_trials, block_size)]
    results = run_tasks(partial(run_block, design=design, models=models), tasks,
                        scheduler=scheduler, checkpoint_dir=checkpoint_dir, workers=workers,
                        progress=progress, chunk_size=chunk_size,
                        desc=f"blocks of {block_size} trials")
    n_looks = len(design.looks)
    by_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for m in methods:
        for s in scenarios:
            recs = [r for t, block in zip(tasks, results, strict=True)
                    if t.scenario == s and t.borrowing == m for r in block]
            by_method[m][s] = summarise(recs, n_looks, design.scenarios[s])
    out = {"design": design.name, "design_sha256": sha, "ppos_method": ppos_method,
           "n_trials": n_trials, "looks": [lk.describe() for lk in design.looks],
           "final": design.final_description(), "scenarios": by_method[methods[0]]}
    if methods != ["none"]:
        xc = design.external_controls
        out["borrowing"] = {
            "methods": methods,
            "spec_method": design.spec.borrowing.method if design.spec.borrowing else "none",
            "external_controls": None if xc is None else {
                "n_patients": xc.n_patients, "follow_up_months": list(xc.follow_up_months)},
            "external_log_cumhaz_offset": {s: design.scenarios[s].external_log_cumhaz_offset
                                           for s in scenarios},
            "by_method": by_method,
        }
    return out


def borrowing_models(design: Any, methods: list[str] | None = None) -> dict[str, Any]:
    """Fast models of the final analysis per borrowing method, keyed by the method's label.

    Methods: ``none``, ``full``, ``power:A0`` (``power`` = the spec's a0), and the spec's own
    ``commensurate`` (its precision prior) or ``map`` (its robust MAP prior). Default: the
    spec's method then ``none`` (only ``none`` without ``[borrowing]``)."""
    from dataclasses import replace

    from bayes_ablation.errors import SpecError
    from bayes_ablation.spec.borrowing import BorrowingSpec
    from bayes_ablation.workflows.monitoring.fast import FastModel, fast_borrowing

    spec_b = design.spec.borrowing
    if methods is None:
        methods = [spec_b.method, "none"] if spec_b is not None and spec_b.method != "none" \
            else ["none"]
    out: dict[str, Any] = {}
    problems = []
    base = FastModel.from_design(design)
    t_ref = float(design.spec.model_options.get("time_ref_months", 12.0))
    for label in dict.fromkeys(methods):
        name, _, arg = label.partition(":")
        b: Any = None
        if name == "none":
            b = None
        elif name == "full":
            b = BorrowingSpec("full")
        elif name == "power":
            a0 = float(arg) if arg else (spec_b.a0 if spec_b is not None
                                          and spec_b.method == "power" else None)
            if a0 is None or not 0.0 <= a0 <= 1.0:
                problems.append(f"borrowing {label!r}: give the power prior's weight as "
                                "power:A0 with 0 <= A0 <= 1 (the spec is not a power prior)")
                continue
            b = BorrowingSpec("power", a0=a0)
        elif name in ("commensurate", "map"):
            if spec_b is None or spec_b.method != name:
                problems.append(f"borrowing {label!r}: its prior comes from the analysis "
                                f"spec's [borrowing], which is method "
                                f"{spec_b.method if spec_b else 'absent'!r}")
                continue
            b = spec_b
        else:
            problems.append(f"borrowing {label!r} is not one of none, full, power[:A0], "
                            "commensurate, map")
            continue
        if b is not None and b.needs_external and design.external_controls is None:
            problems.append(f"borrowing {label!r} needs [external_controls] in the design "
                            "(the external sample simulated in each trial)")
            continue
        map_prior = None
        if name == "map":
            from bayes_ablation.workflows.borrowing import build_map_prior

            map_prior = build_map_prior(design.spec, None)
        fb = fast_borrowing(b, base.cuts_months, t_ref, base.baseline_mu, base.baseline_sd,
                            map_prior=map_prior, precision_nodes=design.fast.precision_nodes)
        out[label] = replace(base, borrowing=fb)
    if problems:
        raise SpecError(design.source_path, problems)
    return out


def _digest(obj: Any) -> str:
    import hashlib

    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def oc_table(oc: dict[str, Any]) -> Any:
    """One row per scenario × quantity: estimate and MC standard error."""
    import pandas as pd

    if "borrowing" in oc:
        plain = {k: v for k, v in oc.items() if k != "borrowing"}
        frames = [oc_table({**plain, "scenarios": per, "borrowing_label": m})
                  for m, per in oc["borrowing"]["by_method"].items()]
        return pd.concat(frames, ignore_index=True)
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
    frame = pd.DataFrame(rows)
    if "borrowing_label" in oc:
        frame.insert(0, "borrowing", oc["borrowing_label"])
    return frame


def borrowing_table(oc: dict[str, Any]) -> Any:
    """Borrowing side by side: per scenario, P(efficacy declared) (type I error when the true
    log HR ≥ 0, else power) and the expected sample size under each method, ± MC SE."""
    import pandas as pd

    b = oc.get("borrowing")
    if b is None:
        return pd.DataFrame()
    rows = []
    first = b["methods"][0]
    for name, s0 in b["by_method"][first].items():
        row: dict[str, Any] = {"scenario": name, "true log HR": s0["true_log_hr"],
                               "external offset": b["external_log_cumhaz_offset"][name],
                               "quantity": s0["reject_label"]}
        for m in b["methods"]:
            r = b["by_method"][m][name]["reject"]
            row[m] = f"{r['p']:.4f} ± {r['mcse']:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)
