"""Every row of issue 13's speed table in one run: ours (whole ``bayes-ablation`` command, process
start → finished bundle with report) against its baseline measured in this same run — brms/Stan,
or the 10³-patient run of the same spec, or the covariate-free fit of the same file.

    PYTHONHASHSEED=0 python bench/speed_table.py [--skip-brms] [--skip-million] [--append FILE]
        [--only CASE ...] [--repeats N]

``--only`` runs the named rows (``weibull_400x8 lr weibull_20000x40 covariates pwe compile``);
``--repeats N`` runs each of our commands N times and reports the median wall time (the
stages of the median run), brms once; ``first_s`` / ``ratio_first`` are the first of the N runs,
the first process on those data (it builds the PyMC model and writes the fit record the later
runs sample from: ``records``).

Rows:

* ``pwe_1e3`` / ``pwe_1e6``: the piecewise-exponential spec on 10³ and 10⁶ simulated patients
  (40 sites, true log HR −0.3): ratio 10⁶ / 10³, log HR error, gate;
* ``weibull_400x8``: the Weibull spec (the demo's shape) vs brms
  ``bf(time | cens(1 - event) ~ arm + (1|site))``, family Weibull, 4 × 1000 draws;
* ``weibull_20000x40``: the Weibull spec at 20,000 patients / 40 sites: gate and min ESS;
* ``covariates_668``: 668 patients / 6 sites with 5 covariates vs the same file without;
* ``lr_900x400x8``: the lesion LR spec on ≈900 lesions / 400 patients / 8 sites vs brms
  ``bf(time | cens(1 - event) ~ arm + (1|site) + (1|patient_id))`` at adapt_delta 0.95
  (lesion time = the scan that found the recurrence, or the last negative scan);
* ``compile_second_process``: compile seconds and ``compile_cache_hit`` of every shipped
  family in a second fresh process (the first warms the disk cache).

brms rows need R and brms (Debian: ``apt-get install r-cran-brms r-cran-survival``); without
them they print "skipped" with that hint. Machines here are shared: the load average is printed
with every row; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cli_run import ROOT, run_cli, timed_fit
from lr_vs_brms import brms_available, brms_table, covariate_free_spec

MODELS = ROOT / "models"
BRMS_SCRIPT = Path(__file__).resolve().parent / "brms_reference.R"
BRMS_HINT = ("needs R + brms: apt-get install r-cran-brms r-cran-survival; Debian's r-cran-bh "
             "also needs ln -s /usr/include /usr/lib/R/site-library/BH/include")


def brms_fit(csv: Path, kind: str, adapt_delta: float) -> dict:
    """brms compile + sampling (4 × 1000 draws after 1000 warm-up) in a fresh R process."""
    t0 = time.perf_counter()
    proc = subprocess.run(["Rscript", str(BRMS_SCRIPT), str(csv), kind, "1000",
                           str(adapt_delta)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"brms failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def add_brms(row: dict, b: dict) -> None:
    """brms' compile + sampling seconds as the row's baseline, ratio = brms / ours."""
    row["baseline"] = (f"brms {b['compile_seconds']:.1f} + {b['sampling_seconds']:.1f} s, "
                       f"{b['divergences']} div")
    row["ratio"] = round((b["compile_seconds"] + b["sampling_seconds"]) / row["wall_s"], 1)
    row["ratio_first"] = round((b["compile_seconds"] + b["sampling_seconds"]) / row["first_s"],
                               1)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


REPEATS = 1


def ours(spec: Path, data: Path, out: Path, lesions: Path | None = None) -> dict:
    """Our whole command ``REPEATS`` times on the same files: the median run's facts, every
    run's wall seconds (``walls_s``, in order) and whether it built the PyMC model and wrote
    a fit record (the first process on new data) or sampled from that record (``records``:
    ``recorded`` / ``cached`` / ``none``), and ``first_s``: the first run's wall seconds."""
    outs = [out if k == 0 else out.with_name(f"{out.name}_{k}") for k in range(REPEATS)]
    ordered = [(*timed_fit(spec, data, o, lesions=lesions), o) for o in outs]
    runs = sorted(ordered, key=lambda run: run[0])
    wall, summary, _, out = runs[len(runs) // 2]
    records = [str(r[1]["provenance"]["sampler_details"].get("model_record", "none")
                   ).split(" ")[0] for r in ordered]
    diag = summary["diagnostics"]
    timings = summary["provenance"]["timings_seconds"]
    return {"wall_s": round(wall, 2), "gate": "pass" if diag["passed"] else "FAIL",
            "divergences": diag["divergences"], "ess_bulk_min": round(diag["ess_bulk_min"]),
            "ess_tail_min": round(diag["ess_tail_min"]), "rhat_max": round(diag["rhat_max"], 4),
            "compile_s": round(timings.get("compile", float("nan")), 2),
            "compile_cache_hit": timings.get("compile_cache_hit"),
            "sampling_s": round(timings.get("sampling", float("nan")), 2),
            "log_hr": log_hr_mean(out), "load": load(),
            "walls_s": [round(r[0], 2) for r in ordered], "records": records,
            "first_s": round(ordered[0][0], 2),
            "stages": {k: round(v, 2) for k, v in timings.items() if isinstance(v, float)}}


def log_hr_mean(out: Path) -> float | None:
    import pandas as pd

    table = pd.read_csv(out / "estimands.csv")
    rows = table[table["label"].str.startswith("log_hr[") & ~table["label"].str.contains(",")]
    return round(float(rows["mean"].iloc[0]), 4) if len(rows) else None


# ------------------------------------------------------------------------------------- data

def weibull_csv(n: int, sites: int, path: Path, seed: int) -> None:
    from bayes_ablation.data.simulate import simulate_trial

    simulate_trial(n, sites, -0.3, seed=seed).frame.to_csv(path, index=False)


def lr_tables(folder: Path, seed: int = 3) -> tuple[Path, Path, Path, int]:
    """≈900 lesions / 400 patients / 8 sites: (patients.csv, lesions.csv, brms csv, lesions)."""
    from bayes_ablation.data.simulate_lr import simulate_lr_trial

    sim = simulate_lr_trial(400, 8, seed=seed)
    patients, lesions = folder / "lr_patients.csv", folder / "lr_lesions.csv"
    sim.patients.to_csv(patients, index=False)
    sim.lesions.to_csv(lesions, index=False)
    return patients, lesions, brms_table(patients, lesions, folder / "lr_brms.csv"), len(
        sim.lesions)


def brms_csv(pfs_csv: Path, path: Path) -> Path:
    import pandas as pd

    pd.read_csv(pfs_csv).rename(columns={"time_months": "time"}).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-brms", action="store_true")
    parser.add_argument("--skip-million", action="store_true", help="no 10⁶-patient PWE row")
    parser.add_argument("--append", type=Path, dest="append_to",
                        help="append the markdown table to this file")
    parser.add_argument("--only", nargs="+", default=None,
                        choices=["weibull_400x8", "lr", "weibull_20000x40", "covariates", "pwe",
                                 "compile"], help="run only these rows")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each of our commands (median reported)")
    args = parser.parse_args()
    global REPEATS
    REPEATS = max(args.repeats, 1)

    def wanted(case: str) -> bool:
        return args.only is None or case in args.only
    sys.path.insert(0, str(ROOT / "src"))
    import e2e_scaling
    from covariate_cost import cohort_csv, covariate_spec

    use_brms = not args.skip_brms and brms_available()
    if not args.skip_brms and not use_brms:
        print(f"brms rows skipped ({BRMS_HINT})")
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # a run that warms the disk caches that do not depend on the data (numba's machine
        # code, the PyTensor cache) first, on other data (not reported): the first run of
        # each row below is a first process on its data (PyMC model built, record written)
        weibull_csv(400, 8, tmp / "w400_warm.csv", seed=10)
        ours(MODELS / "pfs_weibull_site.toml", tmp / "w400_warm.csv", tmp / "warm")
        weibull_csv(400, 8, tmp / "w400.csv", seed=11)

        # Weibull 400 x 8 vs brms
        if wanted("weibull_400x8"):
            row = {"case": "weibull_400x8", **ours(MODELS / "pfs_weibull_site.toml",
                                                   tmp / "w400.csv", tmp / "o_w400")}
            if use_brms:
                b = brms_fit(brms_csv(tmp / "w400.csv", tmp / "w400_brms.csv"), "weibull_site",
                             0.8)
                add_brms(row, b)
            emit(row)

        # LR ~900 lesions vs brms at adapt_delta 0.95
        patients, lesions, lr_brms, n_les = lr_tables(tmp)
        if wanted("lr"):
            lr_spec = covariate_free_spec(MODELS / "local_recurrence_lesion.toml",
                                          tmp / "lr_no_covariates.toml")
            row = {"case": f"lr_{n_les}x400x8", **ours(lr_spec, patients, tmp / "o_lr",
                                                       lesions=lesions)}
            if use_brms:
                add_brms(row, brms_fit(lr_brms, "lr_frailty", 0.95))
            emit(row)

        # Weibull 20,000 x 40
        if wanted("weibull_20000x40"):
            weibull_csv(20000, 40, tmp / "w20k.csv", seed=12)
            emit({"case": "weibull_20000x40",
                  **ours(MODELS / "pfs_weibull_site.toml", tmp / "w20k.csv", tmp / "o_w20k")})

        # covariates: 668 patients, 5 covariates vs the same file without
        cohort_csv(tmp / "cohort.csv")
        if wanted("covariates"):
            base = ours(MODELS / "pfs_weibull_site.toml", tmp / "cohort.csv", tmp / "o_c0")
            cov = ours(covariate_spec(tmp), tmp / "cohort.csv", tmp / "o_c5")
            emit({"case": "covariates_668", **cov,
                  "baseline": f"no covariates {base['wall_s']} s",
                  "ratio": round(cov["wall_s"] / base["wall_s"], 2)})
        else:
            covariate_spec(tmp)

        # PWE 10^3 vs 10^6
        e2e_scaling.trial_csv(1000, tmp / "p1e3.csv", seed=1)
        if wanted("pwe"):
            small = ours(MODELS / "pfs_piecewise_site.toml", tmp / "p1e3.csv", tmp / "o_p1e3")
            emit({"case": "pwe_1e3", **small})
            if not args.skip_million:
                e2e_scaling.trial_csv(1_000_000, tmp / "p1e6.csv", seed=2)
                big = ours(MODELS / "pfs_piecewise_site.toml", tmp / "p1e6.csv", tmp / "o_p1e6")
                emit({"case": "pwe_1e6", **big, "baseline": f"10³: {small['wall_s']} s",
                      "ratio": round(big["wall_s"] / small["wall_s"], 2),
                      "bundle_mb": round(sum(f.stat().st_size
                                             for f in (tmp / "o_p1e6").rglob("*")
                                             if f.is_file()) / 1e6, 1)})

        # second-process compile of every shipped family (the first process warms the cache)
        if wanted("compile"):
            for name, cli_args in compile_cases(tmp, patients, lesions):
                walls = [run_cli([*cli_args, "--out", str(tmp / f"c_{name}_{k}")])
                         for k in range(2)]
                summary = json.loads((tmp / f"c_{name}_1" / "summary.json").read_text())
                timings = summary.get("provenance", {}).get("timings_seconds", {})
                emit({"case": f"second_process_compile:{name}",
                      "compile_s": round(timings.get("compile", float("nan")), 2),
                      "compile_cache_hit": timings.get("compile_cache_hit"),
                      "wall_s": round(walls[1], 2), "load": load()})

    table = markdown(rows)
    print(table)
    if args.append_to:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with args.append_to.open("a") as fh:
            fh.write(f"\n### Issue 13 speed table ({stamp})\n\n"
                     "`PYTHONHASHSEED=0 PYTENSOR_FLAGS=base_compiledir=$PWD/.cache/pytensor "
                     ".venv/bin/python bench/speed_table.py"
                     + "".join(f" {a}" for a in sys.argv[1:]) + "`\n\n" + table + "\n")


def compile_cases(tmp: Path, patients: Path, lesions: Path) -> list[tuple[str, list[str]]]:
    meta = ROOT / "examples" / "meta"
    return [
        ("pfs_weibull_site", ["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"),
                              "--data", str(tmp / "w400.csv")]),
        ("pfs_weibull_covariates", ["fit", "--spec", str(tmp / "pfs_weibull_covariates.toml"),
                                    "--data", str(tmp / "cohort.csv")]),
        ("pfs_piecewise_site", ["fit", "--spec", str(MODELS / "pfs_piecewise_site.toml"),
                                "--data", str(tmp / "p1e3.csv")]),
        ("local_recurrence_lesion", ["fit", "--spec", str(MODELS / "local_recurrence_lesion.toml"),
                                     "--data", str(patients), "--lesions", str(lesions)]),
        ("local_recurrence_lesion_pwe", ["fit", "--spec",
                                         str(MODELS / "local_recurrence_lesion_pwe.toml"),
                                         "--data", str(patients), "--lesions", str(lesions)]),
        ("meta_loghr_mcmc", ["meta", "--method", "mcmc", "--spec",
                               str(MODELS / "meta_loghr.toml"),
                               "--data", str(meta / "crlm_pfs_hr.csv")]),
        ("meta_ipd_ad", ["meta", "--spec", str(MODELS / "meta_ipd_ad.toml"),
                         "--data", str(meta / "crlm_pfs_ipd_ad.csv")]),
    ]


def markdown(rows: list[dict]) -> str:
    cols = ["case", "wall_s", "baseline", "ratio", "first_s", "ratio_first", "walls_s",
            "records", "gate", "divergences", "ess_bulk_min", "compile_s", "compile_cache_hit",
            "sampling_s", "log_hr", "load"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
