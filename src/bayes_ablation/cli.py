"""Command line: parse arguments, call the library, print, exit.

Exit codes: 0 success · 1 unexpected failure · 2 invalid input (data, spec, existing output)
· 3 diagnostics gate failed under ``--strict``. Heavy libraries (PyMC, ArviZ) are imported only
inside the commands that need them, so ``bayes-ablation --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bayes_ablation.errors import BayesAblationError

_T0 = time.perf_counter()


def _say(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _ensure_hash_seed(argv: Sequence[str] | None) -> None:
    """Re-execute with PYTHONHASHSEED=0 so the same seed gives the same draws in every process
    (see :mod:`bayes_ablation.inference`)."""
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
    from bayes_ablation.bundle import atomic_write_text
    from bayes_ablation.data.simulate import simulate_trial

    out = Path(args.out)
    if out.exists() and not args.force:
        raise BayesAblationError(f"{out} exists; pass --force to replace it")
    sim = simulate_trial(args.n_patients, args.sites, args.log_hr, seed=args.seed,
                         weibull_shape=args.shape, median_ref_months=args.median_ref,
                         sigma_site=args.sigma_site, accrual_months=args.accrual,
                         followup_months=args.followup, dropout_per_month=args.dropout,
                         arms=tuple(args.arms))
    atomic_write_text(out, sim.frame.to_csv(index=False))
    if args.truth:
        import json
        atomic_write_text(Path(args.truth), json.dumps(sim.truth, indent=2))
    n_events = int(sim.frame["event"].sum())
    print(f"wrote {out}: {len(sim.frame)} patients, {args.sites} sites, {n_events} events "
          f"(true log HR {args.log_hr})")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from bayes_ablation.bundle import check_destination
    from bayes_ablation.spec import load_spec

    spec = load_spec(args.spec)
    if args.draws or args.tune or args.chains or args.seed is not None or args.sampler:
        changes = {k: v for k, v in (("draws", args.draws), ("tune", args.tune),
                                     ("chains", args.chains), ("seed", args.seed),
                                     ("backend", args.sampler)) if v is not None}
        spec = spec.with_sampler(**changes)
        _say(f"sampler settings overridden on the command line: {changes}")
    check_destination(args.out, args.force)
    fitter = FITTERS.get(spec.endpoint)
    if fitter is None:
        raise BayesAblationError(f"'fit' does not handle endpoint {spec.endpoint!r}")
    result = fitter(spec, args)
    _say(f"writing bundle {args.out}")
    result.save(args.out, force=args.force, posterior_format=args.format, progress=not args.quiet)
    _print_result(result, args.out)
    if not result.diagnostics.passed and args.strict:
        _say("diagnostics gate FAILED (--strict): exit code 3")
        return 3
    return 0


def _fit_pfs(spec, args: argparse.Namespace):
    from bayes_ablation.analysis import fit
    from bayes_ablation.data.schema import read_patients

    patients = read_patients(args.data, spec)
    _say(f"validated {patients.n_patients} patients in {len(patients.sites)} sites, "
         f"arms {list(patients.arms)} ({int(patients.event.sum())} events)")
    _say(f"fitting {spec.name} ({spec.model}, {spec.sampler.backend}, "
         f"{spec.sampler.chains}x{spec.sampler.draws} draws)")
    return fit(spec, patients, progress=not args.quiet and sys.stderr.isatty())


FITTERS: dict[str, Callable] = {"pfs": _fit_pfs}


def _print_result(result, out: str) -> None:
    d = result.diagnostics
    gate = "passed" if d.passed else "FAILED: " + "; ".join(d.failures)
    print(f"bundle: {out}")
    print(f"diagnostics gate {gate}")
    table = result.estimand_table
    for _, row in table[table["estimand"].isin(["hr", "rmst_difference"])].iterrows():
        print(f"  {row['label']:<45} median {row['median']:.3f}  "
              f"95% [{row['q2.5']:.3f}, {row['q97.5']:.3f}]")
    for k, v in result.probabilities.items():
        print(f"  {k:<45} {v:.3f}")


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
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--truth", help="also write the true parameters as JSON here")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("fit", help="run a pre-specified analysis and write a result bundle")
    p.add_argument("--spec", required=True, help="analysis spec (models/*.toml)")
    p.add_argument("--data", required=True, help="patient table (CSV or Parquet)")
    p.add_argument("--out", required=True, help="result bundle folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 when the convergence gate fails")
    p.add_argument("--format", choices=("netcdf", "zarr"), default="netcdf",
                   help="posterior file format")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("sampler overrides (recorded; change the spec hash)")
    g.add_argument("--draws", type=int)
    g.add_argument("--tune", type=int)
    g.add_argument("--chains", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--sampler", choices=("nutpie", "pymc"))
    p.set_defaults(func=cmd_fit)
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


#: other modules add sub-commands here: each item is ``register(subparsers)``
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _register_builtin_extras() -> None:
    from bayes_ablation.validation.cli import register_validate  # light: argparse only

    EXTRA_COMMANDS.append(register_validate)


_register_builtin_extras()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("simulate",):
        _ensure_hash_seed(argv)
    try:
        return int(args.func(args) or 0)
    except BayesAblationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
