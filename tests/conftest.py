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
    from bayes_ablation.spec.plan import load_spec

    return load_spec(MODELS / "pfs_weibull_site.toml")


@pytest.fixture(scope="session")
def small_weibull_spec(weibull_spec):
    """The shipped spec with few draws (tests assert statistics with matching tolerance)."""
    return weibull_spec.with_sampler(chains=4, draws=750, tune=500)


@pytest.fixture(scope="session")
def trial600():
    """600 patients, 8 sites, true log HR −0.3, σ_site 0.3 (the recovery data set)."""
    from bayes_ablation.data.schema import patients_from_frame
    from bayes_ablation.data.simulate import simulate_trial

    sim = simulate_trial(600, 8, -0.3, seed=11, sigma_site=0.3)
    return sim, patients_from_frame(sim.frame, reference_arm="postoperative")


@pytest.fixture(scope="session")
def fit600(small_weibull_spec, trial600):
    from bayes_ablation.workflows.fit import fit

    return fit(small_weibull_spec, trial600[1], ppc_draws=60)


@pytest.fixture(scope="session")
def dask_scheduler():
    """Address of a two-process Dask LocalCluster started for the session (skips without
    dask.distributed)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session", autouse=True)
def _private_kernel_check_records(tmp_path_factory):
    """Kernel checks recorded on disk (inference.kernels) go to a folder of this test session:
    every session runs each check once, whatever earlier sessions recorded."""
    os.environ["BAYES_ABLATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("bayes_ablation_cache"))
    yield
