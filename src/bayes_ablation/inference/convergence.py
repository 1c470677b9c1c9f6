"""Convergence diagnostics (through ArviZ), the pass/fail gate, and posterior predictive checks.

Gate (thresholds from the spec): max R-hat ≤ rhat_max, min bulk and tail ESS ≥ their minima,
divergences ≤ max_divergences, min E-BFMI over chains ≥ ebfmi_min. Checked over every posterior
variable (parameters and deterministics).
"""

from __future__ import annotations

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


def _flat(tree: Any) -> dict[str, np.ndarray]:
    """Variables of an ArviZ result (DataTree or Dataset) as flat arrays."""
    ds = tree.to_dataset() if hasattr(tree, "to_dataset") else tree
    if "posterior" in getattr(tree, "children", {}):
        ds = tree["posterior"].to_dataset()
    return {name: np.atleast_1d(np.asarray(da.values, float)).ravel()
            for name, da in ds.data_vars.items()}


def parameter_table(idata: xr.DataTree, var_names: list[str] | None = None) -> pd.DataFrame:
    """Per scalar parameter: mean, sd, R-hat, bulk/tail ESS and MCSE of the mean (ArviZ)."""
    import arviz as az

    post = idata.posterior.to_dataset()
    names = var_names or [v for v in post.data_vars if post[v].ndim >= 2]
    summary = az.summary(idata, var_names=names, ci_prob=0.95)
    return pd.DataFrame(summary)


def convergence(idata: xr.DataTree, thresholds: DiagnosticsSpec) -> ConvergenceReport:
    """Run R-hat, ESS, MCSE, divergence and E-BFMI checks and apply the gate."""
    import arviz as az

    post = idata.posterior.to_dataset()
    names = [v for v in post.data_vars
             if np.all(np.isfinite(post[v].values)) and post[v].std() > 0]
    rhat = _flat(az.rhat(idata, var_names=names))
    ess_bulk = _flat(az.ess(idata, var_names=names, method="bulk"))
    ess_tail = _flat(az.ess(idata, var_names=names, method="tail"))
    mcse = _flat(az.mcse(idata, var_names=names, method="mean"))
    n_chains = post.sizes["chain"]

    def extreme(d: dict[str, np.ndarray], fn: Any) -> float:
        values = np.concatenate([v for v in d.values()]) if d else np.array([np.nan])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    divergences = int(idata.sample_stats["diverging"].sum()) \
        if "diverging" in idata.sample_stats else 0
    try:
        ebfmi = np.asarray(_flat(az.bfmi(idata))["energy"]) if "energy" in \
            idata.sample_stats else np.array([np.nan])
    except Exception:
        ebfmi = np.array([np.nan])
    report = ConvergenceReport(
        passed=True,
        rhat_max=extreme(rhat, np.max) if n_chains > 1 else float("nan"),
        ess_bulk_min=extreme(ess_bulk, np.min),
        ess_tail_min=extreme(ess_tail, np.min),
        mcse_mean_max=extreme(mcse, np.max),
        divergences=divergences,
        ebfmi_min=float(np.nanmin(ebfmi)) if np.isfinite(ebfmi).any() else float("nan"),
        n_draws=int(post.sizes["chain"] * post.sizes["draw"]),
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
    rows = []
    for name in rhat:
        for i in range(rhat[name].size):
            rows.append({"parameter": name if rhat[name].size == 1 else f"{name}[{i}]",
                         "r_hat": rhat[name][i], "ess_bulk": ess_bulk[name][i],
                         "ess_tail": ess_tail[name][i], "mcse_mean": mcse[name][i]})
    report.table = pd.DataFrame(rows)
    return report


# --------------------------------------------------------------------------------------------
# Kaplan–Meier based posterior predictive checks


