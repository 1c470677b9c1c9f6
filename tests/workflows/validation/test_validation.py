"""Self-validation machinery: ranks and uniformity tests on exact posteriors, prior draws,
coverage arithmetic, resume, and the `validate` command end to end on a tiny study."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from scipy import stats

from bayes_ablation.inference import uniformity as uni
from bayes_ablation.workflows.validation.coverage import coverage_table, estimates_table, parse_truth
from bayes_ablation.workflows.validation.runner import (
    SimulationTask,
    make_tasks,
    run_study,
    summarise_draws,
)
from bayes_ablation.workflows.validation.sbc import summarise_sbc

# ----------------------------------------------------------------------------------------
# an exactly solvable model: θ ~ N(0, 1), y_1..n | θ ~ N(θ, 1)  ⇒  θ | y ~ N(Σy/(n+1), 1/(n+1))

N_OBS = 5


def conjugate_record(index: int, seed: int, *, sd_factor: float = 1.0, shift: float = 0.0,
                     theta: float | None = None, rank_draws: int = 99) -> dict[str, Any]:
    """One SBC simulation with exact posterior draws (optionally made mis-calibrated: sd scaled
    by ``sd_factor``, mean shifted by ``shift`` posterior sds). ``theta`` fixes the truth."""
    rng = np.random.default_rng([seed, index])
    truth = rng.normal() if theta is None else theta
    y = rng.normal(truth, 1.0, N_OBS)
    sd = 1.0 / np.sqrt(N_OBS + 1)
    mean = y.sum() / (N_OBS + 1)
    draws = rng.normal(mean + shift * sd, sd_factor * sd, size=(4, 250))
    return {"index": index, "status": "ok", "flags": [],
            "params": {"theta": summarise_draws(draws, truth, rank_draws)},
            "diagnostics": {"divergences": 0}}


def conjugate_task(task: SimulationTask, cores: int = 1) -> dict[str, Any]:
    """A stand-in for run_simulation with the conjugate model (module-level: picklable)."""
    if task.index == INTERRUPT_AT.get("index"):
        raise KeyboardInterrupt
    CALLS.append(task.index)
    return conjugate_record(task.index, task.seed, rank_draws=task.rank_draws)


INTERRUPT_AT: dict[str, int] = {}
CALLS: list[int] = []


def records(n: int, **kw: Any) -> list[dict[str, Any]]:
    return [conjugate_record(i, 2024, **kw) for i in range(n)]


def test_ranks_of_an_exact_posterior_are_uniform():
    recs = records(400)
    for r in recs[::4]:
        r["flags"] = ["rhat"]  # flagged fits are counted, and their ranks kept
    summary = summarise_sbc(recs, ["theta"], 99)
    row = summary.tests.iloc[0]
    assert summary.passed, summary.verdict
    assert row["n"] == 400 and summary.problems["flagged"] == 100
    assert summary.problems["by_flag"] == {"divergences": 0, "rhat": 100, "low_ess": 0}
    assert summary.tests_flagged.iloc[0]["n"] == 100
    assert summary.tests_unflagged.iloc[0]["n"] == 300
    failed = [*recs, {"index": 400, "status": "error", "stage": "fit", "error": "x", "flags": []}]
    verdict = summarise_sbc(failed, ["theta"], 99)
    assert not verdict.passed and "1 of 401 simulations failed" in verdict.verdict
    assert row["chi2_p"] > 0.01 and row["ecdf_p"] > 0.01
    # SBC implies nominal coverage on average over the prior
    cov = summary.coverage.iloc[0]
    for level in (0.5, 0.8, 0.95):
        assert abs(cov[f"coverage_{level:g}"] - level) < 4 * cov[f"coverage_{level:g}_mcse"]


@pytest.mark.parametrize("kw, shape", [
    ({"sd_factor": 0.6}, "overconfident: U-shaped ranks"),
    ({"sd_factor": 1.6}, "underconfident: hump-shaped ranks"),
    ({"shift": 0.6}, "biased: ranks piled at one end"),
])
def test_miscalibrated_posteriors_are_rejected(kw, shape):
    recs = records(400, **kw)
    recs[3] = {"index": 3, "status": "error", "stage": "fit", "error": "boom", "flags": []}
    summary = summarise_sbc(recs, ["theta"], 99)
    assert summary.problems["errors"] == 1 and summary.problems["error_list"][0]["error"] == "boom"
    assert not summary.passed, shape
    assert summary.rejected == ["theta"]
    assert summary.tests.iloc[0]["ecdf_p"] < 1e-3


def test_rank_and_thinning_arithmetic():
    assert uni.rank_of(0.5, np.array([0.1, 0.6, 0.4])) == 2
    assert uni.rank_of(-9.0, np.arange(5.0)) == 0 and uni.rank_of(9.0, np.arange(5.0)) == 5
    draws = np.arange(1000.0).reshape(4, 250)
    kept = uni.thin(draws, 99)
    assert kept.size == 99 and kept[0] == 0 and kept[-1] == 999
    assert np.all(np.diff(kept) >= 10)  # evenly spread over all chains
    with pytest.raises(ValueError):
        uni.thin(draws, 1001)


def test_chi_square_on_binned_ranks():
    assert uni.n_bins(200, 99) == 20 and uni.n_bins(20, 99) == 4 and uni.n_bins(12, 99) == 2
    flat = np.repeat(np.arange(100), 2)  # exactly uniform
    chi = uni.chi_square_test(flat, 99)
    assert chi.statistic == 0 and chi.p_value == 1 and chi.bins == 20
    lumped = np.zeros(40, dtype=int)  # all ranks 0: every count in bin 1 of 5
    chi = uni.chi_square_test(lumped, 99, bins=5)
    assert chi.statistic == pytest.approx(40 * 4)  # Σ (n_b − N/B)²/(N/B) = N (B − 1)
    assert chi.p_value == pytest.approx(stats.chi2.sf(160, 4))
    with pytest.raises(ValueError):
        uni.binned_counts(np.array([0, 100]), 99, 20)


def test_ecdf_test_has_its_nominal_size_and_matches_arviz_band():
    rng = np.random.default_rng(5)
    p = np.array([uni.ecdf_test(rng.integers(0, 100, 100), 99).p_value for _ in range(300)])
    # P(reject at 5%) under uniformity: 0.05 ± 3 binomial SEs
    assert abs(np.mean(p < 0.05) - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 300)
    from arviz_stats.ecdf_utils import simulate_confidence_bands

    n, max_rank = 1000, 99  # large N: no count can be 0, where arviz's helper drops a tail
    z = np.arange(1, max_rank + 1) / (max_rank + 1)
    mine = uni.ecdf_test(rng.integers(0, 100, n), max_rank).pointwise_level
    theirs = 1 - simulate_confidence_bands(n, 1, z, 0.95, 2000, np.random.default_rng(1))
    assert theirs == pytest.approx(mine, rel=0.25)


def test_prior_draws_match_pymc_for_every_family():
    import pymc as pm

    from bayes_ablation.endpoints.prior_draws import draw_prior
    from bayes_ablation.endpoints.priors import prior
    from bayes_ablation.spec.plan import PRIOR_FAMILIES, PriorSpec

    params = {"mu": 0.3, "sigma": 0.7, "nu": 4.0, "beta": 0.5, "lam": 2.0, "alpha": 3.0,
              "lower": -1.0, "upper": 2.0}
    specs = {fam: PriorSpec(fam, {k: params[k] for k in keys}, "test")
             for fam, keys in PRIOR_FAMILIES.items()}
    specs["gamma"] = PriorSpec("gamma", {"alpha": 3.0, "beta": 2.0}, "rate 2: mean 1.5")
    with pm.Model():
        rvs = [prior(fam, s) for fam, s in specs.items()]
    pymc_draws = pm.draw(rvs, draws=3000, random_seed=1, mode="FAST_COMPILE")
    rng = np.random.default_rng(2)
    for (fam, spec), theirs in zip(specs.items(), pymc_draws, strict=True):
        ours = draw_prior(spec, rng, 3000)
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3, fam
    assert isinstance(draw_prior(specs["normal"], rng), float)


# ------------------------------------------------------------------------------- coverage

def test_coverage_bias_rmse_and_their_mcse():
    import pandas as pd

    from bayes_ablation.workflows.validation.runner import QUANTILE_PROBS

    truth = np.array([0.0, 0.0, 0.0, 0.0])
    mean = np.array([0.1, -0.3, 0.2, 0.4])
    half = {0.25: 0.15, 0.1: 0.25, 0.025: 0.35}  # interval half-widths per lower quantile
    rows = []
    for i, (t, m) in enumerate(zip(truth, mean, strict=True)):
        q = {}
        for lo, w in half.items():
            q[f"q{lo:g}"], q[f"q{1 - lo:g}"] = m - w, m + w
        q.update({f"q{p:g}": m for p in QUANTILE_PROBS if f"q{p:g}" not in q})
        rows.append({"simulation": i, "parameter": "a", "truth": t, "mean": m, "sd": 0.2, **q})
    table = coverage_table(pd.DataFrame(rows)).iloc[0]
    # |error| = .1 .3 .2 .4 ⇒ inside ±.15: 1 of 4; ±.25: 2 of 4; ±.35: 3 of 4
    assert table["coverage_0.5"] == 0.25 and table["coverage_0.8"] == 0.5
    assert table["coverage_0.95"] == 0.75
    assert table["coverage_0.8_mcse"] == pytest.approx(np.sqrt(0.5 * 0.5 / 4))
    assert table["bias"] == pytest.approx(0.1)
    assert table["bias_mcse"] == pytest.approx(np.std(mean, ddof=1) / 2)
    assert table["rmse"] == pytest.approx(np.sqrt(np.mean(mean**2)))
    mse_mcse = np.std(mean**2, ddof=1) / 2
    assert table["rmse_mcse"] == pytest.approx(mse_mcse / (2 * table["rmse"]))


def test_fixed_truth_coverage_agrees_with_the_exact_frequentist_coverage():
    """At fixed θ₀ the central q-interval m ± z sd (m = Σy/(n+1), sd² = 1/(n+1)) covers θ₀
    with probability Φ((z·sd + b)/s) − Φ((−z·sd + b)/s), b = θ₀/(n+1), s = sqrt(n)/(n+1)."""
    theta0, n_sims = 1.5, 1500
    recs = [conjugate_record(i, 7, theta=theta0) for i in range(n_sims)]
    table = coverage_table(estimates_table(recs, ["theta"])).iloc[0]
    sd, b, s = 1 / np.sqrt(N_OBS + 1), theta0 / (N_OBS + 1), np.sqrt(N_OBS) / (N_OBS + 1)
    for level in (0.5, 0.8, 0.95):
        zq = stats.norm.ppf(0.5 + level / 2)
        exact = stats.norm.cdf((zq * sd + b) / s) - stats.norm.cdf((-zq * sd + b) / s)
        assert exact < level  # shrinkage towards 0 under-covers a truth far from the prior mean
        se = np.sqrt(exact * (1 - exact) / n_sims)
        assert abs(table[f"coverage_{level:g}"] - exact) < 4 * se, level
    assert table["bias"] == pytest.approx(-b, abs=4 * table["bias_mcse"])


def test_truth_parsing_reports_every_problem(weibull_spec):
    from bayes_ablation.endpoints.sbc import ValidationSetupError

    need = ["log_hr", "log_cumhaz_ref", "weibull_shape", "sigma_site"]
    ok = parse_truth(["log_hr=-0.25", "log_cumhaz_ref=-0.7", "weibull_shape=1.2",
                      "sigma_site=0.3"], weibull_spec, need)
    assert ok == {"log_hr": -0.25, "log_cumhaz_ref": -0.7, "weibull_shape": 1.2,
                  "sigma_site": 0.3}
    with pytest.raises(ValidationSetupError) as err:
        parse_truth(["log_hr=abc", "sigma_site=-1", "tau=0.2", "nonsense"], weibull_spec, need)
    msg = str(err.value)
    for fragment in ("'abc' is not a number", "sigma_site: must be > 0", "tau: not a parameter",
                     "'nonsense': expected NAME=VALUE", "log_cumhaz_ref=VALUE is missing",
                     "weibull_shape=VALUE is missing"):
        assert fragment in msg


# --------------------------------------------------------------------------------- resume

def test_interrupted_study_resumes_with_the_same_results(tmp_path, weibull_spec):
    from bayes_ablation.core.parallel import CheckpointError

    tasks = make_tasks(weibull_spec, "sbc", 30, design={"n": 1}, rank_draws=99)
    full = run_study(tasks, workers=1, progress=False, simulate=conjugate_task)
    CALLS.clear()
    INTERRUPT_AT["index"] = 17
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(tasks, workers=1, progress=False, checkpoint_dir=tmp_path,
                      simulate=conjugate_task, chunk_size=5)
    finally:
        INTERRUPT_AT.clear()
    assert CALLS == list(range(17))  # chunks 0-4, 5-9, 10-14 are saved; 15, 16 are lost
    CALLS.clear()
    resumed = run_study(tasks, workers=1, progress=False, checkpoint_dir=tmp_path,
                        simulate=conjugate_task, chunk_size=3)
    assert CALLS == list(range(15, 30))
    assert [json.dumps(r, sort_keys=True) for r in resumed] == \
        [json.dumps(r, sort_keys=True) for r in full]
    other = make_tasks(weibull_spec, "sbc", 30, design={"n": 1}, rank_draws=49)
    with pytest.raises(CheckpointError, match="different study"):
        run_study(other, workers=1, progress=False, checkpoint_dir=tmp_path,
                  simulate=conjugate_task)


def test_task_seeds_depend_on_study_and_index_only(weibull_spec):
    a = make_tasks(weibull_spec, "sbc", 3, design={}, rank_draws=99)
    recs = [conjugate_task(t) for t in a]
    again = [conjugate_task(t) for t in reversed(a)][::-1]
    assert recs == again
    assert a[0].seed == weibull_spec.sampler.seed
    assert make_tasks(weibull_spec, "sbc", 3, design={}, rank_draws=99, seed=5)[1].seed == 5


# --------------------------------------------------------------------- command, end to end

def test_validate_sbc_command_writes_a_bundle_and_resumes(tmp_path, weibull_spec):
    from bayes_ablation.cli.main import main
    from bayes_ablation.results.bundle import read_summary
    from bayes_ablation.workflows.validation.runner import load_study

    out, ckpt = tmp_path / "sbc", tmp_path / "ckpt"
    argv = ["validate", "sbc", "--spec", weibull_spec.source_path, "--n-sims", "3",
            "--out", str(out), "--workers", "1", "--quiet", "--chains", "2", "--draws", "100",
            "--tune", "150", "--rank-draws", "19", "--design", "n_patients=80",
            "--checkpoint", str(ckpt)]
    assert main(argv) == 0
    summary = read_summary(out)  # checks the manifest
    assert summary["fit_problems"]["simulations"] == 3
    assert summary["provenance"]["design"]["n_patients"] == 80
    assert summary["provenance"]["sampler_settings"]["draws"] == 100
    assert summary["provenance"]["resumed_from_checkpoint"] == 0
    names = {p["parameter"] for p in summary["uniformity"]}
    assert names == {"log_hr", "log_cumhaz_ref", "weibull_shape", "sigma_site", "u_site[S01]"}
    for f in ("report.html", "ranks.csv", "uniformity.csv", "simulations.jsonl.gz", "spec.toml",
              "figures/rank_histograms.png", "figures/ecdf_difference.png"):
        assert (out / f).is_file(), f
    study = load_study(out)
    lines = study.records
    assert summarise_sbc(study.records, study.key_parameters, study.rank_draws).verdict == \
        summary["verdict"]
    assert all(r["status"] == "ok" for r in lines), [r.get("error") for r in lines]
    ranks = [r["params"]["log_hr"]["rank"] for r in lines]
    assert all(0 <= r <= 19 for r in ranks)
    assert main(argv) == 2  # the bundle exists: refused without --force
    # everything is checkpointed: a forced re-run recomputes nothing and gives the same ranks
    assert main([*argv, "--force"]) == 0
    again = read_summary(out)
    assert again["provenance"]["resumed_from_checkpoint"] == 3
    lines2 = load_study(out).records
    assert [r["params"]["log_hr"]["rank"] for r in lines2] == ranks


def test_validate_coverage_rejects_bad_truth_before_fitting(tmp_path, weibull_spec, capsys):
    from bayes_ablation.cli.main import main

    code = main(["validate", "coverage", "--spec", weibull_spec.source_path, "--n-sims", "2",
                 "--out", str(tmp_path / "cov"), "--truth", "log_hr=-0.25", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "weibull_shape=VALUE is missing" in err and not (tmp_path / "cov").exists()


# ------------------------------------------------------------------------- committed results

def _committed_sbc_bundles():
    from tests.conftest import ROOT

    return sorted(p for p in (ROOT / "bench" / "sbc").glob("*") if p.is_dir()
                  and not p.name.endswith(".checkpoint"))  # a run in progress


def test_every_shipped_analysis_spec_has_a_committed_full_sbc_run():
    shipped = {s.name for s in _analysis_specs()}
    committed = {p.name for p in _committed_sbc_bundles()}
    assert shipped <= committed, f"no bench/sbc/<spec> bundle for {sorted(shipped - committed)}"


def test_readmes_show_the_committed_sbc_results():
    """README.md and bench/sbc/README.md hold the table bench/sbc/table.py makes from the
    committed bundles (``python bench/sbc/table.py --write`` after a re-run)."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("sbc_table", ROOT / "bench/sbc/table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, prefix in module.TARGETS.items():
        assert module.table(prefix) in path.read_text(), \
            f"{path} does not show the committed SBC results: python bench/sbc/table.py --write"


