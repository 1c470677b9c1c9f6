"""CDISC ADaM input: the same patients as the CSV give the same validated table and the same
answer; every ADaM-specific mistake is refused in one error naming file, row and column."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyreadstat
import pytest

import bayes_ablation as ba
from bayes_ablation.data.adam import read_adam
from bayes_ablation.data.cut import cut, read_dated
from tests.conftest import MODELS, ROOT

TRIAL = ROOT / "examples" / "pfs_trial.csv"


@pytest.fixture(scope="module")
def spec():
    return ba.load_spec(MODELS / "pfs_weibull_site.toml")


@pytest.fixture(scope="module")
def trial():
    return pd.read_csv(TRIAL, dtype={"patient_id": str})


def adam_frames(trial: pd.DataFrame, *, unit: str = "MONTHS", days: bool = False
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ADSL and ADTTE (PARAMCD PFS, plus an OS parameter) of the example trial."""
    aval = np.round(trial["time_months"] * 30.4375) if days else trial["time_months"]
    start = [dt.date(2026, 1, 15) + dt.timedelta(days=i) for i in range(len(trial))]
    adt = [s + dt.timedelta(days=round(t * 30.4375) - 1)
           for s, t in zip(start, trial["time_months"], strict=True)]
    adsl = pd.DataFrame({"USUBJID": trial["patient_id"], "SITEID": trial["site"],
                         "TRT01P": trial["arm"], "TRT01A": trial["arm"]})
    pfs = pd.DataFrame({"USUBJID": trial["patient_id"], "PARAMCD": "PFS",
                        "PARAM": f"Progression-free survival ({unit.lower()})",
                        "AVAL": aval, "AVALU": unit, "CNSR": 1.0 - trial["event"],
                        "STARTDT": start, "ADT": adt})
    other = pfs.assign(PARAMCD="OS", CNSR=1.0, AVAL=pfs["AVAL"] + 1)
    return adsl, pd.concat([other.iloc[:7], pfs, other.iloc[7:]], ignore_index=True)


def write_xpt(tmp_path, adsl, adtte, version=8):
    dates = {c: "DATE9." for c in ("STARTDT", "ADT") if c in adtte}
    pyreadstat.write_xport(adsl, tmp_path / "adsl.xpt", table_name="ADSL",
                           file_format_version=version)
    pyreadstat.write_xport(adtte, tmp_path / "adtte.xpt", table_name="ADTTE",
                           file_format_version=version, variable_format=dates)
    return tmp_path / "adtte.xpt", tmp_path / "adsl.xpt"


def same_table(a: ba.PatientTable, b: ba.PatientTable) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=True)
    assert (a.arms, a.sites, a.covariates) == (b.arms, b.sites, b.covariates)


@pytest.mark.parametrize("version", [5, 8])
def test_xpt_in_months_gives_exactly_the_csv_table(tmp_path, spec, trial, version):
    adtte, adsl = write_xpt(tmp_path, *adam_frames(trial), version=version)
    same_table(read_adam(adtte, adsl, "PFS", spec).patients, ba.read_patients(TRIAL, spec))


@pytest.mark.parametrize("fmt", ["xpt", "csv", "parquet"])
def test_days_are_converted_at_30_4375_a_month_in_every_format(tmp_path, spec, trial, fmt):
    adsl, adtte = adam_frames(trial, unit="DAYS", days=True)
    adtte = adtte.drop(columns="AVALU")  # the unit comes from PARAM's "(days)"
    if fmt == "xpt":
        paths = write_xpt(tmp_path, adsl, adtte)
    else:
        paths = (tmp_path / f"adtte.{fmt}", tmp_path / f"adsl.{fmt}")
        for frame, path in zip((adtte, adsl), paths, strict=True):
            frame.to_csv(path, index=False) if fmt == "csv" else \
                frame.astype(str).to_parquet(path)
    csv = trial.assign(time_months=np.round(trial["time_months"] * 30.4375) / 30.4375)
    csv.to_csv(tmp_path / "same.csv", index=False, float_format="%.17g")
    data = read_adam(*paths, "PFS", spec)
    same_table(data.patients, ba.read_patients(tmp_path / "same.csv", spec))
    assert data.mapping["aval_unit"] == "days" and data.mapping["aval_unit_from"] == "PARAM"


def test_same_seed_same_estimands_to_the_last_digit(tmp_path, spec, trial):
    small = trial.groupby("site").head(12).reset_index(drop=True)
    small.to_csv(tmp_path / "small.csv", index=False)
    adtte, adsl = write_xpt(tmp_path, *adam_frames(small))
    fast = spec.with_sampler(draws=60, tune=60, chains=1)
    a = ba.fit(fast, read_adam(adtte, adsl, "PFS", fast).patients, run_ppc=False,
               log_likelihood=False)
    b = ba.fit(fast, tmp_path / "small.csv", run_ppc=False, log_likelihood=False)
    pd.testing.assert_frame_equal(a.estimand_table, b.estimand_table, check_exact=True)
    assert a.provenance["input_mapping"]["paramcd"] == "PFS"


