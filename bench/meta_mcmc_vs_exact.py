"""MCMC (NUTS, nutpie) vs the exact quadrature posterior of the normal–normal meta-analysis.

For a grid of data sets (2 to 8 studies, homogeneous to highly heterogeneous) × τ priors (the
families the spec supports) this fits the model by MCMC and prints, per case, the gap between
MCMC and exact posterior statistics in Monte Carlo standard errors (ArviZ ``mcse``), the
divergences and the wall time of MCMC (whole fit, with compiling) vs the exact posterior
(quadrature: build + summary table). Over many cases the signed gaps should
look standard normal (mean ≈ 0, sd ≈ 1).

    PYTHONHASHSEED=0 python bench/meta_mcmc_vs_exact.py [--draws 2000] [--chains 4]
        [--parameterisation non_centred|marginal]
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import numpy as np

from bayes_ablation.data.studies import studies_from_arrays
from bayes_ablation.endpoints.meta.estimands import compare_with_exact
from bayes_ablation.endpoints.meta.quadrature import ExactPosterior
from bayes_ablation.spec.plan import parse_spec
from bayes_ablation.workflows.meta import fit_meta

ROOT = Path(__file__).resolve().parents[1]

DATA = {
    "two_studies_crlm": (np.log([0.79, 0.63]), [0.1232, 0.2082]),
    "two_studies_conflicting": ([-0.6, 0.3], [0.15, 0.2]),
    "five_high_heterogeneity": ([-0.9, -0.2, 0.3, -1.1, 0.5], [0.2, 0.15, 0.25, 0.3, 0.2]),
    "five_homogeneous": ([-0.3, -0.1, -0.45, -0.2, -0.35], [0.12, 0.2, 0.18, 0.25, 0.1]),
    "eight_mixed_precision": ([-0.5, -0.1, -0.3, 0.05, -0.7, -0.25, -0.4, -0.15],
                              [0.05, 0.3, 0.12, 0.25, 0.35, 0.08, 0.2, 0.15]),
}
TAU_PRIORS = {
    "halfnormal_0.5": {"family": "halfnormal", "sigma": 0.5},
    "halfcauchy_0.5": {"family": "halfcauchy", "beta": 0.5},
    "halfstudentt_3_0.5": {"family": "halfstudentt", "nu": 3, "sigma": 0.5},
    "uniform_0_2": {"family": "uniform", "lower": 0.0, "upper": 2.0},
    "turner_lognormal_tau2": {"family": "lognormal_variance", "mu": -2.56, "sigma": 1.74},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--data", nargs="+", default=list(DATA))
    ap.add_argument("--priors", nargs="+", default=list(TAU_PRIORS))
    ap.add_argument("--parameterisation", choices=("non_centred", "marginal"),
                    default="non_centred")
    args = ap.parse_args()
    raw = tomllib.loads((ROOT / "models" / "meta_loghr.toml").read_text())
    raw.pop("sensitivity")
    raw["sampler"].update(chains=args.chains, draws=args.draws, tune=1000)
    raw["model"]["parameterisation"] = args.parameterisation
    all_gaps, worst = [], []
    for prior_name in args.priors:
        raw["priors"]["tau"] = {**TAU_PRIORS[prior_name], "rationale": "bench"}
        spec = parse_spec(raw, f"bench:{prior_name}")
        for data_name in args.data:
            studies = studies_from_arrays(*DATA[data_name])
            t0 = time.perf_counter()
            exact = ExactPosterior(y=studies.y, se=studies.se, mu_prior=spec.priors["mu"],
                                   tau_prior=spec.priors["tau"], studies=studies.studies)
            exact_table = exact.summary()
            t_quad = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = fit_meta(spec, studies, method="mcmc")
            t_mcmc = time.perf_counter() - t0
            c = compare_with_exact(r.idata, exact_table)
            signed = ((c["mcmc"] - c["exact"]) / c["mcse"]).to_numpy()
            all_gaps.append(signed[:5])      # the acceptance statistics (mu x4, tau median)
            worst.append(np.abs(signed[:5]).max())
            print(f"{prior_name:22s} {data_name:26s} MCMC {t_mcmc:5.1f} s (sampling "
                  f"{r.provenance['timings_seconds']['sampling']:4.1f} s) | exact {t_quad:5.3f} s"
                  f" | div {r.diagnostics.divergences:2d} gate {'ok ' if r.diagnostics.passed else 'FAIL'}"
                  f" | gaps/MCSE " + " ".join(f"{a}.{b}={g:+.2f}" for a, b, g in
                                              zip(c["quantity"], c["statistic"], signed,
                                                  strict=True)), flush=True)
    g = np.concatenate(all_gaps)
    print(f"\n{len(worst)} cases, {g.size} acceptance statistics: signed gap mean {g.mean():+.2f}"
          f", sd {g.std():.2f}; max |gap| {np.max(worst):.2f}; cases with a gap > 3: "
          f"{int(np.sum(np.array(worst) > 3))}")


if __name__ == "__main__":
    main()
