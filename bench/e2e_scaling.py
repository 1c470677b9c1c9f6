"""Whole-command scaling of the piecewise-exponential PFS analysis (issue 13, point 1).

Each case is one ``bayes-ablation fit`` process, timed from process start to the finished bundle
with its report, on simulated trials of 40 sites (proportional hazards, true log HR −0.3,
piecewise-constant baseline). Ratios are against the 10³-patient run of the same script.

    PYTHONHASHSEED=0 python bench/e2e_scaling.py [--sizes 1000 1000000] [--no-spike]

Rows: wall seconds, where the time goes (the bundle's own stage timings), bundle size, the log HR
error against the truth, the convergence gate and the KM posterior predictive check (share of the
observed KM inside the 95 % band, per arm). The ``spike`` case (10⁶ patients, fixed cut points
3, 6, 9, 12, 18, 24, 36 months, 40 % of the patients progressing between months 10 and 11, i.e.
inside the interval (9, 12] where the model's hazard is constant) must fail the PPC: it shows that
the bounded, stratified subsample the check runs on above 20,000 patients keeps its power.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from cli_run import timed_fit

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "pfs_piecewise_site.toml"
CUTS = [3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 24.0, 30.0, 36.0]
HAZARDS = [0.03, 0.05, 0.06, 0.055, 0.05, 0.045, 0.04, 0.035, 0.03, 0.03]
TRUE_LOG_HR = -0.3


def trial_csv(n: int, path: Path, seed: int, spike: bool = False) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from bayes_ablation.data.simulate import simulate_trial

    sim = simulate_trial(n, 40, TRUE_LOG_HR, seed=seed, baseline_cuts_months=CUTS,
                         baseline_hazards=HAZARDS, sigma_site=0.3, accrual_months=24.0,
                         followup_months=24.0)
    frame = sim.frame[["patient_id", "site", "arm", "time_months", "event"]].copy()
    if spike:
        rng = np.random.default_rng(seed + 1)
        hit = rng.uniform(size=n) < 0.4
        t_spike = rng.uniform(10.0, 11.0, size=n)
        earlier = hit & (t_spike < frame["time_months"].to_numpy())
        frame.loc[earlier, "time_months"] = t_spike[earlier]
        frame.loc[earlier, "event"] = 1
    frame.to_csv(path, index=False)


def spike_spec(folder: Path) -> Path:
    text = SPEC.read_text().replace('cuts = { method = "quantiles", count = 8 }',
                                    "cuts_months = [3, 6, 9, 12, 18, 24, 36]")
    assert "cuts_months = [3" in text, "spec layout changed"
    out = folder / "pfs_piecewise_fixed_cuts.toml"
    out.write_text(text)
    return out


def run(spec: Path, data: Path, out: Path) -> dict:
    wall, summary, returncode = timed_fit(spec, data, out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    timings = summary["provenance"]["timings_seconds"]
    log_hr = next((row["median"] for label, row in summary["estimands"].items()
                   if label.startswith("log_hr[")), None)
    ppc = summary.get("posterior_predictive", {}).get("arm", {})
    return {"wall_s": wall, "timings": timings, "bundle_mb": size / 1e6,
            "gate": summary["diagnostics"]["passed"], "gate_reasons":
            summary["diagnostics"].get("failures", []), "log_hr": log_hr,
            "ppc_arm_coverage": {k: v["km_band_coverage"] for k, v in ppc.items()},
            "rc": returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**6])
    ap.add_argument("--no-spike", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = [(f"{n}", n, False) for n in args.sizes]
        if not args.no_spike:
            cases.append(("spike", max(args.sizes), True))
        for name, n, spike in cases:
            data = folder / f"trial_{name}.csv"
            trial_csv(n, data, args.seed, spike=spike)
            spec = spike_spec(folder) if spike else SPEC
            res = run(spec, data, folder / f"bundle_{name}")
            rows.append((name, n, res))
            print(f"  done {name}: {res['wall_s']:.1f} s", flush=True)
    base = rows[0][2]["wall_s"]
    print(f"\nwhole `fit` command, {SPEC.name}, 40 sites, true log HR {TRUE_LOG_HR}")
    print(f"{'case':>8} {'patients':>9} {'wall s':>7} {'ratio':>6} {'to fit':>6} {'compile':>7} "
          f"{'sample':>6} {'ppc':>6} {'estim':>6} {'bundle+report':>13} {'MB':>5} "
          f"{'log HR':>7} {'gate':>5} PPC coverage by arm")
    for name, n, r in rows:
        t = r["timings"]
        post = r["wall_s"] - t.get("process_start_to_fit", 0.0) - t.get("fit_total", 0.0)
        err = "" if r["log_hr"] is None else f"{r['log_hr']:7.3f}"
        cov = ", ".join(f"{k} {v:.2f}" for k, v in r["ppc_arm_coverage"].items())
        print(f"{name:>8} {n:>9} {r['wall_s']:7.1f} {r['wall_s'] / base:6.2f} "
              f"{t.get('process_start_to_fit', 0):6.1f} {t.get('compile', 0):7.1f} "
              f"{t.get('sampling', 0):6.1f} {t.get('posterior_predictive', 0):6.1f} "
              f"{t.get('estimands', 0):6.1f} {post:13.1f} {r['bundle_mb']:5.1f} {err:>7} "
              f"{'pass' if r['gate'] else 'FAIL':>5} {cov}")
        if not r["gate"]:
            print(f"{'':>10}gate: {r['gate_reasons']}")


if __name__ == "__main__":
    main()
