"""Propensity model, overlap, covariate balance and positivity of one treatment comparison.

Propensity model: logistic regression of ``A = 1`` (treatment arm) against the reference arm,

    logit e(x, s) = β0 + x'β + u_s,

``x`` the patient covariates (numeric centred, categoricals dummy-coded; unpenalised), ``u_s``
site intercepts with a ridge penalty ½ Σ u_s² / σ_s² — the MAP of a normal random-intercept
model with σ_s fixed (default 1 on the logit scale), i.e. penalised maximum likelihood. Fitted
by Newton's method to machine precision, so that the score equations hold exactly: then
overlap weights (treated 1 − e, reference e) balance the mean of every unpenalised covariate
exactly (Li, Morgan & Zaslavsky 2018). When the covariates separate the arms (no finite
MLE, a positivity violation) the covariate coefficients get a weak ridge too (sd 2.5 per
standard deviation of the covariate) and the fit says so.

Balance: standardised mean difference SMD = (m₁ − m₀) / √((v₁ + v₀)/2), v the unweighted
(population) variance in each arm; weighted SMDs use weighted means over the same
denominator.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_ablation.data.schema import PatientTable

#: default sd of the site intercepts' normal penalty (logit scale)
SITE_SD = 1.0
#: ridge sd (per covariate sd) used only when the covariates separate the arms
SEPARATION_SD = 2.5
#: propensity bounds outside which a patient counts as lacking overlap
OVERLAP_BOUNDS = (0.05, 0.95)
#: numeric covariates with at most this many distinct values are treated as discrete patterns
DISCRETE_MAX_LEVELS = 5


@dataclass(frozen=True)
class PropensityDesign:
    """Patients of one comparison and the propensity model's design.

    ``x``: covariate columns in their own units (numeric as given, dummies 0/1), ``names``
    their labels; ``sites``: site labels, ``site_idx`` per patient; ``treated``: 1 for the
    treatment arm, 0 for the reference arm; ``rows``: positions in the patient table.
    """

    treatment: str
    reference: str
    x: np.ndarray
    names: tuple[str, ...]
    site_idx: np.ndarray
    sites: tuple[str, ...]
    treated: np.ndarray
    rows: np.ndarray
    time: np.ndarray
    event: np.ndarray
    frame: pd.DataFrame = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.treated.size)

    def matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, penalty precision per column, column scale): intercept, covariates (centred,
        scaled to sd 1), site dummies (all sites; penalised) — the columns Newton works on."""
        mean = self.x.mean(axis=0) if self.x.size else np.zeros(0)
        sd = self.x.std(axis=0) if self.x.size else np.zeros(0)
        sd = np.where(sd > 0, sd, 1.0)
        cols = [np.ones((self.n, 1)), (self.x - mean) / sd]
        penalty = [np.zeros(1), np.zeros(self.x.shape[1])]
        if len(self.sites) > 1:
            cols.append(np.eye(len(self.sites))[self.site_idx])
            penalty.append(np.full(len(self.sites), 1.0))
        return np.hstack(cols), np.concatenate(penalty), np.concatenate([[1.0], sd])


def comparison_design(patients: PatientTable, treatment: str) -> PropensityDesign:
    """The patients of ``treatment`` and the reference arm, with their covariate columns."""
    frame = patients.frame
    keep = frame["arm"].isin([treatment, patients.reference_arm]).to_numpy()
    rows = np.flatnonzero(keep)
    sub = frame.iloc[rows].reset_index(drop=True)
    x, names, centres = patients.design_matrix()
    x = x[rows]
    for j, name in enumerate(names):       # numeric columns back in their own units
        if name in centres:
            x[:, j] = x[:, j] + centres[name]
    present = [s for s in patients.sites if (sub["site"] == s).any()]
    site_idx = pd.Categorical(sub["site"], categories=present).codes.astype(np.int64)
    return PropensityDesign(
        treatment=treatment, reference=patients.reference_arm, x=x, names=tuple(names),
        site_idx=site_idx, sites=tuple(present),
        treated=(sub["arm"] == treatment).to_numpy(dtype=float), rows=rows,
        time=sub["time_months"].to_numpy(float), event=sub["event"].to_numpy(int),
        frame=sub)