@pytest.mark.parametrize("bundle", _committed_sbc_bundles(), ids=lambda p: p.name)
def test_committed_sbc_results_are_intact_and_reproduce_their_verdict(bundle):
    """The committed bundle is unmodified (manifest hashes), ran the full 200 simulations of the
    spec it names as that spec is shipped now, and re-summarising its records gives the
    recorded tests and verdict."""
    from bayes_ablation.results.bundle import read_summary
    from bayes_ablation.spec.plan import load_spec
    from bayes_ablation.workflows.validation.runner import load_study
    from tests.conftest import MODELS

    summary = read_summary(bundle)
    study = load_study(bundle)
    assert summary["provenance"]["spec_name"] == bundle.name
    # the latest results: produced from the spec file as it is shipped now
    shipped = load_spec(MODELS / f"{bundle.name}.toml")
    assert summary["provenance"]["source_spec_sha256"] == shipped.sha256, \
        f"bench/sbc/{bundle.name} was run on an older version of models/{bundle.name}.toml"
    assert len(study.records) == summary["provenance"]["n_simulations"] >= 200
    again = summarise_sbc(study.records, study.key_parameters, study.rank_draws)
    assert again.verdict == summary["verdict"]
    recorded = {u["parameter"]: u["chi2_p"] for u in summary["uniformity"]}
    assert dict(zip(again.tests["parameter"], again.tests["chi2_p"], strict=True)) == \
        pytest.approx(recorded, abs=1e-9)


