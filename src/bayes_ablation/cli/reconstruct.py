"""``bayes-ablation reconstruct``: patient data of one arm from a digitised KM curve (Guyot 2012).

Registered in :data:`bayes_ablation.cli.main.EXTRA_COMMANDS`; only argparse is imported until the
command runs.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct", help="reconstruct patient data from a digitised Kaplan–Meier curve and "
                            "its numbers at risk (Guyot et al. 2012)",
        description="Writes one row per patient (patient_id, arm, time_months, event) and "
                    "reports how well the reconstructed Kaplan–Meier curve matches the "
                    "digitised one. Every change made to the digitised points is reported.")
    p.add_argument("--curve", required=True, help="digitised curve CSV: time_months,survival "
                                                  "(fraction or percent)")
    p.add_argument("--at-risk", required=True, dest="at_risk",
                   help="numbers at risk CSV: time_months,n_at_risk (first row at 0)")
    p.add_argument("--arm", required=True, help="arm label written in the output")
    p.add_argument("--site", help="site (or trial) label written as a 'site' column, so the "
                   "output is a patient table `fit` reads (arms of one trial: the same label)")
    p.add_argument("--total-events", type=int, dest="total_events",
                   help="published number of events of the arm (matched exactly)")
    p.add_argument("--out", required=True, help="patient table CSV to write")
    p.add_argument("--figure", help="overlay figure (PNG) to write")
    p.add_argument("--report", help="accuracy report (JSON) to write")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_reconstruct)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from bayes_ablation.cli.console import UsageError
    from bayes_ablation.core.files import atomic_write_text, json_default, temporary_sibling
    from bayes_ablation.data.reconstruct import format_report, read_table, reconstruct_ipd

    outs = [Path(p) for p in (args.out, args.figure, args.report) if p]
    for out in outs:
        if out.exists() and not args.force:
            raise UsageError(f"{out} exists; pass --force to replace it")
    for name in (args.curve, args.at_risk):
        if not Path(name).is_file():
            raise UsageError(f"{name}: no such file")
    rec = reconstruct_ipd(read_table(args.curve), read_table(args.at_risk), args.arm,
                          args.total_events, curve_name=args.curve, at_risk_name=args.at_risk,
                          site=args.site)
    fig = None
    if args.figure:
        from bayes_ablation.report.reconstruct import reconstruction_overlay
        fig = reconstruction_overlay(rec, args.arm)
    atomic_write_text(args.out, rec.ipd.to_csv(index=False))
    if args.report:
        atomic_write_text(args.report, json.dumps({"arm": args.arm, **rec.accuracy}, indent=2,
                                                  default=json_default))
    if fig is not None:
        path = Path(args.figure)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        try:
            fig.savefig(tmp, format="png", dpi=120)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    print(format_report(rec, args.arm))
    print(f"wrote {', '.join(map(str, outs))}")
    return 0
