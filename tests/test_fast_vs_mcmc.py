"""Small version of bench/fast_vs_mcmc.py: the fast Laplace posterior agrees with full MCMC of
the project's piecewise-exponential model (fixed cuts, proportional hazards) on a few looks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import MODELS


@pytest.fixture(scope="module")
def pwe_spec():
    from bayes_ablation.monitoring.design import load_design
    from bayes_ablation.spec import load_spec, parse_spec

    design = load_design(MODELS / "interim_design.toml")
    raw = json.loads(json.dumps(load_spec(MODELS / "pfs_piecewise_site.toml").raw))
    raw["model"] = {"family": "piecewise_exponential", "cuts_months": list(design.fast.cuts_months)}
    raw["priors"].pop("sigma_log_hr_rw", None)
    raw["sampler"].update(chains=4, draws=2500, tune=800)
    return design, parse_spec(raw, "pwe-fixed-cuts")


def test_fast_posterior_probabilities_agree_with_mcmc(pwe_spec):
    from bayes_ablation.data.cut import cut_latent
    from bayes_ablation.data.schema import patients_from_frame
    from bayes_ablation.inference import sample
    from bayes_ablation.models.build import build_model
    from bayes_ablation.monitoring.fast import FastModel, fast_posterior
    from bayes_ablation.monitoring.oc import event_calendar_times, simulate_latent

    design, spec = pwe_spec
    fast_model = FastModel.from_design(design)
    sites = design.accrual.sites
    diffs = []
    for seed, log_hr, n_events in ((1, -0.2, 60), (2, -0.1, 120), (3, -0.3, 90)):
        tr = simulate_latent(300, 14.0, np.asarray(design.accrual.site_weights), (1, 1), log_hr,
                             18.0, 1.2, 0.3, 0.005, np.random.default_rng(seed))
        c = cut_latent(tr.entry, tr.event_time, tr.dropout_time,
                       float(event_calendar_times(tr)[n_events - 1]))
        en = c["enrolled"]
        patients = patients_from_frame(pd.DataFrame({
            "patient_id": [f"P{i}" for i in np.flatnonzero(en)],
            "site": [sites[s] for s in tr.site[en]],
            "arm": np.where(tr.arm[en] == 1, "perioperative", "postoperative"),
            "time_months": c["time"], "event": c["event"]}), reference_arm="postoperative")
        res = sample(build_model(spec, patients), spec.sampler, cache_key=("test_fast_vs_mcmc",))
        log_hr_draws = res.idata.posterior["log_hr"].isel(treatment=0).values.ravel()
        fp = fast_posterior(patients, fast_model, sites)
        for cutoff in (1.0, 0.8):
            p_mcmc = float(np.mean(log_hr_draws < np.log(cutoff)))
            diffs.append(abs(float(fp.prob_hr_below(cutoff)[0]) - p_mcmc))
        assert fp.log_hr_sd[0] == pytest.approx(log_hr_draws.std(), rel=0.1)
    # 10,000 draws: MCMC error of a probability ≤ 0.005 (iid) — the 0.02 criterion is
    # dominated by the approximation, not by Monte Carlo noise
    assert max(diffs) < 0.02