# ------------------------------------------------------------------------------------ slow

@pytest.mark.slow
def test_small_sbc_of_the_weibull_model_is_calibrated(weibull_spec):
    """20 simulations at the command's default settings (the spec's 4 chains × 1000 draws,
    L = 99, the default design): no fit fails and no uniformity test rejects at p < 0.001."""
    from bayes_ablation.workflows.validation.runner import run_validation

    study = run_validation(weibull_spec, "sbc", 20, workers=1, progress=False)
    summary = summarise_sbc(study.records, study.key_parameters, study.rank_draws)
    assert summary.problems["errors"] == 0, summary.problems["error_list"]
    # the full 200-simulation run (bench/sbc/pfs_weibull_site) has divergences in 7 fits (3.5%):
    # P(more than 3 of 20 | 3.5%) = 0.46%
    assert summary.problems["by_flag"].get("divergences", 0) <= 3
    assert len(summary.tests) == 5
    assert (summary.tests[["chi2_p", "ecdf_p"]].min(axis=1) > 0.001).all(), summary.tests


# ---------------------------------------------------------------------------------- adapters

def _analysis_specs():
    from bayes_ablation.errors import SpecError
    from bayes_ablation.spec.plan import load_spec
    from tests.conftest import MODELS

    out = []
    for path in sorted(MODELS.glob("*.toml")):
        try:
            out.append(load_spec(path))
        except SpecError:  # e.g. an interim-monitoring design, not an analysis spec
            continue
    return out


