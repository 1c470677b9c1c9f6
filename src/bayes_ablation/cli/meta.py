"""``bayes-ablation meta``: pool studies' hazard ratios and write a result bundle.

Registered in :data:`bayes_ablation.cli.main.EXTRA_COMMANDS`; only argparse is imported until the
command runs.
"""

from __future__ import annotations

import argparse
import sys

METHODS = ("auto", "quadrature", "mcmc")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "meta", help="random-effects meta-analysis of hazard ratios (exact or MCMC), with "
                     "optional patient data; writes a result bundle",
        description="Pool the studies of a study table as the spec (endpoint 'meta') "
                    "pre-specifies. The table has one row per study: 'study, log_hr, se' or "
                    "'study, hr, ci_low, ci_high[, ci_level]' or, for patient data, "
                    "'study, ipd_file, reference_arm'; other columns (e.g. source) are kept.")
    p.add_argument("--spec", required=True, help="analysis spec (e.g. models/meta_loghr.toml)")
    p.add_argument("--data", required=True, help="study table (CSV or Parquet)")
    p.add_argument("--out", required=True, help="result bundle folder to create")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="quadrature: exact posterior, instant (normal-normal model, normal "
                        "prior on mu); mcmc: NUTS (any prior; needed with patient data; the "
                        "report then checks it against the exact posterior); auto (default): "
                        "quadrature when it applies, else mcmc")
    p.add_argument("--stage1", choices=("weibull", "cox"), default="weibull",
                   help="how IPD trials are summarised for the two-stage comparison and the "
                        "prior-sensitivity table (default: Weibull PH maximum likelihood)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 when the MCMC convergence gate fails")
    p.add_argument("--format", choices=("netcdf", "zarr"), default="netcdf",
                   help="posterior file format")
    p.add_argument("--figure-format", choices=("png", "svg", "pdf"), default="png",
                   help="figures/ also holds each figure as SVG or PDF for publication "
                        "(PNG always: the report embeds it)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("sampler overrides for --method mcmc (recorded; change the spec "
                             "hash)")
    g.add_argument("--draws", type=int)
    g.add_argument("--tune", type=int)
    g.add_argument("--chains", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--sampler", choices=("nutpie", "pymc"))
    p.set_defaults(func=cmd_meta)


def choose_method(spec: object, requested: str) -> str:
    """'auto' → quadrature when it is exact for the spec (normal-normal, normal μ prior)."""
    if requested != "auto":
        return requested
    exact = (getattr(spec, "model", None) == "normal_normal"
             and spec.priors["mu"].family == "normal")
    return "quadrature" if exact else "mcmc"


def cmd_meta(args: argparse.Namespace) -> int:
    from bayes_ablation.cli.console import say
    from bayes_ablation.core.files import check_destination
    from bayes_ablation.data.studies import read_studies
    from bayes_ablation.spec.plan import load_spec
    from bayes_ablation.workflows.meta import fit_meta

    say = say if not args.quiet else (lambda msg: None)
    spec = load_spec(args.spec)
    overrides = {k: v for k, v in (("draws", args.draws), ("tune", args.tune),
                                   ("chains", args.chains), ("seed", args.seed),
                                   ("backend", args.sampler)) if v is not None}
    if overrides:
        spec = spec.with_sampler(**overrides)
        say(f"sampler settings overridden on the command line: {overrides}")
    check_destination(args.out, args.force)
    studies = read_studies(args.data)
    n_ipd = len(studies.ipd)
    say(f"validated {studies.n_studies} studies ({n_ipd} with patient data) from {args.data}")
    for w in studies.warnings:
        print(f"warning: {w}", file=sys.stderr)
    method = choose_method(spec, args.method)
    if method == "mcmc":
        say(f"fitting {spec.name} ({spec.model}) by MCMC ({spec.sampler.backend}, "
            f"{spec.sampler.chains}x{spec.sampler.draws} draws; compiling takes ~20 s)")
    else:
        say(f"computing the exact posterior of {spec.name} by quadrature")
    result = fit_meta(spec, studies, method=method, stage1_method=args.stage1,
                      progress=not args.quiet and sys.stderr.isatty())
    say(f"writing bundle {args.out}")
    result.save(args.out, force=args.force, posterior_format=args.format,
                progress=not args.quiet, figure_format=args.figure_format)
    print_meta_result(result, args.out)
    if not result.gate_passed and args.strict:
        say("diagnostics gate FAILED (--strict): exit code 3")
        return 3
    return 0


def print_meta_result(result: object, out: str) -> None:
    r = result
    table = r.estimand_table
    q = [c for c in table.columns if c.startswith("q")]
    method = r.details["meta"]["method"]
    print(f"bundle: {out}")
    if r.diagnostics is None:
        print("method: exact quadrature (no sampling)")
    else:
        d = r.diagnostics
        gate = "passed" if d.passed else "FAILED: " + "; ".join(d.failures)
        print(f"method: {method}; diagnostics gate {gate}")
        comparison = r.details["meta"]["comparison"]
        if comparison is not None and len(comparison):
            print(f"MCMC vs exact: largest gap {comparison['gap_in_mcse'].max():.2f} MCSE")
    names = {"hr_mu": "pooled HR exp(mu)", "hr_theta_new": "new-study HR exp(theta_new)",
             "tau": "tau (between-study sd)"}
    for label, name in names.items():
        row = table[table["label"] == label].iloc[0]
        print(f"  {name:<32} median {row['median']:.3f}  [{row[q[0]]:.3f}, {row[q[1]]:.3f}]")
    for k, v in r.probabilities.items():
        print(f"  {k:<32} {v:.3f}")
