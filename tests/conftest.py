"""Shared fixtures. Fits are small and compiled models are cached for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")


@pytest.fixture(scope="session")
def weibull_spec():
    from bayes_ablation.spec import load_spec

    return load_spec(MODELS / "pfs_weibull_site.toml")


@pytest.fixture(scope="session")
def small_weibull_spec(weibull_spec):
    """The shipped spec with few draws (tests assert statistics with matching tolerance)."""
    return weibull_spec.with_sampler(chains=2, draws=500, tune=500)
