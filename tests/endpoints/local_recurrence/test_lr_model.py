"""The LR model: its interval-censored likelihood, recovery of simulation truth, LOO, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayes_ablation.data.lesions import lr_data_from_frames
from bayes_ablation.data.simulate_lr import simulate_lr_trial
from bayes_ablation.endpoints.local_recurrence.model import log_interval_prob, safe_upper
from bayes_ablation.endpoints.pfs.model import weibull_logp
from bayes_ablation.spec.plan import load_spec
from tests.conftest import MODELS

SIM = {"n_patients": 300, "n_sites": 6, "seed": 3, "lr_cuminc_24_ref": 0.12}


@pytest.fixture(scope="module")
def interval_logp():
    lower, upper, interval, log_lam, k = (pt.dvector(n) for n in ("l", "u", "i", "g", "k"))
    out = log_interval_prob(lower, upper, interval, log_lam, k)
    grad = pt.grad(out.sum(), [log_lam, k])
    # value checks only: the Python linker (no C/numba compile of a throw-away graph)
    return (pytensor.function([lower, upper, interval, log_lam, k], out, mode="FAST_COMPILE"),
            pytensor.function([lower, upper, interval, log_lam, k], grad, mode="FAST_COMPILE"))


def _naive(lower, upper, log_lam, k):
    s = lambda t: np.exp(-np.exp(log_lam) * t**k)  # noqa: E731
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(upper),
                        np.log(s(lower) - s(np.where(np.isfinite(upper), upper, 1.0))),
                        np.log(s(lower)))


def test_interval_likelihood_is_log_of_survival_difference(interval_logp):
    f, g = interval_logp
    lower = np.array([0.0, 3.0, 5.9, 12.0, 0.0, 24.0, 30.0])
    upper = np.array([3.1, 6.0, 9.2, np.inf, np.inf, 30.0, 36.0])
    log_lam = np.array([-3.0, -2.0, -4.0, -1.0, -2.5, 0.5, -6.0])
    k = np.array([0.8, 1.0, 1.4, 0.7, 1.1, 1.2, 0.9])
    u_safe, interval = safe_upper(lower, upper)
    np.testing.assert_allclose(f(lower, u_safe, interval, log_lam, k),
                               _naive(lower, upper, log_lam, k), rtol=1e-10)
    grads = g(lower, u_safe, interval, log_lam, k)
    assert all(np.all(np.isfinite(x)) for x in grads)           # L = 0 and U = inf rows too


def test_narrow_intervals_converge_to_the_exact_right_censored_likelihood(interval_logp):
    """log P(T−ε < T ≤ T) = log f(T) + log ε + O(ε): likelihood *ratios* between parameter
    values (hence the posterior) converge to those of exactly observed times."""
    f, _ = interval_logp
    sim = simulate_lr_trial(80, n_sites=2, seed=9, lr_cuminc_24_ref=0.3, no_deaths=True)
    t = sim.details["lr_time_months"].to_numpy()
    c = sim.details["followup_months"].to_numpy()
    event = (t <= c).astype(float)
    time = np.minimum(t, c)
    rng = np.random.default_rng(0)
    points = [(rng.normal(-3, 0.5, t.size), rng.uniform(0.6, 1.5)) for _ in range(4)]

    log_lam_in, k_in = pt.dvector("log_lam"), pt.dscalar("k")
    exact_fn = pytensor.function([log_lam_in, k_in], weibull_logp(
        pt.as_tensor(time), log_lam_in, k_in, pt.as_tensor(event)).sum(), mode="FAST_COMPILE")

    def exact(log_lam, k):
        return float(exact_fn(log_lam, k))

    def interval(eps, log_lam, k):
        lower = np.where(event == 1, np.maximum(time - eps, 0.0), time)
        upper = np.where(event == 1, time, np.inf)
        u_safe, ind = safe_upper(lower, upper)
        return float(f(lower, u_safe, ind, log_lam, np.full(t.size, k)).sum())

    ref = [exact(*p) for p in points]
    errors = []
    for eps in (1e-1, 1e-3, 1e-5):
        vals = [interval(eps, *p) for p in points]
        errors.append(max(abs((v - vals[0]) - (r - ref[0])) for v, r in zip(vals, ref,
                                                                           strict=True)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3
    assert event.sum() > 20


@pytest.fixture(scope="session")
def lr_spec():
    return load_spec(MODELS / "local_recurrence_lesion.toml").with_sampler(
        chains=4, draws=500, tune=700)


@pytest.fixture(scope="session")
def lr_sim():
    return simulate_lr_trial(**SIM)


@pytest.fixture(scope="session")
def lr_fit(lr_spec, lr_sim):
    from bayes_ablation.workflows.fit import fit

    lesions = lr_data_from_frames(lr_sim.patients, lr_sim.lesions,
                                  reference_arm=lr_spec.reference_arm,
                                  covariates=lr_spec.covariates)
    return fit(lr_spec, lesions.patients, lesions=lesions), lesions


def test_fit_recovers_lr_hazard_ratio_lesion_effects_and_frailty_sd(lr_fit, lr_sim):
    result, _ = lr_fit
    post = result.idata.posterior
    truth = lr_sim.truth

    def interval(da):
        v = da.values.reshape(-1)
        return np.quantile(v, [0.025, 0.975]), float(np.std(v))

    checks = {"log_hr": (post["log_hr"].sel(treatment="perioperative"), truth["log_hr"]),
              "sigma_patient": (post["sigma_patient"], truth["sigma_patient"]),
              "death_log_hr": (post["death_log_hr"].sel(treatment="perioperative"),
                               truth["death_log_hr"])}
    for name, value in truth["beta_covariates"].items():
        checks[name] = (post["beta_covariates"].sel(covariate=name), value)
    for name, (da, true) in checks.items():
        (lo, hi), _ = interval(da)
        assert lo < true < hi, f"{name}: truth {true:.3f} outside 95% interval [{lo:.3f}, {hi:.3f}]"
    # the data are informative, not just the prior
    assert interval(checks["log_hr"][0])[1] < 0.25
    assert interval(checks["margin_lt_5mm"][0])[1] < 0.25
    assert interval(checks["sigma_patient"][0])[0][0] > 0.3
    assert result.diagnostics.divergences == 0


def test_fit_estimands_and_checks_are_consistent(lr_fit, lr_sim):
    result, lesions = lr_fit
    table = result.estimand_table
    labels = set(table["label"])
    assert "cif_lr_difference[perioperative, standardised, average_site, t=24]" in labels
    assert "cif_lr[postoperative, reference, typical_patient, t=12]" in labels
    assert 0 <= result.probabilities["P(HR<1) [perioperative]"] <= 1
    summary = result.to_dict()
    counts = summary["posterior_predictive_lr"]["lr_count_arm"]
    assert set(counts) == {"postoperative", "perioperative"}
    for arm, c in counts.items():
        assert c["observed"] == lesions.observed[lesions.arm_idx == (arm == "perioperative")].sum()
        assert c["lower"] <= c["observed"] <= c["upper"]
    assert json.dumps(summary, default=str)


def test_cumulative_incidence_check_passes_when_the_model_is_right_and_fails_when_not(
        lr_fit, lr_spec):
    """Replicated-data band of the Turnbull NPMLE: the data the model was fitted to lie in it;
    the same lesions with 3x the LR hazard (same seed: same patients, lesions, scans) do not.
    The replicated band also carries sampling noise: the median width of the band at 12-24
    months is > 0.02 (a posterior band of the fitted curve alone would be narrower)."""
    from bayes_ablation.endpoints.local_recurrence.checks import lr_ppc

    result, lesions = lr_fit
    check = result.checks["lr_cumulative_incidence"]
    assert check.attrs["replicates"] == 200
    assert (check["inside"] >= 0.9).all(), check["inside"].values
    t = check["time"].values
    mid = (t >= 12) & (t <= 24)
    width = (check["upper"] - check["lower"]).isel(time=np.flatnonzero(mid))
    assert float(width.median()) > 0.02

    shifted = simulate_lr_trial(**{**SIM, "lr_cuminc_24_ref": 0.32})
    other = lr_data_from_frames(shifted.patients, shifted.lesions,
                                reference_arm=lr_spec.reference_arm,
                                covariates=lr_spec.covariates)
    assert other.observed.sum() > 1.5 * lesions.observed.sum()
    wrong = lr_ppc(result.idata, lr_spec, other, 100, 0)
    assert (wrong["lr_cumulative_incidence"]["inside"] < 0.5).all()
    assert (wrong["lr_count_arm"]["p_rep_ge_obs"] < 0.025).all()


def test_pointwise_log_likelihood_supports_loo(lr_fit, lr_spec):
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.local_recurrence.checks import lr_loo

    result, lesions = lr_fit
    loo, n_constant = lr_loo(result.idata, build_model(lr_spec, lesions))
    never_scanned = int(((lesions.lower == 0) & (lesions.observed == 0)).sum())
    assert n_constant == never_scanned
    assert loo.elpd_i.size == lesions.n_lesions - never_scanned
    assert np.isfinite(loo.elpd) and loo.elpd < 0


def test_cli_fits_lr_bundle(lr_fit, lr_sim, tmp_path, capsys):
    """The CLI on the recovery data with the arms swapped and patients and sites relabelled:
    same model structure, so the compiled model is reused with the new data swapped in."""
    from bayes_ablation.cli.main import main
    from bayes_ablation.results.bundle import open_posterior, read_summary

    patients, lesions = lr_sim.patients.copy(), lr_sim.lesions.copy()
    patients["arm"] = patients["arm"].map({"postoperative": "perioperative",
                                           "perioperative": "postoperative"})
    patients["patient_id"] = "Q" + patients["patient_id"]
    lesions["patient_id"] = "Q" + lesions["patient_id"]
    patients["site"] = patients["site"].str.replace("S", "C")
    patients.to_csv(tmp_path / "patients.csv", index=False)
    lesions.to_csv(tmp_path / "lesions.csv", index=False)
    out = tmp_path / "bundle"
    args = ["fit", "--spec", str(MODELS / "local_recurrence_lesion.toml"),
            "--data", str(tmp_path / "patients.csv"), "--lesions", str(tmp_path / "lesions.csv"),
            "--out", str(out), "--draws", "200", "--tune", "300", "--chains", "2", "--quiet"]
    assert main(args) == 0
    summary = read_summary(out)
    assert summary["analysis"]["endpoint"] == "local_recurrence"
    assert summary["provenance"]["timings_seconds"]["compile_cache_hit"] is True
    first = float(lr_fit[0].posterior["log_hr"].mean())
    swapped = summary["estimands"]["log_hr[perioperative]"]["mean"]
    assert first < -0.15 and swapped == pytest.approx(-first, abs=0.15)
    post = open_posterior(out)["posterior"]
    assert str(post["z_patient"]["patient"].values[0]).startswith("Q")
    assert list(post["u_site"]["site"].values) == [f"C{i:02d}" for i in range(1, 7)]
    assert summary["provenance"]["n_lesions"] == len(lr_sim.lesions)
    assert "posterior_predictive_lr" in summary
    html = (out / "report.html").read_text()
    assert "Local recurrence: model and estimands" in html
    for fig in ("cif_lr", "ppc_lr_counts", "lr_cumulative_incidence_check", "hr_posterior"):
        assert (out / "figures" / f"{fig}.png").is_file()
    printed = capsys.readouterr().out
    assert "cif_lr_difference[perioperative, standardised, average_site, t=24]" in printed

    bad = lesions.copy()
    bad.loc[0, "patient_id"] = "P999"
    bad.loc[1, "lr_upper_months"] = 0.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    common = ["fit", "--spec", str(MODELS / "local_recurrence_lesion.toml"), "--data",
              str(tmp_path / "patients.csv"), "--out", str(tmp_path / "b2"), "--quiet"]
    assert main([*common, "--lesions", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, row 1, column 'patient_id'" in err
    assert "bad.csv, row 2, column 'lr_upper_months'" in err
    assert not (tmp_path / "b2").exists()
    assert main(common) == 2
    assert "--lesions" in capsys.readouterr().err


@pytest.mark.slow
def test_narrow_interval_fit_matches_the_right_censored_weibull_fit():
    """One lesion per patient, no frailty, no covariates: the LR model fitted to intervals of
    width 1e-4 around the exact times gives the posterior of the right-censored Weibull PH
    model (``models/pfs.py``) fitted to the exact times under the same priors."""
    import pandas as pd

    from bayes_ablation.data.schema import patients_from_frame
    from bayes_ablation.workflows.fit import fit

    sim = simulate_lr_trial(300, n_sites=6, seed=4, p_single_lesion=1.0, sigma_patient=0.0,
                            beta_size_per_cm=0.0, beta_margin_lt_5mm=0.0, beta_rfa=0.0,
                            lr_cuminc_24_ref=0.4, no_deaths=True)
    t = sim.details["lr_time_months"].to_numpy()
    c = sim.details["followup_months"].to_numpy()
    event = t <= c
    time = np.minimum(t, c)
    eps = 1e-4
    lesions = sim.lesions.assign(lr_lower_months=np.where(event, time - eps, time),
                                 lr_upper_months=np.where(event, time, np.nan))
    pfs = load_spec(MODELS / "pfs_weibull_site.toml").with_sampler(chains=4, draws=1000)
    lr = load_spec(MODELS / "local_recurrence_lesion.toml").updated(
        analysis={"covariates": []}, model={"patient_frailty": False},
        priors={name: pfs.raw["priors"][name] for name in ("log_hr", "log_cumhaz_ref",
                                                          "weibull_shape", "sigma_site")}
        | {"sigma_patient": None, "beta_covariates": None},
        sampler={"chains": 4, "draws": 1000})
    table = lr_data_from_frames(sim.patients, lesions, reference_arm=lr.reference_arm)
    lr_fit = fit(lr, table.patients, lesions=table, run_ppc=False)
    frame = pd.DataFrame({"patient_id": sim.patients["patient_id"],
                          "site": sim.patients["site"], "arm": sim.patients["arm"],
                          "time_months": time, "event": event.astype(int)})
    pfs_fit = fit(pfs, patients_from_frame(frame, reference_arm=pfs.reference_arm),
                  run_ppc=False)
    for name in ("log_hr", "log_cumhaz_ref", "weibull_shape", "sigma_site"):
        a = lr_fit.posterior[name].values.ravel()
        b = pfs_fit.posterior[name].values.ravel()
        assert abs(a.mean() - b.mean()) < 0.1 * b.std(), name
        assert abs(a.std() / b.std() - 1) < 0.1, name
