"""Frequentist properties of the posterior at a fixed truth: interval coverage, bias, RMSE.

For R simulated trials at fixed parameters θ (site effects are redrawn in every trial) and a
key parameter with posterior mean θ̂_r and central interval [l_r, u_r] at level q:

    coverage_q = (1/R) Σ 1[l_r ≤ θ_r ≤ u_r],       MCSE = sqrt(c (1 − c) / R)
    bias       = (1/R) Σ (θ̂_r − θ_r),              MCSE = sd(θ̂_r − θ_r) / sqrt(R)
    RMSE       = sqrt((1/R) Σ (θ̂_r − θ_r)²),       MCSE(MSE) = sd((θ̂_r − θ_r)²) / sqrt(R),
                                                    MCSE(RMSE) ≈ MCSE(MSE) / (2 RMSE)

(Monte Carlo standard errors as in Morris, White & Crowther 2019, Stat Med 38:2074.) Bayesian
intervals need not have nominal frequentist coverage at every θ — with an informative prior they
over-cover near the prior's centre and under-cover far from it — so these numbers describe the
design's operating characteristics rather than pass or fail; averaged over the prior they
must be nominal, which is what the SBC study checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.spec.plan import AnalysisSpec
from bayes_ablation.workflows.validation.runner import QUANTILE_PROBS, RECORDS_FILE, Study, write_records

#: central interval level → (lower, upper) quantile probabilities stored per fit
LEVEL_QUANTILES = {0.5: (0.25, 0.75), 0.8: (0.1, 0.9), 0.9: (0.05, 0.95), 0.95: (0.025, 0.975)}
DEFAULT_LEVELS = (0.5, 0.8, 0.95)


def parse_truth(items: Iterable[str], spec: AnalysisSpec, required: Sequence[str]
                ) -> dict[str, float]:
    """``["log_hr=-0.25", …]`` → {name: value}; every problem is reported together."""
    from bayes_ablation.endpoints.sbc import ValidationSetupError
    from bayes_ablation.spec.families import POSITIVE_PRIORS

    truth: dict[str, float] = {}
    problems = []
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            problems.append(f"--truth {item!r}: expected NAME=VALUE, e.g. log_hr=-0.25")
            continue
        try:
            value = float(text)
        except ValueError:
            problems.append(f"--truth {name}: {text!r} is not a number")
            continue
        if not np.isfinite(value):
            problems.append(f"--truth {name}: must be finite, got {text!r}")
        elif (name in POSITIVE_PRIORS or name.startswith("sigma_")) and value <= 0:
            problems.append(f"--truth {name}: must be > 0, got {value:g}")
        if name in truth:
            problems.append(f"--truth {name} given twice")
        truth[name] = value
    for name in sorted(set(truth) - set(required)):
        problems.append(f"--truth {name}: not a parameter of this model's simulator "
                        f"(parameters: {', '.join(required)})")
    for name in required:
        if name not in truth:
            prior = spec.priors[name].describe() if name in spec.priors else "?"
            problems.append(f"--truth {name}=VALUE is missing (prior {prior})")
    if problems:
        example = " ".join(f"--truth {n}=…" for n in required)
        raise ValidationSetupError("invalid --truth:\n" + "\n".join(f"  - {p}" for p in problems)
                                   + f"\n  (needed: {example})")
    return truth


def estimates_table(records: Sequence[Mapping[str, Any]], parameters: Sequence[str]
                    ) -> pd.DataFrame:
    """One row per (successful simulation, parameter): truth, posterior mean, sd, quantiles."""
    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        for name in parameters:
            p = rec["params"][name]
            row = {"simulation": rec["index"], "parameter": name, "truth": p["truth"],
                   "mean": p["mean"], "sd": p["sd"], "rank": p["rank"],
                   "flags": ";".join(rec.get("flags", []))}
            row.update({f"q{q:g}": v for q, v in zip(QUANTILE_PROBS, p["quantiles"], strict=True)})
            rows.append(row)
    return pd.DataFrame(rows)


def coverage_table(estimates: pd.DataFrame, levels: Sequence[float] = DEFAULT_LEVELS
                   ) -> pd.DataFrame:
    """Per parameter: coverage of central intervals with MCSEs, bias, RMSE (module docstring)."""
    rows = []
    for name, g in estimates.groupby("parameter", sort=False):
        n = len(g)
        err = g["mean"].to_numpy() - g["truth"].to_numpy()
        row: dict[str, Any] = {"parameter": name, "n": n, "truth_mean": g["truth"].mean()}
        for level in levels:
            lo, hi = LEVEL_QUANTILES[level]
            inside = (g[f"q{lo:g}"] <= g["truth"]) & (g["truth"] <= g[f"q{hi:g}"])
            c = float(inside.mean())
            row[f"coverage_{level:g}"] = c
            row[f"coverage_{level:g}_mcse"] = float(np.sqrt(c * (1 - c) / n))
        mse = float(np.mean(err**2))
        rmse = float(np.sqrt(mse))
        mse_mcse = float(np.std(err**2, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        row.update({
            "bias": float(err.mean()),
            "bias_mcse": float(np.std(err, ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            "rmse": rmse,
            "rmse_mcse": mse_mcse / (2 * rmse) if rmse > 0 else float("nan"),
            "mean_posterior_sd": float(g["sd"].mean()),
            "sd_posterior_mean": float(np.std(g["mean"], ddof=1)) if n > 1 else float("nan"),
        })
        rows.append(row)
    return pd.DataFrame(rows)


def fit_problems(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of failed and flagged fits, and the errors (shared by SBC and coverage)."""
    errors = [{"simulation": r["index"], "stage": r.get("stage"), "error": r.get("error")}
              for r in records if r.get("status") != "ok"]
    ok = [r for r in records if r.get("status") == "ok"]
    known = ("divergences", "rhat", "low_ess")
    flags = [*known, *sorted({f for r in ok for f in r.get("flags", [])} - set(known))]
    return {
        "simulations": len(records),
        "fits_with_draws": len(ok),
        "errors": len(errors),
        "flagged": sum(1 for r in ok if r.get("flags")),
        "by_flag": {f: sum(1 for r in ok if f in r.get("flags", [])) for f in flags},
        "total_divergences": int(sum(r["diagnostics"]["divergences"] for r in ok)),
        "sampler_fallbacks": sum(1 for r in ok if r.get("fallback_reason")),
        "error_list": errors,
    }