def test_every_adam_mistake_in_one_error(tmp_path, spec, trial):
    adsl, adtte = adam_frames(trial)
    pfs_rows = adtte.index[adtte["PARAMCD"] == "PFS"]
    r = lambda k: int(pfs_rows[k]) + 1  # noqa: E731  (file row of the k-th PFS record)
    adtte["SITEID"] = adtte["USUBJID"].map(dict(zip(adsl["USUBJID"], adsl["SITEID"],
                                                    strict=True)))
    adtte.loc[pfs_rows[3], "SITEID"] = "S99"                  # disagrees with ADSL
    adtte.loc[pfs_rows[5], "CNSR"] = -1.0                     # not ≥ 0
    adtte.loc[pfs_rows[6], "CNSR"] = 0.5                      # not an integer
    adtte.loc[pfs_rows[8], "USUBJID"] = adtte.loc[pfs_rows[9], "USUBJID"]  # twice
    adtte.loc[pfs_rows[10], "USUBJID"] = "NOBODY"             # not in ADSL
    paths = write_xpt(tmp_path, adsl, adtte)
    with pytest.raises(ba.DataValidationError) as info:
        read_adam(*paths, "PFS", spec)
    text = str(info.value)
    for row, col in ((r(3), "SITEID"), (r(5), "CNSR"), (r(6), "CNSR"), (r(9), "USUBJID"),
                     (r(10), "USUBJID")):
        assert f"adtte.xpt, row {row}, column '{col}'" in text, (row, col, text)
    assert "missing from ADSL" in text and "within PARAMCD = 'PFS'" in text
    assert "an integer ≥ 0" in text and "'S99'" in text
    assert len(info.value.problems) == 5


def test_unknown_paramcd_lists_the_codes_present(tmp_path, spec, trial):
    paths = write_xpt(tmp_path, *adam_frames(trial))
    with pytest.raises(ba.DataValidationError, match=r"column 'PARAMCD': got 'DFS'.*present: "
                                                     r"OS, PFS"):
        read_adam(*paths, "DFS", spec)


def test_no_unit_is_refused_unless_aval_unit_says_it(tmp_path, spec, trial):
    adsl, adtte = adam_frames(trial, unit="DAYS", days=True)
    adtte = adtte.drop(columns=["AVALU", "PARAM"])
    paths = write_xpt(tmp_path, adsl, adtte)
    with pytest.raises(ba.DataValidationError, match=r"column 'AVALU'.*the unit of AVAL"):
        read_adam(*paths, "PFS", spec)
    data = read_adam(*paths, "PFS", spec, aval_unit="days")
    assert data.mapping["aval_unit_from"] == "--aval-unit"
    assert data.patients.time.max() == pytest.approx(trial["time_months"].max(), abs=0.02)
    adsl, adtte = adam_frames(trial, unit="DAYS", days=True)
    paths = write_xpt(tmp_path, adsl, adtte)
    with pytest.raises(ba.DataValidationError, match="agreeing with --aval-unit months"):
        read_adam(*paths, "PFS", spec, aval_unit="months")


def test_label_and_plausibility_checks_name_the_adam_file_row_and_column(tmp_path, spec,
                                                                           trial):
    adsl, adtte = adam_frames(trial, unit="DAYS", days=True)
    adsl.loc[[4, 9], "TRT01A"] = "Perioperative "
    first = int(adtte.index[(adtte["PARAMCD"] == "PFS")][2])
    adtte.loc[first, "AVAL"] = 40000.0                     # 1314 months
    paths = write_xpt(tmp_path, adsl, adtte)
    with pytest.raises(ba.DataValidationError) as info:
        read_adam(*paths, "PFS", spec, arm_var="TRT01A")
    text = str(info.value)
    assert "adsl.xpt, row 5, column 'TRT01A'" in text and "rows 5, 10" in text
    assert f"adtte.xpt, row {first + 1}, column 'AVAL': got 40000.0" in text
    assert "at most 600 months" in text and "= 1314.17 months" in text


def test_an_arm_without_events_warns_in_adsl_terms(tmp_path, spec, trial):
    quiet = trial.assign(event=np.where(trial["arm"] == "perioperative", 0, trial["event"]))
    paths = write_xpt(tmp_path, *adam_frames(quiet))
    warnings = read_adam(*paths, "PFS", spec).patients.warnings
    assert any(w.column == "TRT01P" and w.file.endswith("adsl.xpt") and
               "has no event" in w.message for w in warnings)


