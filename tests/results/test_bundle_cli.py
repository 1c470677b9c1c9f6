"""Result bundles (complete, atomic, never half-written) and the command line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayes_ablation.cli.main import main
from bayes_ablation.errors import BundleError
from bayes_ablation.results import bundle
from tests.conftest import MODELS, ROOT


@pytest.fixture(scope="module")
def saved600(fit600, tmp_path_factory):
    """fit600 written once as a bundle; tests that need *a* bundle (not the act of writing
    one) work on copies of it."""
    return fit600.save(tmp_path_factory.mktemp("saved600") / "b")


def _copy(bundle_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, dest))


def test_bundle_is_complete_and_verifiable(fit600, saved600, tmp_path):
    out = _copy(saved600, tmp_path / "b")
    names = {p.name for p in out.iterdir()}
    assert {"spec.toml", "posterior.nc", "estimands.csv", "summary.json", "report.html",
            "figures", "MANIFEST.json"} <= names
    assert {"km_posterior.png", "ppc_arm.png", "ppc_sites.png", "site_effects.png",
            "hr_posterior.png"} <= {p.name for p in (out / "figures").iterdir()}
    bundle.verify(out)
    summary = bundle.read_summary(out)
    assert summary["provenance"]["spec_sha256"] == fit600.spec.sha256
    tree = bundle.open_posterior(out)
    np.testing.assert_array_equal(tree["posterior"]["log_hr"].values,
                                  fit600.idata.posterior["log_hr"].values)
    assert "survival_difference" in tree["estimands"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Convergence gate passed" in html
    assert "rationale" in html and fit600.spec.priors["log_hr"].rationale in html
    (out / "summary.json").write_text("{}")
    with pytest.raises(BundleError, match="does not match"):
        bundle.verify(out)


def test_netcdf_posterior_is_compressed_and_reads_back_bit_for_bit(fit600, saved600):
    import h5py

    written = bundle.posterior_tree(fit600)
    back = bundle.open_posterior(saved600)
    compared = 0
    for node in written.subtree:
        ours, theirs = node.to_dataset(inherit=False), back[node.path].to_dataset(inherit=False)
        for name, var in ours.variables.items():
            if var.dtype.kind not in "biufc":
                continue
            stored = theirs.variables[name]
            assert stored.dtype == var.dtype, (node.path, name)
            assert stored.values.tobytes() == var.values.tobytes(), (node.path, name)
            compared += 1
    assert compared > 50
    with h5py.File(saved600 / "posterior.nc", "r") as h5:
        loglik = h5["log_likelihood/y"]
        assert loglik.compression == "gzip" and loglik.shuffle
        assert loglik.compression_opts == bundle.NETCDF_COMPLEVEL
        assert loglik.dtype == np.float64


def test_bundle_refuses_existing_and_force_replaces(fit600, saved600, tmp_path):
    out = _copy(saved600, tmp_path / "b")
    with pytest.raises(BundleError, match="exists"):
        fit600.save(out)
    first = json.loads((out / "MANIFEST.json").read_text())
    (out / "left_over.txt").write_text("from the replaced bundle")
    fit600.save(out, force=True)
    bundle.verify(out)
    assert not (out / "left_over.txt").exists()             # replaced as a whole, not merged
    assert set(json.loads((out / "MANIFEST.json").read_text())) == set(first)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(BundleError, match="not a result bundle"):
        fit600.save(foreign, force=True)
    assert (foreign / "thesis.docx").read_text() == "precious"


def test_failure_while_writing_leaves_nothing_behind(fit600, saved600, tmp_path, monkeypatch):
    import bayes_ablation.results.bundle as bundle

    def boom(*args, **kwargs):
        raise RuntimeError("disk full while writing the posterior")

    # spec.toml is already in the temporary folder when the posterior fails
    monkeypatch.setattr(bundle, "posterior_tree", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        fit600.save(tmp_path / "b")
    assert list(tmp_path.iterdir()) == []
    # an existing bundle survives a failed --force rewrite untouched
    monkeypatch.undo()
    out = _copy(saved600, tmp_path / "b")
    before = (out / "MANIFEST.json").read_text()
    monkeypatch.setattr(bundle, "posterior_tree", boom)
    with pytest.raises(RuntimeError):
        fit600.save(out, force=True)
    assert (out / "MANIFEST.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_zarr_posterior(fit600, tmp_path):
    out = fit600.save(tmp_path / "z", posterior_format="zarr")
    tree = bundle.open_posterior(out)
    np.testing.assert_array_equal(tree["posterior"]["hr"].values,
                                  fit600.idata.posterior["hr"].values)


def test_cli_invalid_data_exits_2_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_text("patient_id,site,arm,time_months,event\nP1,A,postoperative,-1,1\n"
                    "P2,A,perioperative,3,2\n")
    out = tmp_path / "res"
    code = main(["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"), "--data", str(data),
                 "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "row 1, column 'time_months'" in err and "row 2, column 'event'" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_cli_invalid_spec_exits_2(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text((MODELS / "pfs_weibull_site.toml").read_text().replace(
        'family = "weibull"', 'family = "gompertz"'))
    code = main(["fit", "--spec", str(spec), "--data", "x.csv", "--out", str(tmp_path / "o")])
    assert code == 2 and "family must be one of" in capsys.readouterr().err


def test_cli_existing_out_refused_before_fitting(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    code = main(["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"), "--data", "x.csv",
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "--force" in capsys.readouterr().err


def test_cli_simulate_fit_and_strict_gate(tmp_path, trial600, capsys):
    data = tmp_path / "trial.csv"
    trial600[0].frame.to_csv(data, index=False)
    out = tmp_path / "res"
    code = main(["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"), "--data", str(data),
                 "--out", str(out), "--draws", "25", "--tune", "25", "--chains", "2", "--strict",
                 "--quiet"])
    assert code == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostics"]["passed"] is False
    n = len(trial600[0].frame)
    assert summary["posterior_predictive_sample"] == {
        "patients_checked": n, "patients_total": n, "patients_sampled": "all"}
    assert "FAILED" in (out / "report.html").read_text()
    assert "sampler" in (out / "spec.toml").read_text()
    assert 'draws = 25' in (out / "spec.toml").read_text()


def test_cli_simulate_writes_reproducible_csv(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        assert main(["simulate", "--n-patients", "50", "--sites", "3", "--seed", "4",
                     "--out", str(path), "--truth", str(path.with_suffix(".json"))]) == 0
    assert a.read_text() == b.read_text()
    assert main(["simulate", "--n-patients", "50", "--out", str(a)]) == 2  # exists, no --force: invalid input


def test_help_does_not_import_pymc():
    code = ("import sys; from bayes_ablation.cli.main import build_parser; build_parser();"
            "print('pymc' in sys.modules, 'arviz' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_same_seed_same_draws_across_processes(tmp_path, trial600):
    """Two fresh CLI processes (hash seed unset: the CLI pins it) give identical draws."""
    data = tmp_path / "trial.csv"
    trial600[0].frame.iloc[:200].to_csv(data, index=False)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = str(ROOT / "src")
    procs = [subprocess.Popen([sys.executable, "-m", "bayes_ablation", "fit", "--spec",
                               str(MODELS / "pfs_weibull_site.toml"), "--data", str(data),
                               "--out", str(tmp_path / f"r{i}"), "--draws", "150", "--tune",
                               "150", "--chains", "2", "--quiet"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    trees = [xr.open_datatree(tmp_path / f"r{i}" / "posterior.nc", engine="h5netcdf")
             for i in range(2)]
    for name in ("log_hr", "weibull_shape", "z_site", "sigma_site"):
        np.testing.assert_array_equal(trees[0]["posterior"][name].values,
                                      trees[1]["posterior"][name].values)
    prov = json.loads((tmp_path / "r0" / "summary.json").read_text())["provenance"]
    assert prov["python_hash_seed"] == "0" and prov["reproducible_across_processes"] is True
    assert Path(prov["data_source"]) == data


def test_provenance_pins_the_source_revision():
    import subprocess

    from bayes_ablation.core.provenance import package_versions
    from tests.conftest import ROOT

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    revision = package_versions()["bayes_ablation_source"]
    assert revision.split("+")[0] == head


def _same_posterior_file(a: Path, b: Path) -> None:
    ta, tb = xr.open_datatree(a, engine="h5netcdf"), xr.open_datatree(b, engine="h5netcdf")
    assert ta.groups == tb.groups
    for node in ta.subtree:
        xr.testing.assert_identical(node.to_dataset(inherit=False),
                                    tb[node.path].to_dataset(inherit=False))


def test_posterior_written_in_parallel_equals_serial(fit600, tmp_path, monkeypatch):
    """The posterior file a forked child writes (while the report is drawn) is the file this
    process writes with parallel writes switched off."""
    from bayes_ablation.core import forked

    # other tests of the session may leave a Python thread running (a Dask client): forking
    # is safe here (no thread holds h5py's lock), so count only this one
    monkeypatch.setattr(forked.threading, "active_count", lambda: 1)
    assert forked.can_fork() or not sys.platform.startswith("linux")
    parallel = fit600.save(tmp_path / "parallel")
    monkeypatch.setenv("BAYES_ABLATION_SERIAL_WRITES", "1")
    assert not forked.can_fork()
    serial = fit600.save(tmp_path / "serial")
    _same_posterior_file(parallel / "posterior.nc", serial / "posterior.nc")
    bundle.verify(parallel)
    assert not [p for p in parallel.rglob("*") if p.name.endswith(".part")]


def test_posterior_the_child_failed_to_write_is_written_here(fit600, tmp_path, monkeypatch):
    from bayes_ablation.core import forked

    monkeypatch.setattr(forked.threading, "active_count", lambda: 1)  # as above
    if not forked.can_fork():
        pytest.skip("no fork on this platform")
    parent, real = os.getpid(), bundle.write_posterior

    def fails_in_child(tree, folder, fmt):
        if os.getpid() != parent:
            (folder / ".posterior.nc.part").write_bytes(b"half-written")
            raise RuntimeError("child failure")
        return real(tree, folder, fmt)

    monkeypatch.setattr(bundle, "write_posterior", fails_in_child)
    messages: list[str] = []
    out = bundle.write_bundle(fit600, tmp_path / "b", render=lambda: ("<html></html>", {}, {}),
                              progress=messages.append)
    assert "posterior: written here (the parallel writer did not deliver it)" in messages
    bundle.verify(out)
    assert not list(out.glob(".posterior*"))
    np.testing.assert_array_equal(bundle.open_posterior(out)["posterior"]["log_hr"].values,
                                  fit600.idata.posterior["log_hr"].values)


def test_report_failure_stops_the_writer_and_leaves_nothing(fit600, tmp_path):
    def render():
        raise RuntimeError("report failed")

    with pytest.raises(RuntimeError, match="report failed"):
        bundle.write_bundle(fit600, tmp_path / "b", render=render)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BundleError, match="either report_html"):
        bundle.write_bundle(fit600, tmp_path / "c", report_html="x", render=render)


def test_cli_freezes_the_heap_only_as_a_process():
    """``main(argv)`` called from Python leaves the caller's garbage collector alone."""
    import gc

    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert main(["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"), "--out", "/nonexistent/x",
                 "--data", str(ROOT / "no_such_file.csv")]) == 2
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == frozen


def test_no_fork_while_another_python_thread_runs():
    """A thread could hold a lock (h5py's) at the fork: the posterior is then written here."""
    import threading

    from bayes_ablation.core import forked

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not forked.can_fork()
        assert forked.start(lambda: None) is None
    finally:
        stop.set()
        thread.join()
