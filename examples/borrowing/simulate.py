"""Generate the borrowing example: a trial (internal.csv) and external controls (external.csv).

Internal: 240 patients in 6 sites, 1:1 postoperative vs perioperative chemotherapy, Weibull
shape 1.2, median PFS 18 months on postoperative chemotherapy, true log HR -0.3, site sd 0.3.
External: 200 historical postoperative-chemotherapy patients from the same population (median
18 months, exchangeable with the internal controls). ``--conflict`` writes external controls
with median 9 months instead (external_conflict.csv). historical_baseline.csv: five
historical control arms' log cumulative hazard at 12 months with standard errors (a MAP
prior's study table; between-study sd 0.15). Truth in truth.json.

    python examples/borrowing/simulate.py            # rewrites the example's CSVs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_ablation.data.simulate import simulate_trial

HERE = Path(__file__).resolve().parent


def external_controls(n: int, median_months: float, seed: int):
    """``n`` control patients (postoperative arm) simulated by the trial simulator."""
    sim = simulate_trial(2 * n + 40, 4, 0.0, seed=seed, median_ref_months=median_months,
                         sigma_site=0.0)
    frame = sim.frame[sim.frame["arm"] == "postoperative"].head(n).copy()
    frame["patient_id"] = [f"EXT{i + 1:04d}" for i in range(len(frame))]
    frame["site"] = "historical"
    return frame, sim.truth


def historical_baseline(log_cumhaz_ref: float, seed: int = 9) -> pd.DataFrame:
    """Five historical control arms' log cumulative hazard at 12 months (between-study sd 0.15
    around the trial's) with se = 1/sqrt(events): the MAP prior's study table."""
    rng = np.random.default_rng(seed)
    events = np.array([60, 85, 120, 45, 150])
    theta = log_cumhaz_ref + rng.normal(0.0, 0.15, events.size)
    se = 1 / np.sqrt(events)
    return pd.DataFrame({"study": [f"H{i + 1}" for i in range(events.size)],
                         "log_cumhaz": np.round(theta + rng.normal(0, se), 4),
                         "se": np.round(se, 4)})


def main() -> None:
    internal = simulate_trial(240, 6, -0.3, seed=2026, median_ref_months=18.0, sigma_site=0.3)
    internal.frame.to_csv(HERE / "internal.csv", index=False)
    external, ext_truth = external_controls(200, 18.0, seed=7)
    external.to_csv(HERE / "external.csv", index=False)
    conflict, conflict_truth = external_controls(200, 9.0, seed=8)
    conflict.to_csv(HERE / "external_conflict.csv", index=False)
    historical_baseline(internal.truth["log_cumhaz_ref"]).to_csv(
        HERE / "historical_baseline.csv", index=False)
    truth = {"internal": internal.truth, "external": ext_truth,
             "external_conflict": conflict_truth}
    (HERE / "truth.json").write_text(json.dumps(truth, indent=2, default=float) + "\n")
    sys.stdout.write(f"wrote {HERE}/internal.csv, external.csv, external_conflict.csv, "
                     "historical_baseline.csv\n")


if __name__ == "__main__":
    main()
