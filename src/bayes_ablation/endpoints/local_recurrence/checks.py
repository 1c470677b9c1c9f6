"""Posterior predictive checks of the local recurrence (LR) model against its data.

Replicated data sets: per thinned posterior draw, each lesion's latent LR time is drawn from
its own hazard (its patient's frailty v_i, its site's u_s, its covariates) and observed the way
the data were: through the patient's scans, up to the patient's last scan. The scan schedule is
what the data reveal (each lesion's last negative and first positive scan) with the protocol's
nominal visits (``scan_protocol_months``, default 3-monthly to 24 months, then 6-monthly)
filling the gaps. The last scan is known when some lesion of the patient stayed LR-free (its
``lr_lower_months``); when every lesion of the patient recurred it is only known to be later
than the last positive scan, and is drawn from the reverse Kaplan–Meier distribution of last
scans beyond it (:func:`bayes_ablation.survival.predictive.censoring_times`), capped at death or last
contact. Deaths and follow-up are kept as observed (the model's death hazard is independent of
the LR times given the covariates).

1. **Counts** of lesions with an observed LR per arm, per site and per size band: observed vs
   the replicated counts.
2. **Cumulative incidence**: the Turnbull NPMLE of the lesions' LR time distribution from the
   intervals (L, U] (death and end of scans act as censoring; lesions as units) per arm, for
   the data and for every replicate; the observed NPMLE against the band of the replicated
   ones. Both estimate the net (death-free) LR distribution of the analysed lesions; the
   competing-risk CIF is an estimand, not a check.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.data.imaging import (
    DEFAULT_SCAN_PROTOCOL_MONTHS,
    imaging_schedule,
    protocol_spacing,
)
from bayes_ablation.data.lesions import LesionTable
from bayes_ablation.survival.piecewise import DEFAULT_CUTS_MONTHS, invert_cumhaz
from bayes_ablation.survival.turnbull import step_on_grid, turnbull

SIZE_BANDS_CM = (2.0, 3.0)
#: the LR count checks, in the order reported (check name -> title)
CHECK_TITLES = {"lr_count_arm": "by arm", "lr_count_site": "by site",
                "lr_count_size": "by lesion size"}


def scan_horizons(lesions: LesionTable, n_samples: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Each patient's last scan (sample, patient): known, or drawn beyond the last positive
    scan when every lesion of the patient recurred (see module docstring)."""
    from bayes_ablation.survival.predictive import censoring_times

    n_pat = lesions.patients.n_patients
    idx = lesions.patient_idx
    known = np.where(lesions.observed == 1, lesions.upper, lesions.lower)
    last = np.zeros(n_pat)
    np.maximum.at(last, idx, known)
    free = np.zeros(n_pat, dtype=bool)
    np.logical_or.at(free, idx, lesions.observed == 0)
    has = np.zeros(n_pat, dtype=bool)
    has[idx] = True
    open_ended = (has & ~free).astype(int)
    out = censoring_times(np.maximum(last, 1e-9), open_ended, n_samples, rng)
    return np.minimum(out, lesions.patients.time[None, :])


def patient_frailty(post: Any, cdata: Any) -> np.ndarray:
    """v_i = σ_patient^(1−w_i) z_i (sample, patient) from draws (``post`` stacked over
    ``sample``) and the fit's ``centring_patient`` weights (0 when absent: older fits)."""
    z = np.asarray(post["z_patient"].transpose("sample", "patient").values, float)
    w = (np.asarray(cdata["centring_patient"].values, float) if "centring_patient" in cdata
         else np.zeros(z.shape[1]))
    sigma = np.asarray(post["sigma_patient"].values, float)[:, None]
    return sigma ** (1.0 - w)[None, :] * z


