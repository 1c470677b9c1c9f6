"""Exact posterior of the normal–normal random-effects model, by quadrature (no sampling).

Model: y_i ~ N(θ_i, s_i²), θ_i ~ N(μ, τ²), μ ~ N(m₀, s₀²), τ ~ p(τ) (any prior of the spec).

Given τ everything is Gaussian. With v_i = s_i² + τ², w_i = 1/v_i, W = Σ w_i,
ȳ = Σ w_i y_i / W and Q = Σ w_i (y_i − ȳ)²,

    p(y | τ) ∝ Π v_i^(−½) · W^(−½) · exp(−Q/2) · N(ȳ; m₀, s₀² + 1/W)          (μ integrated out)
    μ | τ, y ~ N(m, v),   v = 1/(W + 1/s₀²),   m = v (W ȳ + m₀/s₀²)
    θ_i | τ, y ~ N(B_i m + (1 − B_i) y_i, (1 − B_i) s_i² + B_i² v),   B_i = s_i² / v_i
    θ_new | τ, y ~ N(m, v + τ²)

so p(τ | y) ∝ p(τ) p(y | τ) is one-dimensional: it is integrated by adaptive Gauss–Kronrod
quadrature (SciPy ``quad_vec``) in u = log τ, over the range where the integrand is above
e^−45 of its maximum. Every posterior quantity of μ, θ_i and θ_new is a mixture of normals over
p(τ | y): means and sds are integrals, CDFs are integrals of Φ, and quantiles are found by a
safeguarded Newton iteration on the CDF (vectorised over all quantities at once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr
from scipy import integrate, optimize, special

from bayes_ablation.errors import BayesAblationError
from bayes_ablation.spec.plan import PriorSpec

_LOG_FLOOR = 45.0  # integrate where log density > max − 45 (relative mass < 1e-19 dropped)
_U_GRID = np.linspace(np.log(1e-9), np.log(1e7), 6001)


class QuadratureUnsupported(BayesAblationError):
    """The spec's priors have no exact quadrature (use MCMC)."""

    exit_code = 2


_LOG_2PI = float(np.log(2 * np.pi))


