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

import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.endpoints.priors import prior
from bayes_ablation.spec.plan import AnalysisSpec


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
