"""Propensity-weighted companion estimates: weighted Kaplan–Meier contrasts with a
Bayesian-bootstrap interval, to be read next to the outcome model's g-computation.

Weights (e the propensity of the treatment arm; Hájek-normalised within each arm by the
Kaplan–Meier ratio estimator):

* ATE (inverse probability): treated 1/e, reference 1/(1 − e);
* ATT: treated 1, reference e/(1 − e);
* ATO (overlap population): treated 1 − e, reference e.

The weighted KM is S_w(t) = Π_{u ≤ t} (1 − d_w(u) / n_w(u)), d_w and n_w the weighted events
and numbers at risk; RMST is its integral up to τ. Uncertainty: Bayesian bootstrap — each
replicate draws Dirichlet(1, …, 1) patient weights, refits the propensity model with them
(weighted likelihood) and multiplies them into the analysis weights; the interval is the
central quantile interval of the replicates. A model-free check of the outcome model: where
the two disagree, the answer depends on the model (or on weights that are unstable where
overlap is poor).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_ablation.endpoints.confounding.propensity import PropensityFit, fit_design

ESTIMANDS = ("ATE", "ATT", "ATO")
WEIGHTING_METHOD = "propensity-weighted Kaplan–Meier (Bayesian bootstrap)"
OUTCOME_METHOD = "outcome model (g-computation)"


def weighted_km(time: np.ndarray, event: np.ndarray, weights: np.ndarray,
                at: Sequence[float], tau: float | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Weighted Kaplan–Meier S(t) at the times ``at`` for each weight row (B, n) → (B, len(at)),
    and RMST up to ``tau`` (B,) when given. Ties: weighted events at a time over the weight
    at risk just before it."""
    order = np.argsort(time, kind="stable")
    t, d = np.asarray(time, float)[order], np.asarray(event, float)[order]
    w = np.atleast_2d(np.asarray(weights, float))[:, order]
    uniq, starts = np.unique(t, return_index=True)
    total = np.add.reduceat(w, starts, axis=1)
    deaths = np.add.reduceat(w * d, starts, axis=1)
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(at_risk > 0, 1.0 - deaths / np.where(at_risk > 0, at_risk, 1.0), 1.0)
    surv = np.cumprod(factor, axis=1)                                      # S at each uniq time
    padded = np.hstack([np.ones((w.shape[0], 1)), surv])
    idx = np.searchsorted(uniq, np.asarray(at, float), side="right")      # uniq ≤ t count
    s_at = padded[:, idx]
    if tau is None:
        return s_at, None
    edges = np.concatenate([[0.0], np.minimum(uniq, tau), [tau]])
    rmst = (padded * np.diff(edges)[None, :]).sum(axis=1)
    return s_at, rmst


def estimand_weights(propensity: np.ndarray, treated: np.ndarray, estimand: str) -> np.ndarray:
    """The analysis weights of ``estimand`` (ATE, ATT, ATO); see the module docstring."""
    e, a = propensity, treated == 1
    if estimand == "ATE":
        return np.where(a, 1.0 / e, 1.0 / (1.0 - e))
    if estimand == "ATT":
        return np.where(a, 1.0, e / (1.0 - e))
    if estimand == "ATO":
        return np.where(a, 1.0 - e, e)
    raise ValueError(f"estimand must be one of {ESTIMANDS}, got {estimand!r}")


def weighted_contrasts(fit: PropensityFit, times_months: Sequence[float], tau_months: float,
                       *, n_boot: int = 1000, seed: int = 0, interval_prob: float = 0.95,
                       site_sd: float = 1.0) -> pd.DataFrame:
    """Weighted-KM survival differences at ``times_months`` and the RMST difference up to
    ``tau_months`` (treatment − reference) for ATE, ATT and ATO: point estimate (the fitted
    propensity, unit patient weights), Bayesian-bootstrap median and central interval."""
    d = fit.design
    rng = np.random.default_rng(seed)
    boot = rng.dirichlet(np.ones(d.n), size=n_boot) * d.n                  # mean weight 1
    _, prob_b, _, _ = fit_design(d, site_sd=site_sd, weights=boot, separation=fit.separation)
    prob = np.vstack([fit.propensity[None, :], prob_b])
    patient_w = np.vstack([np.ones((1, d.n)), boot])
    prob = np.clip(prob, 1e-12, 1 - 1e-12)
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    times = [float(t) for t in times_months]
    rows = []
    t_mask, r_mask = d.treated == 1, d.treated == 0
    for estimand in ESTIMANDS:
        w = patient_w * np.stack([estimand_weights(p, d.treated, estimand) for p in prob])
        s1, m1 = weighted_km(d.time[t_mask], d.event[t_mask], w[:, t_mask], times, tau_months)
        s0, m0 = weighted_km(d.time[r_mask], d.event[r_mask], w[:, r_mask], times, tau_months)
        values = {f"survival_difference@{t:g}": s1[:, k] - s0[:, k]
                  for k, t in enumerate(times)}
        values["rmst_difference"] = m1 - m0
        for key, v in values.items():
            quantity, _, t = key.partition("@")
            rows.append({
                "label": _label(estimand, quantity, d.treatment, float(t) if t else None),
                "estimand": estimand, "quantity": quantity, "treatment": d.treatment,
                "time": float(t) if t else np.nan,
                "tau": tau_months if quantity == "rmst_difference" else np.nan,
                "method": WEIGHTING_METHOD, "estimate": float(v[0]),
                "median": float(np.median(v[1:])), f"q{100 * lo:g}": float(np.quantile(v[1:], lo)),
                f"q{100 * hi:g}": float(np.quantile(v[1:], hi)),
                "sd": float(np.std(v[1:], ddof=1)), "replicates": n_boot})
    return pd.DataFrame(rows)


