"""Reconstruct individual patient data (IPD) from a digitised Kaplan–Meier curve.

The algorithm of Guyot, Ades, Ouwens & Welton (2012), *BMC Med Res Methodol* 12:9. Input: the
digitised points ``(t_k, S_k)`` of one arm and the published numbers at risk ``n_i`` at times
``T_i`` (``T_0 = 0``). For each at-risk interval ``[T_i, T_{i+1})`` with first digitised index
``l_i``:

* ``c_i`` censorings are spread uniformly over ``[t_{l_i}, t_{l_{i+1}})``, starting from
  ``c_i = round(n_i S_{l_{i+1}} / S_{l_i} - n_{i+1})``;
* at each digitised point ``d_k = round(n_k (1 - S_k / Ŝ_last))`` events, where ``Ŝ_last`` is the
  reconstructed KM at the last point with events and ``n_{k+1} = n_k - d_k - c_k``;
* ``c_i`` is corrected by ``n̂_{l_{i+1}} - n_{i+1}`` until the reconstructed number at risk at
  ``T_{i+1}`` equals the published one (or ``c_i = 0`` and it cannot be lowered further).

In the last interval the number censored matches ``total_events`` when it is given (the events
are then made to equal it exactly), else it follows the average censoring rate per month of the
earlier intervals; whoever is still at risk after the last digitised time is censored there.
Events can only arise where the digitised curve drops (a flat stretch gives ``d_k = 0``), counts
are never negative, and every change made to the input is recorded in ``Reconstruction.cleaning``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.errors import DataValidationError, Problem
from bayes_ablation.survival.predictive import kaplan_meier

_log = logging.getLogger("bayes_ablation")

CURVE_COLUMNS = ("time_months", "survival")
AT_RISK_COLUMNS = ("time_months", "n_at_risk")
#: digitised times in (-NEGATIVE_TIME_TOLERANCE, 0) are digitising error and set to 0
NEGATIVE_TIME_TOLERANCE = 0.5
#: a curve whose largest value exceeds this is read as percent
PERCENT_THRESHOLD = 1.5
_MAX_ITERATIONS = 1000


@dataclass(frozen=True)
class Reconstruction:
    """Reconstructed IPD of one arm, the changes made to the input and the accuracy report."""

    ipd: pd.DataFrame                   # patient_id, arm, time_months, event
    cleaning: list[str]                 # every change made to the digitised curve
    accuracy: dict[str, Any]            # see :func:`accuracy_report`
    curve: pd.DataFrame = field(repr=False)   # the cleaned digitised curve (fraction scale)
    at_risk: pd.DataFrame = field(repr=False)


# ------------------------------------------------------------------------------ reading inputs

def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV read as text (cells are checked and converted by the validators)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)


def _numeric(frame: pd.DataFrame, columns: Sequence[str], name: str) -> pd.DataFrame:
    """``columns`` of ``frame`` as floats; every missing column or bad cell is a Problem."""
    problems: list[Problem] = []
    missing = [c for c in columns if c not in frame.columns]
    for c in missing:
        problems.append(Problem(name, None, c, None,
                                f"a column '{c}' (columns needed: {', '.join(columns)}; found: "
                                f"{', '.join(map(str, frame.columns)) or 'none'})"))
    if problems:
        raise DataValidationError(problems)
    if frame.empty:
        raise DataValidationError([Problem(name, None, None, None, "at least one data row")])
    out = pd.DataFrame(index=range(len(frame)))
    for c in columns:
        raw = frame[c].reset_index(drop=True)
        values = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce")
        for i in np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float))):
            problems.append(Problem(name, int(i) + 1, c, raw.iloc[i], "a finite number"))
        out[c] = values.to_numpy(dtype=float)
    if problems:
        raise DataValidationError(problems)
    return out


def clean_curve(curve: pd.DataFrame, name: str = "curve") -> tuple[pd.DataFrame, str, list[str]]:
    """Validate and clean a digitised curve; return (curve on the fraction scale, scale, changes).

    Percent when ``max S > 1.5`` (then ``S/100``). Times in (−0.5, 0) → 0 (more negative: error);
    rows sorted by time; survival clipped to [0, 1]; duplicate times merged keeping the lowest
    survival; survival made non-increasing (cumulative minimum in time order); ``(0, 1)`` added
    when missing. Each change is returned as a sentence.
    """
    df = _numeric(curve, CURVE_COLUMNS, name)
    df["row"] = np.arange(1, len(df) + 1)
    changes: list[str] = []
    bad = df[df["time_months"] <= -NEGATIVE_TIME_TOLERANCE]
    if len(bad):
        raise DataValidationError([
            Problem(name, int(r.row), "time_months", r.time_months,
                    f"a time ≥ 0 months (times above −{NEGATIVE_TIME_TOLERANCE} are taken as "
                    "digitising error and set to 0)") for r in bad.itertuples()])
    bad_s = df[df["survival"] < -1.0]
    if len(bad_s):
        raise DataValidationError([
            Problem(name, int(r.row), "survival", r.survival, "a survival ≥ 0 (fraction or %)")
            for r in bad_s.itertuples()])
    scale = "percent" if df["survival"].max() > PERCENT_THRESHOLD else "fraction"
    if scale == "percent":
        df["survival"] = df["survival"] / 100.0
        changes.append(f"survival read as percent (largest value {df['survival'].max() * 100:g} "
                       f"> {PERCENT_THRESHOLD}); divided by 100")
    neg = df["time_months"] < 0
    if neg.any():
        changes.append(f"{int(neg.sum())} slightly negative time(s) set to 0 (rows "
                       f"{_rows(df.loc[neg, 'row'])})")
        df.loc[neg, "time_months"] = 0.0
    order = np.lexsort((-df["survival"].to_numpy(), df["time_months"].to_numpy()))
    if not np.array_equal(order, np.arange(len(df))):
        changes.append("rows were not in time order; sorted by time")
        df = df.iloc[order].reset_index(drop=True)
    high = df["survival"] > 1.0
    if high.any():
        changes.append(f"{int(high.sum())} survival value(s) above 1 (100 %) clipped to 1 (rows "
                       f"{_rows(df.loc[high, 'row'])})")
        df.loc[high, "survival"] = 1.0
    low = df["survival"] < 0.0
    if low.any():
        changes.append(f"{int(low.sum())} survival value(s) below 0 clipped to 0 (rows "
                       f"{_rows(df.loc[low, 'row'])})")
        df.loc[low, "survival"] = 0.0
    cummin = np.minimum.accumulate(df["survival"].to_numpy())
    raised = cummin < df["survival"].to_numpy() - 1e-12
    if raised.any():
        changes.append(f"{int(raised.sum())} point(s) above an earlier point (survival must not "
                       f"increase) lowered to the running minimum (rows "
                       f"{_rows(df.loc[raised, 'row'])})")
        df["survival"] = cummin
    dup = df["time_months"].duplicated(keep="last")
    if dup.any():
        changes.append(f"{int(dup.sum())} duplicate time(s) merged, keeping the lowest survival "
                       f"at each (rows {_rows(df.loc[dup, 'row'])})")
        df = df[~dup].reset_index(drop=True)
    if df["time_months"].iloc[0] > 0:
        changes.append("point (0, 1) added at the start")
        df = pd.concat([pd.DataFrame({"time_months": [0.0], "survival": [1.0], "row": [0]}), df],
                       ignore_index=True)
    elif df["survival"].iloc[0] < 1.0:
        changes.append(f"survival at time 0 was {df['survival'].iloc[0]:g}; set to 1")
        df.loc[0, "survival"] = 1.0
    return df[["time_months", "survival"]], scale, changes


def _rows(rows: pd.Series, limit: int = 12) -> str:
    values = [int(r) for r in rows]
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f", … ({len(values)} rows)" if len(values) > limit else "")


def validate_at_risk(at_risk: pd.DataFrame, name: str = "at-risk") -> pd.DataFrame:
    """Numbers at risk: first time 0, times increasing, integer counts ≥ 0, non-increasing."""
    df = _numeric(at_risk, AT_RISK_COLUMNS, name)
    problems: list[Problem] = []
    t, n = df["time_months"].to_numpy(), df["n_at_risk"].to_numpy()
    if t[0] != 0:
        problems.append(Problem(name, 1, "time_months", t[0],
                                "the first row at time 0 (numbers at risk start at 0 months)"))
    for i in range(len(df)):
        if n[i] < 0 or n[i] != np.round(n[i]):
            problems.append(Problem(name, i + 1, "n_at_risk", n[i], "a whole number ≥ 0"))
        if i > 0 and t[i] <= t[i - 1]:
            problems.append(Problem(name, i + 1, "time_months", t[i],
                                    f"a time after the previous row's {t[i - 1]:g} months"))
        if i > 0 and n[i] > n[i - 1]:
            problems.append(Problem(name, i + 1, "n_at_risk", int(n[i]),
                                    f"at most the previous row's {int(n[i - 1])} (numbers at "
                                    "risk cannot increase)"))
    if n[0] < 1:
        problems.append(Problem(name, 1, "n_at_risk", n[0], "at least 1 patient at time 0"))
    if problems:
        raise DataValidationError(problems)
    df["n_at_risk"] = df["n_at_risk"].astype(int)
    return df


# ------------------------------------------------------------------------------- Kaplan–Meier

def step_value(times: np.ndarray, surv: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Right-continuous step function (times, surv) evaluated at ``at``."""
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="right") - 1
    return surv[np.clip(idx, 0, None)]


