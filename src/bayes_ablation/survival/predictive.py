"""Posterior predictive helpers shared by every survival family: thinning of draws,
Kaplan–Meier estimate and censoring times drawn from the reverse Kaplan–Meier."""

from __future__ import annotations

import numpy as np
import xarray as xr


def thin(post: xr.Dataset, n_draws: int, seed: int) -> xr.Dataset:
    """``n_draws`` posterior draws chosen at random (without replacement), dim ``sample``."""
    stacked = post.stack(sample=("chain", "draw"))
    n = stacked.sizes["sample"]
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(n_draws, n), replace=False))
    return stacked.isel(sample=idx).drop_vars(["sample", "chain", "draw"]).assign_coords(
        sample=np.arange(len(idx)))


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier estimate at 0 and every distinct time: (times, survival).

    The same table as ``lifelines.KaplanMeierFitter().fit(time, event).survival_function_``
    (tested), without importing lifelines on the fit path.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, int)
    grid = np.unique(np.concatenate([[0.0], time]))
    at_or_after = time.size - np.searchsorted(np.sort(time), grid, side="left")
    deaths = np.bincount(np.searchsorted(grid, time[event == 1]), minlength=grid.size)
    factors = np.where(at_or_after > 0, 1.0 - deaths / np.maximum(at_or_after, 1), 1.0)
    return grid, np.cumprod(factors)


def risk_times(t_max: float) -> np.ndarray:
    """Times at which a numbers-at-risk table is shown: 0 and every 3, 6, 12 or 24 months
    (the smallest step giving at most 11 columns) up to ``t_max``."""
    step = next((s for s in (3.0, 6.0, 12.0, 24.0) if t_max / s <= 10), 48.0)
    return np.arange(0.0, t_max + 1e-9, step)


def numbers_at_risk(time: np.ndarray, groups: np.ndarray, order: list[str],
                    times: np.ndarray) -> dict[str, list[int]]:
    """Per group, how many subjects are still at risk (time ≥ t, i.e. neither the event nor
    censoring before t) at each of ``times``: the table printed under a Kaplan–Meier plot."""
    time = np.asarray(time, float)
    groups = np.asarray(groups).astype(str)
    out = {}
    for g in order:
        t = np.sort(time[groups == str(g)])
        out[str(g)] = [int(t.size - np.searchsorted(t, u, side="left")) for u in times]
    return out


def kaplan_meier_by_group(time: np.ndarray, event: np.ndarray, groups: np.ndarray,
                          order: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`kaplan_meier` of each group: {group: (times, survival)}."""
    groups = np.asarray(groups).astype(str)
    return {str(g): kaplan_meier(np.asarray(time)[groups == str(g)],
                                 np.asarray(event)[groups == str(g)]) for g in order}


def censoring_times(time: np.ndarray, event: np.ndarray, n_samples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Each patient's censoring time, (sample, patient).

    Censored patients: their observed time. Patients with an event: a draw from the
    reverse Kaplan–Meier censoring distribution conditional on C > t_i (their censoring time
    was not observed); +inf where the censoring distribution has no mass beyond t_i.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, int)
    out = np.repeat(time[None, :], n_samples, axis=0)
    events = np.flatnonzero(event == 1)
    if events.size == 0:
        return out
    grid, surv = kaplan_meier(time, 1 - event)
    s_t = np.interp(time[events], grid, surv, left=1.0)                 # S_C(t_i)
    u = rng.uniform(size=(n_samples, events.size)) * s_t                # S_C(c) = u < S_C(t_i)
    # first grid point where surv <= u (surv is non-increasing: search its negation)
    pos = np.searchsorted(-surv, -u.ravel(), side="left").reshape(u.shape)
    drawn = np.where(pos < grid.size, grid[np.minimum(pos, grid.size - 1)], np.inf)
    drawn = np.maximum(drawn, time[events])
    out[:, events] = np.where(s_t > 0, drawn, np.inf)
    return out


def stratified_subsample(strata: np.ndarray, max_size: int, seed: int,
                         min_per_stratum: int = 50) -> np.ndarray | None:
    """Sorted row indices of a stratified random subsample of at most about ``max_size`` rows,
    or ``None`` when all rows fit.

    Allocation is proportional to stratum size, with at least ``min(n_s, min_per_stratum)``
    rows of every stratum s (so small strata keep a readable check); rows are drawn without
    replacement within each stratum, with a fixed seed.
    """
    n = strata.size
    if n <= max_size:
        return None
    levels, labels = np.unique(strata, return_inverse=True)
    return subsample_of_codes(labels, levels.size, max_size, seed, min_per_stratum)


def subsample_of_codes(labels: np.ndarray, n_levels: int, max_size: int, seed: int,
                       min_per_stratum: int = 50) -> np.ndarray | None:
    """:func:`stratified_subsample` of rows given as stratum codes 0 … ``n_levels`` − 1 (the
    codes ``np.unique(strata, return_inverse=True)`` gives: the same rows are drawn)."""
    labels = np.asarray(labels, np.int64)
    n = labels.size
    if n <= max_size:
        return None
    levels = np.arange(n_levels)
    sizes = np.bincount(labels, minlength=levels.size)
    take = np.minimum(sizes, np.maximum(np.round(max_size * sizes / n).astype(int),
                                        np.minimum(sizes, min_per_stratum)))
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chosen = [rng.choice(order[starts[k]:starts[k + 1]], size=int(take[k]), replace=False)
              for k in range(levels.size)]
    return np.sort(np.concatenate(chosen))
