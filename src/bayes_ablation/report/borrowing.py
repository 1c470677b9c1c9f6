"""Figure of a borrowing analysis: prior, external, internal and posterior densities."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from bayes_ablation.report.plots import color, margins, subplots

_ORDER = ("prior", "external", "internal", "posterior")


def side_by_side(grid: np.ndarray, densities: Mapping[str, np.ndarray], target: str,
                 method: str) -> Figure:
    """The four densities of the borrowing target on one axis."""
    fig, ax = subplots(figsize=(7, 4))
    for i, name in enumerate(_ORDER):
        if name in densities:
            ax.plot(grid, densities[name], color=color(i), lw=2.0 if name == "posterior" else 1.3,
                    ls="--" if name == "prior" else "-", label=name)
    ax.set_xlabel(target)
    ax.set_ylabel("density")
    ax.set_title(f"Borrowing ({method}): prior, external, internal and posterior")
    ax.legend(frameon=False)
    margins(fig, 0.8, 0.6)
    return fig