def test_dates_give_the_dated_table_of_monitor(tmp_path, spec, trial):
    adsl, adtte = adam_frames(trial, unit="DAYS", days=True)
    paths = write_xpt(tmp_path, adsl, adtte)
    dated = read_adam(*paths, "PFS", spec, require_dates=True).dated
    pfs = adtte[adtte["PARAMCD"] == "PFS"]
    csv = pd.DataFrame({"patient_id": trial["patient_id"], "site": trial["site"],
                        "arm": trial["arm"],
                        "randomised_on": [d.isoformat() for d in pfs["STARTDT"]],
                        "progressed_on": [d.isoformat() if c == 0 else ""
                                          for d, c in zip(pfs["ADT"], pfs["CNSR"], strict=True)],
                        "last_followup_on": [d.isoformat() for d in pfs["ADT"]]})
    csv.to_csv(tmp_path / "dated.csv", index=False)
    same = read_dated(tmp_path / "dated.csv", spec=spec)
    for date in ("2026-09-30", "2028-01-31"):
        same_table(cut(dated, date, reference_arm="postoperative").patients,
                   cut(same, date, reference_arm="postoperative").patients)
    # at a cut after every date, the dates give AVAL (days, ADT - STARTDT + 1) in months
    final = cut(dated, "2040-01-01", reference_arm="postoperative").patients
    assert np.array_equal(final.time, pfs["AVAL"].to_numpy() / 30.4375)
    adtte.loc[adtte.index[adtte["PARAMCD"] == "PFS"][0], "ADT"] = dt.date(2020, 1, 1)
    paths = write_xpt(tmp_path, adsl, adtte.drop(columns="STARTDT").assign(
        STARTDT=adtte["STARTDT"]))
    with pytest.raises(ba.DataValidationError, match=r"adtte.xpt, row 8, column 'ADT'.*on or "
                                                     r"after STARTDT"):
        read_adam(*paths, "PFS", spec, require_dates=True)


def test_cli_refuses_incomplete_or_double_input(tmp_path, capsys):
    from bayes_ablation.cli.main import main

    spec = str(MODELS / "pfs_weibull_site.toml")
    adam = ROOT / "examples" / "adam"
    cases = [["--adtte", str(adam / "adtte.xpt"), "--paramcd", "PFS"],
             ["--data", str(TRIAL), "--adtte", str(adam / "adtte.xpt")],
             []]
    for extra in cases:
        out = tmp_path / "out"
        assert main(["fit", "--spec", spec, "--out", str(out), *extra]) == 2
        assert not out.exists()
    err = capsys.readouterr().err
    assert "missing: --adsl" in err and "not both" in err and "no input" in err


def test_monitor_on_adam_gives_the_look_of_the_same_dated_csv(tmp_path, capsys):
    """The shipped ADaM example through ``monitor`` (the command line) and the same patients as
    a dated CSV through the API: the same posterior, PPoS and decision; the mapping is in the
    ledger's record."""
    from bayes_ablation.cli.main import main
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.api import interim_look

    adam = ROOT / "examples" / "adam"
    design = MODELS / "interim_design.toml"
    code = main(["monitor", "--design", str(design), "--adtte", str(adam / "adtte.xpt"),
                 "--adsl", str(adam / "adsl.xpt"), "--paramcd", "PFS", "--cut", "2027-06-30",
                 "--ledger", str(tmp_path / "adam.db"), "--quiet"])
    assert code == 0
    assert "ADaM input:" in capsys.readouterr().err
    from bayes_ablation.workflows.monitoring.ledger import Ledger

    with Ledger.open(tmp_path / "adam.db") as book:
        (via_adam,) = book.looks()
    mapping = via_adam.result["data"]["input_mapping"]
    assert mapping["paramcd"] == "PFS" and mapping["columns"]["STARTDT"] == "randomised_on"

    dated = read_adam(adam / "adtte.xpt", adam / "adsl.xpt", "PFS", load_design(design).spec,
                      require_dates=True).dated.frame
    csv = dated.drop(columns="row").assign(withdrawn=dated["withdrawn"].astype(int))
    for col in ("randomised_on", "progressed_on", "last_followup_on"):
        csv[col] = [d.isoformat() if d is not None else "" for d in csv[col]]
    csv.to_csv(tmp_path / "dated.csv", index=False)
    look = interim_look(design, tmp_path / "dated.csv", "2027-06-30",
                        ledger=tmp_path / "csv.db")
    for key in ("posterior", "ppos", "decision", "fast_posterior"):
        assert look.result.result[key] == via_adam.result[key], key


def test_siteid_only_in_adtte_is_named_there(spec, trial):
    from bayes_ablation.data.adam import validate_adam
    from bayes_ablation.data.schema import plausibility

    adsl, adtte = adam_frames(trial)
    pfs = adtte.index[adtte["PARAMCD"] == "PFS"]
    adtte["SITEID"] = adtte["USUBJID"].map(dict(zip(adsl["USUBJID"], adsl["SITEID"],
                                                    strict=True)))
    adtte.loc[pfs[4], "SITEID"] = "s01"                     # a typo of S01
    with pytest.raises(ba.DataValidationError,
                       match=rf"adtte.xpt, row {pfs[4] + 1}, column 'SITEID': got 's01'"):
        validate_adam(adtte, adsl.drop(columns="SITEID"), "PFS", adtte_source="adtte.xpt",
                      adsl_source="adsl.xpt", reference_arm="postoperative",
                      **plausibility(spec))