def lesion_eta(post: xr.Dataset, cdata: xr.Dataset) -> np.ndarray:
    """η_ij (sample, lesion) from thinned draws: arm, covariates, each lesion's own site effect
    and patient frailty (the baseline hazard excluded)."""
    arm = np.asarray(cdata["lesion_arm_idx"].values, int)
    site = np.asarray(cdata["lesion_site_idx"].values, int)
    pat = np.asarray(cdata["lesion_patient_idx"].values, int)
    log_hr = post["log_hr"].transpose("sample", "treatment").values
    eta = np.concatenate([np.zeros((log_hr.shape[0], 1)), log_hr], axis=1)[:, arm]
    if "u_site" in post:
        eta = eta + post["u_site"].transpose("sample", "site").values[:, site]
    if "v_site_arm" in post:
        v = post["v_site_arm"].transpose("sample", "site", "treatment").values
        v = np.concatenate([np.zeros((*v.shape[:2], 1)), v], axis=2)
        eta = eta + v[:, site, arm]
    if "beta_covariates" in post and cdata["x"].size:
        beta = post["beta_covariates"].transpose("sample", "covariate").values
        eta = eta + beta @ np.asarray(cdata["x"].values, float).T
    if "z_patient" in post:
        eta = eta + patient_frailty(post, cdata)[:, pat]
    if "delta_subgroup" in post:  # subgroup main effects and treatment interactions
        from bayes_ablation.endpoints.subgroups import cdata_subgroups, subgroup_eta

        eta = eta + subgroup_eta(post, *cdata_subgroups(cdata), arm)
    return eta


def baseline_inverse(post: xr.Dataset, spec: Any, h: np.ndarray) -> np.ndarray:
    """T with H₀(T) = h, per draw (``h`` has shape (sample, …))."""
    if spec.model == "lr_pwe":
        cuts = spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS)
        rates = np.exp(post["log_hazard_baseline"].transpose("sample", "interval").values)
        return np.stack([invert_cumhaz(h[s], rates[s], cuts) for s in range(h.shape[0])])
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    k = post["weibull_shape"].values.reshape(-1, *([1] * (h.ndim - 1)))
    log_lam0 = post["log_cumhaz_ref"].values.reshape(k.shape) - k * np.log(t_ref)
    return (h / np.exp(log_lam0)) ** (1.0 / k)


def patient_scan_schedules(lesions: LesionTable,
                           protocol_months: Sequence[float] = DEFAULT_SCAN_PROTOCOL_MONTHS
                           ) -> np.ndarray:
    """Each patient's scan times (patient, visit), padded with +inf.

    The scans the data reveal (every lesion's last negative scan L > 0 and first positive scan
    U) are kept as they are; the protocol's nominal visits fill the gaps: a nominal visit is
    added when no revealed scan lies within half the protocol spacing (the gap before it) of it,
    and only up to the patient's death or last contact. (A visit that was missed but never
    revealed as missing is thus assumed done.)
    """
    idx = lesions.patient_idx
    n_pat = lesions.patients.n_patients
    follow = np.asarray(lesions.patients.time, float)
    nominal = imaging_schedule(float(follow.max()) if follow.size else 0.0, protocol_months)
    half_gap = protocol_spacing(nominal) / 2.0
    revealed = np.concatenate([lesions.lower, lesions.upper])
    owner = np.concatenate([idx, idx])
    keep = np.isfinite(revealed) & (revealed > 0)
    revealed, owner = revealed[keep], owner[keep]
    rows: list[np.ndarray] = []
    for i in range(n_pat):
        known = np.unique(revealed[owner == i])
        near = (np.abs(known[None, :] - nominal[:, None]) < half_gap[:, None]).any(axis=1)
        fill = nominal[~near & (nominal <= follow[i] + 1e-9)]
        rows.append(np.union1d(known, fill))
    width = max((r.size for r in rows), default=0)
    out = np.full((n_pat, width), np.inf)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


