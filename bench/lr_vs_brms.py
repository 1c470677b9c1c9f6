"""Issue 13, point 5: the lesion-level LR fit as a whole command against brms, in one script.

    PYTHONHASHSEED=0 python bench/lr_vs_brms.py [--seed 3] [--runs 2] [--variant 1000,500]
        [--skip-brms]

Data: ``bayes-ablation simulate-lr --n-patients 400 --sites 8 --seed SEED`` (≈900 lesions).
Ours: ``bayes-ablation fit`` with ``models/local_recurrence_lesion.toml`` minus its lesion
covariates (``covariates = []``, no ``reference_lesion``, no ``beta_covariates`` prior;
everything else, sampler settings included, as shipped), timed from process start to the
finished bundle with its report, ``--runs`` times in fresh processes (the first also fills
numba's disk cache if it is cold: see ``compile_cache_hit``). brms:
``bf(time | cens(1 - event) ~ arm + (1|site) + (1|patient_id))``, Weibull, rstan, 4 chains ×
1000 draws after 1000 warm-up at adapt_delta 0.95 (``bench/brms_reference.R``; lesion time =
the scan that found the recurrence, else the last negative scan; lesions with no scan after the
ablation dropped), compile + sampling. The ratio is brms (compile + sampling) / our wall time.
``--variant DRAWS,TUNE`` adds a fit with other draws / tuning steps (``fit --draws --tune``).

brms needs R + brms (Debian: ``apt-get install r-cran-brms r-cran-survival``; Debian's
r-cran-bh also needs ``ln -s /usr/include /usr/lib/R/site-library/BH/include``); without them
the brms part is skipped with that hint. The machine may be shared: the 1-minute load average
is printed with every row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRMS_SCRIPT = Path(__file__).resolve().parent / "brms_reference.R"
BRMS_HINT = ("brms skipped: needs R + brms (apt-get install r-cran-brms r-cran-survival; "
             "Debian's r-cran-bh also needs ln -s /usr/include "
             "/usr/lib/R/site-library/BH/include)")
STAGES = ("imports", "build_model", "compile", "sampling", "estimands", "diagnostics",
          "posterior_predictive", "log_likelihood")


def load() -> float:
    return os.getloadavg()[0]


def cli(args: list[str]) -> float:
    """Run ``bayes-ablation ARGS`` in a fresh process; its wall seconds."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT / "src"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bayes_ablation", *args],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):  # 3: gate failed, bundle written
        raise SystemExit(f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def covariate_free_spec(source: Path, target: Path) -> Path:
    """``source`` without lesion covariates (and so without their prior and reference)."""
    text = source.read_text()
    text = re.sub(r"(?m)^covariates = \[.*$", "covariates = []", text)
    text = re.sub(r"(?m)^reference_lesion = .*\n", "", text)
    text = re.sub(r"\[priors\.beta_covariates\]\n(?:.+\n)*\n", "", text)
    raw = tomllib.loads(text)
    assert raw["analysis"]["covariates"] == [] and "beta_covariates" not in raw["priors"]
    target.write_text(text)
    return target


def brms_table(patients: Path, lesions: Path, path: Path) -> Path:
    import numpy as np
    import pandas as pd

    les = pd.read_csv(lesions).merge(pd.read_csv(patients)[["patient_id", "site", "arm"]],
                                     on="patient_id")
    event = les["lr_upper_months"].notna()
    table = pd.DataFrame({"time": np.where(event, les["lr_upper_months"],
                                           les["lr_lower_months"]),
                          "event": event.astype(int), "arm": les["arm"], "site": les["site"],
                          "patient_id": les["patient_id"]})
    table[table["time"] > 0].to_csv(path, index=False)
    return path


def brms_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(brms); library(jsonlite); "
                            "stopifnot(system.file('include', package = 'BH') != '')"],
                           capture_output=True, text=True)
    return probe.returncode == 0


