"""Small version of bench/fast_vs_mcmc.py: the fast Laplace posterior agrees with full MCMC of
the same model (:mod:`bayes_ablation.endpoints.pfs.fast_reference`) on a few simulated looks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MODELS


def test_fast_posterior_probabilities_agree_with_mcmc():
    import nutpie

    from bayes_ablation.data.cut import cut_latent
    from bayes_ablation.endpoints.pfs.fast_reference import build_fast_reference
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.fast import FastModel, laplace, suff_stats
    from bayes_ablation.workflows.monitoring.oc import event_calendar_times, simulate_latent

    design = load_design(MODELS / "interim_design.toml")
    fm = FastModel.from_design(design)
    compiled = None
    diffs = []
    for seed, log_hr, n_events in ((1, -0.2, 60), (2, -0.1, 120)):
        tr = simulate_latent(300, 14.0, np.asarray(design.accrual.site_weights), (1, 1), log_hr,
                             18.0, 1.2, 0.3, 0.005, np.random.default_rng(seed))
        c = cut_latent(tr.entry, tr.event_time, tr.dropout_time,
                       float(event_calendar_times(tr)[n_events - 1]))
        en = c["enrolled"]
        d, e = suff_stats(c["time"][None], c["event"][None], tr.site[en], tr.arm[en],
                          fm.cuts_months, fm.n_sites)
        if compiled is None:
            model = build_fast_reference(d[0], e[0], baseline_mu=fm.baseline_mu,
                                         baseline_sd=fm.baseline_sd, log_hr_mu=fm.log_hr_mu,
                                         log_hr_sd=fm.log_hr_sd,
                                         sigma_site=design.spec.priors["sigma_site"])
            compiled = nutpie.compile_pymc_model(model)
        trace = nutpie.sample(compiled.with_data(events=d[0], exposure=e[0]), draws=2000,
                              tune=600, chains=4, cores=2, seed=seed, progress_bar=False)
        draws = trace.posterior["log_hr"].values.ravel()
        fp = laplace(d, e, fm)
        for cutoff in (1.0, 0.8):
            diffs.append(abs(float(fp.prob_hr_below(cutoff)[0])
                             - float(np.mean(draws < np.log(cutoff)))))
        assert fp.log_hr_sd[0] == pytest.approx(draws.std(), rel=0.1)
    # 8,000 draws: the MCMC's own error of a probability is ≤ 0.006 (iid bound), so the
    # 0.02 criterion measures the approximation
    assert max(diffs) < 0.02
