"""Checks of the local recurrence (LR) model against its data.

1. **Posterior predictive counts** of lesions with an observed LR, per arm, per site and per
   size band. A replicate draws each lesion's latent LR time from one posterior draw (its own
   patient's frailty v_i and site effect u_s) and counts it as observed when it falls before
   the patient's last scan. The last scan is known when some lesion of the patient stayed
   LR-free (its ``lr_lower_months``); when every lesion of the patient recurred it is only
   known to be later than the last positive scan, and is drawn from the reverse
   Kaplan–Meier distribution of last scans beyond it
   (:func:`bayes_ablation.predictive.censoring_times`), capped at death or last contact.
2. **Cumulative incidence**: the Turnbull NPMLE of the lesions' LR time distribution from the
   intervals (L, U] (death and end of scans act as censoring; lesions as units), per arm,
   against the posterior band of the fitted distribution of the same lesions,
   1 − mean_j S_LR(t | θ, x_j, v_i, u_s). Both estimate the net (death-free) LR distribution
   of the analysed lesions; the competing-risk CIF is an estimand, not a check.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.data.lesions import LesionTable
from bayes_ablation.models.piecewise import DEFAULT_CUTS_MONTHS, exposure, invert_cumhaz

SIZE_BANDS_CM = (2.0, 3.0)


def turnbull(lower: np.ndarray, upper: np.ndarray, tol: float = 1e-9,
             max_iter: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Turnbull NPMLE for interval-censored times T ∈ (L, U] (U = +inf: right-censored).

    Self-consistency EM over candidate atoms at the finite right endpoints (and one atom at
    +inf). Returns (atoms, F at the atoms) with F(t) = P(T ≤ t); within a Turnbull interval the
    mass is placed at its right end.
    """
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    atoms = np.unique(upper[np.isfinite(upper)])
    support = np.concatenate([atoms, [np.inf]])
    cover = (lower[:, None] < support[None, :]) & (support[None, :] <= upper[:, None])
    informative = cover.sum(axis=1) < support.size
    cover = cover[informative]
    p = np.full(support.size, 1.0 / support.size)
    if cover.shape[0] == 0:
        return atoms, np.zeros(atoms.size)
    cov_f = cover.astype(float)
    for _ in range(int(max_iter)):
        denom = cov_f @ p
        new = p * (cov_f / denom[:, None]).mean(axis=0)
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return atoms, np.cumsum(p[:-1])


def step_on_grid(atoms: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Right-continuous step function through (atoms, values), 0 before the first atom."""
    pos = np.searchsorted(atoms, grid, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)


def scan_horizons(lesions: LesionTable, n_samples: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Each patient's last scan (sample, patient): known, or drawn beyond the last positive
    scan when every lesion of the patient recurred (see module docstring)."""
    from bayes_ablation.predictive import censoring_times

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
        z = post["z_patient"].transpose("sample", "patient").values
        eta = eta + post["sigma_patient"].values[:, None] * z[:, pat]
    return eta


def baseline_cumhaz(post: xr.Dataset, spec: Any, times: np.ndarray) -> np.ndarray:
    """Baseline cumulative LR hazard H₀(t) (sample, time) of the model family."""
    times = np.asarray(times, float)
    if spec.model == "lr_pwe":
        cuts = spec.model_options.get("cuts_months", DEFAULT_CUTS_MONTHS)
        rates = np.exp(post["log_hazard_baseline"].transpose("sample", "interval").values)
        return rates @ exposure(times, cuts).T
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    k = post["weibull_shape"].values[:, None]
    log_lam0 = post["log_cumhaz_ref"].values[:, None] - k * np.log(t_ref)
    return np.exp(log_lam0) * times[None, :] ** k


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


def replicate_observed_lr(idata: xr.DataTree, spec: Any, lesions: LesionTable,
                          n_draws: int = 200, seed: int = 0) -> np.ndarray:
    """Replicated 'LR observed' indicators (sample, lesion)."""
    from bayes_ablation.predictive import thin

    rng = np.random.default_rng(seed)
    post = thin(idata.posterior.to_dataset(), n_draws, seed)
    eta = lesion_eta(post, idata.constant_data.to_dataset())
    t_lr = baseline_inverse(post, spec, rng.exponential(size=eta.shape) / np.exp(eta))
    horizon = scan_horizons(lesions, eta.shape[0], rng)
    return (t_lr <= horizon[:, lesions.patient_idx]).astype(int)


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


def cumulative_incidence_check(idata: xr.DataTree, spec: Any, lesions: LesionTable,
                               n_draws: int = 200, seed: int = 0, n_grid: int = 97
                               ) -> xr.Dataset:
    """Turnbull NPMLE per arm and the posterior band of the fitted distribution of the same
    lesions on a time grid (dims group, time); ``inside`` = share of grid points where the
    NPMLE lies in the band."""
    from bayes_ablation.predictive import thin

    post = thin(idata.posterior.to_dataset(), n_draws, seed)
    eta = lesion_eta(post, idata.constant_data.to_dataset())
    lower, upper = lesions.lower, lesions.upper
    # stop where 10% of lesions are still scanned: the NPMLE's tail rests on very few lesions
    t_max = float(np.quantile(np.where(np.isfinite(upper), upper, lower), 0.9))
    grid = np.linspace(0.0, t_max, n_grid)
    arms = lesions.patients.frame["arm"].to_numpy()[lesions.patient_idx]
    prob = spec.estimands.interval_prob
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    out = {"observed": [], "lower": [], "median": [], "upper": [], "inside": []}
    labels = list(lesions.patients.arms)
    h0 = baseline_cumhaz(post, spec, grid)                                  # (sample, time)
    for arm in labels:
        mask = arms == arm
        atoms, f = turnbull(lower[mask], upper[mask])
        obs = step_on_grid(atoms, f, grid)
        fitted = 1.0 - np.exp(-h0[:, None, :] * np.exp(eta[:, mask, None])).mean(axis=1)
        q = np.quantile(fitted, [lo, 0.5, hi], axis=0)
        out["observed"].append(obs)
        out["lower"].append(q[0])
        out["median"].append(q[1])
        out["upper"].append(q[2])
        out["inside"].append(float(np.mean((obs >= q[0] - 1e-9) & (obs <= q[2] + 1e-9))))
    return xr.Dataset({
        **{n: (("group", "time"), np.array(out[n])) for n in ("observed", "lower", "median",
                                                               "upper")},
        "inside": ("group", np.array(out["inside"])),
    }, coords={"group": labels, "time": grid}, attrs={"interval_prob": prob})


def lr_ppc(idata: xr.DataTree, spec: Any, lesions: LesionTable, n_draws: int = 200,
           seed: int = 0) -> dict[str, xr.Dataset]:
    """All LR checks: counts per arm / site / size band and the cumulative incidence check."""
    rep = replicate_observed_lr(idata, spec, lesions, n_draws, seed)
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
    out["lr_cumulative_incidence"] = cumulative_incidence_check(idata, spec, lesions,
                                                                n_draws, seed)
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
