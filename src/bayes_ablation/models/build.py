"""Dispatch: spec family → model builder. The single place that maps a spec to a ``pm.Model``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymc as pm

from bayes_ablation.spec import AnalysisSpec

Builder = Callable[..., pm.Model]


def _builders() -> dict[str, Builder]:
    from bayes_ablation.models import local_recurrence, meta, pfs

    return {"weibull": pfs.build_weibull_model,
            "piecewise_exponential": pfs.build_pwe_model,
            "lr_weibull": local_recurrence.build_lr_weibull_model,
            "lr_pwe": local_recurrence.build_lr_pwe_model,
            "normal_normal": meta.build_normal_normal_model,
            "weibull_ipd_ad": meta.build_weibull_ipd_ad_model}


def build_model(spec: AnalysisSpec, data: Any, **kwargs: Any) -> pm.Model:
    """Build the PyMC model the spec names, from validated data."""
    builders = _builders()
    if spec.model not in builders:
        raise ValueError(f"no builder for model family {spec.model!r}")
    return builders[spec.model](spec, data, **kwargs)
