"""Convergence diagnostics (through ArviZ), the pass/fail gate, and posterior predictive checks.

Gate (thresholds from the spec): max R-hat ≤ rhat_max, min bulk and tail ESS ≥ their minima,
divergences ≤ max_divergences, min E-BFMI over chains ≥ ebfmi_min. Checked over every posterior
variable (parameters and deterministics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.spec.plan import DiagnosticsSpec


@dataclass
class ConvergenceReport:
    """Convergence summary of one fit; ``table`` has one row per scalar parameter."""

    passed: bool
    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    mcse_mean_max: float
    divergences: int
    ebfmi_min: float
    n_draws: int
    failures: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("table")
        return d


def e_bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain of the (chain, draw) energies: mean_t (E_t − E_t−1)² / Var(E) (ddof 1)
    (Betancourt 2016; ArviZ's ``bfmi``)."""
    energy = np.asarray(energy, float)
    num = np.square(np.diff(energy, axis=1)).mean(axis=1)
    return num / np.var(energy, axis=1, ddof=1)


def stacked_draws(idata: xr.DataTree) -> tuple[np.ndarray, list[str]]:
    """Every finite, non-constant posterior scalar as rows of a (scalar, chain, draw) array,
    and their labels (``name`` or ``name[i]``)."""
    post = idata.posterior.to_dataset()
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    blocks: list[np.ndarray] = []
    labels: list[str] = []
    for name, da in post.data_vars.items():
        values = np.asarray(da.transpose("chain", "draw", ...).values, float)
        if not (np.all(np.isfinite(values)) and values.std() > 0):
            continue
        flat = values.reshape(n_chains, n_draws, -1)
        blocks.append(np.moveaxis(flat, -1, 0))
        labels += [name] if flat.shape[-1] == 1 else [f"{name}[{i}]"
                                                       for i in range(flat.shape[-1])]
    stacked = np.concatenate(blocks) if blocks else np.zeros((0, n_chains, n_draws))
    return stacked, labels


def convergence(idata: xr.DataTree, thresholds: DiagnosticsSpec,
                computed: tuple[list[str], Any] | None = None) -> ConvergenceReport:
    """Run R-hat, ESS, MCSE, divergence and E-BFMI checks and apply the gate.

    R-hat (rank-normalised, split), bulk ESS, tail ESS (5% and 95% quantiles, as Stan) and the
    MCSE of the mean are ArviZ's estimators computed for all scalars in one pass
    (:mod:`bayes_ablation.inference.mcmc_stats`); ``computed``: (labels, statistics) of
    :func:`stacked_draws` already computed (:func:`start_convergence`)."""
    from bayes_ablation.inference.mcmc_stats import chain_stats

    post = idata.posterior.to_dataset()
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    if computed is None:
        stacked, labels = stacked_draws(idata)
        stats_ = chain_stats(stacked)
    else:
        labels, stats_ = computed

    def extreme(values: np.ndarray, fn: Any) -> float:
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    rhat = stats_.rhat
    divergences = int(idata.sample_stats["diverging"].sum()) \
        if "diverging" in idata.sample_stats else 0
    ebfmi = (e_bfmi(idata.sample_stats["energy"].transpose("chain", "draw").values)
             if "energy" in idata.sample_stats else np.array([np.nan]))
    report = ConvergenceReport(
        passed=True,
        rhat_max=extreme(rhat, np.max) if n_chains > 1 else float("nan"),
        ess_bulk_min=extreme(stats_.ess_bulk, np.min),
        ess_tail_min=extreme(stats_.ess_tail, np.min),
        mcse_mean_max=extreme(stats_.mcse_mean, np.max),
        divergences=divergences,
        ebfmi_min=float(np.nanmin(ebfmi)) if np.isfinite(ebfmi).any() else float("nan"),
        n_draws=int(n_chains * n_draws),
    )
    t = thresholds
    if n_chains < 2:
        report.failures.append("R-hat needs at least 2 chains")
    elif not report.rhat_max <= t.rhat_max:
        report.failures.append(f"max R-hat {report.rhat_max:.3f} > {t.rhat_max}")
    if not report.ess_bulk_min >= t.ess_bulk_min:
        report.failures.append(f"min bulk ESS {report.ess_bulk_min:.0f} < {t.ess_bulk_min:g}")
    if not report.ess_tail_min >= t.ess_tail_min:
        report.failures.append(f"min tail ESS {report.ess_tail_min:.0f} < {t.ess_tail_min:g}")
    if report.divergences > t.max_divergences:
        report.failures.append(f"{report.divergences} divergent transitions "
                               f"(allowed {t.max_divergences})")
    if not report.ebfmi_min >= t.ebfmi_min:
        report.failures.append(f"min E-BFMI {report.ebfmi_min:.2f} < {t.ebfmi_min}")
    report.passed = not report.failures
    rows = {"parameter": labels, "r_hat": rhat, "ess_bulk": stats_.ess_bulk,
            "ess_tail": stats_.ess_tail, "mcse_mean": stats_.mcse_mean}
    report.table = pd.DataFrame(rows)
    return report


def start_convergence(idata: xr.DataTree, thresholds: DiagnosticsSpec
                      ) -> Callable[[], tuple[ConvergenceReport, float]]:
    """Start :func:`convergence` of ``idata`` (its posterior and sample stats as they are now)
    in a thread; the returned function computes what is left of the chain statistics in the
    calling thread too (the scalars are shared out in chunks:
    :class:`~bayes_ablation.inference.mcmc_stats.SharedChainStats`), joins the thread and
    gives (report, seconds the threads spent on the diagnostics) — or raises the
    diagnostics' error as if they had run there. The thread is gone when it returns (the
    bundle's forked posterior writer needs a single-threaded process)."""
    import threading
    import time

    from bayes_ablation.inference.mcmc_stats import SharedChainStats

    t0 = time.perf_counter()
    snapshot = xr.DataTree.from_dict({
        name: idata[name].to_dataset() for name in ("posterior", "sample_stats")
        if name in idata.children})
    stacked, labels = stacked_draws(snapshot)
    shared = SharedChainStats(stacked)
    thread = threading.Thread(target=shared.work, name="diagnostics", daemon=True)
    thread.start()

    prepared_s = time.perf_counter() - t0

    def wait() -> tuple[ConvergenceReport, float]:
        shared.work()
        thread.join()
        t1 = time.perf_counter()
        report = convergence(snapshot, thresholds, computed=(labels, shared.result()))
        return report, prepared_s + shared.busy_seconds + time.perf_counter() - t1

    return wait


# --------------------------------------------------------------------------------------------
# Kaplan–Meier based posterior predictive checks


