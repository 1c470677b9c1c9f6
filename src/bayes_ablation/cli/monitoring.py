"""CLI sub-commands ``monitor`` and ``oc`` (registered in :mod:`bayes_ablation.cli.main`).

Only argparse here at import time; the work is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys

from bayes_ablation.cli.adam import add_arguments as add_adam_arguments
from bayes_ablation.cli.console import say


def cmd_monitor(args: argparse.Namespace) -> int:
    from bayes_ablation.cli import adam
    from bayes_ablation.workflows.monitoring.api import interim_look

    data = args.data
    design = args.design
    if adam.wants_adam(args):
        from bayes_ablation.spec.design import load_design

        design = load_design(args.design)
        data = adam.read(args, design.spec, require_dates=True).dated
    look = interim_look(design, data, args.cut, ledger=args.ledger, out=args.out,
                        strict=args.strict, progress=not args.quiet and sys.stderr.isatty(),
                        say=say, figure_format=args.figure_format, external=args.external)
    if not look.recorded:
        say("diagnostics gate FAILED (--strict): nothing recorded, exit code 3")
        return 3
    _print_look(look.result, look.outcome.message)
    if look.report is not None:
        print(f"report: {look.report}")
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
    if r.get("borrowing") is not None:
        b = r["borrowing"]
        ext = b.get("external")
        borrowed = (b.get("summary") or {}).get("amount_borrowed") or {}
        amount = borrowed.get("effective_external_events")
        print(f"  borrowing  {b['method']}"
              + (f" of {ext['n_patients']} external controls ({ext['n_events']} events; "
                 f"{ext['source']}, SHA-256 {str(ext['sha256'])[:12]}…)" if ext else "")
              + (f"; effective external events {amount:.1f}" if amount is not None else ""))
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
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.api import operating_characteristics

    design = load_design(args.design)
    scenarios = args.scenario or list(design.scenarios)
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else \
        f"{args.workers or 'all'} local processes"
    say(f"simulating {args.n_trials} trials x {len(scenarios)} scenarios on {where}"
        + (f", checkpoints in {args.checkpoint}" if args.checkpoint else ""))
    study = operating_characteristics(design, scenarios, args.n_trials, ppos_method=args.ppos,
                                      scheduler=args.scheduler,
                                      checkpoint_dir=args.checkpoint, workers=args.workers,
                                      progress=not args.quiet, out=args.out,
                                      borrowing=args.borrowing,
                                      external_offsets=args.external_offset or ())
    print(f"operating characteristics of {design.name} ({args.n_trials} trials per scenario; "
          f"PPoS: {args.ppos}); estimate ± Monte Carlo SE")
    table = study.table
    keys = ["borrowing", "scenario"] if "borrowing" in table else ["scenario"]
    for key, group in table.groupby(keys, sort=False):
        name = key[-1] if isinstance(key, tuple) else key
        log_hr = float(study.oc["scenarios"][name]["true_log_hr"])
        head = f"  scenario {name} (true log HR {log_hr:g}"
        if "borrowing" in table:
            offset = study.oc["borrowing"]["external_log_cumhaz_offset"][name]
            head += f", external offset {offset:+g}; borrowing {key[0]}"
        print(head + ")")
        for _, row in group.iterrows():
            print(f"    {row['quantity']:<42} {row['estimate']:10.4f} ± {row['mcse']:.4f}")
    if "borrowing" in study.oc:
        from bayes_ablation.workflows.monitoring.oc import borrowing_table

        print("borrowing side by side: P(efficacy declared) ± MC SE (same simulated trials)")
        print(borrowing_table(study.oc).to_string(index=False))
    if study.report is not None:
        print(f"report: {study.report}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="interim look: posterior and predictive probabilities, "
                                       "decision; recorded in an append-only ledger")
    p.add_argument("--design", required=True, help="monitoring design (models/interim_design.toml)")
    p.add_argument("--data", help="dated patient table (CSV or Parquet); or ADaM input below")
    p.add_argument("--cut", required=True, help="data cut date, YYYY-MM-DD")
    p.add_argument("--ledger", required=True, help="SQLite ledger file (created if missing)")
    p.add_argument("--out", help="report folder (replaced atomically at each look)")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 (recording nothing) when the convergence gate fails")
    p.add_argument("--figure-format", choices=("png", "svg", "pdf"), default="png",
                   help="the report's figures/ also holds each figure as SVG or PDF for publication "
                        "(PNG always: the report embeds it)")
    p.add_argument("--external", help="external (historical) control patients, same columns as "
                                      "the patient table, for the analysis spec's [borrowing]; "
                                      "the same file at every look")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_adam_arguments(p)
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
    p.add_argument("--borrowing", action="append",
                   help="borrowing method of the final analysis to compare on the same trials "
                        "(repeatable): none, full, power:A0, or the spec's commensurate / map "
                        "(default: the spec's method and none)")
    p.add_argument("--external-offset", action="append", type=float,
                   help="also simulate every scenario with the external controls' log "
                        "cumulative hazard shifted by this much (repeatable; e.g. 0.5 -0.5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_oc)