def write_coverage_bundle(study: Study, out: str | Path, *, force: bool = False,
                          levels: Sequence[float] = DEFAULT_LEVELS) -> Path:
    """Write the coverage study as an atomic bundle (see :mod:`bayes_ablation.results.bundle`)."""
    from bayes_ablation.core.files import atomic_folder, json_default
    from bayes_ablation.results.bundle import spec_file_text
    from bayes_ablation.workflows.validation import report

    estimates = estimates_table(study.records, study.key_parameters)
    table = coverage_table(estimates, levels) if len(estimates) else pd.DataFrame()
    problems = fit_problems(study.records)
    summary = {
        "study": "coverage",
        "truth": study.provenance.get("truth"),
        "levels": list(levels),
        "coverage": json.loads(table.to_json(orient="records")) if len(table) else [],
        "fit_problems": problems,
        "provenance": study.provenance,
    }

    def write(tmp: Path) -> None:
        (tmp / "spec.toml").write_text(spec_file_text(study.spec))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=json_default))
        table.to_csv(tmp / "coverage.csv", index=False)
        estimates.to_csv(tmp / "estimates.csv", index=False)
        write_records(tmp / RECORDS_FILE, study.records)
        html_text, pngs = report.coverage_report(study, table, problems, levels)
        (tmp / "figures").mkdir()
        for name, png in pngs.items():
            (tmp / "figures" / f"{name}.png").write_bytes(png)
        (tmp / "report.html").write_text(html_text, encoding="utf-8")

    return atomic_folder(out, write, force=force)