def replicate_intervals(t_lr: np.ndarray, schedules: np.ndarray, horizon: np.ndarray,
                        patient_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval-censored observations (L, U] of latent LR times under a scan schedule.

    ``t_lr`` (sample, lesion) latent LR times; ``schedules`` (patient, visit) scan times
    (+inf padded); ``horizon`` (sample, patient) each patient's last scan (scans after it are
    dropped; the horizon itself is a scan when > 0). L = last scan before T (0 if none),
    U = first scan at or after T; no scan at or after T: right-censored, L = last scan, U = +inf.
    """
    horizon = np.asarray(horizon, float)
    sched = np.where(schedules[None, :, :] <= horizon[:, :, None] + 1e-9, schedules[None], np.inf)
    last = np.where(horizon > 1e-9, horizon, np.inf)[:, :, None]
    sched = np.sort(np.concatenate([sched, last, np.full_like(last, np.inf)], axis=2), axis=2)
    scans = sched[:, patient_idx, :]                                   # (sample, lesion, visit)
    before = (scans < t_lr[:, :, None]).sum(axis=2)
    upper = np.take_along_axis(scans, before[:, :, None], axis=2)[:, :, 0]
    lower = np.where(before > 0, np.take_along_axis(
        scans, np.maximum(before - 1, 0)[:, :, None], axis=2)[:, :, 0], 0.0)
    return lower, upper


def replicate_lr_data(idata: xr.DataTree, spec: Any, lesions: LesionTable,
                      n_draws: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Posterior predictive replicates (L, U] of every lesion (each (sample, lesion)).

    Per thinned posterior draw: latent LR times from the lesion's own hazard (patient frailty,
    site, covariates), observed through the patient's scan schedule
    (:func:`patient_scan_schedules`, protocol from the spec's ``scan_protocol_months``) up to
    the patient's last scan (:func:`scan_horizons`). Deaths and follow-up are kept as observed.
    """
    from bayes_ablation.survival.predictive import thin

    rng = np.random.default_rng(seed)
    post = thin(idata.posterior.to_dataset(), n_draws, seed)
    eta = lesion_eta(post, idata.constant_data.to_dataset())
    t_lr = baseline_inverse(post, spec, rng.exponential(size=eta.shape) / np.exp(eta))
    horizon = scan_horizons(lesions, eta.shape[0], rng)
    protocol = spec.model_options.get("scan_protocol_months", DEFAULT_SCAN_PROTOCOL_MONTHS)
    return replicate_intervals(t_lr, patient_scan_schedules(lesions, protocol), horizon,
                               lesions.patient_idx)


def count_ppc(observed: np.ndarray, replicated: np.ndarray, groups: np.ndarray,
              interval_prob: float = 0.95, order: list[str] | None = None) -> xr.Dataset:
    """Observed vs replicated number of lesions with LR per group.

    Variables (dim ``group``): ``observed``, ``lower``/``median``/``upper`` (central
    ``interval_prob`` band of the replicated counts), ``p_rep_ge_obs`` = P(rep ≥ obs),
    ``p_rep_le_obs`` = P(rep ≤ obs), ``lesions``.
    """
    present = set(pd.unique(groups))
    labels = [g for g in order if g in present] if order is not None else sorted(present)
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    rows = []
    for g in labels:
        mask = groups == g
        obs = int(observed[mask].sum())
        rep = replicated[:, mask].sum(axis=1)
        q = np.quantile(rep, [lo, 0.5, hi])
        rows.append((obs, *q, float(np.mean(rep >= obs)), float(np.mean(rep <= obs)),
                     int(mask.sum())))
    a = np.array(rows, dtype=float).reshape(len(labels), 7)
    names = ("observed", "lower", "median", "upper", "p_rep_ge_obs", "p_rep_le_obs", "lesions")
    return xr.Dataset({n: ("group", a[:, i]) for i, n in enumerate(names)},
                      coords={"group": [str(g) for g in labels]},
                      attrs={"interval_prob": interval_prob})


def size_band_labels(cuts: tuple[float, ...] = SIZE_BANDS_CM) -> list[str]:
    """'<2 cm', '2–3 cm', '≥3 cm' for the default cuts."""
    return ([f"<{cuts[0]:g} cm"] + [f"{a:g}–{b:g} cm" for a, b in pairwise(cuts)]
            + [f"≥{cuts[-1]:g} cm"])


def size_band(size_cm: np.ndarray, cuts: tuple[float, ...] = SIZE_BANDS_CM) -> np.ndarray:
    """Each lesion's size band label (see :func:`size_band_labels`)."""
    labels = size_band_labels(cuts)
    return np.array([labels[i] for i in np.searchsorted(cuts, size_cm, side="right")])


