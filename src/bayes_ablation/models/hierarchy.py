"""Site-level random effects, non-centred.

u_site = σ_site · z_site,  z_site ~ N(0, 1)                       (random intercepts, dim ``site``)
v_site,a = σ_site_arm · z_site,a,  z_site,a ~ N(0, 1)            (site × arm slopes, dims
                                                                  ``site``, ``treatment``)
"""

from __future__ import annotations

from typing import Any

import pymc as pm
import pytensor.tensor as pt

from bayes_ablation.models.priors import prior
from bayes_ablation.spec import AnalysisSpec


def site_effects(spec: AnalysisSpec, site_idx: Any, arm_idx: Any) -> Any:
    """The per-observation site contribution to the log hazard (0 without a hierarchy).

    ``arm_idx`` codes the reference arm as 0 and non-reference arms 1..A−1 (the ``treatment``
    coordinate holds arms 1..A−1).
    """
    h = spec.hierarchy
    if not h.site_intercepts:
        return pt.zeros(())
    sigma_site = prior("sigma_site", spec.priors["sigma_site"])
    z_site = pm.Normal("z_site", 0.0, 1.0, dims="site")
    u_site = pm.Deterministic("u_site", sigma_site * z_site, dims="site")
    total = u_site[site_idx]
    if h.site_arm_slopes:
        sigma_slope = prior("sigma_site_arm", spec.priors["sigma_site_arm"])
        z_slope = pm.Normal("z_site_arm", 0.0, 1.0, dims=("site", "treatment"))
        v = pm.Deterministic("v_site_arm", sigma_slope * z_slope, dims=("site", "treatment"))
        # prepend a zero column for the reference arm so indexing by arm_idx works
        v_full = pt.concatenate([pt.zeros((v.shape[0], 1)), v], axis=1)
        total = total + v_full[site_idx, arm_idx]
    return total
