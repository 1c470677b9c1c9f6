"""``bayes-ablation validate sbc|coverage``: argument parsing and the two command handlers.

Light at import (argparse only); the handlers import the library.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

#: draws per chain of validation fits unless overridden: the spec's, at most this many (the
#: spec's chains, tuning, target acceptance and adaptation are kept)
VALIDATION_MAX_DRAWS = 1000


def register_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="self-validation: simulation-based calibration (sbc) "
                                        "and frequentist coverage of a spec's model")
    vsub = p.add_subparsers(dest="study", required=True, metavar="STUDY")

    s = vsub.add_parser("sbc", help="simulation-based calibration: prior draws → simulated "
                                    "trials → fits → rank uniformity per key parameter")
    _common(s)
    s.add_argument("--rank-draws", type=int, default=99,
                   help="L: posterior draws (thinned evenly) the true value is ranked among; "
                        "ranks are 0 … L (default 99)")
    s.set_defaults(func=cmd_validate_sbc)

    c = vsub.add_parser("coverage", help="fixed-truth simulation: coverage of 50/80/95%% "
                                         "intervals, bias and RMSE of the posterior mean")
    _common(c)
    c.add_argument("--truth", action="append", default=[], metavar="NAME=VALUE",
                   help="true value of a simulator parameter (repeat for each; the error "
                        "message lists the ones needed)")
    c.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.8, 0.95],
                   choices=[0.5, 0.8, 0.9, 0.95], help="central interval levels")
    c.set_defaults(func=cmd_validate_coverage, rank_draws=99)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", required=True, help="analysis spec (models/*.toml)")
    p.add_argument("--n-sims", type=int, required=True, help="number of simulated trials")
    p.add_argument("--out", help="result bundle folder (default results/validation/"
                                 "<spec name>_<study>)")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786); default: "
                                       "local processes")
    p.add_argument("--workers", type=int, help="local worker processes (default: all CPUs)")
    p.add_argument("--checkpoint", help="folder of per-simulation checkpoints; a re-run with "
                                        "the same settings resumes from it (default "
                                        "<out>.checkpoint, removed after success)")
    p.add_argument("--design", action="append", default=[], metavar="KEY=VALUE",
                   help="design of the simulated trials, e.g. n_patients=400 (repeat)")
    p.add_argument("--seed", type=int, help="study seed (default: the spec's sampler seed)")
    p.add_argument("--chains", type=int, help="chains per fit (default: the spec's)")
    p.add_argument("--draws", type=int, help="draws per chain (default: the spec's, at most "
                                            f"{VALIDATION_MAX_DRAWS})")
    p.add_argument("--tune", type=int, help="tuning steps (default: the spec's)")
    p.add_argument("--force", action="store_true", help="replace an existing --out bundle")
    p.add_argument("--strict", action="store_true",
                   help="exit with code 3 when the study fails (SBC: not calibrated or failed "
                        "simulations; coverage: failed simulations)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _prepare(args: argparse.Namespace, study: str) -> tuple[Any, Any, Path, Path, dict]:
    from bayes_ablation.cli.console import say
    from bayes_ablation.core.files import check_destination
    from bayes_ablation.endpoints.sbc import ValidationSetupError
    from bayes_ablation.spec.plan import load_spec

    source = load_spec(args.spec)
    changes = {"chains": args.chains or source.sampler.chains,
               "draws": args.draws or min(source.sampler.draws, VALIDATION_MAX_DRAWS)}
    if args.tune is not None:
        changes["tune"] = args.tune
    changes = {k: v for k, v in changes.items() if getattr(source.sampler, k) != v}
    spec = source.with_sampler(**changes) if changes else source
    out = Path(args.out or f"results/validation/{spec.name}_{study}")
    check_destination(out, args.force)
    checkpoint = Path(args.checkpoint) if args.checkpoint else \
        out.parent / f"{out.name}.checkpoint"
    design: dict[str, str] = {}
    for item in args.design:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationSetupError(f"--design {item!r}: expected KEY=VALUE")
        design[key.strip()] = value.strip()
    say(f"{study} for {spec.name} ({spec.model}): {args.n_sims} simulations, "
         f"{spec.sampler.chains} chains × {spec.sampler.draws} draws (+{spec.sampler.tune} "
         f"tuning); checkpoints in {checkpoint}")
    say("each worker compiles the model once before its first fit")
    return source, spec, out, checkpoint, design


def _run(checkpoint: Path, **kwargs: Any) -> Any:
    """run_validation, telling the user how to resume when interrupted."""
    from bayes_ablation.cli.console import say
    from bayes_ablation.workflows.validation.runner import run_validation

    try:
        return run_validation(checkpoint_dir=checkpoint, **kwargs)
    except KeyboardInterrupt:
        done = sum(len(json.loads(p.read_text()).get("records", []))
                   for p in checkpoint.glob("chunk-*.json")) if checkpoint.exists() else 0
        say(f"interrupted: {done} simulations are checkpointed in {checkpoint}; run the same "
             "command again to resume")
        raise


def _finish(args: argparse.Namespace, checkpoint: Path, study: Any, source: Any) -> None:
    from bayes_ablation.cli.console import say

    study.provenance["source_spec_sha256"] = source.sha256
    study.provenance["checkpoint"] = str(checkpoint)
    seeds = study.provenance.get("worker_python_hash_seeds", [])
    if seeds != ["0"]:
        say(f"warning: simulations ran with PYTHONHASHSEED {seeds}; PyTensor-compiled models "
             "give reproducible draws only with a fixed hash seed (start Dask workers with "
             "PYTHONHASHSEED=0)")


def _cleanup(args: argparse.Namespace, checkpoint: Path) -> None:
    if not args.checkpoint and checkpoint.exists():
        shutil.rmtree(checkpoint, ignore_errors=True)


def _command() -> str:
    return "bayes-ablation " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def cmd_validate_sbc(args: argparse.Namespace) -> int:
    from bayes_ablation.cli.console import say
    from bayes_ablation.workflows.validation.sbc import summarise_sbc, write_sbc_bundle

    source, spec, out, checkpoint, design = _prepare(args, "sbc")
    study = _run(checkpoint, spec=spec, study="sbc", n_sims=args.n_sims, design=design,
                 rank_draws=args.rank_draws, seed=args.seed, scheduler=args.scheduler,
                 workers=args.workers, progress=not args.quiet, command=_command())
    _finish(args, checkpoint, study, source)
    summary = summarise_sbc(study.records, study.key_parameters, study.rank_draws)
    say(f"writing bundle {out}")
    write_sbc_bundle(study, summary, out, force=args.force)
    _cleanup(args, checkpoint)
    print(f"bundle: {out}")
    print(summary.verdict)
    view = summary.tests[["parameter", "n", "chi2_p", "ecdf_p", "rejected"]]
    print(view.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.strict and not summary.passed:
        say("SBC failed (--strict): exit code 3")
        return 3
    return 0


def cmd_validate_coverage(args: argparse.Namespace) -> int:
    from bayes_ablation.cli.console import say
    from bayes_ablation.endpoints.sbc import get_adapter
    from bayes_ablation.workflows.validation.coverage import (
        coverage_table,
        estimates_table,
        fit_problems,
        parse_truth,
        write_coverage_bundle,
    )

    source, spec, out, checkpoint, design = _prepare(args, "coverage")
    truth = parse_truth(args.truth, spec, get_adapter(spec).generative_parameters(spec))
    study = _run(checkpoint, spec=spec, study="coverage", n_sims=args.n_sims, truth=truth,
                 design=design, rank_draws=args.rank_draws, seed=args.seed,
                 scheduler=args.scheduler, workers=args.workers, progress=not args.quiet,
                 command=_command())
    _finish(args, checkpoint, study, source)
    levels = sorted(set(args.levels))
    say(f"writing bundle {out}")
    write_coverage_bundle(study, out, force=args.force, levels=levels)
    _cleanup(args, checkpoint)
    problems = fit_problems(study.records)
    table = coverage_table(estimates_table(study.records, study.key_parameters), levels)
    print(f"bundle: {out}")
    print(f"{problems['fits_with_draws']} of {problems['simulations']} fits produced draws; "
          f"{problems['flagged']} flagged; {problems['errors']} failed")
    cols = ["parameter", "n", *[f"coverage_{lv:g}" for lv in levels], "bias", "rmse"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.strict and problems["errors"]:
        return 3
    return 0
