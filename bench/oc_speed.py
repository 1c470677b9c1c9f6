"""Operating-characteristics speed: 10,000 trials x 3 looks (2 interim + final) with the fast
posterior path on 2 worker processes; the baseline, run first in the same script, is 1,000
trials on 1 process. Prints both timings, the speed-up and the ratio to the 5-minute goal.

    PYTHONPATH=src python bench/oc_speed.py [--n-trials 10000] [--baseline 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 300.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-trials", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenario", default="null")
    args = parser.parse_args()

    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.oc import oc_table, run_oc

    design = load_design(ROOT / "models" / "interim_design.toml")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    run_oc(design, [args.scenario], args.baseline, workers=1, progress=False)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    oc = run_oc(design, [args.scenario], args.n_trials, workers=args.workers, progress=True)
    full = time.perf_counter() - t0
    load1 = os.getloadavg()
    print(oc_table(oc).to_string(index=False))
    per_trial_1 = base / args.baseline
    per_trial_n = full / args.n_trials
    print(f"\n{dt.date.today()}  design {design.name}: {len(design.looks)} interim looks + final, "
          f"PPoS normal, fast path (Laplace, {design.fast.site_sd_nodes} sigma nodes)")
    print(f"baseline: {args.baseline} trials on 1 process: {base:.1f} s ({per_trial_1 * 1e3:.2f} ms/trial)")
    print(f"study:    {args.n_trials} trials on {args.workers} processes: {full:.1f} s "
          f"({per_trial_n * 1e3:.2f} ms/trial)")
    print(f"speed-up per trial vs baseline: {per_trial_1 / per_trial_n:.2f}x; "
          f"time / 5-minute goal: {full / GOAL_SECONDS:.2f}")
    print(f"load average (1, 5, 15 min) before {load0}, after {tuple(round(x, 2) for x in load1)}")


if __name__ == "__main__":
    main()