def _loss(x: np.ndarray, y: np.ndarray, w: np.ndarray, precision: np.ndarray,
          beta: np.ndarray) -> np.ndarray:
    eta = beta @ x.T                                                     # (B, n)
    return -(w * (y * eta - np.logaddexp(0.0, eta))).sum(axis=1) \
        + 0.5 * (precision * beta**2).sum(axis=1)


def penalised_logistic(x: np.ndarray, y: np.ndarray, precision: np.ndarray,
                       weights: np.ndarray | None = None, *, max_iter: int = 100,
                       tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Penalised ML logistic regression by damped Newton, batched over weight vectors.

    Minimises −Σ_i w_i [y_i η_i − log(1 + e^{η_i})] + ½ Σ_j precision_j β_j², η = Xβ, for each
    row of ``weights`` (B, n) (default one row of ones). Returns (β (B, p), converged (B,)).
    """
    w = np.ones((1, y.size)) if weights is None else np.atleast_2d(np.asarray(weights, float))
    b, p = w.shape[0], x.shape[1]
    beta = np.zeros((b, p))
    converged = np.zeros(b, bool)
    loss = _loss(x, y, w, precision, beta)
    outer = (x[:, :, None] * x[:, None, :]).reshape(x.shape[0], p * p)  # x_i x_i' per patient
    for _ in range(max_iter):
        prob = 1.0 / (1.0 + np.exp(-(beta @ x.T)))
        grad = -(w * (y - prob)) @ x + precision * beta                  # (B, p)
        # X' diag(w p (1 − p)) X for every row at once: one matrix product (B, n) @ (n, p²)
        hess = ((w * prob * (1 - prob)) @ outer).reshape(b, p, p) + np.diag(precision)
        step = np.linalg.solve(hess + 1e-12 * np.eye(p), grad[..., None])[..., 0]
        scale = np.ones(b)
        for _half in range(40):                      # step halving where the loss rose
            trial = beta - scale[:, None] * step
            new = _loss(x, y, w, precision, trial)
            worse = new > loss + 1e-12 * np.abs(loss)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        beta, loss = trial, new
        done = np.abs(scale[:, None] * step).max(axis=1) < tol
        converged |= done
        if converged.all():
            break
    return beta, converged


@dataclass(frozen=True)
class PropensityFit:
    """A fitted propensity model of one comparison: per-patient ``propensity`` e = P(A=1 | x, s),
    coefficients per covariate unit, site intercepts, and how it was fitted (``method``)."""

    design: PropensityDesign
    propensity: np.ndarray
    intercept: float
    coefficients: dict[str, float]
    site_intercepts: dict[str, float]
    method: str
    separation: bool
    converged: bool

    @property
    def overlap_weights(self) -> np.ndarray:
        """Treated 1 − e, reference e (the overlap population, ATO)."""
        e, a = self.propensity, self.design.treated
        return np.where(a == 1, 1 - e, e)


def fit_design(design: PropensityDesign, *, site_sd: float = SITE_SD,
               weights: np.ndarray | None = None, separation: bool | None = None
               ) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    """(β (B, p) on the standardised columns, propensity (B, n), covariate ridge used?,
    converged (B,)) for weight rows ``weights``; ``separation`` None: detect (no finite MLE)
    and fall back to the covariate ridge."""
    x, site_pen, _ = design.matrix()
    base = site_pen / site_sd**2
    n_cov = design.x.shape[1]
    ridge = np.zeros_like(base)
    ridge[1:1 + n_cov] = 1.0 / SEPARATION_SD**2
    use_ridge = bool(separation)
    beta, ok = penalised_logistic(x, design.treated, base + ridge * use_ridge, weights)
    if separation is None and (not ok.all() or np.abs(beta @ x.T).max() > 25):
        use_ridge = True
        beta, ok = penalised_logistic(x, design.treated, base + ridge, weights)
    prob = 1.0 / (1.0 + np.exp(-(beta @ x.T)))
    return beta, prob, use_ridge, ok


def fit_propensity(design: PropensityDesign, *, site_sd: float = SITE_SD) -> PropensityFit:
    """The propensity model of one comparison by penalised ML (see the module docstring)."""
    _, _, scale = design.matrix()
    beta, prob, ridge, ok = fit_design(design, site_sd=site_sd)
    b = beta[0]
    n_cov = design.x.shape[1]
    coef = b[1:1 + n_cov] / scale[1:]
    mean = design.x.mean(axis=0) if n_cov else np.zeros(0)
    intercept = float(b[0] - (coef * mean).sum())
    sites = {s: float(v) for s, v in zip(design.sites, b[1 + n_cov:], strict=True)} \
        if len(design.sites) > 1 else {}
    method = (f"penalised maximum likelihood logistic regression: unpenalised intercept and "
              f"covariates, site intercepts with a normal (ridge) penalty of sd {site_sd:g} on "
              f"the logit scale (MAP of a random-intercept model with sigma_site = {site_sd:g}); "
              "Newton's method")
    if ridge:
        method += (f"; the covariates separate the arms (no finite MLE), so covariate "
                   f"coefficients carry a ridge of sd {SEPARATION_SD:g} per covariate sd and "
                   "overlap-weighted balance is approximate")
    return PropensityFit(design=design, propensity=prob[0], intercept=intercept,
                         coefficients={n: float(c) for n, c in zip(design.names, coef,
                                                                   strict=True)},
                         site_intercepts=sites, method=method, separation=ridge,
                         converged=bool(ok[0]))


def smd(x: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Standardised mean difference per column of ``x`` (treated − reference), weighted means
    over the unweighted pooled sd √((v₁ + v₀)/2)."""
    x = np.asarray(x, float).reshape(treated.size, -1)
    w = np.ones(treated.size) if weights is None else np.asarray(weights, float)
    t, r = treated == 1, treated == 0
    m1 = (w[t, None] * x[t]).sum(0) / w[t].sum()
    m0 = (w[r, None] * x[r]).sum(0) / w[r].sum()
    pooled = np.sqrt((x[t].var(axis=0) + x[r].var(axis=0)) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pooled > 0, (m1 - m0) / pooled, 0.0)


def balance_table(fit: PropensityFit) -> pd.DataFrame:
    """One row per covariate column (and per site): means per arm, SMD unweighted and with
    overlap weights."""
    d = fit.design
    x = d.x
    names = list(d.names)
    kinds = ["covariate"] * len(names)
    if len(d.sites) > 1:
        x = np.hstack([x, np.eye(len(d.sites))[d.site_idx]])
        names += [f"site[{s}]" for s in d.sites]
        kinds += ["site"] * len(d.sites)
    w = fit.overlap_weights
    t, r = d.treated == 1, d.treated == 0
    return pd.DataFrame({
        "treatment": d.treatment, "covariate": names, "kind": kinds,
        "mean_treated": x[t].mean(axis=0), "mean_reference": x[r].mean(axis=0),
        "mean_treated_overlap_weighted": (w[t, None] * x[t]).sum(0) / w[t].sum(),
        "mean_reference_overlap_weighted": (w[r, None] * x[r]).sum(0) / w[r].sum(),
        "smd_unweighted": smd(x, d.treated), "smd_overlap_weighted": smd(x, d.treated, w),
    })


def overlap_summary(fit: PropensityFit, bounds: tuple[float, float] = OVERLAP_BOUNDS
                    ) -> dict[str, object]:
    """Propensity quantiles per arm and the share of patients outside ``bounds``."""
    d, e = fit.design, fit.propensity
    outside = (e < bounds[0]) | (e > bounds[1])
    by_arm = {}
    for arm, mask in ((d.treatment, d.treated == 1), (d.reference, d.treated == 0)):
        q = np.quantile(e[mask], [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
        by_arm[arm] = {"patients": int(mask.sum()),
                       **dict(zip(("min", "q5", "q25", "median", "q75", "q95", "max"),
                                  map(float, q), strict=True)),
                       "share_outside": float(outside[mask].mean())}
    # effective sample size of the overlap-weighted sample (Kish), per arm
    w = fit.overlap_weights
    for arm, mask in ((d.treatment, d.treated == 1), (d.reference, d.treated == 0)):
        by_arm[arm]["overlap_weighted_ess"] = float(w[mask].sum() ** 2 / (w[mask] ** 2).sum())
    return {"treatment": d.treatment, "reference": d.reference, "bounds": list(bounds),
            "share_outside": float(outside.mean()), "patients_outside": int(outside.sum()),
            "by_arm": by_arm}


@dataclass(frozen=True)
class PositivityWarning:
    """A covariate pattern seen in one arm only: ``pattern`` (e.g. "node_positive=1 &
    cea_high=1"), ``arm`` (the arm without patients), ``patients`` (patients with the
    pattern, all in the other arm); ``rows``: their rows in the patient table (1 = first)."""

    treatment: str
    pattern: str
    arm: str
    patients: int
    rows: tuple[int, ...] = ()

    @property
    def message(self) -> str:
        return f"{self.pattern}: 0 {self.arm} patients of {self.patients}"

    def to_dict(self) -> dict[str, object]:
        return {"treatment": self.treatment, "pattern": self.pattern, "arm_without_patients":
                self.arm, "patients": self.patients, "rows": list(self.rows),
                "message": self.message}


def _discrete_columns(frame: pd.DataFrame, covariates: Sequence[str]
                      ) -> tuple[dict[str, pd.Series], list[str]]:
    """Covariates as discrete labels (categoricals; numerics with ≤ DISCRETE_MAX_LEVELS
    values) and the names of the continuous ones."""
    discrete, continuous = {}, []
    for cov in covariates:
        s = frame[cov]
        if pd.api.types.is_numeric_dtype(s):
            if s.nunique() <= DISCRETE_MAX_LEVELS:
                discrete[cov] = s.map(lambda v: f"{v:g}")
            else:
                continuous.append(cov)
        else:
            discrete[cov] = s.astype(str)
    return discrete, continuous


def positivity_warnings(design: PropensityDesign, covariates: Sequence[str], *,
                        min_patients: int = 5, include_site: bool = True
                        ) -> list[PositivityWarning]:
    """Covariate patterns with at least ``min_patients`` patients, all in one arm.

    Patterns: each level of a discrete covariate (and each site), each pair of levels of two
    discrete covariates (unless one of them alone already lacks overlap), and each continuous
    covariate's range beyond the other arm's largest (smallest) value.
    """
    frame, a = design.frame, design.treated
    arm_name = {1: design.treatment, 0: design.reference}
    discrete, continuous = _discrete_columns(frame, covariates)
    if include_site and len(design.sites) > 1:
        discrete = {"site": frame["site"].astype(str), **discrete}
    out: list[PositivityWarning] = []
    flagged: set[tuple[str, str]] = set()

    def rows(mask: np.ndarray) -> tuple[int, ...]:
        return tuple(int(r) + 1 for r in design.rows[mask])

    def check(mask: np.ndarray, pattern: str) -> bool:
        n = int(mask.sum())
        if n < min_patients:
            return False
        for arm in (1, 0):
            if not (a[mask] == arm).any():
                out.append(PositivityWarning(design.treatment, pattern, arm_name[arm], n,
                                             rows(mask)))
                return True
        return False

    for cov, labels in discrete.items():
        for level in sorted(labels.unique()):
            if check((labels == level).to_numpy(), f"{cov}={level}"):
                flagged.add((cov, level))
    names = [c for c in discrete if c != "site"]
    for c1, c2 in itertools.combinations(names, 2):
        l1, l2 = discrete[c1], discrete[c2]
        for v1, v2 in itertools.product(sorted(l1.unique()), sorted(l2.unique())):
            if (c1, v1) in flagged or (c2, v2) in flagged:
                continue
            check(((l1 == v1) & (l2 == v2)).to_numpy(), f"{c1}={v1} & {c2}={v2}")
    for cov in continuous:
        v = frame[cov].to_numpy(float)
        for arm in (1, 0):
            mine = v[a == arm]
            for beyond, word, edge in ((v > mine.max(), ">", "largest"),
                                       (v < mine.min(), "<", "smallest")):
                if beyond.sum() >= min_patients:
                    bound = mine.max() if word == ">" else mine.min()
                    out.append(PositivityWarning(
                        design.treatment, f"{cov} {word} {bound:g} ({edge} among "
                        f"{arm_name[arm]})", arm_name[arm], int(beyond.sum()), rows(beyond)))
    return out
