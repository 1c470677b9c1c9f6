"""Simulated trials as dated tables (what a data-monitoring committee receives).

A sibling of :func:`bayes_ablation.data.simulate.simulate_trial` (which it calls, unchanged):
the same trial, with calendar dates instead of times, for :mod:`bayes_ablation.data.cut`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_ablation.data.cut import DAYS_PER_MONTH
from bayes_ablation.data.simulate import SimulatedTrial, simulate_trial


def simulate_dated_trial(n_patients: int = 400, n_sites: int = 8,
                         log_hr: float | Sequence[float] = -0.25, *,
                         start_date: str = "2026-01-15", **kwargs: object) -> SimulatedTrial:
    """:func:`simulate_trial` as a dated table (the data as it stands at the final lock).

    Calendar days from ``start_date``: ``randomised_on = start + round(entry · 30.4375)``;
    a progression observed before censoring gives ``progressed_on = randomised_on +
    round(T · 30.4375) − 1`` days (the ADaM +1-day rule of :mod:`bayes_ablation.data.cut`,
    so a cut recovers T to within half a day) and ``last_followup_on = progressed_on``;
    otherwise ``last_followup_on`` is the censoring date, and ``withdrawn = 1`` marks
    dropout (as opposed to the end of the study). ``frame`` is the dated table; ``details``
    and ``truth`` are those of :func:`simulate_trial`.
    """
    sim = simulate_trial(n_patients, n_sites, log_hr, **kwargs)  # type: ignore[arg-type]
    start = dt.date.fromisoformat(start_date)
    d = sim.details
    entry_days = np.round(d["entry_months"].to_numpy() * DAYS_PER_MONTH).astype(int)
    event = sim.frame["event"].to_numpy() == 1
    t_days = np.maximum(np.round(sim.frame["time_months"].to_numpy() * DAYS_PER_MONTH)
                        .astype(int) - 1, 0)
    randomised = [start + dt.timedelta(days=int(x)) for x in entry_days]
    end = [r + dt.timedelta(days=int(x)) for r, x in zip(randomised, t_days, strict=True)]
    frame = pd.DataFrame({
        "patient_id": sim.frame["patient_id"],
        "site": sim.frame["site"],
        "arm": sim.frame["arm"],
        "randomised_on": [r.isoformat() for r in randomised],
        "progressed_on": [e.isoformat() if ev else "" for e, ev in zip(end, event, strict=True)],
        "last_followup_on": [e.isoformat() for e in end],
        "withdrawn": (d["dropped_out"].to_numpy() & ~event).astype(int),
    })
    for col in sim.frame.columns[5:]:
        frame[col] = sim.frame[col].to_numpy()
    truth = {**sim.truth, "start_date": start_date}
    return SimulatedTrial(frame=frame, details=sim.details, truth=truth)
