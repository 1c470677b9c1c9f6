"""Cohort design end to end: fit → summary.json ``confounding``, bundle tables, the report's
"Confounding" section; randomised analyses are unchanged."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.endpoints.confounding.weighting import OUTCOME_METHOD
from bayes_ablation.results.sections import build_report
from tests.endpoints.confounding.simulate import confounded_cohort

COVS = ["node_positive", "cea", "n_lesions"]


def test_randomised_analysis_has_no_confounding_output(fit600):
    assert fit600.spec.design == "randomised"
    assert "confounding" not in fit600.summary_entries
    assert not any(name.startswith("confounding") for name in fit600.tables)
    report = build_report("pfs", fit600)
    assert "Confounding" not in [s.title for s in report.sections]


@pytest.fixture(scope="module")
def cohort_fit(weibull_spec):
    from bayes_ablation.workflows.fit import fit

    frame, _ = confounded_cohort(300, seed=21)
    frame.loc[frame["site"] == "S5", "arm"] = "perioperative"   # a site treating one way only
    spec = weibull_spec.updated(
        analysis={"design": "cohort", "covariates": COVS},
        priors={"beta_covariates": {"family": "normal", "mu": 0.0, "sigma": 1.0,
                                    "rationale": "covariate log HRs"}},
        sampler={"chains": 2, "draws": 200, "tune": 300})
    table = patients_from_frame(frame, reference_arm="postoperative", covariates=COVS)
    return fit(spec, table, ppc_draws=20), table


def test_cohort_fit_writes_confounding_summary_tables_and_section(cohort_fit, tmp_path):
    result, table = cohort_fit
    out = result.save(tmp_path / "bundle")
    summary = json.loads((out / "summary.json").read_text())
    conf = summary["confounding"]
    assert {"propensity", "overlap", "balance", "positivity_warnings", "weighted_estimates",
            "side_by_side", "sensitivity"} <= set(conf)
    assert "penalised maximum likelihood" in conf["propensity"]["perioperative"]["method"]
    assert 0 <= conf["overlap"]["perioperative"]["share_outside"] <= 1
    bal = {b["covariate"]: b for b in conf["balance"]}
    assert set(COVS) <= set(bal)
    for c in COVS:
        assert abs(bal[c]["smd_overlap_weighted"]) < 1e-6 < abs(bal[c]["smd_unweighted"])
    sens = conf["sensitivity"]["perioperative"]
    hr = np.exp(result.estimands["log_hr"].sel(treatment="perioperative").values)
    assert sens["hr_unadjusted"]["median"] == pytest.approx(float(np.median(hr)))
    assert sens["e_value"]["e_value"] >= 1
    for name in ("confounding_balance", "confounding_weighted_estimates",
                 "confounding_estimates_side_by_side", "confounding_sensitivity_grid"):
        assert (out / f"{name}.csv").exists()
    # positivity violations also reach the data-warnings banner, with their rows
    banner = [w for w in summary["warnings"] if w["message"].startswith("positivity:")]
    patterns = [w for w in conf["positivity_warnings"] if w["pattern"] != "propensity"]
    assert len(banner) >= len(patterns) >= 1
    site = next(w for w in banner if w["value"] == "site=S5")
    assert site["message"].startswith("positivity: site=S5: 0 postoperative patients of ")
    assert len(site["rows"]) == int((table.frame["site"] == "S5").sum())
    html = (out / "report.html").read_text()
    assert "<h2>Confounding</h2>" in html
    for figure in ("propensity_overlap", "love_plot", "estimate_comparison", "bias_contour"):
        assert (out / "figures" / f"{figure}.png").exists()


def test_g_computation_rows_are_shown_beside_the_weighted_ones(cohort_fit):
    from bayes_ablation.report.html import render_report
    from bayes_ablation.workflows.confounding import with_confounding

    result, table = cohort_fit
    quantiles = [c for c in result.estimand_table.columns if c.startswith("q")]
    fake = pd.DataFrame([{"label": "ATE survival_difference[perioperative, t=24]",
                          "estimand": "survival_difference", "median": 0.05,
                          quantiles[0]: -0.02, quantiles[1]: 0.12}])
    bare = dataclasses.replace(result, estimand_table=pd.concat(
        [result.estimand_table, fake], ignore_index=True))
    shown = with_confounding(bare, table, n_boot=50)
    both = shown.tables["confounding_estimates_side_by_side"]
    row = both[(both.estimand == "ATE") & (both.time == 24.0)
               & (both.quantity == "survival_difference")]
    assert row["method"].tolist() == [OUTCOME_METHOD, row["method"].iloc[1]]
    section = next(s for s in build_report("pfs", shown).sections if s.title == "Confounding")
    html, pngs = render_report(dataclasses.replace(build_report("pfs", shown),
                                                   sections=(section,)))
    assert "g-computation: median" in html and "weighted KM: median" in html
    assert {"propensity_overlap", "love_plot", "estimate_comparison", "bias_contour"} <= set(pngs)


def test_without_companion_estimates_the_section_still_renders(fit600, trial600):
    """Endpoints other than PFS (local recurrence): no weighted-KM companion, E-value with
    the conservative common-outcome conversion."""
    from bayes_ablation.core.files import json_default
    from bayes_ablation.endpoints.confounding.analysis import confounding_analysis, merge_entries

    table = trial600[1]
    analysis = confounding_analysis(table, log_hr=fit600.estimands["log_hr"], gcomp=None,
                                    times_months=[12.0], tau_months=36.0, companion=False)
    assert "confounding_weighted_estimates" not in analysis.tables
    sens = analysis.summary["sensitivity"]["perioperative"]
    assert sens["e_value"]["common_outcome"] and sens["e_value"]["event_share"] is None
    json.dumps(analysis.summary, default=json_default)
    entries = merge_entries({"confounding": {"ate": 1}, "other": 2}, analysis)
    assert entries["other"] == 2 and entries["confounding"]["ate"] == 1
    shown = dataclasses.replace(fit600, summary_entries=entries,
                                tables={**fit600.tables, **analysis.tables},
                                details={"confounding": analysis.figures})
    section = next(s for s in build_report("pfs", shown).sections if s.title == "Confounding")
    kinds = [b.kind for b in section.figures]
    assert kinds == ["propensity_overlap", "love_plot", "bias_contour"]
