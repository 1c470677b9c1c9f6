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

Borrowing (:class:`FastBorrowing`, the analysis spec's ``[borrowing]``): external control
patients' (D_ext, E_ext) per interval are a further row of the statistics without site effect,
with η_j = α_j (full), a0-weighted (power) or α_j + δ, δ ~ N(0, s²) (commensurate, s on nodes
like σ); a MAP prior's mixture components are further nodes (each a normal prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from bayes_ablation.data.aggregate import aggregate, check_cuts, interval_bounds
from bayes_ablation.data.schema import PatientTable
from bayes_ablation.endpoints.prior_draws import positive_prior_quantile
from bayes_ablation.spec.plan import PriorSpec

#: standardised offsets t at which the marginal log density of β is computed (β̂ + sd·t)
MARGINAL_NODES = np.arange(-4.0, 4.01, 1.0)
#: fine grid (in t) on which the interpolated marginal density is integrated; beyond the
#: outer nodes the log density continues with the Gaussian tail's curvature
MARGINAL_GRID = np.linspace(-6.0, 6.0, 481)


def prior_quantile(prior: PriorSpec, q: np.ndarray) -> np.ndarray:
    """Quantiles of a positive prior (σ_site, τ) at probabilities ``q``."""
    return positive_prior_quantile(prior, q)


#: number of quantile nodes of the commensurability precision τ (offset sd 1/√τ)
PRECISION_NODES = 7


@dataclass(frozen=True)
class FastBorrowing:
    """Borrowing in the fast path (``[borrowing]`` of the analysis spec, PWE form).

    External controls (D_ext,j, E_ext,j) add Σ_j D_ext,j η_j − E_ext,j e^{η_j}, η_j = α_j
    (``full``), the same times a0 (``power``) or α_j + δ with δ ~ N(0, s²), s = 1/√τ
    integrated on quantile nodes of τ's prior (``commensurate``; under PH with a common shape
    the offset of the log cumulative hazard at t_ref is the offset of the log hazard at every
    t). ``map``: the mixture Σ_c w_c N(m_c, s_c²) is the prior of the log HR, or of the
    control log cumulative hazard at t_ref, g(α) = log Σ_j c_j e^{α_j} (c_j: interval j's
    exposure up to t_ref), the base prior's induced law of g, ≈ N(μ_g, s_g²), divided out.
    """

    method: str
    a0: float = 1.0
    external_events: np.ndarray | None = None       # (J,) fixed external controls
    external_exposure: np.ndarray | None = None
    offset_sd_nodes: np.ndarray | None = None       # commensurate
    map_target: str | None = None
    map_weights: tuple[float, ...] = ()
    map_means: tuple[float, ...] = ()
    map_sds: tuple[float, ...] = ()
    ref_exposure: np.ndarray | None = None          # (J,) c_j
    induced_mean: float = 0.0
    induced_sd: float = float("inf")

    @property
    def uses_external(self) -> bool:
        return self.method in ("full", "power", "commensurate")

    def with_external(self, events: np.ndarray, exposure: np.ndarray) -> FastBorrowing:
        from dataclasses import replace

        return replace(self, external_events=np.asarray(events, float),
                       external_exposure=np.asarray(exposure, float))


def fast_borrowing(borrowing: object, cuts_months: np.ndarray, t_ref_months: float,
                   baseline_mu: float, baseline_sd: float, *, map_prior: object = None,
                   external: PatientTable | None = None,
                   precision_nodes: int = PRECISION_NODES) -> FastBorrowing | None:
    """The fast path's form of a :class:`~bayes_ablation.spec.borrowing.BorrowingSpec`
    (``None`` for no borrowing); ``map_prior``: its :class:`~bayes_ablation.endpoints.
    borrowing.map_prior.MapPrior`; ``external``: fixed external control patients."""
    b = borrowing
    if b is None or b.method == "none":  # type: ignore[attr-defined]
        return None
    method = b.method  # type: ignore[attr-defined]
    kw: dict = {"method": method}
    if method == "power":
        kw["a0"] = float(b.a0)  # type: ignore[attr-defined]
    if method == "commensurate":
        tau = prior_quantile(b.precision,  # type: ignore[attr-defined]
                             (np.arange(precision_nodes) + 0.5) / precision_nodes)
        kw["offset_sd_nodes"] = 1.0 / np.sqrt(tau)
    if method == "map":
        if map_prior is None:
            raise ValueError("[borrowing] method 'map' needs its MAP prior")
        mix = map_prior.robust  # type: ignore[attr-defined]
        kw.update(map_target=b.target, map_weights=tuple(mix.weights),  # type: ignore[attr-defined]
                  map_means=tuple(mix.means), map_sds=tuple(mix.sds))
        if b.target == "log_cumhaz_ref":  # type: ignore[attr-defined]
            bounds = interval_bounds(cuts_months)
            c = np.clip(np.minimum(t_ref_months, bounds[1:]) - bounds[:-1], 0.0, None)
            rng = np.random.default_rng(0)
            alpha = rng.normal(baseline_mu, baseline_sd, (20000, c.size))
            with np.errstate(divide="ignore"):
                g = special.logsumexp(alpha + np.log(c), axis=1)
            kw.update(ref_exposure=c, induced_mean=float(g.mean()),
                      induced_sd=float(g.std()))
    out = FastBorrowing(**kw)
    if external is not None and out.uses_external:
        d, e = suff_stats(external.time[None], external.event[None],
                          np.zeros(external.n_patients, np.int64),
                          np.zeros(external.n_patients, np.int64), cuts_months, 1)
        out = out.with_external(d[0, 0, 0], e[0, 0, 0])
    return out


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
    borrowing: FastBorrowing | None = None

    @property
    def n_intervals(self) -> int:
        return len(self.cuts_months) + 1

    @property
    def bounds(self) -> np.ndarray:
        return interval_bounds(self.cuts_months)

    @classmethod
    def from_design(cls, design: object, n_sites: int | None = None, *,
                    borrowing: FastBorrowing | None = None) -> FastModel:
        """From a :class:`~bayes_ablation.spec.design.Design`; ``borrowing``: the analysis
        spec's borrowing in fast-path form (:func:`fast_borrowing`; default none)."""
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
                   site_sd_nodes=np.asarray(nodes, float), borrowing=borrowing)


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
    #: θ ends with the commensurate offset δ (borrowing)
    offset: bool = False

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


