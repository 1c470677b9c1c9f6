"""Fast posterior path (Laplace on PWE sufficient statistics) vs full MCMC, on simulated looks.

For each simulated interim look the same data are analysed twice:

* MCMC (nutpie, 4 chains x 2500 draws, compiled once and re-used with new data) of either
  ``--reference exact``: the fast path's own model (:mod:`bayes_ablation.models.
  fast_reference`; the difference is then the Laplace/σ-quadrature approximation alone), or
  ``--reference pwe``: the project's piecewise-exponential analysis model
  (``models/pfs_piecewise_site.toml`` with the design's fixed cut points and proportional
  hazards; random-walk baseline prior — needs the ``piecewise_exponential`` family);
* fast: :func:`bayes_ablation.workflows.monitoring.fast.fast_posterior` with the design's ``[fast]``
  settings (``models/interim_design.toml``).

Reported: P(HR < 1) and P(HR < 0.8) from both, their absolute differences (max, mean, 95th
percentile, share within 0.02), the MCMC's own Monte Carlo error, and the time per look of
each path (ratio). Trials cycle through true log HR 0, −0.2, −0.36; looks at 40, 80 and 150
events of 300-patient trials.

    PYTHONHASHSEED=0 PYTHONPATH=src python bench/fast_vs_mcmc.py --trials 70
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=70)
    parser.add_argument("--looks", default="40,80,150")
    parser.add_argument("--n-patients", type=int, default=300)
    parser.add_argument("--reference", choices=("exact", "pwe"), default="exact")
    parser.add_argument("--out", default=None, help="CSV of per-look results "
                        "(default bench/outputs/fast_vs_mcmc_<reference>.csv)")
    args = parser.parse_args()
    os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")

    import nutpie

    from bayes_ablation.core.parallel import rng_for
    from bayes_ablation.data.cut import cut_latent
    from bayes_ablation.data.schema import patients_from_frame
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.pfs.fast_reference import build_fast_reference
    from bayes_ablation.inference.sampling import sample
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.spec.plan import load_spec, parse_spec
    from bayes_ablation.workflows.monitoring.fast import FastModel, fast_posterior, suff_stats
    from bayes_ablation.workflows.monitoring.oc import event_calendar_times, simulate_latent

    design = load_design(ROOT / "models" / "interim_design.toml")
    out = args.out or str(ROOT / "bench" / "outputs" / f"fast_vs_mcmc_{args.reference}.csv")
    spec = None
    if args.reference == "pwe":
        base = load_spec(ROOT / "models" / "pfs_piecewise_site.toml")
        raw = json.loads(json.dumps(base.raw))
        raw["model"] = {"family": "piecewise_exponential",
                        "cuts_months": list(design.fast.cuts_months)}
        raw["priors"].pop("sigma_log_hr_rw", None)
        raw["sampler"].update(chains=4, draws=2500, tune=1000)
        spec = parse_spec(raw, "pfs_piecewise_site (fixed cuts, PH)")
    fast_model = FastModel.from_design(design)
    compiled = None
    sites = design.accrual.sites
    looks = [int(x) for x in args.looks.split(",")]
    log_hrs = [0.0, -0.2, -0.36]
    rows = []
    t_mcmc = t_fast = 0.0
    started = time.perf_counter()
    for trial in range(args.trials):
        true = log_hrs[trial % len(log_hrs)]
        rng = rng_for(design.seed, "fast_vs_mcmc", trial)
        tr = simulate_latent(args.n_patients, design.accrual.rate_per_month,
                             np.asarray(design.accrual.site_weights), (1, 1), true, 18.0, 1.2,
                             0.3, 0.005, rng)
        cal = event_calendar_times(tr)
        for n_events in looks:
            if cal.size < n_events:
                continue
            c = cut_latent(tr.entry, tr.event_time, tr.dropout_time, float(cal[n_events - 1]))
            en = c["enrolled"]
            frame = pd.DataFrame({
                "patient_id": [f"P{i:04d}" for i in np.flatnonzero(en)],
                "site": [sites[s] for s in tr.site[en]],
                "arm": np.where(tr.arm[en] == 1, "perioperative", "postoperative"),
                "time_months": c["time"], "event": c["event"]})
            patients = patients_from_frame(frame, reference_arm="postoperative")
            t0 = time.perf_counter()
            if spec is not None:
                res = sample(build_model(spec, patients), spec.sampler,
                             cache_key=("bench_fast_vs_mcmc",))
                trace = res.idata
            else:
                d, e = suff_stats(c["time"][None], c["event"][None], tr.site[en], tr.arm[en],
                                  fast_model.cuts_months, fast_model.n_sites)
                if compiled is None:
                    compiled = nutpie.compile_pymc_model(build_fast_reference(
                        d[0], e[0], baseline_mu=fast_model.baseline_mu,
                        baseline_sd=fast_model.baseline_sd, log_hr_mu=fast_model.log_hr_mu,
                        log_hr_sd=fast_model.log_hr_sd,
                        sigma_site=design.spec.priors["sigma_site"]))
                trace = nutpie.sample(compiled.with_data(events=d[0], exposure=e[0]),
                                      draws=2500, tune=1000, chains=4, cores=2,
                                      seed=1000 + len(rows), progress_bar=False)
            log_hr = trace.posterior["log_hr"].isel(treatment=0).values.ravel()
            divergences = int(trace.sample_stats["diverging"].sum())
            t1 = time.perf_counter()
            fp = fast_posterior(patients, fast_model, sites)
            t2 = time.perf_counter()
            if rows:  # the first MCMC look includes compilation
                t_mcmc += t1 - t0
                t_fast += t2 - t1
            row = {"trial": trial, "true_log_hr": true, "events": n_events,
                   "patients": patients.n_patients, "divergences": divergences,
                   "mcmc_log_hr_mean": float(log_hr.mean()), "mcmc_log_hr_sd": float(log_hr.std()),
                   "fast_log_hr_mean": float(fp.log_hr_mean[0]),
                   "fast_log_hr_sd": float(fp.log_hr_sd[0])}
            for cutoff in (1.0, 0.8):
                p_mcmc = float(np.mean(log_hr < np.log(cutoff)))
                row[f"mcmc_P(HR<{cutoff:g})"] = p_mcmc
                row[f"fast_P(HR<{cutoff:g})"] = float(fp.prob_hr_below(cutoff)[0])
            rows.append(row)
        if (trial + 1) % 10 == 0:
            print(f"  {trial + 1} trials, {len(rows)} looks, {time.perf_counter() - started:.0f} s",
                  flush=True)
    df = pd.DataFrame(rows)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    n_draws = 4 * 2500
    print(f"\n{len(df)} simulated looks ({args.trials} trials; looks at {looks} events; "
          f"{n_draws} MCMC draws each; reference: {args.reference}); {dt.date.today()}")
    for cutoff in ("1", "0.8"):
        diff = (df[f"fast_P(HR<{cutoff})"] - df[f"mcmc_P(HR<{cutoff})"]).abs()
        p = df[f"mcmc_P(HR<{cutoff})"]
        mc = np.sqrt(p * (1 - p) / n_draws)
        print(f"P(HR<{cutoff}): |fast − MCMC| max {diff.max():.4f}, mean {diff.mean():.4f}, "
              f"95th pct {diff.quantile(0.95):.4f}; within 0.02: {np.mean(diff <= 0.02):.1%}; "
              f"MCMC MC error (iid bound) max {mc.max():.4f}")
    d_mean = (df["fast_log_hr_mean"] - df["mcmc_log_hr_mean"]).abs()
    sd_ratio = df["fast_log_hr_sd"] / df["mcmc_log_hr_sd"]
    print(f"log HR mean |diff| max {d_mean.max():.4f}; sd ratio fast/MCMC "
          f"{sd_ratio.min():.3f}–{sd_ratio.max():.3f}; divergent fits {int((df['divergences'] > 0).sum())}")
    n_timed = max(len(df) - 1, 1)
    print(f"time per look: MCMC {t_mcmc / n_timed:.3f} s (compiled model re-used), fast "
          f"{t_fast / n_timed * 1e3:.2f} ms; ratio MCMC/fast {t_mcmc / max(t_fast, 1e-9):.0f}x")


if __name__ == "__main__":
    main()
