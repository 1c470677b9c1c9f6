"""Numba log-density + gradient kernels for nutpie, compiled once and cached on disk.

nutpie's own PyMC path wraps PyTensor's generated code in a ``numba.cfunc`` that cannot be
cached, so every process pays 8–20 s of LLVM compilation. The kernels here are ordinary
module-level functions compiled with ``cache=True``: the first process compiles them (and
writes numba's cache next to this file or in numba's user cache), later processes load the
machine code in a fraction of a second. Keep all numba code of a kernel in this file: numba
invalidates its cache when this file changes, not when an imported module does.

The kernels are *not* a second model definition. :mod:`bayes_ablation.inference.kernels` derives a
numeric plan from the PyMC model, checks in every process that kernel and PyMC model agree
(log density, gradient and trace values at random points) and falls back to nutpie's own
compilation when they do not; ``tests/test_fastpath.py`` checks every prior family and
hierarchy/covariate option to 1e-8.

Weibull PH (see :mod:`bayes_ablation.endpoints.pfs.model`)::

    log λ_i = α − k log t_ref + β_arm(i) + u_site(i) + v_site(i),arm(i) + x_i γ
    u_s = σ^(1−w_s) z_s,  z_s ~ N(0, σ^(2 w_s))      (partial centring; v likewise with σ₂)
    log p   = Σ_i d_i (log k + (k−1) log t_i + log λ_i) − exp(k log t_i + log λ_i)
              + Σ_blocks [log prior(θ) + log |dθ/dy|]          (y: unconstrained position)

The z blocks enter the block loop with a N(0, 1) prior; the centring correction
−½ z² (σ^(−2w) − 1) − w log σ is added once σ is known (w = 0: non-centred, no correction).

Without covariates, log λ is constant within a (site, arm) cell: patients are sorted by cell
and each cell contributes D (log k + log λ) + (k−1) Σ d log t − e^{log λ} Σ t^k (one exp per
patient, no scatter; 2.5× faster at 20,000 patients). With covariates, the per-patient loop.

All inputs travel in one float64 buffer (``user_data``) whose layout is given by the ``H_*``
header slots below and written by :func:`bayes_ablation.endpoints.pfs.fastpath.weibull_buffer`.

Further kernels in this file (they share the prior, transform and partial-centring helpers,
and numba's cache of a function is invalidated only by changes to its own file):
:func:`pwe_evaluate`, the piecewise-exponential model on aggregated cells (buffer ``Q_*``,
plan :func:`bayes_ablation.endpoints.pfs.fastpath.pwe_plan`), and :func:`meta_evaluate`, the
meta-analysis models ``normal_normal`` and ``weibull_ipd_ad`` (buffer ``M_*``, plan
:func:`bayes_ablation.endpoints.meta.fastpath.meta_plan`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

# ---- buffer header (float64 slots) -------------------------------------------------------
H_LEN, H_N, H_NBLOCKS, H_NDIM, H_NSITES, H_NTREAT, H_NCOV, H_LOGTREF = range(8)
H_OFF_BLOCKS, H_OFF_LOGT, H_OFF_EVENT, H_OFF_ARM, H_OFF_SITE, H_OFF_X = range(8, 14)
H_NEXPANDED, H_OFF_EXPAND, H_NEXPAND, H_NGROUPS, H_OFF_GROUPS = range(14, 19)
H_OFF_WSITE, H_OFF_WSLOPE = range(19, 21)  # centring weights w (site,), (site × treatment)
HEADER = 21
GROUP_WIDTH = 6  # site, arm, first patient, end patient, events, Σ d log t
BLOCK_WIDTH = 8  # role, family, transform, offset, size, p1, p2, p3
EXPAND_WIDTH = 4  # code, block, out offset, size

# roles of parameter blocks
ROLE_ALPHA, ROLE_SHAPE, ROLE_LOGHR, ROLE_SIGMA, ROLE_Z, ROLE_SIGMA2, ROLE_Z2, ROLE_BETA = range(8)
N_ROLES = 8
# prior families (spec.PRIOR_FAMILIES)
FAMILIES = ("normal", "studentt", "halfnormal", "halfcauchy", "halfstudentt", "lognormal",
            "exponential", "gamma", "uniform", "lognormal_variance")
F_NORMAL, F_STUDENTT, F_HALFNORMAL, F_HALFCAUCHY, F_HALFSTUDENTT, F_LOGNORMAL, F_EXPONENTIAL, \
    F_GAMMA, F_UNIFORM, F_LNVAR = range(10)
# transforms (PyMC defaults for those families)
T_NONE, T_LOG, T_INTERVAL = range(3)
# expand items
E_CONSTRAINED, E_LOG_LAMBDA0, E_HR, E_U_SITE, E_V_SITE, E_SQRT = range(6)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)


@numba.njit(cache=True, inline="always")
def _softplus(x: float) -> float:
    if x > 30.0:
        return x
    if x < -30.0:
        return math.exp(x)
    return math.log1p(math.exp(x))


@numba.njit(cache=True)
def _prior(family: int, x: float, p1: float, p2: float, p3: float) -> tuple[float, float]:
    """log density of the prior at constrained value x and its derivative in x."""
    if family == F_NORMAL:
        z = (x - p1) / p2
        return -0.5 * z * z - _HALF_LOG_2PI - math.log(p2), -z / p2
    if family == F_STUDENTT:  # nu, mu, sigma
        nu, z = p1, (x - p2) / p3
        lp = (math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)
              - math.log(p3) - 0.5 * (nu + 1.0) * math.log1p(z * z / nu))
        return lp, -(nu + 1.0) * z / (p3 * (nu + z * z))
    if family == F_HALFNORMAL:
        z = x / p1
        return -0.5 * z * z + _LOG_2 - _HALF_LOG_2PI - math.log(p1), -z / p1
    if family == F_HALFCAUCHY:
        z = x / p1
        return _LOG_2 - _LOG_PI - math.log(p1) - math.log1p(z * z), -2.0 * x / (p1 * p1 + x * x)
    if family == F_HALFSTUDENTT:  # nu, sigma
        nu, s2 = p1, p2 * p2
        lp = (_LOG_2 + math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu)
              - 0.5 * math.log(nu * math.pi) - math.log(p2)
              - 0.5 * (nu + 1.0) * math.log1p(x * x / (nu * s2)))
        return lp, -(nu + 1.0) * x / (nu * s2 + x * x)
    if family == F_LOGNORMAL or family == F_LNVAR:
        lx = math.log(x)
        z = (lx - p1) / p2
        return -0.5 * z * z - _HALF_LOG_2PI - math.log(p2) - lx, -(1.0 + z / p2) / x
    if family == F_EXPONENTIAL:
        return math.log(p1) - p1 * x, -p1
    if family == F_GAMMA:  # alpha, beta (rate)
        return (p1 * math.log(p2) - math.lgamma(p1) + (p1 - 1.0) * math.log(x) - p2 * x,
                (p1 - 1.0) / x - p2)
    if family == F_UNIFORM:
        return -math.log(p2 - p1), 0.0
    return math.nan, math.nan


@numba.njit(cache=True)
def _transform(transform: int, y: float, p1: float, p2: float
               ) -> tuple[float, float, float, float]:
    """Constrained value x(y), dx/dy, log |dx/dy| and its derivative in y."""
    if transform == T_LOG:
        x = math.exp(y)
        return x, x, y, 1.0
    if transform == T_INTERVAL:  # PyMC IntervalTransform: log(b−a) − 2 softplus(−y) − y
        s = 1.0 / (1.0 + math.exp(-y))
        width = p2 - p1
        return (p1 + width * s, width * s * (1.0 - s),
                math.log(width) - 2.0 * _softplus(-y) - y, 1.0 - 2.0 * s)
    return y, 1.0, 0.0, 0.0


@numba.njit(cache=True)
def _effective(family: int, x: float) -> tuple[float, float]:
    """The value the model uses (sqrt for a prior on the variance) and its derivative in x."""
    if family == F_LNVAR:
        r = math.sqrt(x)
        return r, 0.5 / r
    return x, 1.0


@numba.njit(cache=True)
def _centred_effects(value: np.ndarray, dprior: np.ndarray, start: int, buf: np.ndarray,
                     w_offset: int, size: int, sigma: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Effects u_j = σ^(1−w_j) z_j of a z block at ``start`` (none when start < 0): (u, du/dz,
    du/dσ, d/dσ of the centring correction, the correction −½ z² (σ^(−2w) − 1) − w log σ of
    the N(0, 1) prior the block loop used); adds the correction's z-gradient to ``dprior``."""
    u = np.zeros(size)
    du = np.zeros(size)
    dus = np.zeros(size)
    g_sigma = 0.0
    lp = 0.0
    if start < 0:
        return u, du, dus, g_sigma, lp
    for j in range(size):
        w = buf[w_offset + j]
        z = value[start + j]
        scale = sigma ** (1.0 - w)
        u[j] = scale * z
        du[j] = scale
        dus[j] = (1.0 - w) * scale * z / sigma if w != 1.0 else 0.0
        if w != 0.0:
            inv = sigma ** (-2.0 * w)
            lp += -0.5 * z * z * (inv - 1.0) - w * math.log(sigma)
            dprior[start + j] += -z * (inv - 1.0)
            g_sigma += w * (z * z * inv - 1.0) / sigma
    return u, du, dus, g_sigma, lp


