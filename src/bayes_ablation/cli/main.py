"""Command line: parse arguments, call the library, print, exit.

Exit codes: 0 success · 1 unexpected failure · 2 invalid input (data, spec, existing output)
· 3 diagnostics gate failed under ``--strict``. Heavy libraries (PyMC, ArviZ) are imported only
inside the commands that need them, so ``bayes-ablation --help`` is instant.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bayes_ablation.cli.console import UsageError, configure_logging, say
from bayes_ablation.errors import BayesAblationError


def _ensure_hash_seed(argv: Sequence[str] | None) -> None:
    """Re-execute with PYTHONHASHSEED=0 so the same seed gives the same draws in every process
    (see :mod:`bayes_ablation.inference.sampling`)."""
    if argv is not None:  # called from Python: never replace the caller's process
        return
    if os.environ.get("PYTHONHASHSEED") is not None or os.environ.get("BAYES_ABLATION_NO_REEXEC"):
        return
    args = list(sys.argv[1:])
    env = dict(os.environ, PYTHONHASHSEED="0")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "bayes_ablation", *args], env)


# ------------------------------------------------------------------------------------ commands

def cmd_simulate(args: argparse.Namespace) -> int:
    from bayes_ablation.core.files import atomic_write_text
    from bayes_ablation.data.simulate import simulate_trial
    from bayes_ablation.data.simulate_dated import simulate_dated_trial

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to replace it")
    kwargs = {"start_date": args.start_date} if args.start_date else {}
    sim = (simulate_dated_trial if args.start_date else simulate_trial)(
        args.n_patients, args.sites, args.log_hr, seed=args.seed,
        weibull_shape=args.shape, median_ref_months=args.median_ref,
        sigma_site=args.sigma_site, accrual_months=args.accrual,
        followup_months=args.followup, dropout_per_month=args.dropout,
        arms=tuple(args.arms), **kwargs)
    atomic_write_text(out, sim.frame.to_csv(index=False))
    if args.truth:
        import json
        atomic_write_text(Path(args.truth), json.dumps(sim.truth, indent=2))
    n_events = int(sim.details["event_time_months"].le(sim.details["censor_time_months"]).sum())
    print(f"wrote {out}: {len(sim.frame)} patients, {args.sites} sites, {n_events} events "
          f"(true log HR {args.log_hr})")
    return 0


def cmd_simulate_cohort(args: argparse.Namespace) -> int:
    import json

    from bayes_ablation.core.files import atomic_write_text
    from bayes_ablation.data.simulate_cohort import simulate_cohort

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to replace it")
    sim = simulate_cohort(args.n_patients, args.sites, args.log_hr, seed=args.seed,
                          arms=tuple(args.arms))
    atomic_write_text(out, sim.frame.to_csv(index=False))
    if args.truth:
        atomic_write_text(Path(args.truth), json.dumps(sim.truth, indent=2))
    t = sim.truth
    print(f"wrote {out}: {len(sim.frame)} patients, {args.sites} sites, "
          f"{int(sim.frame['event'].sum())} events, {100 * t['share_treated']:.0f}% "
          f"{args.arms[1]} (confounded); true conditional log HR {t['log_hr']:g}, sample ATE "
          f"of S(24) {t['sate_survival_difference'][1]:+.3f}")
    return 0


def cmd_simulate_lr(args: argparse.Namespace) -> int:
    import json

    from bayes_ablation.core.files import atomic_write_text
    from bayes_ablation.data.simulate_lr import simulate_lr_trial

    outs = [Path(args.out_patients), Path(args.out_lesions)]
    for out in outs:
        if out.exists() and not args.force:
            raise UsageError(f"{out} exists; pass --force to replace it")
    sim = simulate_lr_trial(args.n_patients, args.sites, args.log_hr, seed=args.seed,
                            sigma_patient=args.sigma_patient, sigma_site=args.sigma_site,
                            lr_cuminc_24_ref=args.lr_24, death_median_months=args.death_median,
                            arms=tuple(args.arms))
    atomic_write_text(outs[0], sim.patients.to_csv(index=False))
    atomic_write_text(outs[1], sim.lesions.to_csv(index=False))
    if args.truth:
        atomic_write_text(Path(args.truth), json.dumps(sim.truth, indent=2))
    print(f"wrote {outs[0]} ({len(sim.patients)} patients, {int(sim.patients['died'].sum())} "
          f"deaths) and {outs[1]} ({len(sim.lesions)} lesions, "
          f"{int(sim.lesions['lr_upper_months'].notna().sum())} with local recurrence; true "
          f"LR log HR {args.log_hr})")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from bayes_ablation.core.files import check_destination
    from bayes_ablation.spec.plan import load_spec

    spec = load_spec(args.spec)
    if args.draws or args.tune or args.chains or args.seed is not None or args.sampler:
        changes = {k: v for k, v in (("draws", args.draws), ("tune", args.tune),
                                     ("chains", args.chains), ("seed", args.seed),
                                     ("backend", args.sampler)) if v is not None}
        spec = spec.with_sampler(**changes)
        say(f"sampler settings overridden on the command line: {changes}")
    check_destination(args.out, args.force)
    fitter = FITTERS.get(spec.endpoint)
    if getattr(args, "external", None) and spec.endpoint != "pfs":
        raise UsageError(f"--external (external control patients) is for endpoint 'pfs' with "
                         f"a [borrowing] section; spec {spec.name!r} is {spec.endpoint!r}")
    if fitter is None:
        hint = " (pool studies with 'bayes-ablation meta')" if spec.endpoint == "meta" else ""
        raise UsageError(f"'fit' does not handle endpoint {spec.endpoint!r}{hint}")
    result = fitter(spec, args)
    say(f"writing bundle {args.out}")
    result.save(args.out, force=args.force, posterior_format=args.format, progress=not args.quiet,
                figure_format=args.figure_format)
    _print_result(result, args.out)
    if not result.diagnostics.passed and args.strict:
        say("diagnostics gate FAILED (--strict): exit code 3")
        return 3
    return 0


def _fit_pfs(spec, args: argparse.Namespace):
    from bayes_ablation.cli import adam
    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.workflows.fit import fit

    patients = (adam.read(args, spec).patients if adam.wants_adam(args)
                else read_patients(args.data, spec))
    say(f"validated {patients.n_patients} patients in {len(patients.sites)} sites, "
         f"arms {list(patients.arms)} ({int(patients.event.sum())} events)")
    for warning in patients.warnings:
        say(f"warning: {warning}")
    say(f"fitting {spec.name} ({spec.model}, {spec.sampler.backend}, "
         f"{spec.sampler.chains}x{spec.sampler.draws} draws)")
    external = None
    if getattr(args, "external", None):
        from bayes_ablation.data.borrowing import read_external

        external = read_external(args.external, spec)
        say(f"validated {external.n_patients} external control patients "
            f"({int(external.event.sum())} events) from {args.external}")
    return fit(spec, patients, progress=not args.quiet and sys.stderr.isatty(),
               log_likelihood=_log_likelihood_option(args), external=external)


def _fit_local_recurrence(spec, args: argparse.Namespace):
    from bayes_ablation.cli import adam
    from bayes_ablation.data.lesions import read_lr_data
    from bayes_ablation.workflows.fit import fit

    if adam.wants_adam(args):
        raise UsageError("ADaM input (--adtte/--adsl) is for time-to-event endpoints; the "
                          "local_recurrence endpoint reads --data and --lesions")
    if not args.lesions:
        raise UsageError("the local_recurrence endpoint needs --lesions (the lesion table) "
                          "next to --data (the patient table)")
    lesions = read_lr_data(args.data, args.lesions, spec)
    patients = lesions.patients
    say(f"validated {patients.n_patients} patients ({int(patients.event.sum())} deaths) in "
         f"{len(patients.sites)} sites, {lesions.n_lesions} lesions "
         f"({int(lesions.observed.sum())} with local recurrence), arms {list(patients.arms)}")
    for warning in lesions.warnings:
        say(f"warning: {warning}")
    say(f"fitting {spec.name} ({spec.model}, {spec.sampler.backend}, "
         f"{spec.sampler.chains}x{spec.sampler.draws} draws)")
    return fit(spec, patients, lesions=lesions, progress=not args.quiet and sys.stderr.isatty(),
               log_likelihood=_log_likelihood_option(args))


def _log_likelihood_option(args: argparse.Namespace) -> bool | str:
    return {"bounded": True, "all": "all", "none": False}[args.log_likelihood]


FITTERS: dict[str, Callable] = {"pfs": _fit_pfs, "local_recurrence": _fit_local_recurrence}


def cmd_compare(args: argparse.Namespace) -> int:
    from bayes_ablation.core.files import atomic_write_text
    from bayes_ablation.workflows.compare import compare_bundles

    comparison = compare_bundles(args.bundles)
    print(comparison.to_text())
    if args.csv:
        atomic_write_text(Path(args.csv), comparison.table.to_csv())
        say(f"wrote {args.csv}")
    return 0


def _print_result(result, out: str) -> None:
    d = result.diagnostics
    gate = "passed" if d.passed else "FAILED: " + "; ".join(d.failures)
    print(f"bundle: {out}")
    print(f"diagnostics gate {gate}")
    table = result.estimand_table
    rows = table[table["label"].isin(result.headline)]
    width = max([45, *(len(str(label)) for label in rows["label"]),
                 *(len(k) for k in result.probabilities)])
    for _, row in rows.iterrows():
        print(f"  {row['label']:<{width}} median {row['median']:.3f}  "
              f"95% [{row['q2.5']:.3f}, {row['q97.5']:.3f}]")
    for k, v in result.probabilities.items():
        print(f"  {k:<{width}} {v:.3f}")


# --------------------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-ablation",
        description="Bayesian analysis of thermal-ablation trials for colorectal liver "
                    "metastases: hierarchical survival models, interim monitoring, evidence "
                    "pooling.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="simulate a multi-site trial (patient table CSV)")
    p.add_argument("--n-patients", type=int, default=400)
    p.add_argument("--sites", type=int, default=8)
    p.add_argument("--log-hr", type=float, default=-0.25, help="true log hazard ratio")
    p.add_argument("--shape", type=float, default=1.2, help="Weibull shape k")
    p.add_argument("--median-ref", type=float, default=18.0,
                   help="median PFS (months) of the reference arm at an average site")
    p.add_argument("--sigma-site", type=float, default=0.3)
    p.add_argument("--accrual", type=float, default=24.0, help="accrual period (months)")
    p.add_argument("--followup", type=float, default=36.0,
                   help="follow-up after the last patient enters (months)")
    p.add_argument("--dropout", type=float, default=0.005, help="dropout hazard per month")
    p.add_argument("--arms", nargs="+", default=["postoperative", "perioperative"],
                   help="arm labels, reference first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start-date", help="write a dated table (randomised_on, progressed_on, "
                   "last_followup_on) with the first randomisation on this date (YYYY-MM-DD)")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--truth", help="also write the true parameters as JSON here")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("simulate-cohort", help="simulate a confounded (non-randomised) cohort "
                                               "with known causal truth (patient table CSV)")
    p.add_argument("--n-patients", type=int, default=668)
    p.add_argument("--sites", type=int, default=6)
    p.add_argument("--log-hr", type=float, default=-0.25,
                   help="true conditional log hazard ratio of the treatment arm")
    p.add_argument("--arms", nargs=2, default=["postoperative", "perioperative"],
                   help="arm labels, reference first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--truth", help="also write the truth (conditional log HR, sample ATE/ATT of "
                                   "S(t) and RMST) as JSON here")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_simulate_cohort)

    p = sub.add_parser("simulate-lr", help="simulate lesion-level local recurrence (patient "
                                           "and lesion tables CSV)")
    p.add_argument("--n-patients", type=int, default=300)
    p.add_argument("--sites", type=int, default=6)
    p.add_argument("--log-hr", type=float, default=-0.4, help="true log hazard ratio of LR")
    p.add_argument("--lr-24", type=float, default=0.07,
                   help="24-month LR probability of a reference lesion (2 cm, margin >= 5 mm, "
                        "MWA) in the reference arm, typical patient, no death")
    p.add_argument("--sigma-patient", type=float, default=0.8, help="patient frailty sd")
    p.add_argument("--sigma-site", type=float, default=0.3)
    p.add_argument("--death-median", type=float, default=60.0,
                   help="median time to death (months)")
    p.add_argument("--arms", nargs=2, default=["postoperative", "perioperative"],
                   help="arm labels, reference first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out-patients", required=True, help="patient table CSV to write")
    p.add_argument("--out-lesions", required=True, help="lesion table CSV to write")
    p.add_argument("--truth", help="also write the true parameters as JSON here")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=cmd_simulate_lr)

    p = sub.add_parser("fit", help="run a pre-specified analysis and write a result bundle")
    p.add_argument("--spec", required=True, help="analysis spec (models/*.toml)")
    p.add_argument("--data", help="patient table (CSV or Parquet); or ADaM input below")
    p.add_argument("--lesions", help="lesion table (CSV or Parquet) for the local_recurrence "
                                     "endpoint: patient_id, lesion_id, lr_lower_months, "
                                     "lr_upper_months[, size_cm, margin_mm, modality]")
    p.add_argument("--external", help="external (historical) control patients, same columns as "
                                      "--data, for the spec's [borrowing] (pfs)")
    p.add_argument("--out", required=True, help="result bundle folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 when the convergence gate fails")
    p.add_argument("--format", choices=("netcdf", "zarr"), default="netcdf",
                   help="posterior file format")
    p.add_argument("--figure-format", choices=("png", "svg", "pdf"), default="png",
                   help="figures/ also holds each figure as SVG or PDF for publication "
                        "(PNG always: the report embeds it)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--log-likelihood", choices=("bounded", "all", "none"), default="bounded",
                   dest="log_likelihood",
                   help="pointwise log-likelihood for LOO: 'bounded' (default) thins draws to "
                        "at most 1.5 million values, 'all' stores every draw for every "
                        "patient, 'none' skips it")
    _adam_arguments(p)
    g = p.add_argument_group("sampler overrides (recorded; change the spec hash)")
    g.add_argument("--draws", type=int)
    g.add_argument("--tune", type=int)
    g.add_argument("--chains", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--sampler", choices=("nutpie", "pymc"))
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("compare", help="compare result bundles by PSIS-LOO (Pareto-k diagnostics)")
    p.add_argument("bundles", nargs="+", help="result bundles of fits of the same data")
    p.add_argument("--csv", help="also write the comparison table as CSV here")
    p.set_defaults(func=cmd_compare)
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


def _adam_arguments(p: argparse.ArgumentParser) -> None:
    from bayes_ablation.cli.adam import add_arguments  # light: argparse only

    add_arguments(p)


def _meta_command(sub: argparse._SubParsersAction) -> None:
    from bayes_ablation.cli.meta import register  # light: argparse only

    register(sub)


#: other modules add sub-commands here: each item is ``register(subparsers)``
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_meta_command]


def _monitoring_commands(sub: argparse._SubParsersAction) -> None:
    from bayes_ablation.cli.monitoring import register

    register(sub)


EXTRA_COMMANDS.append(_monitoring_commands)


def _reconstruct_command(sub: argparse._SubParsersAction) -> None:
    from bayes_ablation.cli.reconstruct import register  # light: argparse only

    register(sub)


EXTRA_COMMANDS.append(_reconstruct_command)


def _register_builtin_extras() -> None:
    from bayes_ablation.cli.validation import register_validate  # light: argparse only

    EXTRA_COMMANDS.append(register_validate)


_register_builtin_extras()


#: cyclic-GC thresholds of a command-line process (Python's default: 700, 10, 10). The
#: command allocates millions of long-lived objects (PyMC/PyTensor graphs, numba types, the
#: imported modules) and little cyclic garbage: at the default the collector re-walked them
#: for 0.68 s of the demo's ``fit`` (754 + 68 + 5 collections); at these thresholds it runs
#: for < 0.02 s, peak memory 442 MB instead of 439 MB (gc.callbacks, 2026-12-07). Longer
#: commands (validation studies) still collect every 10⁶ net allocations.
CLI_GC_THRESHOLDS = (1_000_000, 10, 10)


def _process_gc(argv: Sequence[str] | None) -> None:
    """A command-line process (not a call from Python) collects cycles less often."""
    if argv is None:
        gc.set_threshold(*CLI_GC_THRESHOLDS)


def _before_exit(argv: Sequence[str] | None) -> None:
    """The command is done (every result file written and closed): move the heap to the
    collector's permanent generation, so the interpreter's shutdown does not walk it once more
    (measured ~0.9 s of a 5 s ``fit``). Exit handlers still run; nothing is skipped but that
    last collection. Only in a command-line process: a Python caller keeps its collector."""
    if argv is None:
        gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    _process_gc(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("simulate", "simulate-lr", "simulate-cohort", "oc"):
        _ensure_hash_seed(argv)
    configure_logging(quiet=bool(getattr(args, "quiet", False)))
    try:
        return int(args.func(args) or 0)
    except BayesAblationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        _before_exit(argv)


if __name__ == "__main__":
    sys.exit(main())
