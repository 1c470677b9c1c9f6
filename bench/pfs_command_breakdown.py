"""Where the PFS primary analysis' whole command spends its time (issue 13, point 6).

    PYTHONHASHSEED=0 python bench/pfs_command_breakdown.py [--repeat 5] [--data CSV]
        [--src OTHER_SRC ...]

Runs ``bayes-ablation fit --spec models/pfs_weibull_site.toml --data <400 patients / 8 sites>``
in fresh processes (the demo's command; the example trial by default), ``--repeat`` times per
source tree, the trees interleaved run by run (``--src`` adds trees to compare, e.g. an
``git archive`` of an older commit's ``src``; the first run of each tree warms its disk caches
and is not counted). Prints per tree the median of: wall seconds (process start → process
gone), the fit's own stages from ``summary.json["provenance"]["timings_seconds"]`` and
``after_fit`` = wall − start_to_fit − fit_total (bundle, report and interpreter exit), plus
the median CPU seconds (user + sys of the process and its children), the load average and
the ratio to brms' 35.6 s (compile + sampling on a quiet machine, bench/RESULTS.md; brms is
not run here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "pfs_weibull_site.toml"
BRMS_QUIET_S = 35.6
STAGES = ("process_start_to_fit", "imports", "build_model", "compile", "sampling",
          "log_likelihood", "estimands", "diagnostics", "posterior_predictive", "fit_total")


def one_run(src: Path, data: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(src))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bayes_ablation", "fit", "--spec", str(SPEC),
                           "--data", str(data), "--out", str(out), "--force", "--quiet"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"fit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    timings = summary["provenance"]["timings_seconds"]
    row = {k: float(timings[k]) for k in STAGES if k in timings}
    row["wall"] = wall
    row["after_fit"] = wall - row["process_start_to_fit"] - row["fit_total"]
    row["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row["load"] = os.getloadavg()[0]
    row["compile_cache_hit"] = timings.get("compile_cache_hit")
    row["kernel_check"] = summary["provenance"]["sampler_details"].get("kernel_check")
    row["estimand_values"] = summary["estimands"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT / "examples" / "pfs_trial.csv")
    parser.add_argument("--src", type=Path, action="append", default=[],
                        help="another source tree to compare (its src folder)")
    args = parser.parse_args()
    trees = [ROOT / "src", *args.src]
    runs: dict[Path, list[dict]] = {t: [] for t in trees}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for k in range(args.repeat + 1):
            for i, tree in enumerate(trees):
                row = one_run(tree, args.data, tmp / f"out{i}")
                if k > 0:  # the first run of each tree warms its caches
                    runs[tree].append(row)
    for tree, rows in runs.items():
        med = {key: round(statistics.median(r[key] for r in rows), 3)
               for key in ("wall", "cpu", *STAGES, "after_fit", "load") if key in rows[0]}
        same = all(r["estimand_values"] == rows[0]["estimand_values"] for r in rows)
        print(json.dumps({"src": str(tree), "runs": len(rows), "median": med,
                          "walls": [round(r["wall"], 2) for r in rows],
                          "ratio_vs_brms_quiet": round(BRMS_QUIET_S / med["wall"], 1),
                          "compile_cache_hit": [r["compile_cache_hit"] for r in rows],
                          "kernel_check": rows[-1]["kernel_check"],
                          "estimands_identical_across_runs": same}), flush=True)
    if len(trees) > 1:
        first = runs[trees[0]][0]["estimand_values"]
        print(json.dumps({"estimands_identical_between_trees":
                          all(runs[t][0]["estimand_values"] == first for t in trees)}))


if __name__ == "__main__":
    main()