@numba.njit(cache=True)
def weibull_logp_grad(pos: np.ndarray, buf: np.ndarray, grad: np.ndarray) -> float:
    """log density at unconstrained ``pos``; writes the gradient into ``grad``."""
    n = int(buf[H_N])
    nblocks = int(buf[H_NBLOCKS])
    ndim = int(buf[H_NDIM])
    nsites = int(buf[H_NSITES])
    ntreat = int(buf[H_NTREAT])
    ncov = int(buf[H_NCOV])
    log_tref = buf[H_LOGTREF]
    ob = int(buf[H_OFF_BLOCKS])
    o_logt = int(buf[H_OFF_LOGT])
    o_event = int(buf[H_OFF_EVENT])
    o_arm = int(buf[H_OFF_ARM])
    o_site = int(buf[H_OFF_SITE])
    o_x = int(buf[H_OFF_X])

    value = np.empty(ndim)    # model-scale value of every position entry
    dval = np.empty(ndim)     # d value / d y
    dprior = np.empty(ndim)   # d (log prior + log jac) / d y, excluding the likelihood
    block_of_role = np.full(N_ROLES, -1, dtype=np.int64)
    lp = 0.0
    for b in range(nblocks):
        base = ob + b * BLOCK_WIDTH
        role = int(buf[base])
        family = int(buf[base + 1])
        transform = int(buf[base + 2])
        off = int(buf[base + 3])
        size = int(buf[base + 4])
        p1, p2, p3 = buf[base + 5], buf[base + 6], buf[base + 7]
        block_of_role[role] = b
        for j in range(off, off + size):
            x, dxdy, logjac, dlogjac = _transform(transform, pos[j], p1, p2)
            lpx, dlpx = _prior(family, x, p1, p2, p3)
            lp += lpx + logjac
            dprior[j] = dlpx * dxdy + dlogjac
            eff, deff = _effective(family, x)
            value[j] = eff
            dval[j] = deff * dxdy

    def start(role: int) -> int:
        b = block_of_role[role]
        return -1 if b < 0 else int(buf[ob + b * BLOCK_WIDTH + 3])

    s_alpha, s_shape, s_loghr = start(ROLE_ALPHA), start(ROLE_SHAPE), start(ROLE_LOGHR)
    s_sigma, s_z, s_sigma2, s_z2, s_beta = (start(ROLE_SIGMA), start(ROLE_Z), start(ROLE_SIGMA2),
                                            start(ROLE_Z2), start(ROLE_BETA))
    alpha = value[s_alpha]
    k = value[s_shape]
    sigma = value[s_sigma] if s_sigma >= 0 else 0.0
    sigma2 = value[s_sigma2] if s_sigma2 >= 0 else 0.0
    base_lam = alpha - k * log_tref
    log_k = math.log(k)

    # per-observation site offset u_s = σ^(1−w) z_s and slope offset σ₂^(1−w) z_s,a
    o_ws = int(buf[H_OFF_WSITE])
    o_wv = int(buf[H_OFF_WSLOPE])
    u, du, dus, g_sigma_prior, lp_u = _centred_effects(value, dprior, s_z, buf, o_ws, nsites,
                                                        sigma)
    nslope = nsites * ntreat
    vv, dv, dvs, g_sigma2_prior, lp_v = _centred_effects(value, dprior, s_z2, buf, o_wv, nslope,
                                                          sigma2)
    lp += lp_u + lp_v
    g_alpha = 0.0
    g_k = 0.0
    g_loghr = np.zeros(ntreat)
    g_u = np.zeros(nsites)
    g_v = np.zeros(nsites * ntreat)
    g_beta = np.zeros(ncov)
    ngroups = int(buf[H_NGROUPS])
    if ngroups > 0:
        # Patients sorted by (site, arm) cell, no covariates: one log λ per cell, and
        # Σ_i exp(k log t_i + log λ) = exp(log λ) Σ_i t_i^k: one exp per patient, no scatter.
        og = int(buf[H_OFF_GROUPS])
        for g in range(ngroups):
            base = og + g * GROUP_WIDTH
            site = int(buf[base])
            arm = int(buf[base + 1])
            first, end = int(buf[base + 2]), int(buf[base + 3])
            events, sum_dlogt = buf[base + 4], buf[base + 5]
            lam = base_lam + u[site]
            if arm > 0:
                lam += value[s_loghr + arm - 1]
                if s_z2 >= 0:
                    lam += vv[site * ntreat + arm - 1]
            s0 = 0.0
            s1 = 0.0
            for i in range(first, end):
                logt = buf[o_logt + i]
                tk = math.exp(k * logt)
                s0 += tk
                s1 += tk * logt
            scale = math.exp(lam)
            e = scale * s0
            lp += events * (log_k + lam) + (k - 1.0) * sum_dlogt - e
            r = events - e
            g_alpha += r
            g_k += events / k + sum_dlogt - events * log_tref - (scale * s1 - e * log_tref)
            g_u[site] += r
            if arm > 0:
                g_loghr[arm - 1] += r
                g_v[site * ntreat + arm - 1] += r
    for i in range(n if ngroups == 0 else 0):
        arm = int(buf[o_arm + i])
        site = int(buf[o_site + i])
        logt = buf[o_logt + i]
        d = buf[o_event + i]
        lam = base_lam + u[site]
        if arm > 0:
            lam += value[s_loghr + arm - 1]
            if s_z2 >= 0:
                lam += vv[site * ntreat + arm - 1]
        if ncov > 0:
            xrow = o_x + i * ncov
            for c in range(ncov):
                lam += buf[xrow + c] * value[s_beta + c]
        e = math.exp(k * logt + lam)
        lp += d * (log_k + (k - 1.0) * logt + lam) - e
        r = d - e
        g_alpha += r
        g_k += d * (1.0 / k + logt - log_tref) - e * (logt - log_tref)
        g_u[site] += r
        if arm > 0:
            g_loghr[arm - 1] += r
            g_v[site * ntreat + arm - 1] += r
        if ncov > 0:
            xrow = o_x + i * ncov
            for c in range(ncov):
                g_beta[c] += r * buf[xrow + c]

    # d loglik / d (model-scale value), then chain rule to the position
    glik = np.zeros(ndim)
    glik[s_alpha] = g_alpha
    glik[s_shape] = g_k
    for a in range(ntreat):
        glik[s_loghr + a] = g_loghr[a]
    if s_z >= 0:
        g_sigma = g_sigma_prior
        for s in range(nsites):
            glik[s_z + s] = du[s] * g_u[s]
            g_sigma += dus[s] * g_u[s]
        glik[s_sigma] = g_sigma
    if s_z2 >= 0:
        g_sigma2 = g_sigma2_prior
        for j in range(nslope):
            glik[s_z2 + j] = dv[j] * g_v[j]
            g_sigma2 += dvs[j] * g_v[j]
        glik[s_sigma2] = g_sigma2
    if s_beta >= 0:
        for c in range(ncov):
            glik[s_beta + c] = g_beta[c]
    for j in range(ndim):
        grad[j] = glik[j] * dval[j] + dprior[j]
    return lp


