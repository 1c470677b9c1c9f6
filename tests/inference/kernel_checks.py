"""The check every cached-kernel test makes: log density and gradient at three random points of
the unconstrained space (rel. 1e-8) and every traced value at one more (rel. 1e-10), against
the PyMC model itself (PyTensor, FAST_COMPILE)."""

from __future__ import annotations

import numpy as np
import pytest


def assert_kernel_matches_pymc(model, plan, buf, cfuncs) -> None:
    from bayes_ablation.inference import kernels

    logp = model.compile_logp(mode="FAST_COMPILE")
    dlogp = model.compile_dlogp(mode="FAST_COMPILE")
    values = [model.rvs_to_values[rv] for rv in model.free_RVs]
    bounds = np.cumsum([0, *[int(np.prod(s)) for s in plan.shapes[:len(values)]]])
    for position in kernels.check_points(model, plan, n=3, seed=11):
        point = {v.name: position[bounds[i]:bounds[i + 1]].reshape(plan.shapes[i])
                 for i, v in enumerate(values)}
        lp, grad, code = kernels.kernel_logp_grad(cfuncs, buf, position)
        assert code == 0
        ref_grad = np.asarray(dlogp(point))
        assert lp == pytest.approx(float(logp(point)), rel=1e-8, abs=1e-8)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-8,
                                   atol=1e-8 * max(1.0, np.abs(ref_grad).max()))
    # traced values (constrained parameters and deterministics) against PyMC's
    reference = kernels.pymc_reference(model, plan)
    position = kernels.check_points(model, plan, n=1, seed=5)[0]
    trace = kernels.kernel_expand(cfuncs, buf, plan, position)
    np.testing.assert_allclose(trace, reference(position)[2], rtol=1e-10, atol=1e-12)
