"""A fit with a robust MAP prior for the control-arm baseline (examples/borrowing)."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ablation.spec.plan import load_spec
from bayes_ablation.workflows.fit import fit
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "borrowing"


@pytest.fixture(scope="module")
def map_spec():
    return load_spec(EXAMPLE / "pfs_map_baseline.toml").updated(
        hierarchy={"site_intercepts": False}, priors={"sigma_site": None},
        borrowing={"map_draws": 5000, "max_components": 3},
        sampler={"chains": 4, "draws": 500, "tune": 500})


def test_map_prior_borrows_from_the_historical_arms(map_spec):
    opts = {"run_ppc": False, "log_likelihood": False}
    borrowed = fit(map_spec, EXAMPLE / "internal.csv", **opts)
    alone = fit(map_spec.updated(borrowing=None), EXAMPLE / "internal.csv", **opts)
    d = borrowed.diagnostics.to_dict()
    assert d["divergences"] == 0 and d["rhat_max"] < 1.02
    b = borrowed.summary_entries["borrowing"]
    m = b["map"]
    # five historical arms with ~90 events each and moderate heterogeneity: the MAP prior is
    # worth tens of events, its robust version fewer
    assert 10 < m["ess_elir_robust"] < m["ess_elir_map"] < 460
    assert m["robust_mixture"]["weights"][-1] == pytest.approx(0.2)
    sd_alone = float(alone.posterior["log_cumhaz_ref"].std())
    sd_map = float(borrowed.posterior["log_cumhaz_ref"].std())
    assert sd_map < 0.95 * sd_alone
    assert b["conflict"]["box_p"] > 0.05          # history and trial agree (same population)
    assert set(b["side_by_side"]) == {"prior", "external", "internal", "posterior"}
    assert np.isfinite(b["amount_borrowed"]["prior_ess_elir_events"])
    assert "external" not in b                    # no external patients with method map


def test_map_prior_for_log_hr_builds(map_spec, tmp_path):
    import pandas as pd

    from bayes_ablation.data.schema import read_patients
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.registry import endpoint
    from bayes_ablation.workflows.borrowing import prepare_borrowing

    pd.DataFrame({"study": ["A", "B", "C"], "log_hr": [-0.2, -0.35, -0.1],
                  "se": [0.15, 0.2, 0.25]}).to_csv(tmp_path / "hr.csv", index=False)
    spec = map_spec.updated(borrowing={"target": "log_hr", "studies": str(tmp_path / "hr.csv")})
    patients = read_patients(EXAMPLE / "internal.csv", spec)
    prepared = prepare_borrowing(spec, endpoint("pfs").prepare(spec, patients), None)
    model = build_model(spec, prepared.model_data)
    assert "NormalMixture" in type(model["log_hr"].owner.op).__name__ or \
        "Mixture" in str(model["log_hr"].owner.op)
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    assert prepared.model_data.map_prior.robust_sd == 2.0
