"""The Python API a PyMC / lifelines user expects: DataFrames or paths in, seed override
recorded, a DataFrame summary, a self-describing posterior, save/report, and the notebook
example executed end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayes_ablation as ba
from tests.conftest import MODELS, ROOT


def test_readers_take_a_dataframe_like_a_file(tmp_path):
    spec = ba.load_spec(MODELS / "pfs_weibull_site.toml")
    frame = pd.read_csv(ROOT / "examples" / "pfs_trial.csv")
    from_file = ba.read_patients(ROOT / "examples" / "pfs_trial.csv", spec)
    from_frame = ba.read_patients(frame, spec)
    pd.testing.assert_frame_equal(from_file.frame, from_frame.frame)
    assert from_frame.source == "<DataFrame>"
    bad = frame.copy()
    bad.loc[3, "time_months"] = -1.0
    with pytest.raises(ba.DataValidationError,
                       match=r"row 4, column .time_months.: got -1.0; expected a time in months"):
        ba.read_patients(bad, spec)
    with pytest.raises(TypeError, match="file path or a pandas DataFrame"):
        ba.read_patients(42, spec)
    studies = pd.read_csv(ROOT / "examples" / "meta" / "crlm_pfs_hr.csv")
    assert ba.read_studies(studies).n_studies == len(studies)
    lesions = ba.read_lr_data(pd.read_csv(ROOT / "examples" / "lr_patients.csv"),
                              pd.read_csv(ROOT / "examples" / "lr_lesions.csv"),
                              ba.load_spec(MODELS / "local_recurrence_lesion.toml"))
    assert lesions.n_lesions == len(pd.read_csv(ROOT / "examples" / "lr_lesions.csv"))


def test_result_is_a_frozen_contract_with_a_dataframe_summary(fit600):
    from dataclasses import FrozenInstanceError

    with pytest.raises(FrozenInstanceError):
        fit600.probabilities = {}
    summary = fit600.summary()
    assert isinstance(summary, pd.DataFrame) and summary.index.name == "label"
    assert {"mean", "sd", "median", "q2.5", "q97.5"} <= set(summary.columns)
    as_json = fit600.to_dict()
    assert set(as_json["estimands"]) == set(summary.index)
    assert as_json["estimands"]["hr[perioperative]"]["median"] == pytest.approx(
        summary.loc["hr[perioperative]", "median"])
    json.dumps(as_json, default=str)
    assert fit600.headline[0] == "hr[perioperative]"


def test_posterior_describes_itself_and_works_with_arviz(fit600, tmp_path):
    import arviz as az

    attrs = fit600.posterior.attrs
    assert attrs["spec_sha256"] == fit600.spec.sha256
    assert json.loads(attrs["provenance"])["data_sha256"] == fit600.provenance["data_sha256"]
    table = az.summary(fit600.posterior, var_names=["log_hr"])
    assert len(table) == 1
    bundle = fit600.save(tmp_path / "b")
    from bayes_ablation.results.bundle import open_posterior

    tree = open_posterior(bundle)
    assert tree.attrs["spec_sha256"] == fit600.spec.sha256
    assert json.loads(tree.attrs["provenance"])["seed"] == fit600.spec.sampler.seed
    assert tree["posterior"].attrs["spec_sha256"] == fit600.spec.sha256


def test_report_writes_one_self_contained_html(fit600, tmp_path):
    path = fit600.report(tmp_path / "r" / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in text
    for heading in ("Pre-specified priors", "Estimands", "Figures", "Diagnostics",
                    "Provenance", "Posterior predictive checks"):
        assert f"<h2>{heading}</h2>" in text
    assert list(tmp_path.joinpath("r").iterdir()) == [path]


def test_fit_takes_paths_and_a_seed_override_that_is_recorded(tmp_path):
    spec_path = MODELS / "pfs_weibull_site.toml"
    spec = ba.load_spec(spec_path).with_sampler(chains=2, draws=150, tune=150)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(spec.to_toml_text())
    result = ba.fit(spec_file, ROOT / "examples" / "pfs_trial.csv", seed=4321, run_ppc=False,
                    progress=False)
    assert result.spec.sampler.seed == 4321
    assert result.provenance["seed"] == 4321
    assert result.provenance["sampler_settings"]["seed"] == 4321
    assert result.spec.sha256 != ba.load_spec(spec_file).sha256   # the spec as run
    again = ba.fit(spec_file, pd.read_csv(ROOT / "examples" / "pfs_trial.csv"), seed=4321,
                   run_ppc=False, progress=False)
    np.testing.assert_array_equal(result.posterior["log_hr"].values,
                                  again.posterior["log_hr"].values)


def test_progress_defaults_to_interactive_sessions(monkeypatch):
    from bayes_ablation.core import console

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert console.interactive() is False
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert console.interactive() is True


def test_library_code_never_prints():
    offenders = []
    for path in (ROOT / "src" / "bayes_ablation").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "src" / "bayes_ablation").parts[:1]:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("print("):
                offenders.append(f"{path}:{i}")
    assert offenders == []


def test_notebook_example_runs_end_to_end(tmp_path):
    env = dict(os.environ, BAYES_ABLATION_EXAMPLE_DRAWS="150", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_pfs.py"),
                           str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hr[perioperative]" in proc.stdout and "log_hr[perioperative]" in proc.stdout
    assert (tmp_path / "report.html").is_file()
    from bayes_ablation.core.files import verify

    verify(tmp_path / "bundle")


def test_interim_look_and_oc_are_public_functions_that_refuse_bad_input(tmp_path):
    from bayes_ablation.workflows.monitoring import api

    assert ba.interim_look is api.interim_look
    assert ba.operating_characteristics is api.operating_characteristics
    design = MODELS / "interim_design.toml"
    with pytest.raises(api.MonitoringInputError, match="ISO date"):
        ba.interim_look(design, tmp_path / "unused.csv", "30/06/2026",
                        ledger=tmp_path / "l.sqlite")
    with pytest.raises(api.MonitoringInputError, match="at least 2"):
        ba.operating_characteristics(design, n_trials=1)
    assert not (tmp_path / "l.sqlite").exists()