def _label(estimand: str, quantity: str, treatment: str, time: float | None) -> str:
    inner = treatment if time is None else f"{treatment}, t={time:g}"
    return f"{estimand} {quantity}[{inner}]"


_CAUSAL_LABEL = re.compile(r"^(ATE|ATT|ATO)\s+(\w+)\[(.*)\]$")


def parse_causal_label(label: str) -> dict[str, object] | None:
    """``"ATE survival_difference[perioperative, t=24]"`` → estimand, quantity, treatment,
    time (NaN if none) and population (further label parts, e.g. "average site"); None if the
    label is not a causal estimand's."""
    m = _CAUSAL_LABEL.match(str(label).strip())
    if m is None:
        return None
    parts = [p.strip() for p in m.group(3).split(",")]
    time = np.nan
    rest = []
    for p in parts[1:]:
        if p.startswith("t="):
            try:
                time = float(p[2:])
            except ValueError:
                rest.append(p)
        else:
            rest.append(p)
    return {"estimand": m.group(1), "quantity": m.group(2), "treatment": parts[0],
            "time": time, "population": ", ".join(rest)}


def quantile_columns(frame: pd.DataFrame) -> tuple[str, str]:
    """The lower and upper quantile columns (``q2.5``, ``q97.5``) of an estimand table."""
    cols = [c for c in frame.columns if re.fullmatch(r"q\d+(\.\d+)?", str(c))]
    if len(cols) < 2:
        raise ValueError(f"an estimand table needs two quantile columns q…, has {list(frame.columns)}")
    return cols[0], cols[1]


def side_by_side(companion: pd.DataFrame, gcomp: pd.DataFrame | None) -> pd.DataFrame:
    """The weighting estimates next to the outcome model's g-computation estimates of the
    same estimand (rows matched on estimand, quantity, treatment and time; ``gcomp`` is an
    estimand table with ``label``, ``median`` and two quantile columns ``q…``, e.g. the fit's
    ``estimand_table``; its rows without an ATE/ATT/ATO label are ignored). One row per
    method and estimand, long format: estimand, quantity, treatment, time, method, median,
    lower, upper, and ``population`` (g-computation label detail)."""
    keys = ["estimand", "quantity", "treatment", "time"]
    c_lo, c_hi = quantile_columns(companion)
    ours = companion[[*keys, "median"]].assign(
        method=WEIGHTING_METHOD, lower=companion[c_lo], upper=companion[c_hi],
        population="weighted sample")
    frames = [ours]
    if gcomp is not None and len(gcomp):
        g_lo, g_hi = quantile_columns(gcomp)
        rows = []
        for _, r in gcomp.iterrows():
            parsed = parse_causal_label(r["label"])
            if parsed is None:
                continue
            rows.append({**parsed, "median": float(r["median"]), "method": OUTCOME_METHOD,
                         "lower": float(r[g_lo]), "upper": float(r[g_hi])})
        if rows:
            frames.insert(0, pd.DataFrame(rows))
    out = pd.concat(frames, ignore_index=True)
    wanted = set(map(tuple, ours[keys].astype(str).to_numpy()))
    out = out[[tuple(map(str, k)) in wanted for k in out[keys].to_numpy()]]
    order = {e: i for i, e in enumerate(ESTIMANDS)}
    out = out.assign(_o=out["estimand"].map(order), _q=out["quantity"] == "rmst_difference",
                     _m=out["method"] != OUTCOME_METHOD)
    out = out.sort_values(["treatment", "_o", "_q", "time", "_m"], kind="stable")
    return out.drop(columns=["_o", "_q", "_m"]).reset_index(drop=True)[
        ["estimand", "quantity", "treatment", "time", "method", "population", "median",
         "lower", "upper"]]
