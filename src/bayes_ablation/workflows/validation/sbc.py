"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

For i = 1 … N: θ̃ᵢ ~ prior (the spec's priors), ỹᵢ ~ p(y | θ̃ᵢ) (the family's simulator, via its
adapter), posterior draws by the package's own model and sampler, thinned to L draws; the rank
rᵢ = #{θ_l < θ̃ᵢ} of every key parameter is uniform on {0 … L} when the model code, the
simulator and the sampler agree. Uniformity is tested per parameter (χ² on binned ranks and
the simultaneous-band ECDF test, :mod:`~bayes_ablation.inference.uniformity`).

Verdict: a parameter is *rejected* when either of its two p-values is below 0.05 / (2P) for P key
parameters (Bonferroni over parameters and tests: a 5% family-wise false alarm rate per model).
The study *passes* when no parameter is rejected and no simulation failed outright.

Failed and flagged fits. A simulation whose data could not be simulated or whose fit raised has
no draws: it is counted as an error, listed with its message, and fails the study. Fits with
draws but divergences, R-hat above the spec's threshold or a bulk ESS of a key parameter below
L are *flagged* and counted, and their ranks are **kept** in the primary tests. Ranks are
uniform because, given the data, the truth and the posterior draws are exchangeable; a flag is
a function of the draws (chains that disagree, divergent trajectories), so keeping only
unflagged fits breaks that exchangeability and can distort the ranks even for an exact
sampler, and it would hide exactly the fits where the sampler fails. The tests restricted to
unflagged fits, and to flagged fits, are reported next to the primary ones as diagnostics: a
non-uniform flagged subset points at the sampler.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.inference.uniformity import EcdfTest, chi_square_test, ecdf_test
from bayes_ablation.workflows.validation.coverage import coverage_table, estimates_table, fit_problems
from bayes_ablation.workflows.validation.runner import RECORDS_FILE, Study, write_records

FAMILY_ALPHA = 0.05


@dataclass
class SBCSummary:
    """Per-parameter uniformity tests, fit problems and the verdict of an SBC study."""

    tests: pd.DataFrame
    tests_unflagged: pd.DataFrame
    tests_flagged: pd.DataFrame
    ecdf: dict[str, EcdfTest]
    ranks: dict[str, np.ndarray]
    rank_draws: int
    problems: dict[str, Any]
    coverage: pd.DataFrame
    threshold: float
    passed: bool
    verdict: str
    rejected: list[str] = field(default_factory=list)


def rank_arrays(records: Sequence[Mapping[str, Any]], parameters: Sequence[str], *,
                subset: str = "all") -> dict[str, np.ndarray]:
    """parameter → ranks of the simulations that produced draws (``subset``: "all",
    "unflagged" or "flagged" fits)."""
    keep = {"all": lambda r: True, "unflagged": lambda r: not r.get("flags"),
            "flagged": lambda r: bool(r.get("flags"))}[subset]
    ok = [r for r in records if r.get("status") == "ok" and keep(r)]
    return {p: np.array([r["params"][p]["rank"] for r in ok], dtype=int) for p in parameters}


def uniformity_tests(ranks: Mapping[str, np.ndarray], rank_draws: int
                     ) -> tuple[pd.DataFrame, dict[str, EcdfTest]]:
    """Both tests for every parameter; returns the table and the ECDF curves."""
    rows, curves = [], {}
    for name, r in ranks.items():
        chi = chi_square_test(r, rank_draws)
        ecdf = ecdf_test(r, rank_draws)
        curves[name] = ecdf
        rows.append({"parameter": name, "n": int(r.size), "chi2": chi.statistic, "chi2_df": chi.df,
                     "chi2_bins": chi.bins, "chi2_p": chi.p_value, "ecdf_p": ecdf.p_value,
                     "ecdf_max_abs_diff": float(np.nanmax(np.abs(ecdf.ecdf_diff)))
                     if r.size else float("nan"),
                     "mean_rank_fraction": float(np.mean(r) / rank_draws) if r.size else
                     float("nan")})
    return pd.DataFrame(rows), curves


