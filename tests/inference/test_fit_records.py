"""Fit records: a second process fits from the record without PyMC and gets the PyMC path's
draws bit for bit; anything missing or different falls back to the PyMC path."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "models" / "pfs_weibull_site.toml"
DATA = ROOT / "examples" / "pfs_trial.csv"

FIT = """
import json, sys
from bayes_ablation import fit
from bayes_ablation.spec.plan import load_spec
spec = load_spec({spec!r}).with_sampler(draws=300, tune=300, seed={seed})
result = fit(spec, {data!r}, progress=False, run_ppc=False)
result.idata.to_netcdf({out!r}, engine="h5netcdf")
details = result.provenance["sampler_details"]
print(json.dumps({{"record": details.get("model_record"), "check": details.get("kernel_check"),
                   "pymc": "pymc" in sys.modules, "pytensor": "pytensor" in sys.modules}}))
"""


def run_fit(cache: Path, out: Path, seed: int = 11) -> dict:
    code = FIT.format(spec=str(SPEC), data=str(DATA), out=str(out), seed=seed)
    env = {**os.environ, "BAYES_ABLATION_CACHE_DIR": str(cache), "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def groups(path: Path) -> dict[str, xr.Dataset]:
    tree = xr.open_datatree(path, engine="h5netcdf")
    return {name: tree[name].to_dataset().load() for name in
            ("posterior", "sample_stats", "constant_data", "observed_data")}


def assert_same_fit(a: Path, b: Path) -> None:
    ga, gb = groups(a), groups(b)
    for name in ga:
        assert ga[name].equals(gb[name]), name
        for var in ga[name].data_vars:   # bit for bit, not only to tolerance
            np.testing.assert_array_equal(ga[name][var].values, gb[name][var].values)


@pytest.fixture(scope="module")
def first_fit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    facts = run_fit(folder / "cache", folder / "first.nc")
    return folder, facts


def test_second_process_fits_from_the_record_without_pymc(first_fit):
    folder, first = first_fit
    assert first["record"].startswith("recorded (sha256 ") and first["pymc"]
    second = run_fit(folder / "cache", folder / "second.nc")
    assert second["record"].startswith("cached (sha256 ")
    assert "no PyMC model built" in second["record"]
    assert second["check"].startswith("recorded with the model")
    assert not second["pymc"] and not second["pytensor"]
    assert_same_fit(folder / "first.nc", folder / "second.nc")


def altered_records(source: Path, cache: Path, alter) -> Path:
    """A cache folder holding ``alter(bytes)`` of every record under ``source``."""
    (cache / "fit_records").mkdir(parents=True)
    for path in (source / "fit_records").glob("*.pkl"):
        (cache / "fit_records" / path.name).write_bytes(alter(path.read_bytes()))
    return cache


def test_a_seed_the_record_lacks_builds_the_model_for_it(first_fit, tmp_path):
    folder, _ = first_fit

    def drop_first_point(data: bytes) -> bytes:
        record = pickle.loads(data)
        record["initial_points"] = dict(list(record["initial_points"].items())[1:])
        return pickle.dumps(record)

    cache = altered_records(folder / "cache", tmp_path / "cache", drop_first_point)
    third = run_fit(cache, tmp_path / "third.nc")
    assert "PyMC model built for it" in third["record"] and third["pymc"]
    assert_same_fit(folder / "first.nc", tmp_path / "third.nc")


def test_an_unreadable_record_is_no_record(first_fit, tmp_path):
    folder, _ = first_fit
    cache = altered_records(folder / "cache", tmp_path / "cache", lambda _: b"not a pickle")
    fourth = run_fit(cache, tmp_path / "fourth.nc")
    assert fourth["record"].startswith("recorded (sha256 ") and fourth["pymc"]
    assert_same_fit(folder / "first.nc", tmp_path / "fourth.nc")


def test_digest_is_the_same_in_another_process_and_changes_with_seed_and_data():
    code = textwrap.dedent(f"""
        from bayes_ablation.data.schema import read_patients
        from bayes_ablation.inference.fit_records import record_digest
        from bayes_ablation.spec.plan import load_spec
        spec = load_spec({str(SPEC)!r})
        print(record_digest(spec, read_patients({str(DATA)!r}, spec)))
    """)
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed}
                              ).stdout.strip() for seed in ("0", "1")}
    assert len(digests) == 1

    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.inference.fit_records import record_digest
    from bayes_ablation.spec.plan import load_spec

    spec = load_spec(SPEC)
    patients = read_patients(DATA, spec)
    digest = record_digest(spec, patients)
    assert digest in digests
    assert record_digest(spec.with_sampler(seed=spec.sampler.seed + 1), patients) != digest
    frame = patients.frame.copy()
    same = record_digest(spec, read_patients(frame.copy(), spec))
    assert record_digest(spec, read_patients(frame.copy(), spec)) == same
    frame.loc[0, "time_months"] += 0.01
    assert record_digest(spec, read_patients(frame, spec)) != same


def test_only_the_most_recent_records_are_kept(tmp_path, monkeypatch):
    from bayes_ablation.inference import fit_records

    monkeypatch.setenv("BAYES_ABLATION_CACHE_DIR", str(tmp_path))
    for k in range(5):
        fit_records.save_record(f"{k:064x}", {"k": k})
        os.utime(fit_records.records_dir() / f"{k:064x}.pkl", (1000 + k, 1000 + k))
    assert fit_records.load_record(f"{0:064x}")["k"] == 0      # a use refreshes it
    removed = fit_records.prune_records(keep=3)
    kept = sorted(p.stem for p in fit_records.records_dir().glob("*.pkl"))
    assert kept == [f"{k:064x}" for k in (0, 3, 4)]
    assert len(removed) == 2
    assert fit_records.load_record("f" * 64) is None


def test_a_record_written_in_the_background_is_whole_or_absent(tmp_path, monkeypatch, caplog):
    from bayes_ablation.inference import fit_records

    monkeypatch.setenv("BAYES_ABLATION_CACHE_DIR", str(tmp_path))
    fit_records.save_record_in_background("a" * 64, {"k": np.arange(3)})
    assert fit_records.load_record("a" * 64)["k"].tolist() == [0, 1, 2]   # waits for it
    caplog.set_level("DEBUG", logger=fit_records.__name__)
    fit_records.save_record_in_background("b" * 64, {"k": lambda: 0})      # does not pickle
    fit_records.wait_for_records()
    assert fit_records.load_record("b" * 64) is None
    assert [p.name for p in fit_records.records_dir().iterdir()] == ["a" * 64 + ".pkl"]
    assert "fit record not written" in caplog.text


def test_table_digest_sees_every_cell_name_and_type():
    import numpy as np
    import pandas as pd

    from bayes_ablation.inference.fit_records import data_digest, table_digest

    n = 3000
    frame = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)],
                          "site": np.array(["A", "B", "C"])[np.arange(n) % 3],
                          "time_months": np.linspace(0.5, 30, n),
                          "event": np.arange(n) % 2})
    base = table_digest(frame)
    assert table_digest(frame.copy()) == base
    assert table_digest(frame.astype({"patient_id": "str"})) == base  # same text, other storage
    variants = []
    for col, value in (("patient_id", "P0 "), ("site", "a"), ("time_months", 0.5000001),
                       ("event", 0)):
        changed = frame.copy()
        changed.loc[n - 1, col] = value
        variants.append(changed)
    variants += [frame.rename(columns={"site": "centre"}), frame.astype({"event": float}),
                 frame.iloc[::-1].reset_index(drop=True), frame.set_index("patient_id"),
                 frame.iloc[:-1]]
    joined = frame.copy()  # NUL-joined text cannot be confused with other cells
    joined.loc[0, "patient_id"], joined.loc[1, "patient_id"] = "P0\0P1", ""
    variants.append(joined)
    digests = [table_digest(v) for v in variants]
    assert base not in digests and len(set(digests)) == len(digests)
    # nested in model data (a dataclass holding tables): only the content counts
    assert data_digest({"frame": frame}) == data_digest({"frame": frame.copy()})
    assert data_digest({"frame": frame}) != data_digest({"frame": variants[0]})
