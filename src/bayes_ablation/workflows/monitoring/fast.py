"""Fast posterior path: Laplace approximation of the PWE posterior on sufficient statistics.

Model (two arms, site s, arm a ∈ {0 = reference, 1}, interval j; :mod:`bayes_ablation.data.
aggregate` defines intervals and the statistics D = events, E = exposure in months):

    D_saj ~ Poisson(E_saj exp(α_j + β a + u_s))
    α_j ~ N(m_α, s_α²)  (independent, the design's ``baseline_log_hazard``)
    β ~ N(m_β, s_β²)    (the analysis spec's ``log_hr`` prior; HR = e^β)
    u_s ~ N(0, σ²)

For fixed σ the log posterior of θ = (α, β, u) is concave; Newton's method with the analytic
gradient and Hessian (step halving as a safeguard) finds the mode θ̂, and the Laplace
approximation is θ | D, σ ≈ N(θ̂, Q⁻¹) with Q the negative Hessian at θ̂. σ is integrated on
K nodes σ_k at the (k − ½)/K quantiles of its prior (equal prior weights), the conditional
approximations mixed with weights ∝ the Laplace marginal likelihoods
p(D | σ_k) ≈ p(D, θ̂_k | σ_k) (2π)^{P/2} |Q_k|^{−1/2}. Posterior probabilities are then
P(HR < c) = Σ_k w_k Φ((log c − β̂_k) / sd_k).

Everything is vectorised over a leading batch axis B (many simulated data sets at once: the
predictive probability of success and operating characteristics fit thousands).
Covariates are not part of the fast path (the within-site, covariate-marginal log HR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from bayes_ablation.data.aggregate import aggregate, check_cuts, interval_bounds
from bayes_ablation.data.schema import PatientTable
from bayes_ablation.spec.plan import PriorSpec

#: standardised offsets t at which the marginal log density of β is computed (β̂ + sd·t)
MARGINAL_NODES = np.arange(-4.0, 4.01, 1.0)
#: fine grid (in t) on which the interpolated marginal density is integrated; beyond the
#: outer nodes the log density continues with the Gaussian tail's curvature
MARGINAL_GRID = np.linspace(-6.0, 6.0, 481)


def prior_quantile(prior: PriorSpec, q: np.ndarray) -> np.ndarray:
    """Quantiles of a positive prior (σ_site) at probabilities ``q``."""
    p = prior.params
    q = np.asarray(q, float)
    match prior.family:
        case "halfnormal":
            return stats.halfnorm.ppf(q, scale=p["sigma"])
        case "lognormal":
            return stats.lognorm.ppf(q, s=p["sigma"], scale=np.exp(p["mu"]))
        case "exponential":
            return stats.expon.ppf(q, scale=1.0 / p["lam"])
        case "gamma":
            return stats.gamma.ppf(q, a=p["alpha"], scale=1.0 / p["beta"])
        case "halfcauchy":
            return stats.halfcauchy.ppf(q, scale=p["beta"])
        case "halfstudentt":
            return stats.t.ppf((1 + q) / 2, df=p["nu"]) * p["sigma"]
        case "lognormal_variance":
            return np.sqrt(stats.lognorm.ppf(q, s=p["sigma"], scale=np.exp(p["mu"])))
    raise ValueError(f"no quantiles for prior family {prior.family!r}")


@dataclass(frozen=True)
class FastModel:
    """What the fast path needs: interval cuts, number of sites, priors and σ nodes."""

    cuts_months: np.ndarray
    n_sites: int
    baseline_mu: float
    baseline_sd: float
    log_hr_mu: float
    log_hr_sd: float
    site_sd_nodes: np.ndarray  # K values of σ (0 = no site effects)
    marginal: bool = True      # Laplace marginal of β (see :func:`laplace`)

    @property
    def n_intervals(self) -> int:
        return len(self.cuts_months) + 1

    @property
    def bounds(self) -> np.ndarray:
        return interval_bounds(self.cuts_months)

    @classmethod
    def from_design(cls, design: object, n_sites: int | None = None) -> FastModel:
        """From a :class:`~bayes_ablation.spec.design.Design`."""
        fast = design.fast  # type: ignore[attr-defined]
        spec = design.spec  # type: ignore[attr-defined]
        if fast.site_sd == "integrate":
            k = fast.site_sd_nodes
            nodes = prior_quantile(spec.priors["sigma_site"], (np.arange(k) + 0.5) / k)
        else:
            nodes = np.array([fast.site_sd_value])
        log_hr = spec.priors["log_hr"].params
        return cls(cuts_months=check_cuts(fast.cuts_months),
                   n_sites=n_sites or len(design.accrual.sites),  # type: ignore[attr-defined]
                   baseline_mu=fast.baseline.params["mu"], baseline_sd=fast.baseline.params["sigma"],
                   log_hr_mu=log_hr["mu"], log_hr_sd=log_hr["sigma"],
                   site_sd_nodes=np.asarray(nodes, float))


@dataclass
class FastPosterior:
    """Laplace mixture over σ nodes, per batch element.

    ``mode`` (B, K, P), ``cov`` (B, K, P, P), ``weights`` (B, K); parameters ordered
    α_0…α_{J−1}, β, u_0…u_{S−1} (u absent when σ = 0 for every node).
    """

    mode: np.ndarray
    cov: np.ndarray
    weights: np.ndarray
    n_intervals: int
    iterations: int
    #: marginal density of β per node on β̂ + sd·MARGINAL_GRID (B, K, G), normalised; None =
    #: Gaussian marginals (see :func:`laplace`, ``marginal``)
    marginal_density: np.ndarray | None = None

    @property
    def beta_index(self) -> int:
        return self.n_intervals

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        m = self.mode[..., self.beta_index]
        sd = np.sqrt(self.cov[..., self.beta_index, self.beta_index])
        return m[..., None] + sd[..., None] * MARGINAL_GRID, sd

    @property
    def log_hr_mean(self) -> np.ndarray:
        """Posterior mean of log HR (B,)."""
        if self.marginal_density is None:
            return np.sum(self.weights * self.mode[..., self.beta_index], axis=-1)
        beta, _ = self._grid()
        mean_k = np.trapezoid(self.marginal_density * beta, beta, axis=-1)
        return np.sum(self.weights * mean_k, axis=-1)

    @property
    def log_hr_sd(self) -> np.ndarray:
        """Posterior sd of log HR (B,) (mixture: within + between nodes)."""
        if self.marginal_density is None:
            m = self.mode[..., self.beta_index]
            v = self.cov[..., self.beta_index, self.beta_index]
        else:
            beta, _ = self._grid()
            m = np.trapezoid(self.marginal_density * beta, beta, axis=-1)
            v = np.trapezoid(self.marginal_density * (beta - m[..., None]) ** 2, beta, axis=-1)
        mean = np.sum(self.weights * m, axis=-1, keepdims=True)
        return np.sqrt(np.sum(self.weights * (v + (m - mean) ** 2), axis=-1))

    def prob_hr_below(self, cutoff: float = 1.0) -> np.ndarray:
        """P(HR < cutoff) (B,)."""
        m = self.mode[..., self.beta_index]
        sd = np.sqrt(self.cov[..., self.beta_index, self.beta_index])
        if self.marginal_density is None:
            return np.sum(self.weights * special.ndtr((np.log(cutoff) - m) / sd), axis=-1)
        t = (np.log(cutoff) - m) / sd                                   # (B, K)
        dens = self.marginal_density
        step = MARGINAL_GRID[1] - MARGINAL_GRID[0]
        cdf = np.concatenate([np.zeros((*dens.shape[:-1], 1)),
                              np.cumsum((dens[..., 1:] + dens[..., :-1]) * 0.5 * step, -1)],
                             axis=-1)                                   # in t units
        cdf = cdf * sd[..., None]                                       # density is per β
        pos = np.clip((t - MARGINAL_GRID[0]) / step, 0.0, len(MARGINAL_GRID) - 1.0)
        lo = np.minimum(np.floor(pos).astype(int), len(MARGINAL_GRID) - 2)
        frac = pos - lo
        c_lo = np.take_along_axis(cdf, lo[..., None], -1)[..., 0]
        c_hi = np.take_along_axis(cdf, lo[..., None] + 1, -1)[..., 0]
        p = np.clip(c_lo + frac * (c_hi - c_lo), 0.0, 1.0)
        return np.sum(self.weights * p, axis=-1)

    def draw(self, n: int, rng: np.random.Generator, index: int = 0) -> np.ndarray:
        """``n`` joint draws of θ (n, P) for batch element ``index`` (node by weight, then
        multivariate normal)."""
        w = self.weights[index]
        node = rng.choice(len(w), size=n, p=w / w.sum())
        out = np.empty((n, self.mode.shape[-1]))
        z = rng.standard_normal((n, self.mode.shape[-1]))
        for k in range(len(w)):
            sel = node == k
            if sel.any():
                chol = np.linalg.cholesky(self.cov[index, k])
                out[sel] = self.mode[index, k] + z[sel] @ chol.T
        return out


def suff_stats(time: np.ndarray, event: np.ndarray, site: np.ndarray, arm: np.ndarray,
               cuts_months: np.ndarray, n_sites: int, weight: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Batched PWE sufficient statistics (D, E), each (B, S, 2, J), from (B, n) arrays.

    The array counterpart of :func:`bayes_ablation.data.aggregate.aggregate` (same interval
    convention, (b_j, b_{j+1}]) for many simulated data sets at once; ``weight`` 0 leaves a
    patient out (not yet enrolled). ``site``/``arm`` may be (n,) or (B, n).
    """
    time = np.atleast_2d(np.asarray(time, float))
    b_n, n = time.shape
    event = np.broadcast_to(np.asarray(event, float), (b_n, n))
    site = np.broadcast_to(np.asarray(site, np.int64), (b_n, n))
    arm = np.broadcast_to(np.asarray(arm, np.int64), (b_n, n))
    w = np.ones((b_n, n)) if weight is None else np.broadcast_to(np.asarray(weight, float),
                                                                  (b_n, n))
    bounds = interval_bounds(cuts_months)
    n_int = len(bounds) - 1
    group = (np.arange(b_n)[:, None] * n_sites + site) * 2 + arm          # (B, n)
    size = b_n * n_sites * 2
    exposure = np.clip(np.minimum(time[..., None], bounds[1:]) - bounds[:-1], 0.0, None)
    idx = (group[..., None] * n_int + np.arange(n_int)).ravel()
    e = np.bincount(idx, weights=(exposure * w[..., None]).ravel(), minlength=size * n_int)
    j = np.searchsorted(check_cuts(cuts_months), time, side="left")
    d = np.bincount((group * n_int + j).ravel(), weights=(event * w).ravel(),
                    minlength=size * n_int)
    shape = (b_n, n_sites, 2, n_int)
    return d.reshape(shape), e.reshape(shape)


