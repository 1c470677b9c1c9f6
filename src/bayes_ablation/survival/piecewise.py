"""Piecewise-constant baseline hazards: intervals, exposures, inverse cumulative hazard.

NumPy only (used by model builders, estimands and predictive checks alike). Intervals are
[0, c₁), [c₁, c₂), …, [c_K, ∞) for cuts c₁ < … < c_K (months); H₀(t) = Σ_j λ_j E_j(t) with
E_j(t) the time spent in interval j up to t.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

DEFAULT_CUTS_MONTHS = (3.0, 6.0, 12.0, 24.0)


def interval_labels(cuts: Sequence[float]) -> list[str]:
    """'0–3', '3–6', …, '24+' for cuts (3, 6, …, 24)."""
    edges = [0.0, *map(float, cuts)]
    return [f"{a:g}–{b:g}" for a, b in pairwise(edges)] + [f"{edges[-1]:g}+"]


def exposure(times: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Time spent in each interval up to ``times``: shape (*times.shape, intervals)."""
    edges = np.concatenate([[0.0], np.asarray(cuts, float)])
    widths = np.concatenate([np.diff(edges), [np.inf]])
    t = np.asarray(times, float)[..., None]
    return np.clip(t - edges, 0.0, widths)


def invert_cumhaz(h: np.ndarray, rates: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """T with H₀(T) = h for one set of piecewise-constant ``rates`` (one per interval)."""
    edges = np.concatenate([[0.0], np.asarray(cuts, float)])
    rates = np.asarray(rates, float)
    at_edges = np.concatenate([[0.0], np.cumsum(rates[:-1] * np.diff(edges))])
    j = np.searchsorted(at_edges, h, side="right") - 1
    return edges[j] + (h - at_edges[j]) / rates[j]
