"""Coverage of central 95% posterior intervals within bins of the true value, from an SBC bundle.

SBC checks calibration averaged over the prior; this shows whether coverage holds locally, e.g.
near a value a fixed-truth coverage study used.

    python bench/sbc/conditional_coverage.py bench/sbc/local_recurrence_lesion sigma_patient \
        --bins 0 0.3 0.6 1.0 3
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd

from bayes_ablation.workflows.validation.runner import load_study


def conditional_coverage(bundle: str, parameter: str, bins: list[float]) -> pd.DataFrame:
    records = [r for r in load_study(bundle).records if r["status"] == "ok"]
    p = [r["params"][parameter] for r in records]
    truth = np.array([x["truth"] for x in p])
    lo = np.array([x["quantiles"][0] for x in p])       # QUANTILE_PROBS[0] = 0.025
    hi = np.array([x["quantiles"][-1] for x in p])      # QUANTILE_PROBS[-1] = 0.975
    mean = np.array([x["mean"] for x in p])
    sd = np.array([x["sd"] for x in p])
    covered = (lo < truth) & (truth < hi)
    rows = []
    for a, b in itertools.pairwise(bins):
        m = (truth >= a) & (truth < b)
        n = int(m.sum())
        cov = float(covered[m].mean()) if n else np.nan
        rows.append({"truth_from": a, "truth_to": b, "n": n, "covered": int(covered[m].sum()),
                     "coverage_95": cov,
                     "mcse": float(np.sqrt(0.95 * 0.05 / n)) if n else np.nan,
                     "mean_posterior_sd": float(sd[m].mean()) if n else np.nan,
                     "rmse_posterior_mean": float(np.sqrt(np.mean((mean[m] - truth[m]) ** 2)))
                     if n else np.nan})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("parameter")
    ap.add_argument("--bins", type=float, nargs="+", required=True)
    args = ap.parse_args()
    print(conditional_coverage(args.bundle, args.parameter, args.bins)
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
