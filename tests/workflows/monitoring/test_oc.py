"""Operating characteristics: analytic single-look type I error, reproducibility across
chunking / block size / workers / a Dask LocalCluster, checkpoint resume, CLI."""

from __future__ import annotations

import copy
import json
import tomllib

import numpy as np
import pytest
from scipy import stats

from bayes_ablation.spec.design import parse_design
from bayes_ablation.workflows.monitoring.oc import run_oc
from tests.conftest import MODELS

RAW = tomllib.loads((MODELS / "interim_design.toml").read_text())


def design_with(**changes):
    raw = copy.deepcopy(RAW)
    for section, value in changes.items():
        raw[section] = value
    return parse_design(raw, "test_design.toml", base_dir=MODELS)


@pytest.fixture(scope="module")
def small_design():
    """Two looks, smaller trial, σ_site fixed (fast)."""
    return design_with(accrual={**RAW["accrual"], "total_n": 160, "rate_per_month": 20.0},
                       final={"events": 80}, looks=[{"events": 30}, {"events": 55}],
                       fast={**RAW["fast"], "site_sd": "fixed", "site_sd_value": 0.3})


def test_single_look_type_one_error_matches_its_analytic_value():
    """One analysis at D = 200 events, success if P(HR<1) > 0.975, log HR prior N(0, 1).
    Normal posterior with precision I + 1 (I = D/4 under the null, 1:1): success ⇔
    Wald z < −z₀.₉₇₅ √(1 + 1/I), so α = Φ(−z₀.₉₇₅ √(1 + 4/D))."""
    design = design_with(looks=[], rules=[RAW["rules"][2]], final={"events": 200},
                         accrual={**RAW["accrual"], "total_n": 400, "rate_per_month": 25.0},
                         fast={**RAW["fast"], "site_sd": "fixed", "site_sd_value": 0.3})
    n = 4000
    oc = run_oc(design, ["null"], n, workers=1, progress=False)
    s = oc["scenarios"]["null"]
    alpha = stats.norm.cdf(-stats.norm.ppf(0.975) * np.sqrt(1 + 4 / 200))
    assert s["reached_final"]["p"] == 1.0
    assert s["reject"]["mcse"] == pytest.approx(np.sqrt(alpha * (1 - alpha) / n), rel=0.2)
    assert abs(s["reject"]["p"] - alpha) < 3 * np.sqrt(alpha * (1 - alpha) / n)
    assert s["expected_events"]["mean"] == 200


def test_results_do_not_depend_on_chunking_or_workers(small_design, tmp_path):
    a = run_oc(small_design, ["null", "alt"], 24, workers=1, chunk_size=5, block_size=4,
               progress=False)
    b = run_oc(small_design, ["alt", "null"], 24, workers=2, chunk_size=1, block_size=4,
               progress=False)
    assert a["scenarios"] == b["scenarios"]
    # blocks are vectorised, yet each trial's numbers do not depend on its block mates
    assert run_oc(small_design, ["null", "alt"], 24, workers=1, block_size=7,
                  progress=False)["scenarios"] == a["scenarios"]
    s = a["scenarios"]["alt"]
    total = sum(x["p"] for x in s["stop_efficacy"] + s["stop_futility"]) + s["reached_final"]["p"]
    assert total == pytest.approx(1.0)
    # checkpointed run, "interrupted" (chunks removed), resumed with other chunking
    c = run_oc(small_design, ["null", "alt"], 24, workers=1, chunk_size=1, block_size=4,
               progress=False, checkpoint_dir=tmp_path)
    files = sorted(tmp_path.glob("chunk-*.json"))
    assert len(files) == 12
    for f in files[3:7]:
        f.unlink()
    d = run_oc(small_design, ["null", "alt"], 24, workers=1, chunk_size=3, block_size=4,
               progress=False, checkpoint_dir=tmp_path)
    assert c["scenarios"] == d["scenarios"] == a["scenarios"]


def test_dask_cluster_gives_the_same_characteristics(small_design, dask_scheduler):
    local = run_oc(small_design, ["null"], 8, workers=1, block_size=4, progress=False)
    remote = run_oc(small_design, ["null"], 8, scheduler=dask_scheduler, chunk_size=1,
                    block_size=4, progress=False)
    assert remote["scenarios"] == local["scenarios"]


def test_oc_cli_writes_a_report(tmp_path):
    from bayes_ablation.cli.main import main

    design = tmp_path / "design.toml"
    text = (MODELS / "interim_design.toml").read_text()
    text = text.replace('analysis_spec = "pfs_weibull_site.toml"',
                        f'analysis_spec = "{MODELS / "pfs_weibull_site.toml"}"')
    design.write_text(text.replace("total_n = 420", "total_n = 300").replace(
        "events = 250", "events = 200"))
    out = tmp_path / "oc"
    assert main(["oc", "--design", str(design), "--scenario", "null", "--n-trials", "6",
                 "--workers", "1", "--out", str(out), "--quiet"]) == 0
    oc = json.loads((out / "oc.json").read_text())
    assert oc["scenarios"]["null"]["n_trials"] == 6
    assert (out / "oc.png").stat().st_size > 1000 and (out / "report.html").exists()
    assert main(["oc", "--design", str(design), "--scenario", "nope", "--n-trials", "6",
                 "--quiet"]) == 2
