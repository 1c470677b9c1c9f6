"""The ADaM options of ``fit`` and ``monitor`` (``--adtte --adsl --paramcd``), shared.

Only argparse at import time; the reader (``data.adam``, pyreadstat) is imported when used.
"""

from __future__ import annotations

import argparse

from bayes_ablation.cli.console import UsageError, say


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "CDISC ADaM input (instead of --data)",
        "USUBJID -> patient_id, SITEID -> site, TRT01P -> arm, AVAL -> time_months (unit from "
        "AVALU or PARAM, 30.4375 days a month), CNSR -> event (CNSR = 0 is the event), ADSL "
        "columns as the spec's covariates, STARTDT/ADT as the dates of monitor")
    g.add_argument("--adtte", help="ADTTE dataset (.xpt v5/v8, .sas7bdat, CSV or Parquet)")
    g.add_argument("--adsl", help="ADSL dataset (same formats)")
    g.add_argument("--paramcd", help="the ADTTE parameter to analyse (PARAMCD), e.g. PFS")
    g.add_argument("--arm-var", dest="arm_var", default="TRT01P",
                   help="ADSL treatment variable (default TRT01P; TRT01A, ARM, ...)")
    g.add_argument("--aval-unit", dest="aval_unit",
                   help="unit of AVAL when neither AVALU nor PARAM gives it: days, weeks, "
                        "months or years")


def wants_adam(args: argparse.Namespace) -> bool:
    """True for ADaM input; a usage error unless exactly one of --data / ADaM is complete."""
    adam = {"--adtte": args.adtte, "--adsl": args.adsl, "--paramcd": args.paramcd}
    given = [k for k, v in adam.items() if v]
    if args.data and given:
        raise UsageError(f"give the input either as --data or as --adtte/--adsl/--paramcd, "
                         f"not both (got --data and {', '.join(given)})")
    if not args.data and not given:
        raise UsageError("no input: give --data FILE, or --adtte FILE --adsl FILE --paramcd "
                         "CODE for CDISC ADaM datasets")
    if given and len(given) < 3:
        missing = [k for k in adam if k not in given]
        raise UsageError(f"ADaM input needs --adtte, --adsl and --paramcd (missing: "
                         f"{', '.join(missing)})")
    if not given and (args.arm_var != "TRT01P" or args.aval_unit):
        raise UsageError("--arm-var and --aval-unit apply to ADaM input (--adtte/--adsl)")
    return bool(given)


def read(args: argparse.Namespace, spec: object, *, require_dates: bool = False):
    """Read the ADaM datasets named on the command line; print the mapping used."""
    from bayes_ablation.data.adam import read_adam

    adam = read_adam(args.adtte, args.adsl, args.paramcd, spec, arm_var=args.arm_var,
                     aval_unit=args.aval_unit, require_dates=require_dates)
    for line in adam.describe():
        say(line)
    return adam