def suff_stats_from_table(patients: PatientTable, cuts_months: np.ndarray,
                          sites: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(D, E) of one patient table, shape (1, S, 2, J), via :func:`~bayes_ablation.data.
    aggregate.aggregate`; ``sites`` fixes the site axis (default: the table's sites)."""
    if len(patients.arms) != 2:
        raise ValueError(f"the fast path compares two arms, got {list(patients.arms)}")
    cells = aggregate(PatientTable(frame=patients.frame[["patient_id", "site", "arm",
                                                               "time_months", "event"]],
                                         arms=patients.arms, sites=patients.sites,
                                         covariates=(), source=patients.source,
                                         sha256=patients.sha256), cuts_months)
    sites = tuple(sites) if sites is not None else patients.sites
    pos = {s: i for i, s in enumerate(sites)}
    missing = [s for s in patients.sites if s not in pos]
    if missing:
        raise ValueError(f"sites {missing} are not among the planned sites {list(sites)}")
    site_map = np.array([pos[s] for s in patients.sites])
    n_int = len(cuts_months) + 1
    d = np.zeros((1, len(sites), 2, n_int))
    e = np.zeros_like(d)
    s_idx = site_map[cells["site_idx"].to_numpy()]
    a_idx = cells["arm_idx"].to_numpy()
    j_idx = cells["interval_idx"].to_numpy()
    np.add.at(d, (0, s_idx, a_idx, j_idx), cells["events"].to_numpy(float))
    np.add.at(e, (0, s_idx, a_idx, j_idx), cells["exposure_months"].to_numpy(float))
    return d, e


def _unpack(theta: np.ndarray, n_int: int, with_sites: bool) -> tuple[np.ndarray, ...]:
    alpha = theta[:, :n_int]
    beta = theta[:, n_int]
    u = theta[:, n_int + 1:] if with_sites else np.zeros((theta.shape[0], 0))
    return alpha, beta, u


def _eta(alpha: np.ndarray, beta: np.ndarray, u: np.ndarray, n_sites: int) -> np.ndarray:
    """η (B, S, 2, J)."""
    b = alpha.shape[0]
    uu = u if u.shape[1] else np.zeros((b, n_sites))
    arm = np.array([0.0, 1.0])
    return (alpha[:, None, None, :] + beta[:, None, None, None] * arm[None, None, :, None]
            + uu[:, :, None, None])


def _log_post(theta, d, e, model: FastModel, sigma: float, with_sites: bool) -> np.ndarray:
    alpha, beta, u = _unpack(theta, model.n_intervals, with_sites)
    eta = _eta(alpha, beta, u, d.shape[1])
    lp = np.sum(d * eta - e * np.exp(eta), axis=(1, 2, 3))
    lp -= 0.5 * np.sum((alpha - model.baseline_mu) ** 2, axis=1) / model.baseline_sd**2
    lp -= 0.5 * (beta - model.log_hr_mu) ** 2 / model.log_hr_sd**2
    if with_sites:
        lp -= 0.5 * np.sum(u**2, axis=1) / sigma**2
    return lp


def _grad_hess(theta, d, e, model: FastModel, sigma: float, with_sites: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    n_int = model.n_intervals
    alpha, beta, u = _unpack(theta, n_int, with_sites)
    s_n = d.shape[1]
    mu = e * np.exp(_eta(alpha, beta, u, s_n))            # (B, S, 2, J)
    r = d - mu
    b_n = theta.shape[0]
    p = theta.shape[1]
    g = np.empty((b_n, p))
    g[:, :n_int] = r.sum(axis=(1, 2)) - (alpha - model.baseline_mu) / model.baseline_sd**2
    g[:, n_int] = r[:, :, 1, :].sum(axis=(1, 2)) - (beta - model.log_hr_mu) / model.log_hr_sd**2
    q = np.zeros((b_n, p, p))
    ia = np.arange(n_int)
    mu_j = mu.sum(axis=(1, 2))
    mu1 = mu[:, :, 1, :]                                    # (B, S, J)
    q[:, ia, ia] = mu_j + 1.0 / model.baseline_sd**2
    q[:, n_int, n_int] = mu1.sum(axis=(1, 2)) + 1.0 / model.log_hr_sd**2
    q[:, ia, n_int] = q[:, n_int, ia] = mu1.sum(axis=1)
    if with_sites:
        iu = n_int + 1 + np.arange(s_n)
        g[:, n_int + 1:] = r.sum(axis=(2, 3)) - u / sigma**2
        q[:, iu, iu] = mu.sum(axis=(2, 3)) + 1.0 / sigma**2
        mu_sj = mu.sum(axis=2)                              # (B, S, J)
        q[:, ia[:, None], iu[None, :]] = mu_sj.transpose(0, 2, 1)
        q[:, iu[:, None], ia[None, :]] = mu_sj
        q[:, iu, n_int] = q[:, n_int, iu] = mu1.sum(axis=2)
    return g, q


def _newton(d, e, model: FastModel, sigma: float, with_sites: bool, max_iter: int = 100,
            tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mode, precision Q and log posterior at the mode, per batch element."""
    b_n = d.shape[0]
    n_int = model.n_intervals
    p = n_int + 1 + (d.shape[1] if with_sites else 0)
    theta = np.zeros((b_n, p))
    d_j = d.sum(axis=(1, 2))
    e_j = e.sum(axis=(1, 2))
    # start at the pooled per-interval rates (the prior mean where nobody was exposed)
    with np.errstate(divide="ignore"):
        theta[:, :n_int] = np.where(e_j > 0, np.log((d_j + 0.5) / np.where(e_j > 0, e_j, 1.0)),
                                    model.baseline_mu)
    theta[:, n_int] = model.log_hr_mu
    theta, lp, it = _maximise(theta, d, e, model, sigma, with_sites, np.arange(p), max_iter, tol)
    _, q = _grad_hess(theta, d, e, model, sigma, with_sites)
    return theta, q, lp, it


def _maximise(theta: np.ndarray, d, e, model: FastModel, sigma: float, with_sites: bool,
              free: np.ndarray, max_iter: int = 100, tol: float = 1e-10
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """Newton's method over the ``free`` parameters (others held fixed), step halving as a
    safeguard; each batch element stops on its own (so its result never depends on the
    other elements of the batch)."""
    theta = theta.copy()
    lp = _log_post(theta, d, e, model, sigma, with_sites)
    active = np.ones(theta.shape[0], dtype=bool)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        idx = np.flatnonzero(active)
        g, q = _grad_hess(theta[idx], d[idx], e[idx], model, sigma, with_sites)
        step = np.linalg.solve(q[:, free[:, None], free[None, :]], g[:, free, None])[..., 0]
        t = np.ones(len(idx))
        old = theta[idx]
        new = old.copy()
        new[:, free] += step
        lp_new = _log_post(new, d[idx], e[idx], model, sigma, with_sites)
        for _ in range(40):
            bad = ~(lp_new >= lp[idx] - 1e-9 * np.abs(lp[idx]))
            if not bad.any():
                break
            t[bad] *= 0.5
            rows = np.flatnonzero(bad)
            new[rows] = old[rows]
            new[np.ix_(rows, free)] += t[rows, None] * step[rows]
            lp_new[rows] = _log_post(new[rows], d[idx][rows], e[idx][rows], model, sigma,
                                     with_sites)
        theta[idx] = new
        lp[idx] = lp_new
        done = np.max(np.abs(t[:, None] * step), axis=1) < tol
        active[idx[done]] = False
        if not active.any():
            break
    return theta, lp, it


def laplace(d: np.ndarray, e: np.ndarray, model: FastModel, *,
            marginal: bool | None = None) -> FastPosterior:
    """The fast posterior for a batch of sufficient statistics (B, S, 2, J).

    ``marginal`` (default: ``model.marginal``): instead of the Gaussian marginal of β, its
    Laplace marginal (Tierney & Kadane; INLA's "Laplace" strategy): at β = β̂ + sd·t for
    t = −4 … 4 the nuisance parameters (α, u) are re-optimised and
    log p̃(β | D, σ) = log p(D, β, ν̂_β | σ) − ½ log |Q_νν(β)| (+ const); a cubic spline of
    these values, integrated on a fine grid, gives the density. This captures the skewness of
    the log-HR posterior that the Gaussian approximation misses (a mode-vs-mean shift of a few
    percent of a posterior sd with few events).
    """
    d = np.asarray(d, float)
    e = np.asarray(e, float)
    if d.ndim == 3:
        d, e = d[None], e[None]
    nodes = model.site_sd_nodes
    with_sites = bool(np.all(nodes > 0))
    use_marginal = model.marginal if marginal is None else marginal
    modes, covs, logm, dens = [], [], [], []
    iters = 0
    s_n = d.shape[1]
    for sigma in nodes:
        theta, q, lp, it = _newton(d, e, model, float(sigma), with_sites)
        iters = max(iters, it)
        chol = np.linalg.cholesky(q)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        inv_chol = np.linalg.inv(chol)
        covs.append(np.einsum("bki,bkj->bij", inv_chol, inv_chol))
        modes.append(theta)
        # σ-dependent part of log p(D, θ̂ | σ) − ½ log|Q|: the u prior's normalising constant
        norm_u = -s_n * np.log(sigma) if with_sites else 0.0
        logm.append(lp + norm_u - 0.5 * logdet)
        if use_marginal:
            dens.append(_marginal_beta(d, e, model, float(sigma), with_sites, theta, covs[-1]))
    logm_arr = np.stack(logm, axis=1)
    w = np.exp(logm_arr - logm_arr.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return FastPosterior(mode=np.stack(modes, axis=1), cov=np.stack(covs, axis=1), weights=w,
                         n_intervals=model.n_intervals, iterations=iters,
                         marginal_density=np.stack(dens, axis=1) if use_marginal else None)


_SPLINE: list[np.ndarray] = []


def _spline_matrix() -> np.ndarray:
    """W (G_fine, G_nodes): not-a-knot cubic spline of the node values on the fine grid inside
    the nodes; outside, the value at the nearest outer node (the caller adds the tail)."""
    if not _SPLINE:
        from scipy.interpolate import CubicSpline

        eye = np.eye(len(MARGINAL_NODES))
        inner = np.clip(MARGINAL_GRID, MARGINAL_NODES[0], MARGINAL_NODES[-1])
        _SPLINE.append(CubicSpline(MARGINAL_NODES, eye, axis=0)(inner))
    return _SPLINE[0]


def _marginal_beta(d: np.ndarray, e: np.ndarray, model: FastModel, sigma: float,
                   with_sites: bool, mode: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Laplace marginal density of β on the fine grid, (B, G) (see :func:`laplace`)."""
    b_n, p = mode.shape
    jb = model.n_intervals
    nu = np.array([i for i in range(p) if i != jb])
    sd = np.sqrt(cov[:, jb, jb])
    t = MARGINAL_NODES
    g_n = len(t)
    theta = np.repeat(mode[:, None, :], g_n, axis=1)                    # (B, G, P)
    shift = sd[:, None] * t[None, :]
    theta[..., jb] += shift
    # start at the joint Gaussian's conditional mean of the nuisance parameters given β
    slope = cov[:, nu, jb] / cov[:, jb, jb][:, None]                     # (B, P−1)
    theta[..., nu] += shift[..., None] * slope[:, None, :]
    theta = theta.reshape(b_n * g_n, p)
    dd = np.repeat(d, g_n, axis=0)
    ee = np.repeat(e, g_n, axis=0)
    theta, lp, _ = _maximise(theta, dd, ee, model, sigma, with_sites, nu, max_iter=50,
                             tol=1e-9)
    _, q = _grad_hess(theta, dd, ee, model, sigma, with_sites)
    chol = np.linalg.cholesky(q[:, nu[:, None], nu[None, :]])
    logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
    logf = (lp - 0.5 * logdet).reshape(b_n, g_n)
    logf -= logf[:, [g_n // 2]]
    # the cubic spline through the nodes, as a fixed linear map; an explicit product-and-sum
    # (not BLAS) keeps each row's arithmetic independent of the batch
    edge = np.abs(MARGINAL_NODES[-1])
    tail = -0.5 * (np.maximum(np.abs(MARGINAL_GRID), edge) ** 2 - edge**2)
    dens = np.exp(np.sum(logf[:, None, :] * _spline_matrix()[None], axis=-1) + tail)
    step_t = MARGINAL_GRID[1] - MARGINAL_GRID[0]
    norm = np.sum((dens[:, 1:] + dens[:, :-1]) * 0.5 * step_t, axis=1)
    return dens / norm[:, None] / sd[:, None]                            # density per unit β


def fast_posterior(patients: PatientTable, model: FastModel,
                   sites: tuple[str, ...] | None = None) -> FastPosterior:
    """The fast posterior of one validated two-arm patient table."""
    d, e = suff_stats_from_table(patients, model.cuts_months, sites)
    return laplace(d, e, model)

