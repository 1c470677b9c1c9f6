"""``bayes-ablation reconstruct``: files written on success, nothing on bad input."""

from __future__ import annotations

import json

from bayes_ablation.cli.main import main


def _inputs(tmp_path, bad=False):
    (tmp_path / "c.csv").write_text("time_months,survival\n0,1\n3,0.8\n6,0.7\n9,0.6\n12,0.6\n")
    n = "10" if not bad else "x"
    (tmp_path / "r.csv").write_text(f"time_months,n_at_risk\n0,50\n6,30\n12,{n}\n")
    return ["reconstruct", "--curve", str(tmp_path / "c.csv"), "--at-risk",
            str(tmp_path / "r.csv"), "--arm", "A", "--out", str(tmp_path / "ipd.csv"),
            "--report", str(tmp_path / "rep.json"), "--figure", str(tmp_path / "f.png")]


def test_writes_files(tmp_path):
    assert main(_inputs(tmp_path)) == 0
    assert (tmp_path / "f.png").stat().st_size > 0
    assert json.loads((tmp_path / "rep.json").read_text())["n_patients"] == 50
    assert main(_inputs(tmp_path)) == 2   # exists, no --force
    assert main([*_inputs(tmp_path), "--force"]) == 0


def test_bad_input_writes_nothing(tmp_path, capsys):
    assert main(_inputs(tmp_path, bad=True)) == 2
    assert "r.csv, row 3, column 'n_at_risk'" in capsys.readouterr().err
    assert not (tmp_path / "ipd.csv").exists()
