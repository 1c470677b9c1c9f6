"""CLI sub-commands ``monitor`` and ``oc`` (registered in :mod:`bayes_ablation.cli`).

Only argparse here at import time; the work is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bayes_ablation.errors import BayesAblationError


class InputError(BayesAblationError):
    """Invalid command-line input (exit code 2)."""

    exit_code = 2


def _say(msg: str) -> None:
    from bayes_ablation.cli import _say as say

    say(msg)


def cmd_monitor(args: argparse.Namespace) -> int:
    from bayes_ablation.analysis import package_versions
    from bayes_ablation.data.cut import parse_iso_date, read_dated
    from bayes_ablation.monitoring.design import load_design
    from bayes_ablation.monitoring.ledger import Ledger, LookEntry
    from bayes_ablation.monitoring.monitor import run_look
    from bayes_ablation.monitoring.report import write_monitor_report

    design = load_design(args.design)
    try:
        cut_date = parse_iso_date(args.cut, "--cut")
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    dated = read_dated(args.data, covariates=design.spec.covariates)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not (out / "MANIFEST.json").exists():
        raise InputError(f"--out {out} exists and is not a report folder written by "
                                 "bayes-ablation; refusing to replace it")
    # check the ledger before spending minutes on the fit
    with Ledger.open(args.ledger) as ledger:
        look, stored = ledger.plan(cut_date.isoformat(), design.sha256)
        if stored is not None and (stored.data_sha256, stored.design_sha256) != \
                (dated.sha256, design.sha256):
            ledger.check_inputs(stored, dated.sha256, design.sha256)
    _say(f"design {design.name} ({design.sha256[:12]}…), look {look}"
         + (" (already recorded: re-running to compare)" if stored else ""))
    res = run_look(design, dated, cut_date, look=look, progress=not args.quiet and
                   sys.stderr.isatty(), say=_say)
    if args.strict and not res.fit.diagnostics.passed:
        _say("diagnostics gate FAILED (--strict): nothing recorded, exit code 3")
        return 3
    versions = {k: v for k, v in package_versions().items() if k != "platform"}
    entry = LookEntry(cut_date=cut_date.isoformat(), data_sha256=dated.sha256,
                      design_sha256=design.sha256, p_hr_lt_1=res.p_hr_lt_1,
                      ppos=None if res.ppos is None else res.ppos.ppos,
                      ppos_mcse=None if res.ppos is None else res.ppos.mcse,
                      decision=res.decision.action, result=res.result, versions=versions)
    with Ledger.open(args.ledger) as ledger:
        outcome = ledger.record(entry)
        looks = ledger.looks()
    _print_look(res, outcome.message)
    if out is not None:
        current = next(r for r in looks if r.look == outcome.look)
        write_monitor_report(out, design, looks, current, str(args.ledger), outcome.message)
        print(f"report: {out / 'report.html'}")
    return 0


def _print_look(res, message: str) -> None:
    r = res.result
    post = r["posterior"]
    print(f"look {res.look} — cut {r['cut_date']} — {r['analysis']} analysis — {r['comparison']}")
    print(f"  data: {r['data']['patients']} patients, {r['data']['events']} progressions "
          f"({r['data']['randomised_after_cut']} randomised after the cut not included)")
    print(f"  HR median {post['hr_median']:.3f}  95% [{post['hr_q2.5']:.3f}, "
          f"{post['hr_q97.5']:.3f}]")
    for k, v in post.items():
        if k.startswith("P(HR<"):
            print(f"  {k:<10} {v:.4f}   (fast path {r['fast_posterior'][k]:.4f})")
    if not post["diagnostics_passed"]:
        print("  CONVERGENCE GATE FAILED: " + "; ".join(post["diagnostics_failures"]))
    if r["ppos"] is not None:
        p = r["ppos"]
        print(f"  PPoS       {p['ppos']:.4f} ± {p['mcse']:.4f} (MC SE, {p['n_draws']} "
              f"continuations; final in ~{p['final_months_after_cut']['median']:.1f} months)")
    for e in r["decision"]["rules"]:
        value = "n/a" if e["value"] is None else f"{e['value']:.4f}"
        print(f"  rule {e['rule']:<38} value {value:<8} {'HOLDS' if e['holds'] else 'no'}")
    print(f"  DECISION: {r['decision']['action']} ({r['decision']['reason']})")
    print(f"  {message}")


def cmd_oc(args: argparse.Namespace) -> int:
    from bayes_ablation.monitoring.design import load_design
    from bayes_ablation.monitoring.oc import oc_table, run_oc

    design = load_design(args.design)
    scenarios = args.scenario or list(design.scenarios)
    if args.n_trials < 2:
        raise InputError("--n-trials must be at least 2")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not (out / "MANIFEST.json").exists():
        raise InputError(f"--out {out} exists and is not a folder written by "
                                 "bayes-ablation; refusing to replace it")
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else \
        f"{args.workers or 'all'} local processes"
    _say(f"simulating {args.n_trials} trials x {len(scenarios)} scenarios on {where}"
         + (f", checkpoints in {args.checkpoint}" if args.checkpoint else ""))
    oc = run_oc(design, scenarios, args.n_trials, ppos_method=args.ppos,
                scheduler=args.scheduler, checkpoint_dir=args.checkpoint, workers=args.workers,
                progress=not args.quiet)
    table = oc_table(oc)
    print(f"operating characteristics of {design.name} ({args.n_trials} trials per scenario; "
          f"PPoS: {args.ppos}); estimate ± Monte Carlo SE")
    for name, group in table.groupby("scenario", sort=False):
        print(f"  scenario {name} (true log HR {design.scenarios[name].log_hr:g})")
        for _, row in group.iterrows():
            print(f"    {row['quantity']:<42} {row['estimate']:10.4f} ± {row['mcse']:.4f}")
    if out is not None:
        _write_oc(out, oc, table, design)
        print(f"report: {out / 'report.html'}")
    return 0


def _write_oc(out: Path, oc: dict, table, design) -> None:
    import base64
    import html

    from bayes_ablation.bundle import atomic_folder
    from bayes_ablation.monitoring.report import oc_figure
    from bayes_ablation.report.html import CSS, _table, figure_png

    png = figure_png(oc_figure(oc["scenarios"], len(design.looks)))

    def write(tmp: Path) -> None:
        (tmp / "oc.json").write_text(json.dumps(oc, indent=2))
        table.to_csv(tmp / "oc.csv", index=False)
        (tmp / "oc.png").write_bytes(png)
        (tmp / "report.html").write_text(
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(design.name)} — operating characteristics</title><style>{CSS}</style>"
            f"</head><body><h1>{html.escape(design.name)}: operating characteristics</h1>"
            f"<p class='muted'>design SHA-256 <code>{oc['design_sha256'][:16]}…</code> · "
            f"{oc['n_trials']} simulated trials per scenario · looks: "
            f"{html.escape(', '.join(oc['looks']) or 'none')} · final: "
            f"{html.escape(oc['final'])} · PPoS: {oc['ppos_method']}</p>"
            f"<img alt='operating characteristics' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'>{_table(table, digits=4)}</body></html>",
            encoding="utf-8")

    atomic_folder(out, write, force=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="interim look: posterior and predictive probabilities, "
                                       "decision; recorded in an append-only ledger")
    p.add_argument("--design", required=True, help="monitoring design (models/interim_design.toml)")
    p.add_argument("--data", required=True, help="dated patient table (CSV or Parquet)")
    p.add_argument("--cut", required=True, help="data cut date, YYYY-MM-DD")
    p.add_argument("--ledger", required=True, help="SQLite ledger file (created if missing)")
    p.add_argument("--out", help="report folder (replaced atomically at each look)")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 (recording nothing) when the convergence gate fails")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("oc", help="operating characteristics of a monitoring design by "
                                  "simulating whole trials (fast posterior path)")
    p.add_argument("--design", required=True, help="monitoring design with [scenarios]")
    p.add_argument("--scenario", action="append",
                   help="scenario name from the design (repeatable; default: all)")
    p.add_argument("--n-trials", type=int, default=1000, help="simulated trials per scenario")
    p.add_argument("--scheduler", help="Dask scheduler address (default: local processes)")
    p.add_argument("--workers", type=int, help="local worker processes (default: all CPUs)")
    p.add_argument("--checkpoint", help="folder for checkpoints; an interrupted run resumes")
    p.add_argument("--ppos", choices=("normal", "simulation"), default="normal",
                   help="PPoS at simulated looks: closed-form normal approximation (default) "
                        "or simulated continuations (slow)")
    p.add_argument("--out", help="folder for oc.json, oc.csv, oc.png, report.html")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_oc)