@numba.njit(cache=True)
def weibull_expand(pos: np.ndarray, buf: np.ndarray, out: np.ndarray) -> None:
    """Trace values: the position, then constrained values and deterministics."""
    ndim = int(buf[H_NDIM])
    ob = int(buf[H_OFF_BLOCKS])
    oe = int(buf[H_OFF_EXPAND])
    nitems = int(buf[H_NEXPAND])
    log_tref = buf[H_LOGTREF]
    nblocks = int(buf[H_NBLOCKS])
    value = np.empty(ndim)
    constrained = np.empty(ndim)
    block_of_role = np.full(N_ROLES, -1, dtype=np.int64)
    for b in range(nblocks):
        base = ob + b * BLOCK_WIDTH
        family = int(buf[base + 1])
        transform = int(buf[base + 2])
        off = int(buf[base + 3])
        size = int(buf[base + 4])
        block_of_role[int(buf[base])] = b
        for j in range(off, off + size):
            x, _, _, _ = _transform(transform, pos[j], buf[base + 5], buf[base + 6])
            constrained[j] = x
            value[j] = _effective(family, x)[0]
    for j in range(ndim):
        out[j] = pos[j]
    for it in range(nitems):
        base = oe + it * EXPAND_WIDTH
        code = int(buf[base])
        b = int(buf[base + 1])
        o = int(buf[base + 2])
        size = int(buf[base + 3])
        src = int(buf[ob + b * BLOCK_WIDTH + 3]) if b >= 0 else 0
        if code == E_CONSTRAINED:
            for j in range(size):
                out[o + j] = constrained[src + j]
        elif code == E_SQRT:
            for j in range(size):
                out[o + j] = math.sqrt(constrained[src + j])
        elif code == E_HR:
            for j in range(size):
                out[o + j] = math.exp(value[src + j])
        elif code == E_LOG_LAMBDA0:
            sa = int(buf[ob + block_of_role[ROLE_ALPHA] * BLOCK_WIDTH + 3])
            sk = int(buf[ob + block_of_role[ROLE_SHAPE] * BLOCK_WIDTH + 3])
            out[o] = value[sa] - value[sk] * log_tref
        elif code == E_U_SITE or code == E_V_SITE:
            role = ROLE_SIGMA if code == E_U_SITE else ROLE_SIGMA2
            ow = int(buf[H_OFF_WSITE if code == E_U_SITE else H_OFF_WSLOPE])
            ss = int(buf[ob + block_of_role[role] * BLOCK_WIDTH + 3])
            for j in range(size):
                out[o + j] = value[ss] ** (1.0 - buf[ow + j]) * value[src + j]


