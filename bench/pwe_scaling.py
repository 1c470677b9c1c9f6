"""Scaling of the piecewise-exponential PFS model with the number of patients.

Simulated trials of 10^3 … 10^6 patients (40 sites, 10 intervals, piecewise-constant baseline,
a time-varying treatment effect); for each: the aggregation pass (``data.aggregate``) and the
fit (nutpie sampling of the shipped spec's model with the given cut points; the model is
compiled once — the structure is the same at every size — and each size's data are swapped in)
are timed separately. Ratios are against the smallest trial, measured in the same run.

Goals (issue 3): fit time at 10^6 patients ≤ 1.5 × fit time at 10^3; aggregation ≥ 10^6 rows/s.

    PYTHONPATH=src python bench/pwe_scaling.py [--sizes 1000 10000 100000 1000000]
    PYTHONPATH=src python bench/pwe_scaling.py --parameterisation non_centred --adaptation diag

"steps" is the mean number of leapfrog steps (gradient evaluations) per draw: the
load-independent part of the fit time (wall-clock times on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")

from bayes_ablation.data.aggregate import aggregate  # noqa: E402
from bayes_ablation.data.schema import patients_from_frame  # noqa: E402
from bayes_ablation.data.simulate import simulate_trial  # noqa: E402
from bayes_ablation.spec.plan import load_spec, parse_spec  # noqa: E402

CUTS = [3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 24.0, 30.0, 36.0]          # 10 intervals
HAZARDS = [0.03, 0.05, 0.06, 0.055, 0.05, 0.045, 0.04, 0.035, 0.03, 0.03]
LOG_HR = [-0.5, -0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.0, 0.0, 0.0]


def bench_spec(draws: int, tune: int, chains: int, parameterisation: str | None = None,
               adaptation: str | None = None):
    spec = load_spec(ROOT / "models" / "pfs_piecewise_site.toml")
    raw = json.loads(json.dumps(spec.raw))
    raw["model"].pop("cuts", None)
    raw["model"]["cuts_months"] = CUTS
    if parameterisation:
        raw["model"]["parameterisation"] = parameterisation
    raw["sampler"].update(draws=draws, tune=tune, chains=chains)
    if adaptation:
        raw["sampler"]["adaptation"] = adaptation
    return parse_spec(raw, "bench:pfs_piecewise_site(cuts_months=10 intervals)")


def trial(n: int, sites: int, seed: int):
    sim = simulate_trial(n, sites, LOG_HR, seed=seed, baseline_cuts_months=CUTS,
                         baseline_hazards=HAZARDS, hr_cuts_months=CUTS, sigma_site=0.3,
                         accrual_months=24.0, followup_months=24.0)
    return patients_from_frame(sim.frame, reference_arm="postoperative")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    ap.add_argument("--sites", type=int, default=40)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="aggregation / fit repeats (median)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--parameterisation", choices=("auto", "non_centred", "centred"),
                    help="override the spec's (default: as shipped, auto)")
    ap.add_argument("--adaptation", choices=("diag", "low_rank"),
                    help="override the spec's mass-matrix adaptation (shipped: low_rank)")
    args = ap.parse_args()

    import arviz as az

    from bayes_ablation.endpoints.pfs.model import build_pwe_model
    from bayes_ablation.inference.sampling import sample

    spec = bench_spec(args.draws, args.tune, args.chains, args.parameterisation, args.adaptation)
    rows = []
    compile_s = None
    for n in args.sizes:
        t0 = time.perf_counter()
        patients = trial(n, args.sites, args.seed)
        sim_s = time.perf_counter() - t0
        agg_times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            cells = aggregate(patients, CUTS)
            agg_times.append(time.perf_counter() - t0)
        agg_s = float(np.median(agg_times))
        t0 = time.perf_counter()
        model = build_pwe_model(spec, patients, cuts_months=CUTS, cells=cells)
        build_s = time.perf_counter() - t0
        fit_times, steps, ess, div = [], [], [], []
        for r in range(args.repeats):
            settings = spec.sampler if r == 0 else \
                spec.with_sampler(seed=spec.sampler.seed + r).sampler
            res = sample(model, settings, cache_key="bench_pwe_scaling")
            if compile_s is None:
                compile_s = res.timings["compile_seconds"]
            fit_times.append(res.timings["sampling_seconds"])
            steps.append(float(res.idata.sample_stats["n_steps"].mean()))
            div.append(int(res.idata.sample_stats["diverging"].sum()))
            ess.append(float(az.ess(res.idata, var_names=["log_hr"])["log_hr"].min()))
        rows.append({"patients": n, "events": int(patients.event.sum()), "cells": len(cells),
                     "simulate_s": sim_s, "aggregate_s": agg_s, "rows_per_s": n / agg_s,
                     "build_s": build_s, "fit_s": float(np.median(fit_times)),
                     "leapfrog": float(np.median(steps)), "divergences": int(np.max(div)),
                     "ess_log_hr": float(np.median(ess))})
        print(f"  done {n} patients", flush=True)

    base = rows[0]
    print(f"\nPWE scaling: {args.sites} sites, {len(CUTS) + 1} intervals, time-varying HR, "
          f"parameterisation {spec.model_options.get('parameterisation', 'auto')}, "
          f"{spec.sampler.adaptation} mass matrix, "
          f"nutpie {args.chains} chains x ({args.tune} tune + {args.draws} draws); median of "
          f"{args.repeats} repeats; one compile ({compile_s:.1f} s) reused for every size")
    head = (f"{'patients':>9} {'events':>7} {'cells':>5} {'aggregate s':>11} {'rows/s':>10} "
            f"{'agg ratio':>9} {'build s':>7} {'fit s':>6} {'fit ratio':>9} {'steps':>5} "
            f"{'div':>3} {'ESS logHR':>9}")
    print(head)
    for r in rows:
        print(f"{r['patients']:>9} {r['events']:>7} {r['cells']:>5} {r['aggregate_s']:>11.4f} "
              f"{r['rows_per_s']:>10.3g} {r['aggregate_s'] / base['aggregate_s']:>9.1f} "
              f"{r['build_s']:>7.2f} {r['fit_s']:>6.2f} {r['fit_s'] / base['fit_s']:>9.2f} "
              f"{r['leapfrog']:>5.1f} {r['divergences']:>3} {r['ess_log_hr']:>9.0f}")
    last = rows[-1]
    print(f"\nfit-time ratio {last['patients']} vs {base['patients']} patients: "
          f"{last['fit_s'] / base['fit_s']:.2f} (goal ≤ 1.5)")
    print(f"aggregation throughput at {last['patients']} patients: {last['rows_per_s']:.3g} rows/s "
          f"(goal ≥ 1e6)")


if __name__ == "__main__":
    main()
