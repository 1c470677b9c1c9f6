"""Spec → ``pm.Model``: the family table names each family's graph builder."""

from __future__ import annotations

from typing import Any

from bayes_ablation.endpoints.registry import family
from bayes_ablation.spec.plan import AnalysisSpec


def build_model(spec: AnalysisSpec, data: Any, **kwargs: Any) -> Any:
    """Build the PyMC model the spec names, from validated data. Model data that carry their
    own builder (``data.model_builder``, e.g. a ``[borrowing]`` analysis'
    :class:`~bayes_ablation.endpoints.borrowing.model.BorrowingData`) are built by it, so this
    module needs no import of the model folders."""
    builder = getattr(data, "model_builder", None)
    if builder is not None:
        return builder(spec, data, **kwargs)
    return family(spec.model).build(spec, data, **kwargs)