LOGP_SIGNATURE = types.int64(types.uint64, types.CPointer(types.double),
                             types.CPointer(types.double), types.CPointer(types.double),
                             types.voidptr)
EXPAND_SIGNATURE = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                               types.CPointer(types.double), types.voidptr)


def _weibull_logp_c(dim, x_, out_, logp_, user_data_):  # pragma: no cover - runs compiled
    header = numba.carray(user_data_, (HEADER,), np.float64)
    if dim != int(header[H_NDIM]):
        return -1
    buf = numba.carray(user_data_, (int(header[H_LEN]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value = weibull_logp_grad(x, buf, out)
    logp[0] = value
    for j in range(dim):
        if not math.isfinite(out[j]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _weibull_expand_c(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled
    header = numba.carray(user_data_, (HEADER,), np.float64)
    if dim != int(header[H_NDIM]) or expanded != int(header[H_NEXPANDED]):
        return -1
    buf = numba.carray(user_data_, (int(header[H_LEN]),), np.float64)
    weibull_expand(numba.carray(x_, (dim,)), buf, numba.carray(out_, (expanded,)))
    return 0


_CFUNCS: dict[str, object] = {}


def weibull_cfuncs() -> tuple[object, object]:
    """The (logp, expand) C callbacks, compiled on first use or loaded from numba's cache."""
    if "weibull" not in _CFUNCS:
        logp = numba.cfunc(LOGP_SIGNATURE, cache=True)(_weibull_logp_c)
        expand = numba.cfunc(EXPAND_SIGNATURE, cache=True)(_weibull_expand_c)
        _CFUNCS["weibull"] = (logp, expand)
    return _CFUNCS["weibull"]


# =========================================================================================
# Piecewise exponential on aggregated cells (see :func:`bayes_ablation.endpoints.pfs.model.
# build_pwe_model`)::
#
#     log r_c = log λ_j(c) + β_a(c) + δ_a(c),j(c) + u_s(c) + v_s(c),a(c) + x_c γ
#     log λ_j = μ + walk_j,   walk = centred random walk of steps σ_λ^(1−w) z (J−1 → J)
#     δ_a     = centred random walk of steps σ_δ^(1−w) z_a        (time-varying HR only)
#     log p   = Σ_c D_c log r_c − exp(log r_c + log E_c) + priors + log |Jacobian|
#
# Anchored levels: the sampler's variable is a = μ + Σ_j π_j walk_j (resp. β_a + Σ_j π_a,j
# δ_a,j) with prior f(a − shift) — the spec's prior of μ (β) at μ = a − shift; the block loop
# skips its prior, which is added once the shift is known.
# Buffer: header slots Q_*, written by :func:`bayes_ablation.endpoints.pfs.fastpath.pwe_buffer`.
# =========================================================================================

Q_LEN, Q_NCELLS, Q_NBLOCKS, Q_NDIM, Q_NSITES, Q_NTREAT, Q_NCOV, Q_NINT = range(8)
Q_OFF_BLOCKS, Q_OFF_CSITE, Q_OFF_CARM, Q_OFF_CINT, Q_OFF_CEVENTS, Q_OFF_CLOGE = range(8, 14)
Q_OFF_CX, Q_OFF_EXPAND, Q_NEXPAND, Q_NEXPANDED = range(14, 18)
Q_OFF_WHAZ, Q_OFF_WSITE, Q_OFF_WSLOPE, Q_OFF_WHR, Q_OFF_AHAZ, Q_OFF_AHR = range(18, 24)
Q_HEADER = 24

# roles of the PWE parameter blocks (…_ANCHOR: the anchored level / log HR, prior added later)
(PR_SIG_HAZ, PR_Z_HAZ, PR_LEVEL, PR_LEVEL_ANCHOR, PR_SIG_HR, PR_Z_HR, PR_LOGHR,
 PR_LOGHR_ANCHOR, PR_SIGMA, PR_Z, PR_SIGMA2, PR_Z2, PR_BETA) = range(13)
PWE_N_ROLES = 13
# PWE expand items
(X_CONSTRAINED, X_SQRT, X_LEVEL, X_LOG_HAZARD, X_LOG_HR, X_HR, X_U_SITE, X_V_SITE,
 X_LOG_HR_INTERVAL, X_HR_INTERVAL) = range(10)


@numba.njit(cache=True)
def _block_values(pos: np.ndarray, buf: np.ndarray, ob: int, nblocks: int, ndim: int,
                  nroles: int, skip_a: int, skip_b: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """The block loop: (model-scale value, constrained value, d value/dy, d (log prior + log
    jac)/dy, their sum, block of each role); blocks of roles ``skip_a``/``skip_b`` get no
    prior (anchored levels, added by the caller)."""
    value = np.empty(ndim)
    constrained = np.empty(ndim)
    dval = np.empty(ndim)
    dprior = np.empty(ndim)
    block_of_role = np.full(nroles, -1, dtype=np.int64)
    lp = 0.0
    for b in range(nblocks):
        base = ob + b * BLOCK_WIDTH
        role = int(buf[base])
        family = int(buf[base + 1])
        transform = int(buf[base + 2])
        off = int(buf[base + 3])
        size = int(buf[base + 4])
        p1, p2, p3 = buf[base + 5], buf[base + 6], buf[base + 7]
        block_of_role[role] = b
        skip = role == skip_a or role == skip_b
        for j in range(off, off + size):
            x, dxdy, logjac, dlogjac = _transform(transform, pos[j], p1, p2)
            lpx, dlpx = (0.0, 0.0) if skip else _prior(family, x, p1, p2, p3)
            lp += lpx + logjac
            dprior[j] = dlpx * dxdy + dlogjac
            eff, deff = _effective(family, x)
            constrained[j] = x
            value[j] = eff
            dval[j] = deff * dxdy
    return value, constrained, dval, dprior, lp, block_of_role


@numba.njit(cache=True)
def _centred_walk(steps: np.ndarray) -> np.ndarray:
    """w − mean(w), w_0 = 0, w_j = Σ_{k<j} steps_k (J−1 → J)."""
    n = steps.size + 1
    walk = np.zeros(n)
    for j in range(1, n):
        walk[j] = walk[j - 1] + steps[j - 1]
    return walk - walk.mean()


@numba.njit(cache=True)
def _centred_walk_grad(g_walk: np.ndarray) -> np.ndarray:
    """Gradient in the steps of a function of the centred walk with gradient ``g_walk``."""
    n = g_walk.size
    centred = g_walk - g_walk.mean()
    g_steps = np.zeros(n - 1)
    acc = 0.0
    for k in range(n - 2, -1, -1):
        acc += centred[k + 1]
        g_steps[k] = acc
    return g_steps


@numba.njit(cache=True)
def _block_start(buf: np.ndarray, ob: int, block_of_role: np.ndarray, role: int) -> int:
    b = block_of_role[role]
    return -1 if b < 0 else int(buf[ob + b * BLOCK_WIDTH + 3])


@numba.njit(cache=True)
def pwe_evaluate(pos: np.ndarray, buf: np.ndarray, grad: np.ndarray, out: np.ndarray,
                 expand: bool) -> float:
    """log density at unconstrained ``pos`` with its gradient in ``grad``; with ``expand``
    the traced values go to ``out`` instead (no likelihood, no gradient)."""
    ndim = int(buf[Q_NDIM])
    nsites = int(buf[Q_NSITES])
    ntreat = int(buf[Q_NTREAT])
    ncov = int(buf[Q_NCOV])
    nint = int(buf[Q_NINT])
    ob = int(buf[Q_OFF_BLOCKS])
    value, constrained, dval, dprior, lp, bor = _block_values(
        pos, buf, ob, int(buf[Q_NBLOCKS]), ndim, PWE_N_ROLES, PR_LEVEL_ANCHOR, PR_LOGHR_ANCHOR)
    s_sig_h = _block_start(buf, ob, bor, PR_SIG_HAZ)
    s_z_h = _block_start(buf, ob, bor, PR_Z_HAZ)
    s_level = _block_start(buf, ob, bor, PR_LEVEL)
    s_level_a = _block_start(buf, ob, bor, PR_LEVEL_ANCHOR)
    s_sig_d = _block_start(buf, ob, bor, PR_SIG_HR)
    s_z_d = _block_start(buf, ob, bor, PR_Z_HR)
    s_loghr = _block_start(buf, ob, bor, PR_LOGHR)
    s_loghr_a = _block_start(buf, ob, bor, PR_LOGHR_ANCHOR)
    s_sigma = _block_start(buf, ob, bor, PR_SIGMA)
    s_z = _block_start(buf, ob, bor, PR_Z)
    s_sigma2 = _block_start(buf, ob, bor, PR_SIGMA2)
    s_z2 = _block_start(buf, ob, bor, PR_Z2)
    s_beta = _block_start(buf, ob, bor, PR_BETA)
    nsteps = nint - 1

    # baseline: steps σ_λ^(1−w) z, centred walk, level (anchored: μ = a − Σ π walk)
    sig_h = value[s_sig_h]
    steps, dsteps, dsteps_s, g_sig_h, lp_c = _centred_effects(
        value, dprior, s_z_h, buf, int(buf[Q_OFF_WHAZ]), nsteps, sig_h)
    lp += lp_c
    walk = _centred_walk(steps)
    o_ahaz = int(buf[Q_OFF_AHAZ])
    dlp_level = 0.0
    if s_level_a >= 0:
        shift = 0.0
        for j in range(nint):
            shift += buf[o_ahaz + j] * walk[j]
        level = value[s_level_a] - shift
        bb = ob + bor[PR_LEVEL_ANCHOR] * BLOCK_WIDTH
        lpl, dlp_level = _prior(int(buf[bb + 1]), level, buf[bb + 5], buf[bb + 6], buf[bb + 7])
        lp += lpl
    else:
        level = value[s_level]
    log_hazard = level + walk

    # log HR, per-interval deviations (time-varying HR), anchored log HR
    dev = np.zeros((ntreat, nint))
    o_ahr = int(buf[Q_OFF_AHR])
    dsd = np.zeros(0)
    dsds = np.zeros(0)
    g_sig_d = 0.0
    if s_z_d >= 0:
        steps_d, dsd, dsds, g_sig_d, lp_c = _centred_effects(
            value, dprior, s_z_d, buf, int(buf[Q_OFF_WHR]), ntreat * nsteps, value[s_sig_d])
        lp += lp_c
        for a in range(ntreat):
            dev[a] = _centred_walk(steps_d[a * nsteps:(a + 1) * nsteps])
    loghr = np.zeros(ntreat)
    dlp_loghr = np.zeros(ntreat)
    if s_loghr_a >= 0:
        bb = ob + bor[PR_LOGHR_ANCHOR] * BLOCK_WIDTH
        for a in range(ntreat):
            shift = 0.0
            for j in range(nint):
                shift += buf[o_ahr + a * nint + j] * dev[a, j]
            loghr[a] = value[s_loghr_a + a] - shift
            lpa, dlp_loghr[a] = _prior(int(buf[bb + 1]), loghr[a], buf[bb + 5], buf[bb + 6],
                                       buf[bb + 7])
            lp += lpa
    elif s_loghr >= 0:
        for a in range(ntreat):
            loghr[a] = value[s_loghr + a]

    # site effects
    sigma = value[s_sigma] if s_sigma >= 0 else 0.0
    sigma2 = value[s_sigma2] if s_sigma2 >= 0 else 0.0
    u, du, dus, g_sigma_prior, lp_u = _centred_effects(
        value, dprior, s_z, buf, int(buf[Q_OFF_WSITE]), nsites, sigma)
    nslope = nsites * ntreat
    vv, dv, dvs, g_sigma2_prior, lp_v = _centred_effects(
        value, dprior, s_z2, buf, int(buf[Q_OFF_WSLOPE]), nslope, sigma2)
    lp += lp_u + lp_v

    if expand:
        for j in range(ndim):
            out[j] = pos[j]
        oe = int(buf[Q_OFF_EXPAND])
        for it in range(int(buf[Q_NEXPAND])):
            base = oe + it * EXPAND_WIDTH
            code = int(buf[base])
            b = int(buf[base + 1])
            o = int(buf[base + 2])
            size = int(buf[base + 3])
            src = int(buf[ob + b * BLOCK_WIDTH + 3]) if b >= 0 else 0
            for j in range(size):
                if code == X_CONSTRAINED:
                    out[o + j] = constrained[src + j]
                elif code == X_SQRT:
                    out[o + j] = math.sqrt(constrained[src + j])
                elif code == X_LEVEL:
                    out[o + j] = level
                elif code == X_LOG_HAZARD:
                    out[o + j] = log_hazard[j]
                elif code == X_LOG_HR:
                    out[o + j] = loghr[j]
                elif code == X_HR:
                    out[o + j] = math.exp(loghr[j])
                elif code == X_U_SITE:
                    out[o + j] = u[j]
                elif code == X_V_SITE:
                    out[o + j] = vv[j]
                elif code == X_LOG_HR_INTERVAL:
                    out[o + j] = loghr[j // nint] + dev[j // nint, j % nint]
                elif code == X_HR_INTERVAL:
                    out[o + j] = math.exp(loghr[j // nint] + dev[j // nint, j % nint])
        return lp

    # likelihood over cells
    ncells = int(buf[Q_NCELLS])
    o_site, o_arm, o_int = int(buf[Q_OFF_CSITE]), int(buf[Q_OFF_CARM]), int(buf[Q_OFF_CINT])
    o_ev, o_le, o_x = int(buf[Q_OFF_CEVENTS]), int(buf[Q_OFF_CLOGE]), int(buf[Q_OFF_CX])
    g_lh = np.zeros(nint)
    g_loghr = np.zeros(ntreat)
    g_dev = np.zeros((ntreat, nint))
    g_u = np.zeros(nsites)
    g_v = np.zeros(nslope)
    g_beta = np.zeros(ncov)
    for c in range(ncells):
        site = int(buf[o_site + c])
        arm = int(buf[o_arm + c])
        j = int(buf[o_int + c])
        lr = log_hazard[j] + u[site]
        if arm > 0:
            lr += loghr[arm - 1] + dev[arm - 1, j]
            if s_z2 >= 0:
                lr += vv[site * ntreat + arm - 1]
        if ncov > 0:
            xrow = o_x + c * ncov
            for k in range(ncov):
                lr += buf[xrow + k] * value[s_beta + k]
        d = buf[o_ev + c]
        mu = math.exp(lr + buf[o_le + c])
        lp += d * lr - mu
        r = d - mu
        g_lh[j] += r
        g_u[site] += r
        if arm > 0:
            g_loghr[arm - 1] += r
            g_dev[arm - 1, j] += r
            g_v[site * ntreat + arm - 1] += r
        if ncov > 0:
            xrow = o_x + c * ncov
            for k in range(ncov):
                g_beta[k] += r * buf[xrow + k]

    # d log p / d (model-scale value), then chain rule to the position
    glik = np.zeros(ndim)
    g_level = g_lh.sum()
    g_walk = g_lh.copy()
    if s_level_a >= 0:
        g_level += dlp_level
        glik[s_level_a] = g_level
        for j in range(nint):
            g_walk[j] -= buf[o_ahaz + j] * g_level
    else:
        glik[s_level] = g_level
    g_steps = _centred_walk_grad(g_walk)
    for k in range(nsteps):
        glik[s_z_h + k] = dsteps[k] * g_steps[k]
        g_sig_h += dsteps_s[k] * g_steps[k]
    glik[s_sig_h] = g_sig_h
    if s_loghr_a >= 0:
        for a in range(ntreat):
            g_a = g_loghr[a] + dlp_loghr[a]
            glik[s_loghr_a + a] = g_a
            for j in range(nint):
                g_dev[a, j] -= buf[o_ahr + a * nint + j] * g_a
    elif s_loghr >= 0:
        for a in range(ntreat):
            glik[s_loghr + a] = g_loghr[a]
    if s_z_d >= 0:
        for a in range(ntreat):
            g_sd = _centred_walk_grad(g_dev[a])
            for k in range(nsteps):
                idx = a * nsteps + k
                glik[s_z_d + idx] = dsd[idx] * g_sd[k]
                g_sig_d += dsds[idx] * g_sd[k]
        glik[s_sig_d] = g_sig_d
    if s_z >= 0:
        g_sigma = g_sigma_prior
        for s in range(nsites):
            glik[s_z + s] = du[s] * g_u[s]
            g_sigma += dus[s] * g_u[s]
        glik[s_sigma] = g_sigma
    if s_z2 >= 0:
        g_sigma2 = g_sigma2_prior
        for j in range(nslope):
            glik[s_z2 + j] = dv[j] * g_v[j]
            g_sigma2 += dvs[j] * g_v[j]
        glik[s_sigma2] = g_sigma2
    if s_beta >= 0:
        for k in range(ncov):
            glik[s_beta + k] = g_beta[k]
    for j in range(ndim):
        grad[j] = glik[j] * dval[j] + dprior[j]
    return lp


def _pwe_logp_c(dim, x_, out_, logp_, user_data_):  # pragma: no cover - runs compiled
    header = numba.carray(user_data_, (Q_HEADER,), np.float64)
    if dim != int(header[Q_NDIM]):
        return -1
    buf = numba.carray(user_data_, (int(header[Q_LEN]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value = pwe_evaluate(x, buf, out, np.zeros(0), False)
    logp[0] = value
    for j in range(dim):
        if not math.isfinite(out[j]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _pwe_expand_c(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled
    header = numba.carray(user_data_, (Q_HEADER,), np.float64)
    if dim != int(header[Q_NDIM]) or expanded != int(header[Q_NEXPANDED]):
        return -1
    buf = numba.carray(user_data_, (int(header[Q_LEN]),), np.float64)
    pwe_evaluate(numba.carray(x_, (dim,)), buf, np.zeros(dim),
                 numba.carray(out_, (expanded,)), True)
    return 0


def pwe_cfuncs() -> tuple[object, object]:
    """The piecewise-exponential (logp, expand) C callbacks (numba's disk cache)."""
    if "pwe" not in _CFUNCS:
        logp = numba.cfunc(LOGP_SIGNATURE, cache=True)(_pwe_logp_c)
        expand = numba.cfunc(EXPAND_SIGNATURE, cache=True)(_pwe_expand_c)
        _CFUNCS["pwe"] = (logp, expand)
    return _CFUNCS["pwe"]


# =========================================================================================
# Random-effects meta-analysis (endpoint meta, :mod:`bayes_ablation.endpoints.meta.model`):
# ``normal_normal`` (non-centred) and ``weibull_ipd_ad`` — kept in this file because the IPD
# likelihood is the Weibull PH one above and numba's cache follows the defining file::
#
#     θ_i = μ + τ z_i  (or θ_i ~ N(μ, τ²) directly, ``theta_centred``),  θ_new = μ + τ z_new
#     y_i ~ N(θ_i, s_i²)                                        (aggregate studies)
#     log λ_p = α_j − k_j log t_ref + θ_study(p) arm_p + u_site(p) [+ v_site(p),arm(p)]
#     log p  += Σ_p d_p (log k_j + (k_j − 1) log t_p + log λ_p) − exp(k_j log t_p + log λ_p)
# Buffer: header slots M_*, written by :func:`bayes_ablation.endpoints.meta.fastpath.meta_buffer`.
# =========================================================================================

M_LEN, M_NBLOCKS, M_NSTUDY, M_NDIM, M_NAGG, M_NPAT, M_NTRIAL, M_NSITES, M_NTREAT = range(9)
M_LOGTREF, M_OFF_BLOCKS, M_OFF_KIND, M_OFF_SLOT, M_OFF_AGG, M_OFF_Y, M_OFF_SE = range(9, 16)
M_OFF_PTRIAL, M_OFF_PSTUDY, M_OFF_PARM, M_OFF_PSITE, M_OFF_PLOGT, M_OFF_PEVENT = range(16, 22)
M_OFF_EXPAND, M_NEXPAND, M_NEXPANDED, M_OFF_W0 = range(22, 26)
M_HEADER = 26
# roles of the meta parameter blocks
(MR_MU, MR_TAU, MR_ZNEW, MR_Z, MR_THETA_C, MR_ALPHA, MR_SHAPE, MR_SIGMA, MR_ZSITE,
 MR_SIGMA2, MR_ZSITE2) = range(11)
META_N_ROLES = 11
# meta expand items (X_CONSTRAINED, X_SQRT as above)
MX_THETA_NEW, MX_THETA, MX_U_SITE, MX_V_SITE = range(2, 6)


@numba.njit(cache=True)
def meta_evaluate(pos: np.ndarray, buf: np.ndarray, grad: np.ndarray, out: np.ndarray,
                  expand: bool) -> float:
    """log density at ``pos`` with its gradient in ``grad``; with ``expand`` the traced values
    go to ``out`` instead."""
    ndim = int(buf[M_NDIM])
    nstudy = int(buf[M_NSTUDY])
    nsites = int(buf[M_NSITES])
    ntreat = int(buf[M_NTREAT])
    ob = int(buf[M_OFF_BLOCKS])
    value, constrained, dval, dprior, lp, bor = _block_values(
        pos, buf, ob, int(buf[M_NBLOCKS]), ndim, META_N_ROLES, MR_THETA_C, -1)
    s_mu = _block_start(buf, ob, bor, MR_MU)
    s_tau = _block_start(buf, ob, bor, MR_TAU)
    s_znew = _block_start(buf, ob, bor, MR_ZNEW)
    s_z = _block_start(buf, ob, bor, MR_Z)
    s_thc = _block_start(buf, ob, bor, MR_THETA_C)
    s_alpha = _block_start(buf, ob, bor, MR_ALPHA)
    s_shape = _block_start(buf, ob, bor, MR_SHAPE)
    s_zs = _block_start(buf, ob, bor, MR_ZSITE)
    s_zs2 = _block_start(buf, ob, bor, MR_ZSITE2)
    s_sig = _block_start(buf, ob, bor, MR_SIGMA)
    s_sig2 = _block_start(buf, ob, bor, MR_SIGMA2)
    mu = value[s_mu]
    tau = value[s_tau]
    o_kind, o_slot = int(buf[M_OFF_KIND]), int(buf[M_OFF_SLOT])
    theta = np.empty(nstudy)
    for i in range(nstudy):
        slot = int(buf[o_slot + i])
        if buf[o_kind + i] == 0.0:
            theta[i] = mu + tau * value[s_z + slot]
        else:
            theta[i] = value[s_thc + slot]
    g_mu = 0.0
    g_tau = 0.0
    if s_thc >= 0:  # θ_c ~ N(μ, τ²): the block loop gave it no prior
        for i in range(nstudy):
            if buf[o_kind + i] != 0.0:
                r = (theta[i] - mu) / tau
                lp += -0.5 * r * r - math.log(tau) - _HALF_LOG_2PI
                dprior[s_thc + int(buf[o_slot + i])] += -r / tau
                g_mu += r / tau
                g_tau += (r * r - 1.0) / tau
    sigma = value[s_sig] if s_sig >= 0 else 0.0
    sigma2 = value[s_sig2] if s_sig2 >= 0 else 0.0
    o_w0 = int(buf[M_OFF_W0])
    u, du, dus, _, _ = _centred_effects(value, dprior, s_zs, buf, o_w0, nsites, sigma)
    nslope = nsites * ntreat
    vv, dv, dvs, _, _ = _centred_effects(value, dprior, s_zs2, buf, o_w0, nslope, sigma2)

    if expand:
        for j in range(ndim):
            out[j] = pos[j]
        oe = int(buf[M_OFF_EXPAND])
        for it in range(int(buf[M_NEXPAND])):
            base = oe + it * EXPAND_WIDTH
            code = int(buf[base])
            b = int(buf[base + 1])
            o = int(buf[base + 2])
            size = int(buf[base + 3])
            src = int(buf[ob + b * BLOCK_WIDTH + 3]) if b >= 0 else 0
            for j in range(size):
                if code == X_CONSTRAINED:
                    out[o + j] = constrained[src + j]
                elif code == X_SQRT:
                    out[o + j] = math.sqrt(constrained[src + j])
                elif code == MX_THETA_NEW:
                    out[o + j] = mu + tau * value[s_znew]
                elif code == MX_THETA:
                    out[o + j] = theta[j]
                elif code == MX_U_SITE:
                    out[o + j] = u[j]
                elif code == MX_V_SITE:
                    out[o + j] = vv[j]
        return lp

    g_theta = np.zeros(nstudy)
    o_agg, o_y, o_se = int(buf[M_OFF_AGG]), int(buf[M_OFF_Y]), int(buf[M_OFF_SE])
    for i in range(int(buf[M_NAGG])):
        k = int(buf[o_agg + i])
        se = buf[o_se + i]
        r = (buf[o_y + i] - theta[k]) / se
        lp += -0.5 * r * r - math.log(se) - _HALF_LOG_2PI
        g_theta[k] += r / se

    ntrial = int(buf[M_NTRIAL])
    g_alpha = np.zeros(ntrial)
    g_k = np.zeros(ntrial)
    g_u = np.zeros(nsites)
    g_v = np.zeros(nslope)
    log_tref = buf[M_LOGTREF]
    o_tr, o_st, o_arm = int(buf[M_OFF_PTRIAL]), int(buf[M_OFF_PSTUDY]), int(buf[M_OFF_PARM])
    o_site, o_logt, o_ev = int(buf[M_OFF_PSITE]), int(buf[M_OFF_PLOGT]), int(buf[M_OFF_PEVENT])
    for p in range(int(buf[M_NPAT])):
        j = int(buf[o_tr + p])
        st = int(buf[o_st + p])
        arm = buf[o_arm + p]
        site = int(buf[o_site + p])
        logt = buf[o_logt + p]
        d = buf[o_ev + p]
        k = value[s_shape + j]
        lam = value[s_alpha + j] - k * log_tref + theta[st] * arm + u[site]
        ia = int(arm)
        if s_zs2 >= 0 and ia > 0:
            lam += vv[site * ntreat + ia - 1]
        e = math.exp(k * logt + lam)
        lp += d * (math.log(k) + (k - 1.0) * logt + lam) - e
        r = d - e
        g_alpha[j] += r
        g_k[j] += d * (1.0 / k + logt - log_tref) - e * (logt - log_tref)
        g_theta[st] += r * arm
        g_u[site] += r
        if s_zs2 >= 0 and ia > 0:
            g_v[site * ntreat + ia - 1] += r

    glik = np.zeros(ndim)
    for i in range(nstudy):
        slot = int(buf[o_slot + i])
        if buf[o_kind + i] == 0.0:
            glik[s_z + slot] += tau * g_theta[i]
            g_mu += g_theta[i]
            g_tau += value[s_z + slot] * g_theta[i]
        else:
            glik[s_thc + slot] += g_theta[i]
    glik[s_mu] = g_mu
    glik[s_tau] = g_tau
    for j in range(ntrial):
        glik[s_alpha + j] = g_alpha[j]
        glik[s_shape + j] = g_k[j]
    if s_zs >= 0:
        g_sigma = 0.0
        for s in range(nsites):
            glik[s_zs + s] = du[s] * g_u[s]
            g_sigma += dus[s] * g_u[s]
        glik[s_sig] = g_sigma
    if s_zs2 >= 0:
        g_sigma2 = 0.0
        for j in range(nslope):
            glik[s_zs2 + j] = dv[j] * g_v[j]
            g_sigma2 += dvs[j] * g_v[j]
        glik[s_sig2] = g_sigma2
    for j in range(ndim):
        grad[j] = glik[j] * dval[j] + dprior[j]
    return lp


def _meta_logp_c(dim, x_, out_, logp_, user_data_):  # pragma: no cover - runs compiled
    header = numba.carray(user_data_, (M_HEADER,), np.float64)
    if dim != int(header[M_NDIM]):
        return -1
    buf = numba.carray(user_data_, (int(header[M_LEN]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value = meta_evaluate(x, buf, out, np.zeros(0), False)
    logp[0] = value
    for j in range(dim):
        if not math.isfinite(out[j]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _meta_expand_c(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled
    header = numba.carray(user_data_, (M_HEADER,), np.float64)
    if dim != int(header[M_NDIM]) or expanded != int(header[M_NEXPANDED]):
        return -1
    buf = numba.carray(user_data_, (int(header[M_LEN]),), np.float64)
    meta_evaluate(numba.carray(x_, (dim,)), buf, np.zeros(dim),
                  numba.carray(out_, (expanded,)), True)
    return 0


def meta_cfuncs() -> tuple[object, object]:
    """The meta-analysis (logp, expand) C callbacks (numba's disk cache)."""
    if "meta" not in _CFUNCS:
        logp = numba.cfunc(LOGP_SIGNATURE, cache=True)(_meta_logp_c)
        expand = numba.cfunc(EXPAND_SIGNATURE, cache=True)(_meta_expand_c)
        _CFUNCS["meta"] = (logp, expand)
    return _CFUNCS["meta"]
