"""Exact sufficient statistics of the piecewise-exponential (PWE) likelihood.

Time is cut at ``0 < c_1 < … < c_{J−1}`` months into J intervals I_j = (b_j, b_{j+1}],
b_0 = 0, b_J = ∞ (right-closed: an event exactly at c_j belongs to the interval ending at
c_j; the last interval is open-ended). Patient i with time t_i, status d_i and linear
predictor η_i under the hazard h_i(t) = λ_j exp(η_i) for t ∈ I_j contributes

    log L_i = d_i (log λ_{j(i)} + η_i) − Σ_j λ_j exp(η_i) e_ij,
    e_ij = max(0, min(t_i, b_{j+1}) − b_j)                       (exposure in I_j, months),

with j(i) the interval holding t_i. When η is constant within a cell
c = site × arm × interval × covariate pattern, the sum over the cell's patients is

    Σ_{i∈c} log L_i = D_c (log λ_j + η_c) − λ_j exp(η_c) E_c,
    D_c = Σ_{i∈c} d_i [j(i) = j],   E_c = Σ_{i∈c} e_ij,

so (D_c, E_c) are exact sufficient statistics. This kernel is the Poisson log-pmf of D_c with
mean μ_c = E_c λ_j exp(η_c) minus the parameter-free constant D_c log E_c − log D_c!
("Poisson trick").

:func:`aggregate` computes the cells in one vectorised pass, O(n + cells), without forming
the n × J patient-interval table: per group g (site × arm × pattern) and exit interval j it
bins events, the partial exposure t − b_j and the number of exits N_gj; a patient exiting in
a later interval contributes the full width of every earlier interval, so
E_gj = partial_gj + (b_{j+1} − b_j) · Σ_{j'>j} N_gj' (a reverse cumulative sum).

Returned columns (one row per cell with positive exposure; cells nobody reached contribute
exactly 0 to the likelihood and are left out):

``site``, ``arm``              labels (categoricals in the table's level order)
``interval``                   label "(b_j, b_{j+1}]" (categorical, interval order)
covariate columns              the pattern's values, named as in ``patients.covariates``
``events``                     D_c (int64)
``exposure_months``            E_c (float, person-months)
``site_idx``, ``arm_idx``,     integer codes: site and arm in the table's level order (arm 0 =
``interval_idx``               reference arm), interval j = 0 … J−1
``interval_start``,            b_j and b_{j+1} (``inf`` for the last interval)
``interval_end``
``pattern_idx``                the covariate pattern's code (0 when there are no covariates)

Continuous covariates make (almost) every patient its own pattern: aggregation stays exact
but no longer compresses. Categorical / discrete covariates compress well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_ablation.data.schema import PatientTable, covariate_design
from bayes_ablation.errors import DataValidationError, Problem

CELL_COLUMNS = ("site", "arm", "interval", "events", "exposure_months", "site_idx", "arm_idx",
                "interval_idx", "interval_start", "interval_end", "pattern_idx")


def check_cuts(cuts_months: Sequence[float] | np.ndarray) -> np.ndarray:
    """Interior cut points as a float array; raises ``ValueError`` unless finite, > 0 and
    strictly increasing (zero cuts = one interval = exponential model)."""
    cuts = np.asarray(cuts_months, dtype=float).reshape(-1)
    if cuts.size and (not np.all(np.isfinite(cuts)) or cuts[0] <= 0 or np.any(np.diff(cuts) <= 0)):
        raise ValueError(f"cut points must be finite, > 0 and strictly increasing, got {cuts.tolist()}")
    return cuts


def interval_bounds(cuts_months: Sequence[float] | np.ndarray) -> np.ndarray:
    """[b_0 = 0, c_1, …, c_{J−1}, b_J = ∞] (length J + 1)."""
    return np.concatenate([[0.0], check_cuts(cuts_months), [np.inf]])


def interval_labels(cuts_months: Sequence[float] | np.ndarray) -> list[str]:
    """Labels "(0, 3]", "(3, 6]", …, "(c_{J−1}, inf)" for the ``interval`` dim."""
    b = interval_bounds(cuts_months)
    return [f"({_fmt(b[j])}, {_fmt(b[j + 1])}]" if np.isfinite(b[j + 1])
            else f"({_fmt(b[j])}, inf)" for j in range(len(b) - 1)]


def _fmt(x: float) -> str:
    return f"{x:g}"


def exit_interval(time_months: np.ndarray, cuts_months: Sequence[float] | np.ndarray) -> np.ndarray:
    """j(i): index of the interval (b_j, b_{j+1}] holding each time."""
    return np.searchsorted(check_cuts(cuts_months), np.asarray(time_months, float), side="left")


def exposure_matrix(time_months: np.ndarray, cuts_months: Sequence[float] | np.ndarray) -> np.ndarray:
    """e_ij = max(0, min(t_i, b_{j+1}) − b_j): the n × J exposure table (for per-patient use;
    :func:`aggregate` never forms it)."""
    b = interval_bounds(cuts_months)
    t = np.asarray(time_months, float)[:, None]
    return np.clip(np.minimum(t, b[None, 1:]) - b[None, :-1], 0.0, None)


def quantile_cuts(patients: PatientTable, count: int) -> np.ndarray:
    """Cut points at the k/count quantiles (k = 1 … count−1) of the observed event times,
    giving ``count`` intervals with about equally many events each.

    Raises :class:`DataValidationError` when there are too few distinct event times.
    """
    if count < 1:
        raise ValueError(f"count must be ≥ 1, got {count}")
    times = patients.time[patients.event == 1]
    if count == 1:
        return np.zeros(0)
    # inverted-CDF quantiles are observed event times (no interpolation between them)
    probs = np.arange(1, count) / count
    cuts = np.unique(np.quantile(times, probs, method="inverted_cdf")) if times.size else np.zeros(0)
    cuts = cuts[cuts > 0]
    if cuts.size != count - 1:
        raise DataValidationError([Problem(
            patients.source, None, "event", int(times.size),
            f"at least {count} distinct event times to place {count - 1} quantile cut points "
            f"(found {np.unique(times).size}); lower cuts.count or give cuts_months")])
    return cuts


def aggregate(patients: PatientTable, cuts_months: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Events and exposure per site × arm × interval × covariate pattern (see module docstring).

    Exact: Σ over cells of D (log λ + η) − λ e^η E equals the per-patient PWE log-likelihood.
    """
    cuts = check_cuts(cuts_months)
    bounds = interval_bounds(cuts)
    n_int = len(bounds) - 1
    frame = patients.frame
    time = patients.time
    event = patients.event
    site_idx = patients.site_idx
    arm_idx = patients.arm_idx

    # covariate pattern codes: mixed radix over per-column factorisations, compacted after each
    # column so the key stays < n (no int64 overflow however many covariates)
    # pre-specified subgroups (0/1 columns) enter the pattern like covariates
    covs = list(dict.fromkeys([*patients.covariates, *getattr(patients, "subgroups", ())]))
    if covs:
        key = np.zeros(len(frame), dtype=np.int64)
        for cov in covs:
            codes, uniques = pd.factorize(frame[cov], sort=True)
            key = pd.factorize(key * len(uniques) + codes, sort=True)[0].astype(np.int64)
        pattern_idx = key
        n_pat = int(pattern_idx.max()) + 1
    else:
        pattern_idx = np.zeros(len(frame), dtype=np.int64)
        n_pat = 1

    n_arm = len(patients.arms)
    group = (site_idx * n_arm + arm_idx) * n_pat + pattern_idx          # < sites · arms · patterns
    group_codes, group_keys = pd.factorize(group, sort=True)           # only groups present
    n_group = len(group_keys)

    j = np.searchsorted(cuts, time, side="left")
    flat = group_codes * n_int + j
    size = n_group * n_int
    exits = np.bincount(flat, minlength=size).reshape(n_group, n_int)
    events = np.bincount(flat, weights=event, minlength=size).reshape(n_group, n_int)
    partial = np.bincount(flat, weights=time - bounds[j], minlength=size).reshape(n_group, n_int)
    # patients exiting after interval j: reverse cumulative sum of exits, shifted by one
    later = np.cumsum(exits[:, ::-1], axis=1)[:, ::-1]
    later = np.concatenate([later[:, 1:], np.zeros((n_group, 1), dtype=later.dtype)], axis=1)
    width = np.diff(bounds)
    full = later * np.where(np.isfinite(width), width, 0.0)      # `later` is 0 in the last interval
    exposure = partial + full

    g_idx, int_idx = np.nonzero(exposure > 0)
    keys = np.asarray(group_keys, dtype=np.int64)[g_idx]
    cell_pattern = keys % n_pat
    cell_arm = (keys // n_pat) % n_arm
    cell_site = keys // (n_pat * n_arm)

    labels = interval_labels(cuts)
    out = pd.DataFrame({
        "site": pd.Categorical.from_codes(cell_site, categories=list(patients.sites)),
        "arm": pd.Categorical.from_codes(cell_arm, categories=list(patients.arms)),
        "interval": pd.Categorical.from_codes(int_idx, categories=labels, ordered=True),
    })
    if covs:
        # the pattern's values: those of the first patient having it
        first = np.full(n_pat, -1, dtype=np.int64)
        order = np.arange(len(frame) - 1, -1, -1)
        first[pattern_idx[order]] = order
        for cov in covs:
            out[cov] = frame[cov].to_numpy()[first[cell_pattern]]
    out["events"] = events[g_idx, int_idx].round().astype(np.int64)
    out["exposure_months"] = exposure[g_idx, int_idx]
    out["site_idx"] = cell_site
    out["arm_idx"] = cell_arm
    out["interval_idx"] = int_idx.astype(np.int64)
    out["interval_start"] = bounds[int_idx]
    out["interval_end"] = bounds[int_idx + 1]
    out["pattern_idx"] = cell_pattern
    out.attrs["cuts_months"] = cuts.tolist()
    out.attrs["n_patients"] = patients.n_patients
    return out


def cell_design(cells: pd.DataFrame, patients: PatientTable) -> tuple[np.ndarray, list[str]]:
    """The covariate design of the cells, coded exactly as ``patients.design_matrix()``
    (numeric covariates centred at the *patient* mean; categoricals against the same level)."""
    x_cells, names, cell_centres = covariate_design(cells, patients.covariates)
    _, patient_names, centres = patients.design_matrix()
    if names != patient_names:  # every level occurs in some cell, so this cannot differ
        raise AssertionError(f"cell design {names} differs from patient design {patient_names}")
    for col, name in enumerate(names):
        if name in centres:
            x_cells[:, col] += cell_centres[name] - centres[name]
    return x_cells, names