# -------------------------------------------------------------------------------- the algorithm

@dataclass
class _State:
    d: np.ndarray          # events at each digitised point
    c: np.ndarray          # censorings in [t_k, t_{k+1})
    n: np.ndarray          # at risk at each point (length K + 1)
    km: np.ndarray         # reconstructed KM at each point
    cens_times: list[np.ndarray]   # censoring times per interval


def _run_interval(ts: np.ndarray, s: np.ndarray, lo: int, hi: int, t_end: float,
                  n_start: int, n_cens: int, km_last: float, first: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """One pass over points ``lo..hi`` with ``n_cens`` censorings spread uniformly over
    ``[t_lo, t_end)``. Returns (d, c, n, km, km_last, censoring times)."""
    m = hi - lo + 1
    cens = ts[lo] + np.arange(1, n_cens + 1) * (t_end - ts[lo]) / (n_cens + 1)
    edges = np.append(ts[lo:hi + 1], np.inf)
    per_point = np.histogram(cens, bins=edges)[0] if n_cens else np.zeros(m, dtype=int)
    d = np.zeros(m, dtype=int)
    c = np.zeros(m, dtype=int)
    n = np.zeros(m + 1, dtype=int)
    km = np.zeros(m)
    n[0] = n_start
    kept: list[np.ndarray] = []
    for j in range(m):
        k = lo + j
        if first and j == 0:
            d[j] = 0
        elif n[j] > 0 and km_last > 0:
            d[j] = int(np.clip(np.round(n[j] * (1.0 - s[k] / km_last)), 0, n[j]))
        km[j] = km_last * (1.0 - d[j] / n[j]) if n[j] > 0 else km_last
        if d[j] > 0:
            km_last = km[j]
        c[j] = int(min(per_point[j], n[j] - d[j]))
        in_bin = cens[(cens >= edges[j]) & (cens < edges[j + 1])]
        kept.append(in_bin[:c[j]])
        n[j + 1] = n[j] - d[j] - c[j]
    return d, c, n, km, km_last, np.concatenate(kept) if kept else np.zeros(0)


def reconstruct_ipd(curve: pd.DataFrame, at_risk: pd.DataFrame, arm: str,
                    total_events: int | None = None, *, curve_name: str = "curve",
                    at_risk_name: str = "at-risk", site: str | None = None) -> Reconstruction:
    """Guyot et al. (2012) IPD of one arm from its digitised curve and numbers at risk.

    ``curve``: columns ``time_months, survival`` (fraction or percent, cleaned as
    :func:`clean_curve` says); ``at_risk``: ``time_months, n_at_risk`` starting at 0.
    ``total_events``: the published number of events of the arm, matched exactly when given.
    The result has exactly ``n_at_risk(0)`` patients; with ``site`` (the publishing trial,
    e.g. ``"EPOC"``) a ``site`` column makes it a patient table ``fit`` reads as it is.
    """
    cleaned, scale, cleaning = clean_curve(curve, curve_name)
    risk = validate_at_risk(at_risk, at_risk_name)
    digitised = cleaned.copy()
    t_max = float(cleaned["time_months"].iloc[-1])
    beyond = risk["time_months"] > t_max
    if beyond.any():
        cleaning.append(f"{int(beyond.sum())} at-risk time(s) after the last digitised time "
                        f"({t_max:g} months) not used: "
                        f"{', '.join(f'{v:g}' for v in risk.loc[beyond, 'time_months'])}")
    used = risk[~beyond].reset_index(drop=True)
    # every at-risk interval needs a digitised point: add the step value at its start if not
    ts, s = cleaned["time_months"].to_numpy(), cleaned["survival"].to_numpy()
    for i, t_i in enumerate(used["time_months"]):
        t_next = used["time_months"].iloc[i + 1] if i + 1 < len(used) else np.inf
        if not np.any((ts >= t_i) & (ts < t_next)):
            value = float(step_value(ts, s, np.array([t_i]))[0])
            cleaning.append(f"no digitised point in the at-risk interval starting at {t_i:g} "
                            f"months; point ({t_i:g}, {value:.4g}) added (the curve's value)")
            pos = int(np.searchsorted(ts, t_i))
            ts, s = np.insert(ts, pos, t_i), np.insert(s, pos, value)
    t_risk = used["time_months"].to_numpy()
    n_risk = used["n_at_risk"].to_numpy().astype(int)
    lower = np.searchsorted(ts, t_risk, side="left")
    upper = np.append(lower[1:] - 1, len(ts) - 1)
    n_int = len(t_risk)
    if total_events is not None:
        total_events = int(total_events)
        if not 0 <= total_events <= n_risk[0]:
            raise DataValidationError([Problem("--total-events", None, None, total_events,
                                               f"a number of events from 0 to {n_risk[0]} "
                                               "(the patients at risk at time 0)")])

    d_all = np.zeros(len(ts), dtype=int)
    c_all = np.zeros(len(ts), dtype=int)
    km_all = np.ones(len(ts))
    cens_times: list[np.ndarray] = []
    km_last, n_now = 1.0, int(n_risk[0])
    cens_done, cens_span = 0, 0.0
    for i in range(n_int):
        lo, hi = int(lower[i]), int(upper[i])
        last = i == n_int - 1
        # censorings are spread up to the next at-risk time (Guyot et al. spread them up to
        # the next digitised point, which may lie after it and then leaves those patients
        # counted as at risk there: 155 reconstructed vs 152 published in the example)
        t_end = float(t_risk[i + 1]) if not last else ts[hi]
        if not last:
            target = int(n_risk[i + 1])
            ratio = s[lower[i + 1]] / s[lo] if s[lo] > 0 else 0.0
            n_cens = max(int(np.round(n_now * ratio - target)), 0)
            best = None
            seen: set[int] = set()
            for _ in range(_MAX_ITERATIONS):
                res = _run_interval(ts, s, lo, hi, t_end, n_now, n_cens, km_last, i == 0)
                gap = int(res[2][-1]) - target
                if best is None or abs(gap) < abs(best[1]):
                    best = (res, gap, n_cens)
                seen.add(n_cens)
                if gap == 0 or (gap < 0 and n_cens == 0):
                    break
                n_cens = max(n_cens + gap, 0)
                if n_cens in seen:
                    break
            res, gap, n_cens = best
            cens_done += int(res[1].sum())
            cens_span += t_end - ts[lo]
        else:
            res = _last_interval(ts, s, lo, hi, n_now, km_last, i == 0, total_events,
                                 int(d_all.sum()), cens_done / cens_span if cens_span else 0.0)
        d, c, n, km, km_last, cens = res
        d_all[lo:hi + 1], c_all[lo:hi + 1], km_all[lo:hi + 1] = d, c, km
        cens_times.append(cens)
        n_now = int(n[-1])
    ipd = _ipd(ts, d_all, np.concatenate(cens_times) if cens_times else np.zeros(0), n_now, arm)
    if site is not None:
        ipd.insert(1, "site", site)
    if len(ipd) != n_risk[0]:  # pragma: no cover - bookkeeping guard
        raise AssertionError(f"reconstructed {len(ipd)} patients, expected {n_risk[0]}")
    if total_events is not None and int(ipd["event"].sum()) != total_events:
        raise DataValidationError([Problem(
            "--total-events", None, None, total_events,
            f"a number of events the curve allows (reconstructed {int(ipd['event'].sum())}: the "
            "curve's drops before the last at-risk interval already need more events, or too few "
            "patients remain)")])
    accuracy = accuracy_report(ipd, digitised, risk, scale, cleaning)
    _log.info("reconstructed %s: %d patients, %d events; max |ΔS| %.4f, mean |ΔS| %.4f",
              arm, len(ipd), accuracy["n_events"], accuracy["max_abs_diff_survival"],
              accuracy["mean_abs_diff_survival"])
    return Reconstruction(ipd, cleaning, accuracy, digitised, risk)


def _last_interval(ts: np.ndarray, s: np.ndarray, lo: int, hi: int, n_now: int, km_last: float,
                   first: bool, total_events: int | None, events_before: int,
                   cens_rate: float):
    """Last interval: censoring from ``total_events`` (exact) or the earlier censoring rate."""
    t_end = ts[hi]
    if total_events is None:
        n_cens = min(int(np.round(cens_rate * (t_end - ts[lo]))), n_now)
        return _run_interval(ts, s, lo, hi, t_end, n_now, n_cens, km_last, first)
    wanted = total_events - events_before
    best = None
    n_cens, seen = 0, set()
    for _ in range(_MAX_ITERATIONS):
        res = _run_interval(ts, s, lo, hi, t_end, n_now, n_cens, km_last, first)
        gap = int(res[0].sum()) - wanted
        if best is None or abs(gap) < abs(best[1]):
            best = (res, gap)
        seen.add(n_cens)
        if gap <= 0:       # fewer censorings cannot be: keep the fewest that gives ≤ wanted
            break
        n_cens = min(n_cens + gap, n_now)
        if n_cens in seen:
            break
    res, gap = best
    if gap != 0:
        res = _force_events(ts, s, lo, res, wanted, km_last)
    return res


def _force_events(ts: np.ndarray, s: np.ndarray, lo: int, res, wanted: int, km_last_in: float):
    """Move events to or from the points of the last interval (largest drops first) so that
    its events equal ``wanted``, keeping every count ≥ 0; censorings absorb the difference."""
    d, c, n, km = (np.array(x, copy=True) for x in res[:4])
    cens = np.array(res[5], copy=True)
    drops = np.append(0.0, -np.diff(s[lo:lo + len(d)]))
    drops[0] = max(s[lo - 1] - s[lo], 0.0) if lo > 0 else 0.0
    order = np.argsort(-drops, kind="stable")
    gap = wanted - int(d.sum())
    remaining_end = int(n[-1])
    while gap != 0:
        moved = False
        for j in order:
            if gap > 0 and drops[j] > 0:
                # take one patient from those censored later (or still at risk at the end)
                if remaining_end > 0:
                    remaining_end -= 1
                elif c[j:].sum() > 0:
                    jj = j + int(np.flatnonzero(c[j:] > 0)[-1])
                    c[jj] -= 1
                    cens = _drop_one(cens, ts, lo, jj, len(d))
                else:
                    continue
                d[j] += 1
                gap -= 1
                moved = True
            elif gap < 0 and d[j] > 0:
                d[j] -= 1
                remaining_end += 1
                gap += 1
                moved = True
            if gap == 0:
                break
        if not moved:
            break
    n = np.concatenate([[n[0]], n[0] - np.cumsum(d + c)])
    km_prev = km_last_in
    for j in range(len(d)):
        km[j] = km_prev * (1.0 - d[j] / n[j]) if n[j] > 0 else km_prev
        km_prev = km[j]
    return d, c, n, km, km_prev, cens


def _drop_one(cens: np.ndarray, ts: np.ndarray, lo: int, j: int, m: int) -> np.ndarray:
    """Remove one censoring time of point ``lo + j``'s bin."""
    hi_edge = ts[lo + j + 1] if j + 1 < m else np.inf
    idx = np.flatnonzero((cens >= ts[lo + j]) & (cens < hi_edge))
    return np.delete(cens, idx[-1]) if len(idx) else cens


def _ipd(ts: np.ndarray, d: np.ndarray, cens: np.ndarray, n_end: int, arm: str) -> pd.DataFrame:
    event_times = np.repeat(ts, d)
    cens_times = np.concatenate([cens, np.full(n_end, ts[-1])])
    time = np.concatenate([event_times, cens_times])
    event = np.concatenate([np.ones(len(event_times), dtype=int),
                            np.zeros(len(cens_times), dtype=int)])
    order = np.lexsort((1 - event, time))
    return pd.DataFrame({"patient_id": [f"{arm}-{i + 1:04d}" for i in range(len(time))],
                         "arm": arm, "time_months": time[order],
                         "event": event[order]})


# -------------------------------------------------------------------------------- accuracy

def accuracy_report(ipd: pd.DataFrame, digitised: pd.DataFrame, at_risk: pd.DataFrame,
                    scale: str, cleaning: list[str]) -> dict[str, Any]:
    """|ΔS| between the reconstructed KM and the digitised points (at the digitised times), the
    published vs reconstructed numbers at risk (``#{time ≥ T_i}``), events, scale, cleaning."""
    t, e = ipd["time_months"].to_numpy(), ipd["event"].to_numpy().astype(bool)
    km_t, km_s = kaplan_meier(t, e)
    at = digitised["time_months"].to_numpy()
    diff = np.abs(step_value(km_t, km_s, at) - digitised["survival"].to_numpy())
    table = [{"time_months": float(ti), "published": int(ni),
              "reconstructed": int(np.count_nonzero(t >= ti))}
             for ti, ni in zip(at_risk["time_months"], at_risk["n_at_risk"], strict=True)]
    return {"max_abs_diff_survival": float(diff.max()),
            "mean_abs_diff_survival": float(diff.mean()),
            "n_patients": len(ipd), "n_events": int(e.sum()), "scale": scale,
            "at_risk": table, "cleaning": list(cleaning)}


def format_report(rec: Reconstruction, arm: str) -> str:
    """Plain-text accuracy report."""
    a = rec.accuracy
    lines = [f"arm {arm}: {a['n_patients']} patients, {a['n_events']} events "
             f"(curve read as {a['scale']})",
             f"reconstructed KM vs digitised points: max |ΔS| {a['max_abs_diff_survival']:.4f}, "
             f"mean |ΔS| {a['mean_abs_diff_survival']:.4f}",
             "numbers at risk  time (months)  published  reconstructed"]
    lines += [f"                 {r['time_months']:>13g}  {r['published']:>9d}  "
              f"{r['reconstructed']:>13d}" for r in a["at_risk"]]
    lines.append("changes made to the curve:" if rec.cleaning else "changes made to the curve: "
                 "none")
    lines += [f"  - {c}" for c in rec.cleaning]
    return "\n".join(lines)
