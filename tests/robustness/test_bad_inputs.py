"""Every case of the bad-input catalogue (``bad_inputs.CASES``): exit code 2, the file, row and
column in the message, nothing written. In process (``cli.main.main``), with the analyses
stubbed so that an input that wrongly validates fails at once instead of fitting; a few cases
also as real subprocesses for the exit code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from tests.conftest import MODELS, ROOT
from tests.robustness.bad_inputs import CASES, Case

EXAMPLES = ROOT / "examples"
DATES = ("RANDDT", "STARTDT", "ADT")


def test_the_catalogue_is_large_and_covers_every_reader():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.command for c in CASES} == {"fit", "lr", "monitor", "meta", "reconstruct",
                                          "adam", "spec"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Valid inputs of every command in one folder."""
    from bayes_ablation.data.simulate_dated import simulate_dated_trial

    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(EXAMPLES / "pfs_trial.csv", folder / "trial.csv")
    shutil.copy(EXAMPLES / "lr_patients.csv", folder / "patients.csv")
    shutil.copy(EXAMPLES / "lr_lesions.csv", folder / "lesions.csv")
    shutil.copy(EXAMPLES / "meta" / "crlm_pfs_hr.csv", folder / "studies.csv")
    shutil.copy(EXAMPLES / "reconstruct" / "curve.csv", folder / "curve.csv")
    shutil.copy(EXAMPLES / "reconstruct" / "atrisk.csv", folder / "atrisk.csv")
    shutil.copy(EXAMPLES / "adam" / "adtte.xpt", folder / "adtte.xpt")
    shutil.copy(EXAMPLES / "adam" / "adsl.xpt", folder / "adsl.xpt")
    shutil.copy(MODELS / "pfs_weibull_site.toml", folder / "spec.toml")
    dated = simulate_dated_trial(80, 8, -0.3, seed=5, start_date="2026-01-15").frame
    dated.astype(str).replace({"NaT": "", "nan": "", "None": ""}).to_csv(folder / "dated.csv",
                                                                           index=False)
    return folder


def _argv(case: Case, folder: Path, out: Path) -> list[str]:
    f = lambda name: str(folder / name)  # noqa: E731
    pfs = str(MODELS / "pfs_weibull_site.toml")
    return {
        "fit": ["fit", "--spec", pfs, "--data", f("trial.csv"), "--out", str(out)],
        "lr": ["fit", "--spec", str(MODELS / "local_recurrence_lesion.toml"), "--data",
               f("patients.csv"), "--lesions", f("lesions.csv"), "--out", str(out)],
        "monitor": ["monitor", "--design", str(MODELS / "interim_design.toml"), "--data",
                    f("dated.csv"), "--cut", "2027-06-30", "--ledger", f("ledger.db"),
                    "--out", str(out)],
        "meta": ["meta", "--spec", str(MODELS / "meta_loghr.toml"), "--data", f("studies.csv"),
                 "--out", str(out)],
        "reconstruct": ["reconstruct", "--curve", f("curve.csv"), "--at-risk", f("atrisk.csv"),
                        "--arm", "x", "--out", str(out)],
        "adam": ["fit", "--spec", pfs, "--adtte", f("adtte.xpt"), "--adsl", f("adsl.xpt"),
                 "--paramcd", "PFS", "--out", str(out)],
        "spec": ["fit", "--spec", f("spec.toml"), "--data", f("trial.csv"), "--out", str(out)],
    }[case.command] + list(case.argv)


def _apply(case: Case, folder: Path) -> None:
    path = folder / case.target
    if path.suffix == ".toml":
        path.write_text(case.edit(path.read_text()))
        return
    if path.suffix == ".xpt":
        from bayes_ablation.data.adam import read_adam_table

        frame = case.edit(read_adam_table(path))
        pyreadstat.write_xport(frame, path, table_name=path.stem.upper(),
                               variable_format={c: "DATE9." for c in DATES if c in frame})
        return
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    case.edit(frame).to_csv(path, index=False)


@pytest.fixture()
def stubbed(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the bad input validated: the analysis was reached")

    monkeypatch.setattr("bayes_ablation.workflows.fit.fit", never)
    monkeypatch.setattr("bayes_ablation.workflows.meta.fit_meta", never)
    monkeypatch.setattr("bayes_ablation.workflows.monitoring.monitor.run_look", never)


def expected_location(case: Case) -> str:
    if case.command == "spec":
        return case.column or case.target
    where = case.target
    if case.row is not None:
        where += f", row {case.row}"
    if case.column is not None:
        where += f", column '{case.column}'"
    return where


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_names_the_place_and_writes_nothing(case, inputs, tmp_path, stubbed,
                                                              capsys):
    from bayes_ablation.cli.main import main

    folder = tmp_path / "in"
    shutil.copytree(inputs, folder)
    _apply(case, folder)
    before = sorted(p.name for p in folder.iterdir())
    out = tmp_path / "out"
    code = main(_argv(case, folder, out))
    err = capsys.readouterr().err
    assert code == 2, err
    assert case.target in err, err
    assert expected_location(case) in err, err
    assert case.fragment in err, err
    assert not out.exists()
    assert sorted(p.name for p in folder.iterdir()) == before  # no ledger, no temporaries
    assert not list(tmp_path.glob("*.tmp-*"))


SUBPROCESS_CASES = ["patients: time 1e308 months", "ADaM: PARAMCD not present",
                    "dated: progression before randomisation", "spec: TOML syntax error"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_a_real_process_exits_2(name, inputs, tmp_path):
    case = next(c for c in CASES if c.name == name)
    folder = tmp_path / "in"
    shutil.copytree(inputs, folder)
    _apply(case, folder)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONHASHSEED="0")
    done = subprocess.run([sys.executable, "-m", "bayes_ablation", *_argv(case, folder, out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert expected_location(case) in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
