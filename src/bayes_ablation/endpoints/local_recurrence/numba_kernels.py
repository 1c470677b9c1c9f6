"""Numba log-density + gradient kernels of the two LR families, compiled once and cached on disk.

Same scheme as the Weibull PFS kernel (:mod:`bayes_ablation.endpoints.pfs.numba_kernels`):
module-level functions with ``cache=True``, one float64 input buffer (``user_data``) laid out
by the ``H_*`` header slots and written by
:func:`bayes_ablation.endpoints.local_recurrence.fastpath.lr_buffer`, and a per-process check
against the PyMC model (:mod:`bayes_ablation.inference.kernels`) before use. Keep all numba
code of these kernels in this file: numba invalidates its cache when this file changes, not
when an imported module does (so the prior/transform helpers are this file's own copies).

The model (:mod:`bayes_ablation.endpoints.local_recurrence.model`), lesion l of patient p(l)
at site s(l) in arm a(l)::

    η_l = β_a + x_l γ + u_s + v_s,a + f_p
    u_s = σ^(1−w_s) z_s,  z_s ~ N(0, σ^(2 w_s))                     (partial centring)
    f_p = σ_p^(1−w_p) z_p,  z_p ~ N(0, σ_p^(2 w_p))                 (patient frailty, same)
    Weibull:  log λ_l = α − k log t_ref + η_l,  H(t) = λ_l t^k
        ℓ_l = −H(L) + I_l log1mexp(−ΔH),
        log ΔH = log λ_l + k log U + log(−expm1(k (log L − log U)))   (L > 0; else k log U)
    PWE:      H(L) = e^η Σ_j λ_j E_j(L),  ΔH = e^η Σ_j λ_j (E_j(U) − E_j(L))
    death of patient p: d (log k_D + (k_D − 1) log t + log λ_D) − λ_D t^k_D,
        log λ_D = α_D − k_D log t_ref + β_D,a(p)
    log p = Σ_l ℓ_l + Σ_p death_p + Σ_blocks [log prior(θ) + log |dθ/dy|]

d log1mexp(−D)/d log D = D / expm1(D). Lesions whose every input is identical (same
patient, scans and covariates, e.g. a patient's lesions censored at the same last scan) are
stored once with their count m: ℓ enters as m ℓ (about half the rows of a typical trial).
The z blocks enter the block loop with a N(0, 1) prior; the centring correction
−½ z² (σ^(−2w) − 1) − w log σ is added once σ is known.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

# ---- buffer header (float64 slots) -------------------------------------------------------
(H_LEN, H_NL, H_NP, H_NBLOCKS, H_NDIM, H_NSITES, H_NTREAT, H_NCOV, H_LOGTREF, H_NINT,
 H_NEXPANDED, H_NEXPAND) = range(12)
(H_OFF_BLOCKS, H_OFF_LPAT, H_OFF_LARM, H_OFF_LSITE, H_OFF_LX, H_OFF_LINT, H_OFF_LPOS,
 H_OFF_LLOGL, H_OFF_LLOGU, H_OFF_LEXPL, H_OFF_LDEXP, H_OFF_PARM, H_OFF_PDIED, H_OFF_PLOGT,
 H_OFF_EXPAND, H_OFF_WSITE, H_OFF_WSLOPE, H_OFF_LCOUNT, H_OFF_WPAT) = range(12, 31)
HEADER = 31
BLOCK_WIDTH = 8  # role, family, transform, offset, size, p1, p2, p3
EXPAND_WIDTH = 4  # code, block, out offset, size

# roles of parameter blocks
(ROLE_ALPHA, ROLE_SHAPE, ROLE_LOGHR, ROLE_SIGMA, ROLE_Z, ROLE_SIGMA2, ROLE_Z2, ROLE_BETA,
 ROLE_SIGMA_P, ROLE_Z_P, ROLE_BASELINE, ROLE_D_ALPHA, ROLE_D_SHAPE, ROLE_D_LOGHR) = range(14)
N_ROLES = 14
# prior families (spec.PRIOR_FAMILIES), as in the PFS kernel
FAMILIES = ("normal", "studentt", "halfnormal", "halfcauchy", "halfstudentt", "lognormal",
            "exponential", "gamma", "uniform", "lognormal_variance")
F_NORMAL, F_STUDENTT, F_HALFNORMAL, F_HALFCAUCHY, F_HALFSTUDENTT, F_LOGNORMAL, F_EXPONENTIAL, \
    F_GAMMA, F_UNIFORM, F_LNVAR = range(10)
T_NONE, T_LOG, T_INTERVAL = range(3)
# expand items
E_CONSTRAINED, E_SQRT, E_EXP, E_U_SITE, E_V_SITE = range(5)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_LOG_PI = math.log(math.pi)
_LOG_HALF = math.log(0.5)


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
    du/dσ, d/dσ of the centring correction, the correction); adds the correction's
    z-gradient to ``dprior``."""
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
        if w == 0.0:  # non-centred (most patient frailties): no power to take
            u[j] = sigma * z
            du[j] = sigma
            dus[j] = z
            continue
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