def cumulative_incidence_check(lesions: LesionTable, rep_lower: np.ndarray,
                               rep_upper: np.ndarray, interval_prob: float = 0.95,
                               n_grid: int = 97) -> xr.Dataset:
    """Turnbull NPMLE per arm: observed data against the same estimator on replicated data.

    Dims (group, time): ``observed`` (NPMLE of the data), ``lower``/``median``/``upper``
    (central ``interval_prob`` band of the NPMLEs of the replicates, which carries both the
    posterior uncertainty and the sampling and scan-schedule noise of the estimator);
    ``inside`` (group) = share of grid points where the observed NPMLE lies in the band.
    The grid stops where 10% of the lesions are still scanned.
    """
    lower, upper = lesions.lower, lesions.upper
    t_max = float(np.quantile(np.where(np.isfinite(upper), upper, lower), 0.9))
    grid = np.linspace(0.0, t_max, n_grid)
    arms = lesions.patients.frame["arm"].to_numpy()[lesions.patient_idx]
    lo, hi = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    out: dict[str, list[Any]] = {"observed": [], "lower": [], "median": [], "upper": [],
                                 "inside": []}
    labels = list(lesions.patients.arms)
    for arm in labels:
        mask = arms == arm
        obs = step_on_grid(*turnbull(lower[mask], upper[mask]), grid)
        reps = np.stack([step_on_grid(*turnbull(rl[mask], ru[mask], tol=1e-7), grid)
                         for rl, ru in zip(rep_lower, rep_upper, strict=True)])
        q = np.quantile(reps, [lo, 0.5, hi], axis=0)
        for name, value in zip(("observed", "lower", "median", "upper"), (obs, *q), strict=True):
            out[name].append(value)
        out["inside"].append(float(np.mean((obs >= q[0] - 1e-9) & (obs <= q[2] + 1e-9))))
    return xr.Dataset({
        **{n: (("group", "time"), np.array(out[n])) for n in ("observed", "lower", "median",
                                                               "upper")},
        "inside": ("group", np.array(out["inside"])),
    }, coords={"group": labels, "time": grid},
        attrs={"interval_prob": interval_prob, "replicates": int(rep_lower.shape[0])})


def lr_ppc(idata: xr.DataTree, spec: Any, lesions: LesionTable, n_draws: int = 200,
           seed: int = 0) -> dict[str, xr.Dataset]:
    """All LR checks on one set of replicated data sets: counts of lesions with an observed LR
    per arm / site / size band, and the interval-censored cumulative incidence check."""
    rep_lower, rep_upper = replicate_lr_data(idata, spec, lesions, n_draws, seed)
    rep = np.isfinite(rep_upper).astype(int)
    obs = lesions.observed
    pf = lesions.patients.frame
    prob = spec.estimands.interval_prob
    arms, sites = list(lesions.patients.arms), list(lesions.patients.sites)
    out = {
        "lr_count_arm": count_ppc(obs, rep, pf["arm"].to_numpy()[lesions.patient_idx], prob,
                                  arms),
        "lr_count_site": count_ppc(obs, rep, pf["site"].to_numpy()[lesions.patient_idx], prob,
                                   sites),
    }
    if "size_cm" in lesions.frame and lesions.frame["size_cm"].notna().all():
        bands = size_band(lesions.frame["size_cm"].to_numpy())
        out["lr_count_size"] = count_ppc(obs, rep, bands, prob, size_band_labels())
    out["lr_cumulative_incidence"] = cumulative_incidence_check(lesions, rep_lower, rep_upper,
                                                                prob)
    return out


def lr_loo(idata: xr.DataTree, model: Any) -> tuple[Any, int]:
    """PSIS-LOO over lesions (pointwise log-likelihood of ``lr``), via ArviZ.

    Lesions never scanned after the ablation (L = 0, no LR seen) have log-likelihood 0 under
    every draw: their LOO contribution is exactly 0 and PSIS cannot smooth a constant, so they
    are left out of the PSIS call. Returns (ArviZ ELPD result, number of such lesions).
    """
    import arviz as az
    import pymc as pm

    tree = xr.DataTree.from_dict({"posterior": idata.posterior.to_dataset()})
    pm.compute_log_likelihood(tree, model=model, var_names=["lr"], progressbar=False)
    ll = tree["log_likelihood"].to_dataset()["lr"]
    constant = (ll.std(("chain", "draw")) == 0).values
    subset = xr.DataTree.from_dict({
        "posterior": idata.posterior.to_dataset(),
        "log_likelihood": xr.Dataset({"lr": ll.isel(lesion=np.flatnonzero(~constant))}),
    })
    return az.loo(subset, var_name="lr"), int(constant.sum())