def test_every_shipped_model_has_an_adapter_that_matches_its_model():
    """For every spec in models/: a prior draw simulates a data set the spec's model accepts,
    and the adapter reads every key parameter, by name and coordinate, from that model's own
    prior draws (so a renamed variable or coordinate fails here, not in a long SBC run)."""
    import pymc as pm

    from bayes_ablation.endpoints.sbc import get_adapter
    from bayes_ablation.workflows.validation.runner import compiled_model_key

    specs = _analysis_specs()
    assert {s.model for s in specs} >= {"weibull", "piecewise_exponential", "lr_weibull",
                                         "lr_pwe", "normal_normal", "weibull_ipd_ad"}
    for spec in specs:
        adapter = get_adapter(spec)
        design = adapter.design({})
        study_spec = adapter.study_spec(spec, design)
        rng = np.random.default_rng(3)
        params = adapter.draw_parameters(study_spec, rng)
        assert set(params) == set(adapter.generative_parameters(study_spec))
        sim = adapter.simulate(study_spec, params, design, rng)
        truth = adapter.truth_values(sim.truth, study_spec)
        assert list(truth) == adapter.key_parameters(study_spec), spec.name
        assert all(np.isfinite(v) for v in truth.values()), (spec.name, truth)
        for name in adapter.generative_parameters(study_spec):
            if name in truth:
                assert truth[name] == pytest.approx(params[name]), (spec.name, name)
        model = adapter.build(study_spec, sim.data)
        prior = pm.sample_prior_predictive(draws=3, model=model, random_seed=1,
                                           compile_kwargs={"mode": "FAST_COMPILE"})
        draws = adapter.posterior_draws(prior.prior.to_dataset(), study_spec)
        assert list(draws) == adapter.key_parameters(study_spec)
        assert all(d.shape == (1, 3) for d in draws.values()), spec.name
        assert compiled_model_key(study_spec)[0] == spec.model


def test_lr_simulator_baseline_options_reproduce_the_default_parameterisation():
    from bayes_ablation.data.simulate_lr import simulate_lr_trial

    base = {"n_patients": 40, "n_sites": 2, "seed": 4, "weibull_shape": 1.0}
    c = 0.2
    default = simulate_lr_trial(**base, lr_cuminc_24_ref=c)
    direct = simulate_lr_trial(**base, lr_log_lambda0=float(np.log(-np.log1p(-c)) - np.log(24)))
    assert default.lesions.equals(direct.lesions)
    # a constant piecewise hazard is the exponential (Weibull k = 1) hazard
    rate = -np.log1p(-c) / 24
    flat = simulate_lr_trial(**base, lr_baseline_cuts_months=(3.0, 12.0),
                             lr_baseline_hazards=[rate, rate, rate])
    np.testing.assert_allclose(flat.details["lr_time_months"], default.details["lr_time_months"],
                               rtol=1e-10)
    np.testing.assert_allclose(flat.truth["log_hazard_baseline"],
                               [default.truth["log_cumhaz_ref"] - np.log(12.0)] * 3, rtol=1e-10)