@numba.njit(cache=True, inline="always")
def _log1mexp_neg(d: float) -> tuple[float, float]:
    """log(1 − e^(−d)) (PyTensor's ``log1mexp(−d)``; here as log(−expm1(−d)) for every d, one
    transcendental fewer, the same value to rounding) and its derivative in log d,
    d e^(−d) / (1 − e^(−d))."""
    if d == 0.0:
        return -math.inf, 1.0
    em = math.expm1(-d)
    return math.log(-em), d * (1.0 + em) / -em


@numba.njit(cache=True)
def lr_logp_grad(pos: np.ndarray, buf: np.ndarray, grad: np.ndarray) -> float:
    """log density at unconstrained ``pos``; writes the gradient into ``grad``."""
    nl = int(buf[H_NL])
    np_ = int(buf[H_NP])
    nblocks = int(buf[H_NBLOCKS])
    ndim = int(buf[H_NDIM])
    nsites = int(buf[H_NSITES])
    ntreat = int(buf[H_NTREAT])
    ncov = int(buf[H_NCOV])
    nint = int(buf[H_NINT])
    log_tref = buf[H_LOGTREF]
    ob = int(buf[H_OFF_BLOCKS])

    value = np.empty(ndim)
    dval = np.empty(ndim)
    dprior = np.empty(ndim)
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
        if family == F_NORMAL and transform == T_NONE:  # most entries (z blocks): no log
            inv = 1.0 / p2
            lp -= size * (_HALF_LOG_2PI + math.log(p2))
            for j in range(off, off + size):
                z = (pos[j] - p1) * inv
                lp -= 0.5 * z * z
                dprior[j] = -z * inv
                value[j] = pos[j]
                dval[j] = 1.0
            continue
        for j in range(off, off + size):
            x, dxdy, logjac, dlogjac = _transform(transform, pos[j], p1, p2)
            lpx, dlpx = _prior(family, x, p1, p2, p3)
            lp += lpx + logjac
            dprior[j] = dlpx * dxdy + dlogjac
            eff, deff = _effective(family, x)
            value[j] = eff
            dval[j] = deff * dxdy

    starts = np.full(N_ROLES, -1, dtype=np.int64)
    for r in range(N_ROLES):
        if block_of_role[r] >= 0:
            starts[r] = int(buf[ob + block_of_role[r] * BLOCK_WIDTH + 3])
    s_alpha, s_shape, s_loghr = starts[ROLE_ALPHA], starts[ROLE_SHAPE], starts[ROLE_LOGHR]
    s_sigma, s_z, s_sigma2, s_z2 = (starts[ROLE_SIGMA], starts[ROLE_Z], starts[ROLE_SIGMA2],
                                    starts[ROLE_Z2])
    s_beta, s_sigp, s_zp, s_base = (starts[ROLE_BETA], starts[ROLE_SIGMA_P], starts[ROLE_Z_P],
                                    starts[ROLE_BASELINE])
    s_dalpha, s_dshape, s_dloghr = (starts[ROLE_D_ALPHA], starts[ROLE_D_SHAPE],
                                    starts[ROLE_D_LOGHR])
    sigma = value[s_sigma] if s_sigma >= 0 else 0.0
    sigma2 = value[s_sigma2] if s_sigma2 >= 0 else 0.0
    sigp = value[s_sigp] if s_sigp >= 0 else 0.0

    u, du, dus, g_sigma_prior, lp_u = _centred_effects(value, dprior, s_z, buf,
                                                        int(buf[H_OFF_WSITE]), nsites, sigma)
    nslope = nsites * ntreat
    vv, dv, dvs, g_sigma2_prior, lp_v = _centred_effects(value, dprior, s_z2, buf,
                                                          int(buf[H_OFF_WSLOPE]), nslope,
                                                          sigma2)
    fp, dfp, dfps, g_sigp_prior, lp_f = _centred_effects(value, dprior, s_zp, buf,
                                                          int(buf[H_OFF_WPAT]), np_, sigp)
    lp += lp_u + lp_v + lp_f

    # ---- LR block, one lesion at a time
    weibull = nint == 0
    k = value[s_shape] if weibull else 1.0
    base_lam = value[s_alpha] - k * log_tref if weibull else 0.0
    rates = np.empty(nint)
    for j in range(nint):
        rates[j] = math.exp(value[s_base + j])
    g_rates = np.zeros(nint)
    g_alpha = 0.0
    g_k = 0.0
    g_loghr = np.zeros(ntreat)
    g_u = np.zeros(nsites)
    g_v = np.zeros(nslope)
    g_beta = np.zeros(ncov)
    g_zp = np.zeros(np_)
    o_pat, o_arm, o_site = int(buf[H_OFF_LPAT]), int(buf[H_OFF_LARM]), int(buf[H_OFF_LSITE])
    o_x, o_int, o_pos = int(buf[H_OFF_LX]), int(buf[H_OFF_LINT]), int(buf[H_OFF_LPOS])
    o_logl, o_logu = int(buf[H_OFF_LLOGL]), int(buf[H_OFF_LLOGU])
    o_expl, o_dexp = int(buf[H_OFF_LEXPL]), int(buf[H_OFF_LDEXP])
    o_count = int(buf[H_OFF_LCOUNT])
    for i in range(nl):
        arm = int(buf[o_arm + i])
        site = int(buf[o_site + i])
        pat = int(buf[o_pat + i])
        eta = u[site] if s_z >= 0 else 0.0
        if arm > 0:
            eta += value[s_loghr + arm - 1]
            if s_z2 >= 0:
                eta += vv[site * ntreat + arm - 1]
        if ncov > 0:
            xrow = o_x + i * ncov
            for c in range(ncov):
                eta += buf[xrow + c] * value[s_beta + c]
        if s_zp >= 0:
            eta += fp[pat]
        interval = buf[o_int + i] > 0.5
        count = buf[o_count + i]
        r = 0.0  # d ℓ / d η (of one lesion, times count below)
        if weibull:
            # λ = e^(log λ), H(L) = λ L^k, ΔH = λ U^k (−expm1(k (log L − log U)))
            log_u = buf[o_logu + i]
            dk = 0.0
            if not interval:
                if buf[o_pos + i] > 0.5:
                    log_l = buf[o_logl + i]
                    cum_l = math.exp(base_lam + eta + k * log_l)
                    lp -= count * cum_l
                    r = -cum_l
                    dk = -cum_l * log_l
            elif buf[o_pos + i] > 0.5:
                lam_tu = math.exp(base_lam + eta + k * log_u)
                a = buf[o_logl + i] - log_u
                em = math.expm1(k * a)
                cum_l = lam_tu * (em + 1.0)
                val, slope = _log1mexp_neg(-lam_tu * em)
                lp += count * (val - cum_l)
                r = slope - cum_l
                dk = slope * (log_u + a * (em + 1.0) / em) - cum_l * (a + log_u)
            else:
                val, slope = _log1mexp_neg(math.exp(base_lam + eta + k * log_u))
                lp += count * val
                r = slope
                dk = slope * log_u
            r *= count
            g_alpha += r
            g_k += count * dk - r * log_tref
        else:
            e = math.exp(eta)
            cum_l = 0.0
            erow = o_expl + i * nint
            for j in range(nint):
                cum_l += buf[erow + j] * rates[j]
            lp -= count * e * cum_l
            r -= e * cum_l
            for j in range(nint):
                g_rates[j] -= count * e * buf[erow + j]
            if interval:
                drow = o_dexp + i * nint
                dcum = 0.0
                for j in range(nint):
                    dcum += buf[drow + j] * rates[j]
                val, slope = _log1mexp_neg(e * dcum)
                lp += count * val
                r += slope
                for j in range(nint):
                    g_rates[j] += count * slope * buf[drow + j] / dcum
            r *= count
        if s_z >= 0:
            g_u[site] += r
        if arm > 0:
            g_loghr[arm - 1] += r
            if s_z2 >= 0:
                g_v[site * ntreat + arm - 1] += r
        if ncov > 0:
            xrow = o_x + i * ncov
            for c in range(ncov):
                g_beta[c] += r * buf[xrow + c]
        if s_zp >= 0:
            g_zp[pat] += r  # d ℓ / d f_p

    # ---- death block, one patient at a time
    kd = value[s_dshape]
    log_kd = math.log(kd)
    base_d = value[s_dalpha] - kd * log_tref
    g_dalpha = 0.0
    g_dk = 0.0
    g_dloghr = np.zeros(ntreat)
    o_parm, o_pdied, o_plogt = int(buf[H_OFF_PARM]), int(buf[H_OFF_PDIED]), int(buf[H_OFF_PLOGT])
    for p in range(np_):
        arm = int(buf[o_parm + p])
        d = buf[o_pdied + p]
        logt = buf[o_plogt + p]
        lam = base_d + (value[s_dloghr + arm - 1] if arm > 0 else 0.0)
        e = math.exp(kd * logt + lam)
        lp += d * (log_kd + (kd - 1.0) * logt + lam) - e
        r = d - e
        g_dalpha += r
        g_dk += d * (1.0 / kd + logt - log_tref) - e * (logt - log_tref)
        if arm > 0:
            g_dloghr[arm - 1] += r

    # ---- d loglik / d (model-scale value), then chain rule to the position
    glik = np.zeros(ndim)
    if weibull:
        glik[s_alpha] = g_alpha
        glik[s_shape] = g_k
    else:
        for j in range(nint):
            glik[s_base + j] = g_rates[j] * rates[j]
    for a in range(ntreat):
        glik[s_loghr + a] = g_loghr[a]
        glik[s_dloghr + a] = g_dloghr[a]
    glik[s_dalpha] = g_dalpha
    glik[s_dshape] = g_dk
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
    if s_zp >= 0:
        g_sigp = g_sigp_prior
        for p in range(np_):
            glik[s_zp + p] = dfp[p] * g_zp[p]
            g_sigp += dfps[p] * g_zp[p]
        glik[s_sigp] = g_sigp
    for j in range(ndim):
        grad[j] = glik[j] * dval[j] + dprior[j]
    return lp


