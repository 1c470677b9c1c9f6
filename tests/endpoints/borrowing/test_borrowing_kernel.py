"""The cached Weibull kernel never samples a borrowing model: its plan refuses it, and the
per-process check against PyMC would catch the extra term even if the plan did not."""

from __future__ import annotations

import pytest

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import simulate_trial
from bayes_ablation.endpoints.borrowing.model import BorrowingData
from bayes_ablation.endpoints.build import build_model
from bayes_ablation.endpoints.kernel import KernelUnavailable
from bayes_ablation.endpoints.pfs.fastpath import weibull_buffer, weibull_plan
from bayes_ablation.spec.plan import load_spec
from tests.conftest import MODELS


def test_plan_refuses_and_check_catches_a_power_prior_model():
    from bayes_ablation.endpoints.pfs.numba_kernels import weibull_cfuncs as cfuncs

    spec = load_spec(MODELS / "pfs_external_controls.toml").updated(
        borrowing={"method": "power", "a0": 0.5, "precision": None})
    sim = simulate_trial(60, 2, -0.3, seed=5)
    patients = patients_from_frame(sim.frame, reference_arm="postoperative")
    ext_frame = simulate_trial(80, 2, 0.0, seed=6).frame
    ext_frame = ext_frame[ext_frame["arm"] == "postoperative"]
    from bayes_ablation.data.borrowing import read_external

    external = read_external(ext_frame, spec)
    borrowing = build_model(spec, BorrowingData(patients, external))
    with pytest.raises(KernelUnavailable, match="borrowing"):
        weibull_plan(borrowing, spec)
    plain_spec = spec.updated(borrowing=None)
    with pytest.raises(KernelUnavailable, match="extra log-density terms"):
        weibull_plan(borrowing, plain_spec)
    # a plan/buffer of the plain model (same free variables) checked against the borrowing
    # model: the per-process check finds the log densities differ
    from bayes_ablation.inference.kernels import check_kernel, check_points

    plain = build_model(plain_spec, patients)
    plan = weibull_plan(plain, plain_spec)
    buf = weibull_buffer(plan, plain)
    check_kernel(plain, plan, buf, cfuncs(), check_points(plain, plan))   # the plain one agrees
    with pytest.raises(KernelUnavailable, match="log density differs"):
        check_kernel(borrowing, plan, buf, cfuncs(), check_points(borrowing, plan))
