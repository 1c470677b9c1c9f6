"""Spec → ``pm.Model``: the family table names each family's graph builder."""

from __future__ import annotations

from typing import Any

from bayes_ablation.endpoints.registry import family
from bayes_ablation.spec.plan import AnalysisSpec


def build_model(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """Build the PyMC model the spec names, from validated data."""
    return family(spec.model).build(spec, data, **kwargs)
