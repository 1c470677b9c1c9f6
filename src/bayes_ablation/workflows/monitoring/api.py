"""The two monitoring workflows as Python functions (the CLI's ``monitor`` and ``oc`` call them).

    >>> from bayes_ablation.workflows.monitoring.api import interim_look, operating_characteristics
    >>> look = interim_look("models/interim_design.toml", "trial_dated.csv", "2026-06-30",
    ...                     ledger="looks.sqlite", out="results/look")
    >>> look.decision, look.p_hr_lt_1, look.ppos
    >>> oc = operating_characteristics("models/interim_design.toml", n_trials=2000)
    >>> oc.table                          # estimate ± Monte Carlo SE per scenario and quantity
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_ablation.core.console import interactive
from bayes_ablation.core.files import MANIFEST
from bayes_ablation.data.cut import DatedTable, parse_iso_date, read_dated
from bayes_ablation.data.schema import PatientTable
from bayes_ablation.errors import BayesAblationError
from bayes_ablation.spec.design import Design, load_design
from bayes_ablation.workflows.monitoring.ledger import LookRecord, RecordOutcome
from bayes_ablation.workflows.monitoring.monitor import LookResult

logger = logging.getLogger(__name__)


class MonitoringInputError(BayesAblationError):
    """Inputs of a monitoring workflow that cannot be used (invalid input: exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class InterimLook:
    """One interim look: its result, what the ledger made of it, all looks recorded so far,
    and the report folder when one was written. ``recorded`` is False when the convergence
    gate failed under ``strict`` (nothing was recorded)."""

    result: LookResult
    outcome: RecordOutcome | None
    looks: tuple[LookRecord, ...]
    report: Path | None
    recorded: bool

    @property
    def decision(self) -> str:
        return self.result.decision.action

    @property
    def p_hr_lt_1(self) -> float:
        return self.result.p_hr_lt_1

    @property
    def ppos(self) -> float | None:
        return None if self.result.ppos is None else self.result.ppos.ppos


@dataclass(frozen=True)
class OCStudy:
    """Operating characteristics of a design: the full summary (``oc``, as ``oc.json``), the
    estimate ± MC SE table (``oc.csv``) and the report folder when one was written."""

    oc: dict[str, Any]
    table: pd.DataFrame
    report: Path | None


def _design(design: Design | str | Path) -> Design:
    return design if isinstance(design, Design) else load_design(design)


def _report_folder(out: str | Path | None) -> Path | None:
    out = Path(out) if out is not None else None
    if out is not None and out.exists() and not (out / MANIFEST).exists():
        raise MonitoringInputError(f"--out {out} exists and is not a folder written by "
                                   "bayes-ablation; refusing to replace it")
    return out


def interim_look(design: Design | str | Path, data: DatedTable | pd.DataFrame | str | Path,
                 cut: dt.date | str, *, ledger: str | Path, out: str | Path | None = None,
                 strict: bool = False, progress: bool | None = None,
                 say: Callable[[str], None] | None = None,
                 figure_format: str = "png",
                 external: PatientTable | pd.DataFrame | str | Path | None = None
                 ) -> InterimLook:
    """Run the interim look at data cut ``cut`` of ``design`` on the dated patient table and
    record it in the append-only ``ledger`` (SQLite; an identical re-run is a no-op, anything
    else that would rewrite history is refused). ``out``: report folder, replaced atomically.
    ``strict``: when the convergence gate fails, record nothing (``recorded=False``).
    ``figure_format``: the report's figures also as ``svg`` or ``pdf`` (PNG always).
    ``external``: external (historical) control patients for the analysis spec's
    ``[borrowing]`` (file, DataFrame or table); the interim posterior and the PPoS borrow
    them, and the look records the method and the file's SHA-256."""
    from bayes_ablation.core.provenance import package_versions
    from bayes_ablation.workflows.monitoring.ledger import Ledger, LookEntry
    from bayes_ablation.workflows.monitoring.monitor import run_look
    from bayes_ablation.workflows.monitoring.report import (
        km_at_cut,
        look_prior_posterior,
        write_monitor_report,
    )

    say = say or logger.info
    design = _design(design)
    try:
        cut_date = parse_iso_date(cut, "--cut")
    except ValueError as exc:
        raise MonitoringInputError(str(exc)) from exc
    dated = data if isinstance(data, DatedTable) else read_dated(
        data, covariates=design.spec.covariates, spec=design.spec)
    ext = _external(design, external)
    out = _report_folder(out)
    # check the ledger before spending minutes on the fit
    with Ledger.open(ledger) as book:
        look, stored = book.plan(cut_date.isoformat(), design.sha256)
        if stored is not None and (stored.data_sha256, stored.design_sha256) != \
                (dated.sha256, design.sha256):
            book.check_inputs(stored, dated.sha256, design.sha256)
    say(f"design {design.name} ({design.sha256[:12]}…), look {look}"
        + (" (already recorded: re-running to compare)" if stored else ""))
    if ext is not None:
        say(f"external controls: {ext.n_patients} patients, {int(ext.event.sum())} events "
            f"from {ext.source} (SHA-256 {str(ext.sha256)[:12]}…), borrowed by "
            f"{design.spec.borrowing.method}")
    res = run_look(design, dated, cut_date, look=look,
                   progress=interactive() if progress is None else progress, say=say,
                   external=ext)
    if strict and not res.fit.diagnostics.passed:
        return InterimLook(result=res, outcome=None, looks=(), report=None, recorded=False)
    versions = {k: v for k, v in package_versions().items() if k != "platform"}
    entry = LookEntry(cut_date=cut_date.isoformat(), data_sha256=dated.sha256,
                      design_sha256=design.sha256, p_hr_lt_1=res.p_hr_lt_1,
                      ppos=None if res.ppos is None else res.ppos.ppos,
                      ppos_mcse=None if res.ppos is None else res.ppos.mcse,
                      decision=res.decision.action, result=res.result, versions=versions)
    with Ledger.open(ledger) as book:
        outcome = book.record(entry)
        looks = book.looks()
    report = None
    if out is not None:
        current = next(r for r in looks if r.look == outcome.look)
        write_monitor_report(out, design, looks, current, str(ledger), outcome.message,
                             km=km_at_cut(res.cut.patients),
                             prior_posterior=look_prior_posterior(res.fit),
                             figure_format=figure_format)
        report = out / "report.html"
    return InterimLook(result=res, outcome=outcome, looks=tuple(looks), report=report,
                       recorded=True)


def _external(design: Design, external: Any) -> PatientTable | None:
    """Validated external controls, checked against the analysis spec's ``[borrowing]``."""
    from bayes_ablation.data.borrowing import read_external

    b = design.spec.borrowing
    if external is None:
        if b is not None and b.needs_external:
            raise MonitoringInputError(
                f"the analysis spec {design.spec.name!r} borrows external controls "
                f"([borrowing] method {b.method!r}): give them with --external external.csv")
        return None
    if b is None:
        raise MonitoringInputError(f"--external was given but the analysis spec "
                                   f"{design.spec.name!r} has no [borrowing] section saying "
                                   "how to use external controls")
    if b.method == "map":
        raise MonitoringInputError("[borrowing] method 'map' takes its evidence from the "
                                   f"study table {b.studies!r}; --external is not used by it")
    return external if isinstance(external, PatientTable) else read_external(external,
                                                                              design.spec)


def operating_characteristics(design: Design | str | Path,
                              scenarios: Sequence[str] | None = None, n_trials: int = 1000, *,
                              ppos_method: str = "normal", scheduler: Any = None,
                              checkpoint_dir: str | Path | None = None,
                              workers: int | None = None, progress: bool | None = None,
                              out: str | Path | None = None,
                              borrowing: Sequence[str] | None = None,
                              external_offsets: Sequence[float] = ()) -> OCStudy:
    """Simulate ``n_trials`` whole trials per scenario of ``design`` (default: all its
    scenarios) with the fast posterior path, on local processes or a Dask ``scheduler``;
    resumable with ``checkpoint_dir``. ``out``: folder for oc.json, oc.csv, oc.png and
    report.html (replaced atomically).

    ``borrowing``: methods compared on the same simulated trials (``none``, ``full``,
    ``power:A0``, the spec's ``commensurate`` or ``map``; default the spec's and ``none``).
    ``external_offsets``: for each scenario also a copy whose external controls' log
    cumulative hazard is shifted by each offset (named ``<scenario>_offset+0.5``)."""
    from dataclasses import replace

    from bayes_ablation.workflows.monitoring.oc import oc_table, run_oc
    from bayes_ablation.workflows.monitoring.report import write_oc_report

    design = _design(design)
    if n_trials < 2:
        raise MonitoringInputError("--n-trials must be at least 2")
    out = _report_folder(out)
    names = list(scenarios or design.scenarios)
    if external_offsets:
        missing = [s for s in names if s not in design.scenarios]
        variants = {f"{s}_offset{off:+g}": replace(design.scenarios[s],
                                                    name=f"{s}_offset{off:+g}",
                                                    external_log_cumhaz_offset=float(off))
                    for s in names if s not in missing for off in external_offsets}
        design = replace(design, scenarios={**design.scenarios, **variants})
        names = names + list(variants)
    oc = run_oc(design, names, n_trials, ppos_method=ppos_method,
                scheduler=scheduler, checkpoint_dir=checkpoint_dir, workers=workers,
                progress=interactive() if progress is None else progress,
                borrowing=list(borrowing) if borrowing else None)
    table = oc_table(oc)
    report = None
    if out is not None:
        write_oc_report(out, oc, table, design)
        report = out / "report.html"
    return OCStudy(oc=oc, table=table, report=report)
