"""Speed of a whole ``fit``, per sampler path, against the brms/Stan reference.

One run of this script:

1. simulates a 400-patient / 8-site and a 20,000-patient / 40-site Weibull trial;
2. for each trial and each sampler path — ``kernel`` (the default: nutpie on the disk-cached
   numba kernel, checked against PyMC in every process), ``nutpie`` (nutpie compiling the PyMC
   model) and ``pymc`` (PyMC's NUTS) — runs a fresh Python process that reports import,
   compile and sampling seconds and the bulk ESS of log HR (4 chains × 1000 draws after 1000
   tuning steps, the shipped spec's settings);
3. times the whole CLI command ``bayes-ablation fit`` (process start → finished bundle with
   report) in fresh processes on both trials, and prints it as a ratio to brms/Stan, whose
   compile + sampling of the 400-patient model take 66 + 15 = 81 s on these machines (130 s
   when busy).

    python bench/fit_speed.py                    # everything (~5–10 min on 2 busy cores)
    python bench/fit_speed.py --skip-large       # 400 patients only
    python bench/fit_speed.py --append bench/RESULTS.md

Machines here are shared: the load average is printed with every figure; compare ratios
within one run, and CPU seconds (user + sys of the child) next to wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "pfs_weibull_site.toml"
BRMS_QUIET, BRMS_BUSY = 81.0, 130.0
PATHS = ("kernel", "nutpie", "pymc")
TRIALS = {"400x8": (400, 8), "20000x40": (20000, 40)}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


# ----------------------------------------------------------------------------- worker side

def worker(path: str, data: str) -> dict:
    """Fit ``data`` with one sampler path in this (fresh) process; return the figures."""
    t_start = time.perf_counter()
    from bayes_ablation.core.provenance import import_modules, process_age_seconds

    startup = process_age_seconds()
    modules = ("pymc", "arviz") + (("nutpie", "numba") if path != "pymc" else ())
    imports = import_modules(modules)
    import arviz as az

    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.inference.sampling import sample
    from bayes_ablation.spec.plan import load_spec

    spec = load_spec(SPEC)
    if path == "pymc":
        spec = spec.with_sampler(backend="pymc")
    patients = read_patients(data, spec)
    model = build_model(spec, patients)
    result = sample(model, spec.sampler, spec=spec,
                    logp_kernel="pytensor" if path == "nutpie" else "auto")
    ess = float(az.ess(result.idata, var_names=["log_hr"], method="bulk")["log_hr"].values.min())
    compile_s = result.timings["compile_seconds"]
    sampling_s = result.timings["sampling_seconds"]
    return {"path": path, "sampler": result.sampler,
            "logp_kernel": result.details.get("logp_kernel"),
            "startup": startup, "imports": imports, "compile": compile_s,
            "sampling": sampling_s, "ess_bulk_log_hr": ess,
            "ess_per_s_sampling": ess / sampling_s,
            "ess_per_s_total": ess / (imports + compile_s + sampling_s),
            "worker_wall": time.perf_counter() - t_start + (startup or 0.0),
            "load_avg": os.getloadavg()[0]}


# ----------------------------------------------------------------------------- driver side

def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_worker(path: str, data: Path) -> dict:
    cpu0 = _child_cpu()
    proc = subprocess.run([sys.executable, __file__, "--worker", path, str(data)],
                          capture_output=True, text=True, env=_env(), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {path} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cpu"] = _child_cpu() - cpu0
    return out


def run_cli(data: Path, out: Path) -> dict:
    """The whole command in a fresh process: process start → bundle with report."""
    load = os.getloadavg()[0]
    cpu0 = _child_cpu()
    t0 = time.perf_counter()
    env = _env()
    env.pop("PYTHONHASHSEED")  # the CLI sets it itself (re-exec), as for a user
    proc = subprocess.run([sys.executable, "-m", "bayes_ablation", "fit", "--spec", str(SPEC),
                           "--data", str(data), "--out", str(out), "--force", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"fit failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    prov = summary["provenance"]
    return {"wall": wall, "cpu": _child_cpu() - cpu0, "load_avg": load,
            "logp_kernel": prov.get("sampler_details", {}).get("logp_kernel"),
            "timings": prov["timings_seconds"]}


def simulate(folder: Path) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "src"))
    from bayes_ablation.data.simulate import simulate_trial

    files = {}
    for name, (n, sites) in TRIALS.items():
        path = folder / f"trial_{name}.csv"
        simulate_trial(n, sites, -0.25, seed=2026).frame.to_csv(path, index=False)
        files[name] = path
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "DATA"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-large", action="store_true", help="only the 400-patient trial")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument("--append", help="append the markdown results to this file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return

    started = datetime.now(UTC)
    lines = [f"### fit speed, {started:%Y-%m-%d %H:%M} UTC",
             "", f"`{' '.join(['python', *sys.argv])}` · {os.cpu_count()} cores · "
             f"load average at start {os.getloadavg()[0]:.1f}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        files = simulate(Path(tmp))
        trials = [t for t in TRIALS if not (args.skip_large and t != "400x8")]
        lines += ["Per sampler path (fresh process each; seconds; ESS = bulk ESS of log HR, "
                  "4 × 1000 draws):", "",
                  "| trial | path | logp | import | compile | sampling | ESS | ESS/s sampling "
                  "| ESS/s incl. import+compile | child CPU | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for trial in trials:
            for path in args.paths:
                r = run_worker(path, files[trial])
                lines.append(
                    f"| {trial} | {path} | {r['logp_kernel']} | {r['imports']:.2f} | "
                    f"{r['compile']:.2f} | {r['sampling']:.2f} | {r['ess_bulk_log_hr']:.0f} | "
                    f"{r['ess_per_s_sampling']:.0f} | {r['ess_per_s_total']:.0f} | "
                    f"{r['cpu']:.1f} | {r['load_avg']:.1f} |")
                print(lines[-1], flush=True)
        lines += ["", "Whole `bayes-ablation fit` command (fresh process → bundle with report; "
                  "default path), vs brms/Stan 81 s quiet / 130 s busy (400 patients):", "",
                  "| trial | run | wall s | child CPU s | load | logp | process start → fit "
                  "| imports | compile | sampling | estimands | × faster than brms (81 s / 130 s) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for trial in trials:
            for rep in range(args.cli_repeats if trial == "400x8" else 1):
                r = run_cli(files[trial], Path(tmp) / f"bundle_{trial}")
                t = r["timings"]
                lines.append(
                    f"| {trial} | {rep + 1} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                    f"{r['load_avg']:.1f} | {r['logp_kernel']} | "
                    f"{t.get('process_start_to_fit') or float('nan'):.2f} | "
                    f"{t.get('imports', float('nan')):.2f} | {t['compile']:.2f} | "
                    f"{t['sampling']:.2f} | {t['estimands']:.2f} | "
                    f"{BRMS_QUIET / r['wall']:.1f} / {BRMS_BUSY / r['wall']:.1f} |")
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with open(args.append, "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