@dataclass(frozen=True)
class _Node:
    """One node of the fast path's outer integration: σ_site, the commensurate offset's sd
    and a MAP mixture component (prior weight ``log_weight``)."""

    sigma: float
    offset_sd: float | None = None
    log_hr_prior: tuple[float, float] | None = None     # MAP log HR component (m, s)
    baseline_ref: tuple[float, float] | None = None     # MAP log H₀(t_ref) component (m, s)
    log_weight: float = 0.0


def _node(sigma: float | _Node) -> _Node:
    return sigma if isinstance(sigma, _Node) else _Node(float(sigma))


def _layout(model: FastModel, d: np.ndarray) -> tuple[int, bool, bool]:
    """(number of trial sites, external row present, offset δ present) of the arrays."""
    b = model.borrowing
    ext = b is not None and b.uses_external
    return d.shape[1] - int(ext), ext, bool(ext and b.method == "commensurate")


def _unpack(theta: np.ndarray, n_int: int, with_sites: bool, n_sites: int = 0,
            offset: bool = False) -> tuple[np.ndarray, ...]:
    alpha = theta[:, :n_int]
    beta = theta[:, n_int]
    n_u = (n_sites if n_sites else theta.shape[1] - n_int - 1 - int(offset)) \
        if with_sites else 0
    u = theta[:, n_int + 1:n_int + 1 + n_u]
    delta = theta[:, -1] if offset else np.zeros(theta.shape[0])
    return alpha, beta, u, delta


def _eta(alpha: np.ndarray, beta: np.ndarray, u: np.ndarray, n_sites: int,
         ext: bool = False, delta: np.ndarray | None = None) -> np.ndarray:
    """η (B, S, 2, J); with ``ext`` a last row S for the external controls (arm 0, no site
    effect, η = α_j + δ)."""
    b = alpha.shape[0]
    uu = u if u.shape[1] else np.zeros((b, n_sites))
    arm = np.array([0.0, 1.0])
    eta = (alpha[:, None, None, :] + beta[:, None, None, None] * arm[None, None, :, None]
           + uu[:, :, None, None])
    if ext:
        row = alpha + (0.0 if delta is None else delta[:, None])
        eta = np.concatenate([eta, np.repeat(row[:, None, None, :], 2, axis=2)], axis=1)
    return eta


