"""Compare saved fits: PSIS-LOO of result bundles (``bayes-ablation compare``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bayes_ablation.inference.comparison import Comparison, compare_fits


def compare_bundles(paths: Sequence[str | Path], *, method: str = "stacking") -> Comparison:
    """PSIS-LOO comparison of result bundles (their posterior files hold the log-likelihood)."""
    from bayes_ablation.core.files import verify
    from bayes_ablation.results.bundle import open_posterior

    fits = {}
    for path in paths:
        path = Path(path)
        verify(path)
        label = path.name
        while label in fits:
            label = f"{label}'"
        fits[label] = open_posterior(path)
    return compare_fits(fits, method=method)
