"""Write the ADaM example (ADSL + ADTTE as SAS transport v5) from the package's own example
trial ``examples/pfs_trial.csv``; run from the repository root:

    python examples/adam/make_adam.py

ADSL: one row per subject (STUDYID, USUBJID, SUBJID, SITEID, TRT01P, TRT01A, RANDDT).
ADTTE: two parameters per subject, PARAMCD = "PFS" (the trial's PFS: AVAL in days, rounded to
whole days as ADaM stores them, CNSR = 1 − event) and "OS" (an all-censored placeholder, so
that choosing the parameter matters). Randomisation dates (STARTDT): the patients in a fixed
random order (seed 1), 14 a month from 2026-01-15, the start date of ``models/interim_design.toml``;
ADT = STARTDT + AVAL − 1 day (the ADaM convention AVAL = ADT − STARTDT + 1).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

HERE = Path(__file__).resolve().parent
DAYS_PER_MONTH = 30.4375
START = dt.date(2026, 1, 15)


def main() -> None:
    trial = pd.read_csv(HERE.parent / "pfs_trial.csv", dtype={"patient_id": str})
    n = len(trial)
    usubjid = "ABL-01-" + trial["patient_id"]
    order = np.random.default_rng(1).permutation(n)  # enrolment order across sites
    offset = np.empty(n)
    offset[order] = np.round(np.arange(n) * DAYS_PER_MONTH / 14.0)
    start = [START + dt.timedelta(days=int(d)) for d in offset]
    days = np.maximum(np.round(trial["time_months"].to_numpy() * DAYS_PER_MONTH), 1.0)
    adt = [s + dt.timedelta(days=int(d) - 1) for s, d in zip(start, days, strict=True)]
    adsl = pd.DataFrame({
        "STUDYID": "ABL-01", "USUBJID": usubjid, "SUBJID": trial["patient_id"],
        "SITEID": trial["site"], "TRT01P": trial["arm"], "TRT01A": trial["arm"],
        "RANDDT": start,
    })
    pfs = pd.DataFrame({
        "STUDYID": "ABL-01", "USUBJID": usubjid, "SITEID": trial["site"],
        "PARAMCD": "PFS", "PARAM": "Progression-free survival (days)",
        "AVAL": days, "AVALU": "DAYS", "CNSR": 1.0 - trial["event"].to_numpy(),
        "STARTDT": start, "ADT": adt,
    })
    os_ = pfs.assign(PARAMCD="OS", PARAM="Overall survival (days)", CNSR=1.0)
    adtte = pd.concat([pfs, os_], ignore_index=True)
    dates = {"RANDDT": "DATE9.", "STARTDT": "DATE9.", "ADT": "DATE9."}
    pyreadstat.write_xport(adsl, HERE / "adsl.xpt", table_name="ADSL", file_format_version=5,
                           file_label="Subject-Level Analysis Dataset",
                           variable_format={k: v for k, v in dates.items() if k in adsl})
    pyreadstat.write_xport(adtte, HERE / "adtte.xpt", table_name="ADTTE",
                           file_format_version=5, file_label="Time-to-Event Analysis Dataset",
                           variable_format={k: v for k, v in dates.items() if k in adtte})
    print(f"wrote {HERE / 'adsl.xpt'} ({len(adsl)} subjects) and {HERE / 'adtte.xpt'} "
          f"({len(adtte)} records: PFS and OS)")


if __name__ == "__main__":
    main()
