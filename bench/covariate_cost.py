"""What covariates cost a whole Weibull `fit` command (issue 13, point 4; issue 14, point 9).

One simulated cohort of 668 patients in 6 sites with 5 patient covariates (log CEA, number of
lesions, node status, disease-free interval, synchronous disease; two continuous, so every
patient is its own covariate pattern). The shipped ``models/pfs_weibull_site.toml`` is fitted to
the file twice, in this script: without covariates (the baseline) and with the 5 covariates
(a copy of the spec with ``covariates = [...]`` and a N(0, 1) prior on their log HRs). Each run
is one ``bayes-ablation fit`` process, timed from process start to the finished bundle.

    PYTHONHASHSEED=0 python bench/covariate_cost.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from cli_run import timed_fit

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "pfs_weibull_site.toml"
COVARIATES = ["log_cea", "n_lesions", "node_positive", "dfi_months", "synchronous"]


def cohort_csv(path: Path) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from bayes_ablation.data.simulate import CovariateSim as C
    from bayes_ablation.data.simulate import simulate_trial

    sim = simulate_trial(668, 6, -0.3, seed=14, covariates={
        "log_cea": C("normal", 0.3, mean=1.5, sd=1.0),
        "n_lesions": C("normal", 0.1, mean=2.5, sd=1.5),
        "node_positive": C("binary", 0.4, p=0.55),
        "dfi_months": C("normal", -0.02, mean=12.0, sd=8.0),
        "synchronous": C("binary", 0.2, p=0.4)})
    sim.frame.to_csv(path, index=False)


def covariate_spec(folder: Path) -> Path:
    text = SPEC.read_text()
    assert "covariates = []" in text and "[estimands]" in text, "spec layout changed"
    text = text.replace("covariates = []", f"covariates = {json.dumps(COVARIATES)}")
    text = text.replace("[estimands]", '[priors.beta_covariates]\nfamily = "normal"\nmu = 0.0\n'
                        'sigma = 1.0\nrationale = "covariate log HRs (benchmark)"\n\n'
                        "[estimands]", 1)
    out = folder / "pfs_weibull_covariates.toml"
    out.write_text(text)
    return out


def run(spec: Path, data: Path, out: Path) -> dict:
    wall, summary, _ = timed_fit(spec, data, out)
    return {"wall_s": wall, "timings": summary["provenance"]["timings_seconds"],
            "gate": summary["diagnostics"]["passed"]}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "cohort668.csv"
        cohort_csv(data)
        rows = [("no covariates", run(SPEC, data, folder / "b0")),
                ("5 covariates", run(covariate_spec(folder), data, folder / "b5"))]
    base = rows[0][1]["wall_s"]
    print(f"\nwhole `fit` command, {SPEC.name}, 668 patients / 6 sites")
    print(f"{'case':>14} {'wall s':>7} {'ratio':>6} {'sample':>6} {'estim':>6} {'gate':>5}")
    for name, r in rows:
        t = r["timings"]
        print(f"{name:>14} {r['wall_s']:7.1f} {r['wall_s'] / base:6.2f} "
              f"{t.get('sampling', 0):6.1f} {t.get('estimands', 0):6.1f} "
              f"{'pass' if r['gate'] else 'FAIL':>5}")


if __name__ == "__main__":
    main()