def run_brms(csv: Path) -> dict:
    load_before = load()
    t0 = time.perf_counter()
    proc = subprocess.run(["Rscript", str(BRMS_SCRIPT), str(csv), "lr_frailty", "1000", "0.95"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"brms failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(wall_s=time.perf_counter() - t0, load_before=load_before, load_after=load())
    return out


def run_ours(spec: Path, patients: Path, lesions: Path, out: Path,
             sampler: list[str] | None = None) -> dict:
    load_before = load()
    wall = cli(["fit", "--spec", str(spec), "--data", str(patients), "--lesions", str(lesions),
                "--out", str(out), "--force", "--quiet", *(sampler or [])])
    summary = json.loads((out / "summary.json").read_text())
    timings = summary["provenance"]["timings_seconds"]
    diag = summary["diagnostics"]
    after = wall - timings.get("process_start_to_fit", 0.0) - timings["fit_total"]
    settings = summary["provenance"].get("sampler_settings", {})
    return {"label": " ".join(sampler or []) or "spec settings", "settings": settings,
            "wall_s": wall, "timings": timings, "bundle_report_s": after,
            "gate": "pass" if diag["passed"] else "FAIL", "divergences": diag["divergences"],
            "ess_bulk_min": diag["ess_bulk_min"], "ess_tail_min": diag["ess_tail_min"],
            "rhat_max": diag["rhat_max"], "kernel": summary["provenance"].get(
                "sampler_details", {}).get("logp_kernel"),
            "load_before": load_before, "load_after": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2, help="our fits (fresh processes)")
    parser.add_argument("--skip-brms", action="store_true")
    parser.add_argument("--spec", type=Path, default=ROOT / "models" /
                        "local_recurrence_lesion.toml")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--variant", action="append", default=[], metavar="DRAWS,TUNE",
                        help="also fit with --draws DRAWS --tune TUNE (once per --variant)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lr_vs_brms_") as tmp_name:
        tmp = Path(tmp_name)
        patients, lesions = tmp / "patients.csv", tmp / "lesions.csv"
        cli(["simulate-lr", "--n-patients", "400", "--sites", "8", "--seed", str(args.seed),
             "--out-patients", str(patients), "--out-lesions", str(lesions), "--force"])
        n_lesions = sum(1 for _ in lesions.open()) - 1
        spec = covariate_free_spec(args.spec, tmp / "lr_no_covariates.toml")
        sampler = tomllib.loads(spec.read_text())["sampler"]
        print(f"data: 400 patients, 8 sites, {n_lesions} lesions (simulate-lr --seed "
              f"{args.seed}); spec {args.spec.name} without covariates, sampler "
              f"{sampler.get('chains')} x {sampler.get('draws')} draws (tune "
              f"{sampler.get('tune')}), target_accept {sampler.get('target_accept')}, "
              f"adaptation {sampler.get('adaptation', 'diag')}", flush=True)
        ours = [run_ours(spec, patients, lesions, tmp / f"out{i}") for i in range(args.runs)]
        for v in args.variant:
            draws, tune = v.split(",")
            ours.append(run_ours(spec, patients, lesions, tmp / f"out_{draws}_{tune}",
                                 ["--draws", draws, "--tune", tune]))
        brms = None
        if args.skip_brms:
            print("brms skipped (--skip-brms)")
        elif not brms_available():
            print(BRMS_HINT)
        else:
            brms = run_brms(brms_table(patients, lesions, tmp / "brms.csv"))
    header = ("| run | wall s | " + " | ".join(STAGES) + " | bundle+report | cache hit | gate "
              "| div | min bulk / tail ESS | max R-hat | load avg |")
    print("\n" + header + "\n|" + "---|" * (header.count("|") - 1))
    for i, r in enumerate(ours, 1):
        t = r["timings"]
        stages = " | ".join(f"{t.get(s, 0.0):.2f}" for s in STAGES)
        print(f"| ours #{i} ({r['label']}) | {r['wall_s']:.1f} | {stages} | {r['bundle_report_s']:.2f} | "
              f"{t.get('compile_cache_hit')} | {r['gate']} | {r['divergences']} | "
              f"{r['ess_bulk_min']:.0f} / {r['ess_tail_min']:.0f} | {r['rhat_max']:.4f} | "
              f"{r['load_before']:.1f}–{r['load_after']:.1f} |")
    if brms is not None:
        total = brms["compile_seconds"] + brms["sampling_seconds"]
        print(f"\nbrms: compile {brms['compile_seconds']:.1f} s + sampling "
              f"{brms['sampling_seconds']:.1f} s = {total:.1f} s (Rscript wall "
              f"{brms['wall_s']:.1f} s), divergences {brms['divergences']}, max R-hat "
              f"{brms['rhat_max']:.3f}, min bulk ESS {brms['ess_bulk_min']:.0f}, load avg "
              f"{brms['load_before']:.1f}–{brms['load_after']:.1f}")
        for i, r in enumerate(ours, 1):
            print(f"ratio brms / ours #{i} ({r['label']}): {total / r['wall_s']:.1f}x "
                  "(goal >= 20x)")
    if args.json:
        args.json.write_text(json.dumps({"n_lesions": n_lesions, "ours": ours, "brms": brms},
                                        indent=1))


if __name__ == "__main__":
    main()