def summarise_sbc(records: Sequence[Mapping[str, Any]], parameters: Sequence[str],
                  rank_draws: int) -> SBCSummary:
    """Tests, counts and verdict (module docstring) from simulation records."""
    ranks = rank_arrays(records, parameters)
    tests, curves = uniformity_tests(ranks, rank_draws)
    tests_unflagged, _ = uniformity_tests(rank_arrays(records, parameters, subset="unflagged"),
                                          rank_draws)
    tests_flagged, _ = uniformity_tests(rank_arrays(records, parameters, subset="flagged"),
                                        rank_draws)
    threshold = FAMILY_ALPHA / (2 * max(len(parameters), 1))
    p_min = tests[["chi2_p", "ecdf_p"]].min(axis=1) if len(tests) else pd.Series(dtype=float)
    tests["rejected"] = p_min < threshold
    rejected = list(tests.loc[tests["rejected"], "parameter"]) if len(tests) else []
    problems = fit_problems(records)
    estimates = estimates_table(records, parameters)
    coverage = coverage_table(estimates) if len(estimates) else pd.DataFrame()
    if problems["fits_with_draws"] == 0:
        passed, verdict = False, "no simulation produced posterior draws"
    else:
        passed = not rejected and problems["errors"] == 0
        parts = []
        if rejected:
            parts.append(f"ranks not uniform for {', '.join(rejected)}")
        if problems["errors"]:
            parts.append(f"{problems['errors']} of {problems['simulations']} simulations failed")
        verdict = ("calibrated: no uniformity test rejects at the family-wise 5% level and "
                   "every simulation produced draws") if passed else "NOT calibrated: " + \
            "; ".join(parts)
        if problems["flagged"]:
            verdict += (f" ({problems['flagged']} of {problems['fits_with_draws']} fits flagged: "
                        + ", ".join(f"{k} {v}" for k, v in problems["by_flag"].items() if v)
                        + ")")
    return SBCSummary(tests=tests, tests_unflagged=tests_unflagged,
                      tests_flagged=tests_flagged, ecdf=curves, ranks=ranks,
                      rank_draws=rank_draws, problems=problems, coverage=coverage,
                      threshold=threshold, passed=passed, verdict=verdict, rejected=rejected)


def rank_table(records: Sequence[Mapping[str, Any]], parameters: Sequence[str]) -> pd.DataFrame:
    """One row per simulation: status, flags, diagnostics, data summary, truth/rank/mean/sd."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {"simulation": rec["index"], "status": rec.get("status"),
                               "stage": rec.get("stage"), "error": rec.get("error"),
                               "flags": ";".join(rec.get("flags", []))}
        diag = rec.get("diagnostics") or {}
        for key in ("divergences", "rhat_max", "key_rhat_max", "key_ess_bulk_min",
                    "key_ess_tail_min", "ebfmi_min"):
            row[key] = diag.get(key)
        for key, value in (rec.get("data") or {}).items():
            row[f"data_{key}"] = value
        row["sampler_seed"] = rec.get("sampler_seed")
        for name in parameters:
            p = (rec.get("params") or {}).get(name)
            for stat in ("truth", "rank", "mean", "sd"):
                row[f"{name}:{stat}"] = p[stat] if p else None
        row["seconds"] = rec.get("seconds")
        rows.append(row)
    return pd.DataFrame(rows)


def summary_dict(study: Study, summary: SBCSummary) -> dict[str, Any]:
    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return json.loads(frame.to_json(orient="records")) if len(frame) else []

    return {
        "study": "sbc",
        "passed": summary.passed,
        "verdict": summary.verdict,
        "rejected_parameters": summary.rejected,
        "rejection_threshold_p": summary.threshold,
        "rank_draws": summary.rank_draws,
        "uniformity": records(summary.tests),
        "uniformity_unflagged_fits": records(summary.tests_unflagged),
        "uniformity_flagged_fits": records(summary.tests_flagged),
        "coverage_over_prior": records(summary.coverage),
        "fit_problems": summary.problems,
        "provenance": study.provenance,
    }


def write_sbc_bundle(study: Study, summary: SBCSummary, out: str | Path, *,
                     force: bool = False) -> Path:
    """Write the SBC study as an atomic bundle (see :mod:`bayes_ablation.results.bundle`)."""
    from bayes_ablation.core.files import atomic_folder, json_default
    from bayes_ablation.results.bundle import spec_file_text
    from bayes_ablation.workflows.validation import report

    def write(tmp: Path) -> None:
        (tmp / "spec.toml").write_text(spec_file_text(study.spec))
        (tmp / "summary.json").write_text(json.dumps(summary_dict(study, summary), indent=2,
                                                     default=json_default))
        summary.tests.to_csv(tmp / "uniformity.csv", index=False)
        rank_table(study.records, study.key_parameters).to_csv(tmp / "ranks.csv", index=False)
        write_records(tmp / RECORDS_FILE, study.records)
        html_text, pngs = report.sbc_report(study, summary)
        (tmp / "figures").mkdir()
        for name, png in pngs.items():
            (tmp / "figures" / f"{name}.png").write_bytes(png)
        (tmp / "report.html").write_text(html_text, encoding="utf-8")

    return atomic_folder(out, write, force=force)
