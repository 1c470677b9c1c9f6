"""What the cohort design costs a whole `fit` command (issue 14, point 9).

``examples/cohort/cohort_patients.csv`` (668 patients, 6 sites, 5 confounders: two numeric, one
binary, two categorical) fitted with the shipped ``examples/cohort/pfs_cohort.toml`` (design = "cohort":
covariates, ATE / ATT by g-computation with Bayesian-bootstrap weights) and with the same spec
without covariates (a copy with ``covariates = []`` and no ``beta_covariates`` prior; still
design = "cohort"), and for reference the randomised ``models/pfs_weibull_site.toml`` on the same
file. Each run is one ``bayes-ablation fit`` process from process start to the finished bundle;
the rows are repeated ``--repeats`` times, interleaved.

    PYTHONHASHSEED=0 PYTENSOR_FLAGS=base_compiledir=$PWD/.cache/pytensor \\
        .venv/bin/python bench/cohort_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
from pathlib import Path

from cli_run import timed_fit

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "cohort" / "pfs_cohort.toml"
DATA = ROOT / "examples" / "cohort" / "cohort_patients.csv"


def covariate_free(folder: Path) -> Path:
    text = SPEC.read_text()
    text, n = re.subn(r"^covariates = \[.*\]$", "covariates = []", text, flags=re.M)
    text, m = re.subn(r"\[priors\.beta_covariates\].*?(?=\n\[)", "", text, flags=re.S)
    assert n == m == 1, "spec layout changed"
    out = folder / "pfs_cohort_no_covariates.toml"
    out.write_text(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = [("cohort, no covariates", covariate_free(folder)),
                 ("cohort, 5 covariates", SPEC),
                 ("randomised spec, no covariates", ROOT / "models" / "pfs_weibull_site.toml")]
        walls: dict[str, list[float]] = {name: [] for name, _ in cases}
        stages: dict[str, dict] = {}
        for rep in range(args.repeats):
            for i, (name, spec) in enumerate(cases):
                wall, summary, _ = timed_fit(spec, DATA, folder / f"run{rep}_{i}")
                walls[name].append(wall)
                stages[name] = {**summary["provenance"]["timings_seconds"],
                                "gate": summary["diagnostics"]["passed"]}
    base = statistics.median(walls[cases[0][0]])
    print(f"\nwhole `fit` command, 668 patients / 6 sites, {args.repeats} runs each (median)")
    print(f"{'case':>31} {'wall s':>7} {'runs':>18} {'ratio':>6} {'sample':>6} {'estim':>6} "
          f"{'gate':>5}")
    for name, _ in cases:
        t, w = stages[name], walls[name]
        print(f"{name:>31} {statistics.median(w):7.1f} "
              f"{' '.join(f'{x:.1f}' for x in w):>18} {statistics.median(w) / base:6.2f} "
              f"{t.get('sampling', 0):6.1f} {t.get('estimands', 0):6.1f} "
              f"{'pass' if t['gate'] else 'FAIL':>5}")


if __name__ == "__main__":
    main()