def _ref_term(alpha: np.ndarray, model: FastModel, node: _Node
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MAP prior of g = log H₀(t_ref) = log Σ_j c_j e^{α_j} (component N(m, s²)), with the
    base prior's induced N(μ_g, s_g²) of g divided out: T = −½[a(g − m)² − b(g − μ_g)²],
    a = 1/s², b = min(1/s_g², a/2). Returns T (B,), dT/dg (B,), −d²T/dg² (scalar) and
    p = ∂g/∂α (B, J)."""
    bo = model.borrowing
    m, s = node.baseline_ref  # type: ignore[misc]
    a = 1.0 / s**2
    b = min(1.0 / bo.induced_sd**2, 0.5 * a)
    with np.errstate(divide="ignore"):
        logc = np.log(bo.ref_exposure)
    z = alpha + logc
    g = special.logsumexp(z, axis=1)
    p = np.exp(z - g[:, None])
    t = -0.5 * (a * (g - m) ** 2 - b * (g - bo.induced_mean) ** 2)
    dt = -(a * (g - m) - b * (g - bo.induced_mean))
    return t, dt, np.asarray(a - b), p


def _log_post(theta, d, e, model: FastModel, sigma: float | _Node, with_sites: bool
              ) -> np.ndarray:
    node = _node(sigma)
    s_n, ext, offset = _layout(model, d)
    alpha, beta, u, delta = _unpack(theta, model.n_intervals, with_sites, s_n, offset)
    eta = _eta(alpha, beta, u, s_n, ext, delta if offset else None)
    lp = np.sum(d * eta - e * np.exp(eta), axis=(1, 2, 3))
    lp -= 0.5 * np.sum((alpha - model.baseline_mu) ** 2, axis=1) / model.baseline_sd**2
    m_b, s_b = node.log_hr_prior or (model.log_hr_mu, model.log_hr_sd)
    lp -= 0.5 * (beta - m_b) ** 2 / s_b**2
    if with_sites:
        lp -= 0.5 * np.sum(u**2, axis=1) / node.sigma**2
    if offset:
        lp -= 0.5 * delta**2 / node.offset_sd**2  # type: ignore[operator]
    if node.baseline_ref is not None:
        lp += _ref_term(alpha, model, node)[0]
    return lp


def _grad_hess(theta, d, e, model: FastModel, sigma: float | _Node, with_sites: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    node = _node(sigma)
    n_int = model.n_intervals
    s_n, ext, offset = _layout(model, d)
    alpha, beta, u, delta = _unpack(theta, n_int, with_sites, s_n, offset)
    mu = e * np.exp(_eta(alpha, beta, u, s_n, ext, delta if offset else None))
    r = d - mu
    b_n = theta.shape[0]
    p = theta.shape[1]
    g = np.zeros((b_n, p))
    m_b, s_b = node.log_hr_prior or (model.log_hr_mu, model.log_hr_sd)
    g[:, :n_int] = r.sum(axis=(1, 2)) - (alpha - model.baseline_mu) / model.baseline_sd**2
    g[:, n_int] = r[:, :, 1, :].sum(axis=(1, 2)) - (beta - m_b) / s_b**2
    q = np.zeros((b_n, p, p))
    ia = np.arange(n_int)
    mu_j = mu.sum(axis=(1, 2))
    mu1 = mu[:, :, 1, :]                                    # (B, S, J)
    q[:, ia, ia] = mu_j + 1.0 / model.baseline_sd**2
    q[:, n_int, n_int] = mu1.sum(axis=(1, 2)) + 1.0 / s_b**2
    q[:, ia, n_int] = q[:, n_int, ia] = mu1.sum(axis=1)
    if with_sites:
        iu = n_int + 1 + np.arange(s_n)
        mu_s, r_s = mu[:, :s_n], r[:, :s_n]
        g[:, iu] = r_s.sum(axis=(2, 3)) - u / node.sigma**2
        q[:, iu, iu] = mu_s.sum(axis=(2, 3)) + 1.0 / node.sigma**2
        mu_sj = mu_s.sum(axis=2)                            # (B, S, J)
        q[:, ia[:, None], iu[None, :]] = mu_sj.transpose(0, 2, 1)
        q[:, iu[:, None], ia[None, :]] = mu_sj
        q[:, iu, n_int] = q[:, n_int, iu] = mu1[:, :s_n].sum(axis=2)
    if offset:
        mu_x = mu[:, s_n].sum(axis=1)                       # (B, J)
        g[:, -1] = r[:, s_n].sum(axis=(1, 2)) - delta / node.offset_sd**2  # type: ignore[operator]
        q[:, -1, -1] = mu_x.sum(axis=1) + 1.0 / node.offset_sd**2  # type: ignore[operator]
        q[:, ia, -1] = q[:, -1, ia] = mu_x
    if node.baseline_ref is not None:
        _, dt, k2, pj = _ref_term(alpha, model, node)
        g[:, :n_int] += dt[:, None] * pj
        outer = pj[:, :, None] * pj[:, None, :]
        q[:, :n_int, :n_int] += k2 * outer - dt[:, None, None] * (
            pj[:, :, None] * np.eye(n_int)[None] - outer)
    return g, q


def _n_params(model: FastModel, d: np.ndarray, with_sites: bool) -> int:
    s_n, _, offset = _layout(model, d)
    return model.n_intervals + 1 + (s_n if with_sites else 0) + int(offset)


def _newton(d, e, model: FastModel, sigma: float | _Node, with_sites: bool,
            max_iter: int = 100, tol: float = 1e-10
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mode, precision Q and log posterior at the mode, per batch element."""
    b_n = d.shape[0]
    n_int = model.n_intervals
    p = _n_params(model, d, with_sites)
    theta = np.zeros((b_n, p))
    d_j = d.sum(axis=(1, 2))
    e_j = e.sum(axis=(1, 2))
    # start at the pooled per-interval rates (the prior mean where nobody was exposed)
    with np.errstate(divide="ignore"):
        theta[:, :n_int] = np.where(e_j > 0, np.log((d_j + 0.5) / np.where(e_j > 0, e_j, 1.0)),
                                    model.baseline_mu)
    node = _node(sigma)
    theta[:, n_int] = (node.log_hr_prior or (model.log_hr_mu,))[0]
    theta, lp, it = _maximise(theta, d, e, model, sigma, with_sites, np.arange(p), max_iter, tol)
    _, q = _grad_hess(theta, d, e, model, sigma, with_sites)
    return theta, q, lp, it


def _maximise(theta: np.ndarray, d, e, model: FastModel, sigma: float | _Node,
              with_sites: bool, free: np.ndarray, max_iter: int = 100, tol: float = 1e-10
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


def _nodes(model: FastModel) -> list[_Node]:
    """The outer integration nodes: σ nodes × offset-sd nodes × MAP components."""
    b = model.borrowing
    offsets: list[float | None] = [None]
    comps: list[tuple[float, float, float] | None] = [None]
    if b is not None and b.uses_external and b.method == "commensurate":
        offsets = [float(s) for s in b.offset_sd_nodes]  # type: ignore[union-attr]
    if b is not None and b.method == "map":
        comps = [(float(w), float(m), float(s))
                 for w, m, s in zip(b.map_weights, b.map_means, b.map_sds, strict=True)]
    out = []
    for sigma in model.site_sd_nodes:
        for off in offsets:
            for c in comps:
                kw: dict = {}
                if c is not None:
                    key = "log_hr_prior" if b.map_target == "log_hr" else "baseline_ref"  # type: ignore[union-attr]
                    kw = {key: (c[1], c[2]), "log_weight": float(np.log(c[0]))}
                out.append(_Node(float(sigma), off, **kw))
    return out


def with_external(d: np.ndarray, e: np.ndarray, model: FastModel,
                  external: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(D, E) with the external controls' row appended (site axis S + 1; power prior: the
    statistics multiplied by a0, which multiplies their Poisson log-likelihood by a0).
    ``external``: per-batch (D_ext, E_ext) of shape (B, J) or (J,) (default: the model's
    fixed external controls). Unchanged when the model borrows no external patients."""
    b = model.borrowing
    if b is None or not b.uses_external:
        return d, e
    if external is None:
        if b.external_events is None:
            raise ValueError(f"[borrowing] method {b.method!r} needs external control patients")
        external = (b.external_events, b.external_exposure)  # type: ignore[assignment]
    b_n, _, _, n_int = d.shape
    scale = b.a0 if b.method == "power" else 1.0
    rows = []
    for arr in external:  # type: ignore[union-attr]
        x = np.broadcast_to(np.asarray(arr, float) * scale, (b_n, n_int))
        row = np.zeros((b_n, 1, 2, n_int))
        row[:, 0, 0, :] = x
        rows.append(row)
    return np.concatenate([d, rows[0]], axis=1), np.concatenate([e, rows[1]], axis=1)


def laplace(d: np.ndarray, e: np.ndarray, model: FastModel, *,
            marginal: bool | None = None,
            external: tuple[np.ndarray, np.ndarray] | None = None) -> FastPosterior:
    """The fast posterior for a batch of sufficient statistics (B, S, 2, J).

    ``marginal`` (default: ``model.marginal``): instead of the Gaussian marginal of β, its
    Laplace marginal (Tierney & Kadane; INLA's "Laplace" strategy): at β = β̂ + sd·t for
    t = −4 … 4 the nuisance parameters (α, u) are re-optimised and
    log p̃(β | D, σ) = log p(D, β, ν̂_β | σ) − ½ log |Q_νν(β)| (+ const); a cubic spline of
    these values, integrated on a fine grid, gives the density. This captures the skewness of
    the log-HR posterior that the Gaussian approximation misses (a mode-vs-mean shift of a few
    percent of a posterior sd with few events).

    Borrowing (``model.borrowing``, :class:`FastBorrowing`): the external controls' (D, E)
    (``external``, else the model's fixed ones) enter as a row without site effect
    (:func:`with_external`); commensurate adds δ ~ N(0, s²) to θ with s integrated on nodes
    like σ; a MAP prior's mixture components are further nodes with prior weights w_c (each
    conditionally normal). Node weights ∝ prior weight × Laplace marginal likelihood.
    """
    d = np.asarray(d, float)
    e = np.asarray(e, float)
    if d.ndim == 3:
        d, e = d[None], e[None]
    d, e = with_external(d, e, model, external)
    nodes = _nodes(model)
    with_sites = bool(np.all(model.site_sd_nodes > 0))
    use_marginal = model.marginal if marginal is None else marginal
    modes, covs, logm, dens = [], [], [], []
    iters = 0
    s_n, _, offset = _layout(model, d)
    for node in nodes:
        theta, q, lp, it = _newton(d, e, model, node, with_sites)
        iters = max(iters, it)
        chol = np.linalg.cholesky(q)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
        inv_chol = np.linalg.inv(chol)
        covs.append(np.einsum("bki,bkj->bij", inv_chol, inv_chol))
        modes.append(theta)
        # node-dependent part of log p(D, θ̂ | node) − ½ log|Q|: the normalising constants of
        # the u, δ and MAP-component priors, and the component's prior weight
        norm = -s_n * np.log(node.sigma) if with_sites else 0.0
        if offset:
            norm -= np.log(node.offset_sd)
        for comp in (node.log_hr_prior, node.baseline_ref):
            if comp is not None:
                norm -= np.log(comp[1])
        logm.append(lp + norm + node.log_weight - 0.5 * logdet)
        if use_marginal:
            dens.append(_marginal_beta(d, e, model, node, with_sites, theta, covs[-1]))
    logm_arr = np.stack(logm, axis=1)
    w = np.exp(logm_arr - logm_arr.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return FastPosterior(mode=np.stack(modes, axis=1), cov=np.stack(covs, axis=1), weights=w,
                         n_intervals=model.n_intervals, iterations=iters,
                         marginal_density=np.stack(dens, axis=1) if use_marginal else None,
                         offset=offset)


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


def _marginal_beta(d: np.ndarray, e: np.ndarray, model: FastModel, sigma: float | _Node,
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