def _lognormal_logpdf(t: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        lt = np.log(t)
    return -lt - np.log(sigma) - 0.5 * _LOG_2PI - 0.5 * ((lt - mu) / sigma) ** 2


def tau_log_prior(prior: PriorSpec) -> tuple[Callable[[np.ndarray], np.ndarray], float, float]:
    """Log density of τ under ``prior`` (closed forms, vectorised) and its support."""
    p = prior.params
    match prior.family:
        case "halfnormal":
            s = p["sigma"]
            c = np.log(2.0) - 0.5 * _LOG_2PI - np.log(s)
            return (lambda t: c - 0.5 * (t / s) ** 2), 0.0, np.inf
        case "halfcauchy":
            b = p["beta"]
            c = np.log(2.0) - np.log(np.pi * b)
            return (lambda t: c - np.log1p((t / b) ** 2)), 0.0, np.inf
        case "halfstudentt":
            nu, s = p["nu"], p["sigma"]
            c = (np.log(2.0) + special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
                 - 0.5 * np.log(nu * np.pi) - np.log(s))
            return (lambda t: c - (nu + 1) / 2 * np.log1p((t / s) ** 2 / nu)), 0.0, np.inf
        case "lognormal":
            return (lambda t: _lognormal_logpdf(t, p["mu"], p["sigma"])), 0.0, np.inf
        case "lognormal_variance":  # τ² ~ LN(μ, σ²)  ⇔  τ ~ LN(μ/2, (σ/2)²)
            return (lambda t: _lognormal_logpdf(t, p["mu"] / 2, p["sigma"] / 2)), 0.0, np.inf
        case "exponential":
            lam = p["lam"]
            return (lambda t: np.log(lam) - lam * t), 0.0, np.inf
        case "gamma":
            a, b = p["alpha"], p["beta"]
            c = a * np.log(b) - special.gammaln(a)
            with np.errstate(divide="ignore"):
                return (lambda t: c + (a - 1) * np.log(t) - b * t), 0.0, np.inf
        case "uniform":
            lo, hi = p["lower"], p["upper"]
            if lo < 0:
                raise QuadratureUnsupported("a uniform prior on tau needs lower >= 0")
            return (lambda t: np.where((t >= lo) & (t <= hi), -np.log(hi - lo), -np.inf)), \
                lo, hi
    raise QuadratureUnsupported(f"no exact quadrature for a {prior.family} prior on tau")


@dataclass
class ExactPosterior:
    """The posterior of (μ, τ, θ, θ_new) for log HRs ``y`` with standard errors ``se``."""

    y: np.ndarray
    se: np.ndarray
    mu_prior: PriorSpec
    tau_prior: PriorSpec
    studies: tuple[str, ...] = ()
    epsrel: float = 1e-10
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, float)
        self.se = np.asarray(self.se, float)
        if self.y.ndim != 1 or self.y.shape != self.se.shape or self.y.size == 0:
            raise ValueError("y and se must be 1-d arrays of the same, non-zero length")
        if self.mu_prior.family != "normal":
            raise QuadratureUnsupported(
                f"exact quadrature integrates mu analytically and needs a normal prior on mu, "
                f"got {self.mu_prior.describe()}; use --method mcmc")
        self.m0 = self.mu_prior.params["mu"]
        self.s0 = self.mu_prior.params["sigma"]
        if not self.studies:
            self.studies = tuple(f"study{i + 1}" for i in range(self.y.size))
        self._log_prior, lo, hi = tau_log_prior(self.tau_prior)
        self._support = (np.log(lo) if lo > 0 else -np.inf, np.log(hi) if np.isfinite(hi)
                         else np.inf)
        self._lo, self._hi, self._mode, self._log_max = self._range()
        self._build_rule()

    # ---------------------------------------------------------------------- core integrals
    def _conditional(self, tau: np.ndarray) -> dict[str, np.ndarray]:
        """Per τ (vector): W, ȳ, Q, the conditional mean m and variance v of μ, B (study, τ)."""
        tau = np.atleast_1d(tau)
        var = self.se[:, None] ** 2 + tau[None, :] ** 2        # (study, τ)
        w = 1.0 / var
        big_w = w.sum(axis=0)
        ybar = (w * self.y[:, None]).sum(axis=0) / big_w
        q = (w * (self.y[:, None] - ybar) ** 2).sum(axis=0)
        prec = big_w + 1.0 / self.s0**2
        v = 1.0 / prec
        m = v * (big_w * ybar + self.m0 / self.s0**2)
        return {"var": var, "W": big_w, "ybar": ybar, "Q": q, "m": m, "v": v,
                "B": self.se[:, None] ** 2 / var}

    def log_marginal(self, tau: np.ndarray) -> np.ndarray:
        """log p(y | τ) with μ integrated out (up to a constant)."""
        c = self._conditional(tau)
        s2 = self.s0**2 + 1.0 / c["W"]
        return (-0.5 * np.log(c["var"]).sum(axis=0) - 0.5 * np.log(c["W"]) - 0.5 * c["Q"]
                - 0.5 * np.log(s2) - 0.5 * (c["ybar"] - self.m0) ** 2 / s2)

    def _log_post_u(self, u: np.ndarray) -> np.ndarray:
        """Unnormalised log posterior density of u = log τ."""
        tau = np.exp(u)
        with np.errstate(divide="ignore"):
            return self._log_prior(tau) + u + self.log_marginal(tau)

    def _range(self) -> tuple[float, float, float, float]:
        lo_s, hi_s = self._support
        grid = _U_GRID[(_U_GRID > lo_s) & (_U_GRID < hi_s)]
        grid = np.concatenate([[lo_s] if np.isfinite(lo_s) else [], grid,
                               [hi_s] if np.isfinite(hi_s) else []])
        lp = self._log_post_u(grid)
        if not np.isfinite(lp).any():
            raise QuadratureUnsupported("the posterior of tau has no mass on the grid")
        i_max = int(np.nanargmax(lp))
        keep = np.flatnonzero(lp > lp[i_max] - _LOG_FLOOR)
        lo = max(grid[max(keep[0] - 1, 0)], lo_s)
        hi = min(grid[min(keep[-1] + 1, grid.size - 1)], hi_s)
        # power-law tail: p(u | y) ~ e^(s u) as u → ∞ (s = −(1 + tail exponent of τ)); E[τ^j]
        # is finite only if s < −j. Mass beyond the grid ≈ f(u_end) / |s|.
        self.tail_slope = float(lp[-1] - lp[-2]) / float(grid[-1] - grid[-2]) \
            if not np.isfinite(hi_s) else -np.inf
        if keep[-1] == grid.size - 1 and not np.isfinite(hi_s):
            lost = np.exp(lp[-1] - lp[i_max]) / max(-self.tail_slope, 1e-300)
            if lost > 1e-9:
                self.notes.append(f"the posterior of tau has a very heavy right tail: about "
                                  f"{lost:.1e} (relative) of its mass lies beyond tau = "
                                  f"{np.exp(grid[-1]):.3g} and is left out")
        if self.tail_slope >= -2 - 1e-6:
            self.notes.append("the posterior of tau has so heavy a tail that its variance (and "
                              "the sd of theta_new) is infinite; sds are reported as inf")
        return float(lo), float(hi), float(grid[i_max]), float(lp[i_max])

    def _build_rule(self) -> None:
        """Adaptive Gauss–Kronrod (SciPy ``quad_vec``) on the posterior of u = log τ times the
        conditional moments of every quantity; its final partition, with a 20-point
        Gauss–Legendre rule on each interval, is the rule all later integrals use."""
        def integrand(u: float) -> np.ndarray:
            uu = np.array([u])
            a, b = self._components(uu)
            f = np.vstack([np.ones((1, 1)), a, a**2 + b, np.exp(uu)[None, :]])
            return (f * np.exp(self._log_post_u(uu) - self._log_max))[:, 0]

        points = [self._mode] if self._lo < self._mode < self._hi else None
        value, err, info = integrate.quad_vec(integrand, self._lo, self._hi, epsabs=0.0,
                                              epsrel=self.epsrel, norm="max", points=points,
                                              limit=2000, full_output=True)
        self.quad_error = float(err / value[0])
        intervals = np.sort(np.asarray(info.intervals), axis=0)
        intervals = intervals[np.argsort(intervals[:, 0])]
        self._intervals = intervals
        nodes, weights = np.polynomial.legendre.leggauss(20)
        half = (intervals[:, 1] - intervals[:, 0]) / 2
        mid = (intervals[:, 1] + intervals[:, 0]) / 2
        self._u = (mid[:, None] + half[:, None] * nodes[None, :]).ravel()
        raw = (half[:, None] * weights[None, :]).ravel() * \
            np.exp(self._log_post_u(self._u) - self._log_max)
        self._norm = float(raw.sum())
        self._w = raw / self._norm
        self.rule_check = float(abs(self._norm - value[0]) / value[0])

    def _integrate(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """E[fn(u) | y] for ``fn`` giving (n, len(u)) — a weighted sum over the rule's nodes."""
        return fn(self._u) @ self._w

    def _weights(self, u: np.ndarray) -> np.ndarray:
        """Normalised posterior density of u = log τ."""
        return np.exp(self._log_post_u(u) - self._log_max) / self._norm

    # ------------------------------------------------------------------ normal mixtures
    def _components(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conditional means and variances (quantity, u) of μ, θ_1..θ_K, θ_new given τ."""
        tau = np.exp(u)
        c = self._conditional(tau)
        b = c["B"]
        theta_mean = b * c["m"][None, :] + (1 - b) * self.y[:, None]
        theta_var = (1 - b) * self.se[:, None] ** 2 + b**2 * c["v"][None, :]
        means = np.vstack([c["m"][None, :], theta_mean, c["m"][None, :]])
        variances = np.vstack([c["v"][None, :], theta_var, (c["v"] + tau**2)[None, :]])
        return means, variances

    def theta_new_components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """θ_new | y as the quadrature's normal mixture: (weights, means, sds) over the rule's
        nodes in u = log τ (weights sum to 1), e.g. to draw from the MAP distribution."""
        a, b = self._components(self._u)
        return self._w.copy(), a[-1].copy(), np.sqrt(b[-1])

    @property
    def quantities(self) -> list[str]:
        return ["mu", *[f"theta[{s}]" for s in self.studies], "theta_new"]

    @cached_property
    def moments(self) -> pd.DataFrame:
        """Posterior mean and sd of μ, θ_i and θ_new (log HR scale)."""
        n = len(self.quantities)

        def fn(u: np.ndarray) -> np.ndarray:
            a, b = self._components(u)
            return np.vstack([a, a**2 + b])

        e = self._integrate(fn)
        mean, second = e[:n], e[n:]
        sd = np.sqrt(np.maximum(second - mean**2, 0.0))
        if self.tail_slope >= -2 - 1e-6:      # Var(θ_new | y) ≥ E[τ² | y] = ∞
            sd[-1] = np.inf
        return pd.DataFrame({"mean": mean, "sd": sd}, index=self.quantities)

    def cdf(self, x: Sequence[float] | np.ndarray, which: Sequence[int] | None = None
            ) -> np.ndarray:
        """P(quantity_q ≤ x_q) for quantities ``which`` (indices into :attr:`quantities`)."""
        x = np.asarray(x, float)
        which = np.arange(len(self.quantities)) if which is None else np.asarray(which)

        def fn(u: np.ndarray) -> np.ndarray:
            a, b = self._components(u)
            return special.ndtr((x[:, None] - a[which]) / np.sqrt(b[which]))

        return self._integrate(fn)

    def _pdf(self, x: np.ndarray, which: np.ndarray) -> np.ndarray:
        def fn(u: np.ndarray) -> np.ndarray:
            a, b = self._components(u)
            sd = np.sqrt(b[which])
            return np.exp(-0.5 * ((x[:, None] - a[which]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))

        return self._integrate(fn)

    def quantiles(self, probs: Sequence[float]) -> pd.DataFrame:
        """Posterior quantiles of every quantity (rows) at ``probs`` (columns)."""
        probs = np.asarray(probs, float)
        nq = len(self.quantities)
        which = np.repeat(np.arange(nq), probs.size)
        p = np.tile(probs, nq)
        # bracket: a mixture's p-quantile lies between its components' p-quantiles
        u = np.linspace(self._lo, self._hi, 401)
        a, b = self._components(u)
        comp_q = a[which] + np.sqrt(b[which]) * special.ndtri(p)[:, None]
        lo, hi = comp_q.min(axis=1) - 1e-12, comp_q.max(axis=1) + 1e-12
        mom = self.moments
        sd = mom["sd"].to_numpy()[which]
        sd = np.where(np.isfinite(sd), sd, (hi - lo) / 4)
        x = np.clip(mom["mean"].to_numpy()[which] + sd * special.ndtri(p), lo, hi)
        for _ in range(60):
            f = self.cdf(x, which) - p
            lo = np.where(f < 0, x, lo)
            hi = np.where(f > 0, x, hi)
            d = self._pdf(x, which)
            step = np.where(d > 0, f / np.maximum(d, 1e-300), 0.0)
            new = x - step
            outside = (new <= lo) | (new >= hi) | ~np.isfinite(new)
            new = np.where(outside, 0.5 * (lo + hi), new)
            done = np.abs(new - x) < 1e-11 * (1 + np.abs(x))
            x = new
            if np.all(done) and np.max(np.abs(f)) < 1e-10:
                break
        return pd.DataFrame(x.reshape(nq, probs.size), index=self.quantities,
                            columns=[_qname(q) for q in probs])

    # ------------------------------------------------------------------------------- τ
    def tau_cdf(self, t: float | np.ndarray) -> np.ndarray:
        """P(τ ≤ t | y): whole intervals of the rule below log t plus a Gauss–Legendre rule
        on the partial interval."""
        t = np.atleast_1d(np.asarray(t, float))
        out = np.empty(t.shape)
        nodes, weights = np.polynomial.legendre.leggauss(20)
        starts, ends = self._intervals[:, 0], self._intervals[:, 1]
        per_interval = self._w.reshape(len(starts), -1).sum(axis=1)
        for i, ti in enumerate(t):
            u = np.log(ti) if ti > 0 else -np.inf
            if u <= self._lo:
                out[i] = 0.0
                continue
            if u >= self._hi:
                out[i] = 1.0
                continue
            full = per_interval[ends <= u].sum()
            j = np.flatnonzero((starts < u) & (ends > u))
            part = 0.0
            if j.size:
                a = starts[j[0]]
                half, mid = (u - a) / 2, (u + a) / 2
                uu = mid + half * nodes
                part = float((half * weights * self._weights(uu)).sum())
            out[i] = full + part
        return out

    def tau_quantile(self, p: float) -> float:
        """The p-quantile of τ | y (root of the CDF in log τ)."""
        def f(u: float) -> float:
            return float(self.tau_cdf(np.exp(u))[0]) - p

        return float(np.exp(optimize.brentq(f, self._lo, self._hi, xtol=1e-13, rtol=1e-13)))

    @cached_property
    def tau_moments(self) -> tuple[float, float]:
        """Posterior mean and sd of τ (inf when the power-law tail makes them infinite)."""
        e = self._integrate(lambda u: np.vstack([np.exp(u), np.exp(2 * u)]))
        mean = float(e[0]) if self.tail_slope < -1 - 1e-6 else np.inf
        sd = float(np.sqrt(max(e[1] - e[0] ** 2, 0.0))) if self.tail_slope < -2 - 1e-6 \
            else np.inf
        return mean, sd

    def tau_density(self, tau: np.ndarray) -> np.ndarray:
        """Posterior density of τ at ``tau`` (> 0)."""
        tau = np.asarray(tau, float)
        out = np.zeros_like(tau)
        pos = tau > 0
        u = np.log(tau[pos])
        out[pos] = self._weights(u) / tau[pos]
        return out

    def tau_prior_density(self, tau: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.exp(self._log_prior(np.asarray(tau, float)))

    def density(self, x: np.ndarray, quantity: str) -> np.ndarray:
        """Posterior density of ``quantity`` ('mu', 'theta_new', 'theta[name]') at ``x``."""
        x = np.asarray(x, float)
        idx = np.full(x.size, self.quantities.index(quantity))
        return self._pdf(x, idx)

    # -------------------------------------------------------------------------- summary
    def summary(self, interval_prob: float = 0.95) -> pd.DataFrame:
        """One row per estimand, as :func:`bayes_ablation.endpoints.meta.estimands.summarise` gives for
        draws: label, estimand, study, mean, sd, median, lower and upper quantile. HR-scale rows
        (``hr_*``) carry median and interval only: the posterior mean of exp(θ_new) is
        infinite under heavy-tailed τ priors."""
        lo_q, hi_q = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
        q = self.quantiles([lo_q, 0.5, hi_q])
        mom = self.moments
        rows = []
        for name in self.quantities:
            base, study = _split(name)
            ql, qm, qh = q.loc[name].to_numpy()
            rows.append({"estimand": base, "study": study, "mean": mom.loc[name, "mean"],
                         "sd": mom.loc[name, "sd"], "median": qm, _qname(lo_q): ql,
                         _qname(hi_q): qh})
            rows.append({"estimand": f"hr_{base}", "study": study,
                         "mean": np.nan, "sd": np.nan, "median": np.exp(qm),
                         _qname(lo_q): np.exp(ql),
                         _qname(hi_q): np.exp(qh)})
        t_mean, t_sd = self.tau_moments
        rows.append({"estimand": "tau", "study": None, "mean": t_mean, "sd": t_sd,
                     "median": self.tau_quantile(0.5), _qname(lo_q): self.tau_quantile(lo_q),
                     _qname(hi_q): self.tau_quantile(hi_q)})
        frame = pd.DataFrame(rows)
        frame.insert(0, "label", [f"{r.estimand}[{r.study}]" if r.study else r.estimand
                                  for r in frame.itertuples()])
        return frame

    def probabilities(self, hr_thresholds: Sequence[float] = (1.0,)) -> dict[str, float]:
        """P(HR < c) for the pooled effect and a new study, c in ``hr_thresholds``."""
        out = {}
        idx_mu, idx_new = 0, len(self.quantities) - 1
        for c in hr_thresholds:
            cdf = self.cdf(np.full(2, np.log(c)), [idx_mu, idx_new])
            out[f"P(HR<{c:g}) [pooled mu]"] = float(cdf[0])
            out[f"P(HR<{c:g}) [new study]"] = float(cdf[1])
        return out


def _qname(p: float) -> str:
    return f"q{100 * p:g}"


def _split(name: str) -> tuple[str, str | None]:
    if "[" in name:
        base, rest = name.split("[", 1)
        return base, rest[:-1]
    return name, None


def exact_posterior(y: np.ndarray, se: np.ndarray, mu_prior: PriorSpec, tau_prior: PriorSpec,
                    studies: Sequence[str] = ()) -> ExactPosterior:
    """Convenience constructor (see :class:`ExactPosterior`)."""
    return ExactPosterior(y=np.asarray(y), se=np.asarray(se), mu_prior=mu_prior,
                          tau_prior=tau_prior, studies=tuple(studies))


def densities(exact: ExactPosterior, n: int = 301) -> xr.Dataset:
    """Posterior densities on grids, for plots and the result bundle: τ (posterior and prior,
    dim ``tau``) and μ, θ_new (dim ``log_hr``)."""
    q = exact.quantiles([0.0005, 0.9995])
    x = np.linspace(float(q.loc[["mu", "theta_new"]].min().min()),
                    float(q.loc[["mu", "theta_new"]].max().max()), n)
    t_hi = exact.tau_quantile(0.995)
    tau = np.linspace(0.0, t_hi * 1.2, n)[1:]
    return xr.Dataset(
        {"tau_posterior": ("tau", exact.tau_density(tau)),
         "tau_prior": ("tau", exact.tau_prior_density(tau)),
         "mu_posterior": ("log_hr", exact.density(x, "mu")),
         "theta_new_posterior": ("log_hr", exact.density(x, "theta_new"))},
        coords={"tau": tau, "log_hr": x},
        attrs={"method": "quadrature", "tau_prior": exact.tau_prior.describe(),
               "mu_prior": exact.mu_prior.describe(), "relative_error": exact.quad_error})
