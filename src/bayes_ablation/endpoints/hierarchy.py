"""Site-level random effects, non-centred by default.

u_site = σ_site · z_site,  z_site ~ N(0, 1)                       (random intercepts, dim ``site``)
v_site,a = σ_site_arm · z_site,a,  z_site,a ~ N(0, 1)            (site × arm slopes, dims
                                                                  ``site``, ``treatment``)

A model may pass per-effect centring weights w ∈ [0, 1] (:func:`scaled_normal`): the prior is
unchanged, only the sampler's geometry. Non-centred suits weakly informed effects; when the
data pin an effect down (many events per site) the centred form avoids the thin curved
ridge z = u/σ that makes the non-centred posterior slow to sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.endpoints.priors import prior
from bayes_ablation.spec.plan import AnalysisSpec

#: standard errors subtracted from the moment estimate of σ² in :func:`moment_centring`
CENTRING_SE = 3.0


def moment_centring(estimates: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Centring weights w = σ̂² / (σ̂² + s²) for effects with crude estimates (mean zero under
    the prior) and sampling variances s²; σ̂² is the method-of-moments between-effect variance
    less :data:`CENTRING_SE` standard errors (one standard error ≈ √(2/K) mean s² for K
    effects), truncated at 0. Unless the data show heterogeneity clearly, the posterior of σ
    reaches down to 0, where only the non-centred form (w = 0) is free of a funnel; a
    partially centred effect near σ = 0 is a funnel, so the rule errs towards w = 0 (with one
    standard error, 20 of the 25 SBC fits of ``models/pfs_piecewise_site.toml`` with a
    log-HR walk weight above 0.2 diverged; bench/sbc/README.md). Very large trials, whose
    effects are pinned down, still get w → 1."""
    estimates = np.asarray(estimates, float)
    variances = np.asarray(variances, float)
    centred = estimates - estimates.mean() if estimates.size > 1 else estimates
    mean_var = float(np.mean(variances))
    sigma2 = max(float(np.mean(centred**2))
                 - mean_var * (1.0 + CENTRING_SE * np.sqrt(2.0 / estimates.size)), 0.0)
    return sigma2 / (sigma2 + variances)


def site_centring(observed: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centring weights (w_site (site,), w_site_arm (site, treatment)) from crude counts per
    (site, arm): observed events O_sa and events E_sa expected under the arms' pooled hazard
    (arm 0 the reference). A site's crude effect is log(O_s/E_s) with sampling variance
    ≈ 1/O_s, a site × arm slope log(O_sa/E_sa) − log(O_s0/E_s0) with variance 1/O_sa + 1/O_s0
    (½ added to every count); weights by :func:`moment_centring`."""
    half = 0.5
    observed = np.asarray(observed, float)
    expected = np.asarray(expected, float)
    o_s, e_s = observed.sum(1) + half, expected.sum(1) + half
    w_site = moment_centring(np.log(o_s / e_s), 1 / o_s)
    o_sa, e_sa = observed + half, expected + half
    slope = np.log(o_sa[:, 1:] / e_sa[:, 1:]) - np.log(o_sa[:, :1] / e_sa[:, :1])
    v_sa = 1 / o_sa[:, 1:] + 1 / o_sa[:, :1]
    w_site_arm = (np.stack([moment_centring(slope[:, a], v_sa[:, a])
                            for a in range(observed.shape[1] - 1)], axis=1)
                  if observed.shape[1] > 1 else np.zeros((observed.shape[0], 0)))
    return w_site, w_site_arm


def frailty_centring(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Centring weights of per-cluster frailties (e.g. patients with several lesions) from
    crude counts per cluster: observed events O_i and events E_i expected under the pooled
    hazard. A frailty's crude estimate is log((O_i + ½)/(E_i + ½)) with sampling variance
    ≈ 1/(O_i + ½); weights by :func:`moment_centring`, so a cluster with no events (or a
    trial without clear between-cluster heterogeneity) stays non-centred (w ≈ 0), while the
    clusters whose events pin their frailty down get w → 1."""
    half = 0.5
    o = np.asarray(observed, float) + half
    e = np.asarray(expected, float) + half
    return moment_centring(np.log(o / e), 1 / o)


def scaled_normal(name: str, sigma: Any, dims: str | tuple[str, ...],
                  centring: Any = None) -> Any:
    """u ~ N(0, σ²) written as u = σ^(1−w) ũ, ũ = ``name`` ~ N(0, σ^w) (partial non-centring,
    Papaspiliopoulos, Roberts & Sköld 2007): w = 0 (default) is non-centred, w = 1 centred.
    ``centring`` holds one w per element (an array or a ``pm.Data``, so a compiled model can
    take new weights with new data); any w gives the same prior (the Jacobian σ^(w−1) of
    ũ → u cancels), only the sampler's geometry changes."""
    if centring is None:
        return sigma * pm.Normal(name, 0.0, 1.0, dims=dims)
    raw = pm.Normal(name, 0.0, sigma**centring, dims=dims)
    return sigma ** (1.0 - centring) * raw


def site_effects(spec: AnalysisSpec, site_idx: Any, arm_idx: Any, *,
                 centring: tuple[Any, Any] | None = None) -> Any:
    """The per-observation site contribution to the log hazard (0 without a hierarchy).

    ``arm_idx`` codes the reference arm as 0 and non-reference arms 1..A−1 (the ``treatment``
    coordinate holds arms 1..A−1). ``centring`` = (w_site (site,), w_site_arm (site,
    treatment)) chooses each effect's parameterisation (see :func:`scaled_normal`); by
    default all are non-centred.
    """
    h = spec.hierarchy
    if not h.site_intercepts:
        return pt.zeros(())
    w_site, w_slope = centring if centring is not None else (None, None)
    sigma_site = prior("sigma_site", spec.priors["sigma_site"])
    u_site = pm.Deterministic("u_site", scaled_normal("z_site", sigma_site, "site", w_site),
                              dims="site")
    total = u_site[site_idx]
    if h.site_arm_slopes:
        sigma_slope = prior("sigma_site_arm", spec.priors["sigma_site_arm"])
        v = pm.Deterministic("v_site_arm", scaled_normal("z_site_arm", sigma_slope,
                                                         ("site", "treatment"), w_slope),
                             dims=("site", "treatment"))
        # prepend a zero column for the reference arm so indexing by arm_idx works
        v_full = pt.concatenate([pt.zeros((v.shape[0], 1)), v], axis=1)
        total = total + v_full[site_idx, arm_idx]
    return total
