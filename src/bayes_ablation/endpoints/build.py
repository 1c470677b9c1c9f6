"""Spec → ``pm.Model``: the family table names each family's graph builder."""

from __future__ import annotations

from typing import Any

from bayes_ablation.endpoints.registry import family
from bayes_ablation.spec.plan import AnalysisSpec


def build_model(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """Build the PyMC model the spec names, from validated data (model data of a
    ``[borrowing]`` analysis go to :func:`~bayes_ablation.endpoints.borrowing.model.
    build_borrowing_model`)."""
    if getattr(data, "is_borrowing", False):
        from bayes_ablation.endpoints.borrowing.model import build_borrowing_model

        return build_borrowing_model(spec, data, **kwargs)
    return family(spec.model).build(spec, data, **kwargs)
