"""The demo analysis through the Python API (same result as `bash scripts/demo.sh`).

Run:  .venv/bin/python examples/pfs_analysis.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from bayes_ablation import fit, load_spec, read_patients

HERE = Path(__file__).resolve().parent


def main(out: str = "results/example_api") -> None:
    spec = load_spec(HERE.parent / "models" / "pfs_weibull_site.toml")
    patients = read_patients(HERE / "pfs_trial.csv", spec)
    print(patients.summary())

    result = fit(spec, patients, progress=True)

    print("convergence gate:", "passed" if result.diagnostics.passed else result.diagnostics.failures)
    table = result.estimand_table.set_index("label")
    print(table.loc[["hr[perioperative]", "survival_difference[perioperative, average site, t=24]",
                     "rmst_difference[perioperative, new site]"], ["median", "q2.5", "q97.5"]])
    print(result.probabilities)
    # posterior draws are an xarray DataTree with named dims
    print(result.posterior["u_site"].mean(("chain", "draw")).to_series())
    result.save(out, force=True)
    print(f"bundle written to {out} (open {out}/report.html)")


if __name__ == "__main__":
    main(*sys.argv[1:])