@numba.njit(cache=True)
def lr_expand(pos: np.ndarray, buf: np.ndarray, out: np.ndarray) -> None:
    """Trace values: the position, then constrained values and deterministics."""
    ndim = int(buf[H_NDIM])
    ob = int(buf[H_OFF_BLOCKS])
    oe = int(buf[H_OFF_EXPAND])
    nitems = int(buf[H_NEXPAND])
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
        src = int(buf[ob + b * BLOCK_WIDTH + 3])
        if code == E_CONSTRAINED:
            for j in range(size):
                out[o + j] = constrained[src + j]
        elif code == E_SQRT:
            for j in range(size):
                out[o + j] = math.sqrt(constrained[src + j])
        elif code == E_EXP:
            for j in range(size):
                out[o + j] = math.exp(value[src + j])
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


def _lr_logp_c(dim, x_, out_, logp_, user_data_):  # pragma: no cover - runs compiled
    header = numba.carray(user_data_, (HEADER,), np.float64)
    if dim != int(header[H_NDIM]):
        return -1
    buf = numba.carray(user_data_, (int(header[H_LEN]),), np.float64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    logp = numba.carray(logp_, (1,))
    value = lr_logp_grad(x, buf, out)
    logp[0] = value
    for j in range(dim):
        if not math.isfinite(out[j]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _lr_expand_c(dim, expanded, x_, out_, user_data_):  # pragma: no cover - compiled
    header = numba.carray(user_data_, (HEADER,), np.float64)
    if dim != int(header[H_NDIM]) or expanded != int(header[H_NEXPANDED]):
        return -1
    buf = numba.carray(user_data_, (int(header[H_LEN]),), np.float64)
    lr_expand(numba.carray(x_, (dim,)), buf, numba.carray(out_, (expanded,)))
    return 0


_CFUNCS: dict[str, object] = {}


def lr_cfuncs() -> tuple[object, object]:
    """The (logp, expand) C callbacks of both LR families (the buffer says which baseline),
    compiled on first use or loaded from numba's cache."""
    if "lr" not in _CFUNCS:
        logp = numba.cfunc(LOGP_SIGNATURE, cache=True)(_lr_logp_c)
        expand = numba.cfunc(EXPAND_SIGNATURE, cache=True)(_lr_expand_c)
        _CFUNCS["lr"] = (logp, expand)
    return _CFUNCS["lr"]
