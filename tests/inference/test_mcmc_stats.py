"""The vectorised chain statistics equal ArviZ's, scalar by scalar."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayes_ablation.inference.mcmc_stats import chain_stats


def ar1_chains(rng: np.random.Generator, k: int, chains: int, draws: int) -> np.ndarray:
    """(k, chains, draws) AR(1) chains with autocorrelations from −0.5 to 0.97, some chains
    shifted (R-hat > 1), some heavy-tailed, one near-constant in ties (a discrete scalar)."""
    phi = np.linspace(-0.5, 0.97, k)
    x = np.empty((k, chains, draws))
    x[..., 0] = rng.normal(size=(k, chains))
    eps = rng.standard_t(3, size=(k, chains, draws))
    for t in range(1, draws):
        x[..., t] = phi[:, None] * x[..., t - 1] + eps[..., t]
    x[::5, 0] += 2.0                          # stuck chains
    x[1] = np.round(x[1])                     # ties
    return x


@pytest.mark.parametrize("draws", [1000, 201, 10])
def test_chain_stats_equal_arviz(draws):
    import arviz as az

    rng = np.random.default_rng(3)
    x = ar1_chains(rng, 23, 4, draws)
    ours = chain_stats(x)
    ds = xr.Dataset({"theta": (("k", "chain", "draw"), x)}).transpose("chain", "draw", "k")
    tree = xr.DataTree.from_dict({"posterior": ds})
    expected = {
        "rhat": az.rhat(tree)["theta"].values,
        "ess_bulk": az.ess(tree, method="bulk")["theta"].values,
        "ess_tail": az.ess(tree, method="tail", prob=0.95)["theta"].values,  # Stan's 5%/95%
        "mcse_mean": az.mcse(tree, method="mean")["theta"].values,
    }
    for name, values in expected.items():
        np.testing.assert_allclose(getattr(ours, name), values, rtol=1e-9, err_msg=name)


def test_one_chain_has_no_rhat_and_a_constant_has_full_ess():
    x = np.zeros((2, 1, 100))
    x[1] = np.random.default_rng(0).normal(size=100)
    s = chain_stats(x)
    assert np.isnan(s.rhat).all()
    assert s.ess_bulk[0] == 100


def test_e_bfmi_equals_arviz():
    import arviz as az

    from bayes_ablation.inference.convergence import e_bfmi

    energy = ar1_chains(np.random.default_rng(8), 2, 4, 500)[0]
    tree = xr.DataTree.from_dict({"sample_stats": xr.Dataset(
        {"energy": (("chain", "draw"), energy)})})
    np.testing.assert_allclose(e_bfmi(energy), az.bfmi(tree)["energy"].values, rtol=1e-12)


def test_average_ranks_equal_scipy_with_ties():
    from scipy import stats

    from bayes_ablation.inference.mcmc_stats import average_ranks

    x = np.round(np.random.default_rng(2).normal(size=(7, 3000)), 1)   # many ties
    np.testing.assert_array_equal(average_ranks(x), stats.rankdata(x, axis=-1))


def test_shared_chunks_from_two_threads_equal_one_call():
    import threading

    from bayes_ablation.inference.mcmc_stats import SharedChainStats

    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=(203, 4, 500)), axis=-1) * 0.05 + rng.normal(size=(203, 4, 500))
    whole = chain_stats(x)
    shared = SharedChainStats(x, chunk=16)
    thread = threading.Thread(target=shared.work)
    thread.start()
    shared.work()
    thread.join()
    parts = shared.result()
    for field in ("rhat", "ess_bulk", "ess_tail", "mcse_mean"):
        np.testing.assert_array_equal(getattr(parts, field), getattr(whole, field))
    assert sum(d is not None for d in shared.done) == len(shared.chunks) == 13


def test_convergence_started_in_a_thread_equals_the_direct_one():
    import xarray as xr

    from bayes_ablation.inference.convergence import convergence, start_convergence
    from bayes_ablation.spec.plan import DiagnosticsSpec

    rng = np.random.default_rng(6)
    post = xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(4, 300))),
                       "b": (("chain", "draw", "k"), rng.normal(size=(4, 300, 70)))})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 300), bool)),
                        "energy": (("chain", "draw"), rng.normal(size=(4, 300)))})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    direct = convergence(tree, DiagnosticsSpec())
    report, seconds = start_convergence(tree, DiagnosticsSpec())()
    assert report.to_dict() == direct.to_dict() and seconds > 0
    assert report.table.equals(direct.table)
