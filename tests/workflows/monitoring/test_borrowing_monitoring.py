"""Borrowing in interim monitoring: the fast path's borrowed posterior (exact identities,
derivatives, MCMC of the same model), PPoS under borrowing, operating characteristics of
borrowing vs none (type I error inflation under conflict), and ``monitor --external``."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from bayes_ablation.data.schema import patients_from_frame
from bayes_ablation.data.simulate import simulate_trial
from bayes_ablation.endpoints.borrowing.mixture import NormalMixture
from bayes_ablation.spec.borrowing import BorrowingSpec
from bayes_ablation.spec.design import parse_design
from bayes_ablation.spec.plan import PriorSpec
from bayes_ablation.workflows.monitoring.fast import (
    FastBorrowing,
    FastModel,
    _grad_hess,
    _log_post,
    _Node,
    fast_borrowing,
    laplace,
    prior_quantile,
    suff_stats,
    suff_stats_from_table,
    with_external,
)
from bayes_ablation.workflows.monitoring.oc import borrowing_table, run_oc, simulate_external
from tests.conftest import ROOT

CUTS = np.array([3.0, 6.0, 12.0, 18.0, 24.0])
EXAMPLE = ROOT / "examples" / "borrowing"
PRECISION = PriorSpec("lognormal", {"mu": 3.0, "sigma": 2.0}, "")


@pytest.fixture(scope="module")
def data():
    """A 300-patient trial (D, E) and 200 exchangeable external controls (D_ext, E_ext)."""
    sim = simulate_trial(300, 6, -0.3, seed=2)
    trial = patients_from_frame(sim.frame, reference_arm="postoperative")
    d, e = suff_stats_from_table(trial, CUTS)
    t_x, ev_x = simulate_external(200, (12.0, 48.0), 18.0, 1.2, 0.0, 0.0,
                                  np.random.default_rng(3))
    dx, ex = suff_stats(t_x[None], ev_x[None], np.zeros(200, int), np.zeros(200, int), CUTS, 1)
    return d, e, dx[0, 0, 0], ex[0, 0, 0]


def model(nodes=(0.3,), borrowing=None, **kw):
    base = FastModel(CUTS, 6, -3.0, 2.0, 0.0, 1.0, np.asarray(nodes, float), **kw)
    return replace(base, borrowing=borrowing)


def commensurate(k=7):
    return FastBorrowing("commensurate",
                         offset_sd_nodes=1 / np.sqrt(prior_quantile(PRECISION,
                                                                    (np.arange(k) + .5) / k)))


# ------------------------------------------------------------------------- fast path: exact

def test_power_prior_with_a0_zero_is_no_borrowing_to_the_last_bit(data):
    d, e, dx, ex = data
    none = laplace(d, e, model((0.15, 0.3, 0.6)))
    zero = laplace(d, e, model((0.15, 0.3, 0.6), FastBorrowing("power", a0=0.0)
                               .with_external(dx, ex)))
    # a0 · (D, E) = 0 adds exact zeros (equal up to the summation order of the extra row)
    for f in ("log_hr_mean", "log_hr_sd"):
        assert getattr(zero, f)[0] == pytest.approx(getattr(none, f)[0], rel=1e-12, abs=1e-15)
    assert zero.prob_hr_below(0.8)[0] == pytest.approx(none.prob_hr_below(0.8)[0], rel=1e-12)
    assert np.allclose(zero.weights, none.weights, rtol=1e-12, atol=0)


def test_full_borrowing_of_a_copy_of_the_control_arm_is_that_arm_twice(data):
    """Without site effects, external controls = a copy of the internal control arm (per
    interval) is the same Poisson likelihood as the trial with its control arm doubled."""
    d, e, _, _ = data
    d1, e1 = d.sum(axis=1, keepdims=True), e.sum(axis=1, keepdims=True)   # one site
    m0 = FastModel(CUTS, 1, -3.0, 2.0, 0.0, 1.0, np.array([0.0]))
    full = laplace(d1, e1, replace(m0, borrowing=FastBorrowing("full").with_external(
        d1[0, 0, 0], e1[0, 0, 0])))
    doubled_d, doubled_e = d1.copy(), e1.copy()
    doubled_d[:, :, 0] *= 2
    doubled_e[:, :, 0] *= 2
    ref = laplace(doubled_d, doubled_e, m0)
    assert full.log_hr_mean[0] == pytest.approx(ref.log_hr_mean[0], abs=1e-9)
    assert full.log_hr_sd[0] == pytest.approx(ref.log_hr_sd[0], rel=1e-9)
    # and the power prior's a0 multiplies the external statistics
    half = laplace(d1, e1, replace(m0, borrowing=FastBorrowing("power", a0=0.5).with_external(
        d1[0, 0, 0], e1[0, 0, 0])))
    full_half = laplace(d1, e1, replace(m0, borrowing=FastBorrowing("full").with_external(
        0.5 * d1[0, 0, 0], 0.5 * e1[0, 0, 0])))
    assert half.log_hr_mean[0] == pytest.approx(full_half.log_hr_mean[0], abs=1e-12)


def test_map_mixture_components_are_exact_normal_priors(data):
    """A one-component MAP prior on the log HR is that normal prior; two identical components
    are one."""
    d, e, _, _ = data

    class Spec:
        method, target = "map", "log_hr"

    class One:
        robust = NormalMixture((1.0,), (-0.2,), (0.3,))

    class Two:
        robust = NormalMixture((0.5, 0.5), (-0.2, -0.2), (0.3, 0.3))

    plain = laplace(d, e, FastModel(CUTS, 6, -3.0, 2.0, -0.2, 0.3, np.array([0.3])))
    for mix in (One, Two):
        fb = fast_borrowing(Spec, CUTS, 12.0, -3.0, 2.0, map_prior=mix)
        fp = laplace(d, e, model(borrowing=fb))
        assert fp.log_hr_mean[0] == pytest.approx(plain.log_hr_mean[0], abs=1e-10)
        assert fp.prob_hr_below(1.0)[0] == pytest.approx(plain.prob_hr_below(1.0)[0], abs=1e-10)


def test_narrow_commensurate_offset_is_full_borrowing(data):
    d, e, dx, ex = data
    full = laplace(d, e, model(borrowing=FastBorrowing("full").with_external(dx, ex)))
    tight = laplace(d, e, model(borrowing=FastBorrowing(
        "commensurate", offset_sd_nodes=np.array([1e-5])).with_external(dx, ex)))
    assert tight.log_hr_mean[0] == pytest.approx(full.log_hr_mean[0], abs=1e-6)
    assert tight.log_hr_sd[0] == pytest.approx(full.log_hr_sd[0], rel=1e-5)


@pytest.mark.parametrize("kind", ["commensurate", "map_baseline"])
def test_gradient_and_hessian_are_exact(data, kind):
    d, e, dx, ex = data
    if kind == "commensurate":
        m = model(borrowing=commensurate().with_external(dx, ex))
        node = _Node(0.3, offset_sd=0.3)
        x0 = 0.0
    else:
        class Spec:
            method, target = "map", "log_cumhaz_ref"

        class Mix:
            robust = NormalMixture((0.8, 0.2), (-0.85, -0.85), (0.15, 1.0))

        m = model(borrowing=fast_borrowing(Spec, CUTS, 12.0, -3.0, 2.0, map_prior=Mix))
        node = _Node(0.3, baseline_ref=(-0.85, 0.15))
        x0 = -3.0
    dd, ee = with_external(d, e, m)
    p = laplace(d, e, m).mode.shape[-1]
    f = lambda th: -_log_post(th[None], dd, ee, m, node, True)[0]  # noqa: E731
    jac = lambda th: -_grad_hess(th[None], dd, ee, m, node, True)[0][0]  # noqa: E731
    hess = lambda th: _grad_hess(th[None], dd, ee, m, node, True)[1][0]  # noqa: E731
    x = np.random.default_rng(1).normal(size=p) * 0.3 + x0
    assert optimize.check_grad(f, jac, x) < 1e-5 * np.linalg.norm(jac(x))
    assert np.allclose(hess(x), optimize.approx_fprime(x, jac, 1e-6), rtol=1e-4, atol=3e-3)


def test_map_baseline_prior_pins_the_control_log_cumulative_hazard():
    """No data: the posterior of g = log H₀(12) under a narrow MAP component sits at its mean
    (the base prior's induced law of g divided out), not pulled to the base prior's."""
    class Spec:
        method, target = "map", "log_cumhaz_ref"

    class Mix:
        robust = NormalMixture((1.0,), (-0.2,), (0.1,))

    fb = fast_borrowing(Spec, CUTS, 12.0, -3.0, 2.0, map_prior=Mix)
    assert abs(fb.induced_mean + 0.2) > 0.3          # the base prior alone would say otherwise
    d = np.zeros((1, 6, 2, CUTS.size + 1))
    fp = laplace(d, d, model(borrowing=fb), marginal=False)
    alpha = fp.mode[0, 0, :CUTS.size + 1]
    g = np.log(np.sum(fb.ref_exposure * np.exp(alpha)))
    assert g == pytest.approx(-0.2, abs=0.02)


def test_borrowing_shrinks_the_sd_and_conflict_is_discounted(data):
    d, e, dx, ex = data
    none = laplace(d, e, model())
    full = laplace(d, e, model(borrowing=FastBorrowing("full").with_external(dx, ex)))
    assert full.log_hr_sd[0] < 0.95 * none.log_hr_sd[0]
    # conflicting external controls (log cumulative hazard +1): full borrowing moves the log HR
    # far; commensurate stays near none
    t_x, ev_x = simulate_external(200, (12.0, 48.0), 18.0, 1.2, 1.0, 0.0,
                                  np.random.default_rng(3))
    cx, cex = suff_stats(t_x[None], ev_x[None], np.zeros(200, int), np.zeros(200, int), CUTS, 1)
    full_c = laplace(d, e, model(borrowing=FastBorrowing("full").with_external(
        cx[0, 0, 0], cex[0, 0, 0])))
    comm_c = laplace(d, e, model(borrowing=commensurate().with_external(cx[0, 0, 0],
                                                                        cex[0, 0, 0])))
    shift_full = full_c.log_hr_mean[0] - none.log_hr_mean[0]
    shift_comm = comm_c.log_hr_mean[0] - none.log_hr_mean[0]
    assert shift_full < -0.2
    assert abs(shift_comm) < 0.3 * abs(shift_full)


# ------------------------------------------------------------------- fast path against MCMC

def test_commensurate_fast_posterior_agrees_with_mcmc_of_the_same_model():
    """The Laplace mixture over the τ nodes against NUTS of the same PWE model with δ ~
    N(0, 1/τ), τ ~ LogNormal(3, 2) (:mod:`bayes_ablation.endpoints.borrowing.fast_reference`),
    on two simulated looks (exchangeable and conflicting external controls). Tolerance: 0.02
    on P(HR < c) (8000 draws: the MCMC's own error ≤ 0.006), 10% on the sd."""
    import nutpie

    from bayes_ablation.data.cut import cut_latent
    from bayes_ablation.endpoints.borrowing.fast_reference import build_fast_borrowing_reference
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.oc import (
        borrowing_models,
        event_calendar_times,
        simulate_latent,
    )

    design = load_design(EXAMPLE / "interim_design.toml")
    fm = borrowing_models(design, ["commensurate"])["commensurate"]
    compiled = None
    diffs = []
    for seed, log_hr, n_events, offset in ((1, -0.2, 60, 0.0), (2, -0.1, 120, 0.5)):
        rng = np.random.default_rng(seed)
        tr = simulate_latent(300, 14.0, np.asarray(design.accrual.site_weights), (1, 1), log_hr,
                             18.0, 1.2, 0.3, 0.005, rng)
        c = cut_latent(tr.entry, tr.event_time, tr.dropout_time,
                       float(event_calendar_times(tr)[n_events - 1]))
        en = c["enrolled"]
        d, e = suff_stats(c["time"][None], c["event"][None], tr.site[en], tr.arm[en],
                          fm.cuts_months, fm.n_sites)
        t_x, ev_x = simulate_external(150, (12.0, 60.0), 18.0, 1.2, offset, 0.005, rng)
        dx, ex = suff_stats(t_x[None], ev_x[None], np.zeros(150, int), np.zeros(150, int),
                            fm.cuts_months, 1)
        dx, ex = dx[0, 0, 0], ex[0, 0, 0]
        if compiled is None:
            compiled = nutpie.compile_pymc_model(build_fast_borrowing_reference(
                d[0], e[0], dx, ex, method="commensurate", baseline_mu=fm.baseline_mu,
                baseline_sd=fm.baseline_sd, log_hr_mu=fm.log_hr_mu, log_hr_sd=fm.log_hr_sd,
                sigma_site=design.spec.priors["sigma_site"],
                precision=design.spec.borrowing.precision))
        trace = nutpie.sample(compiled.with_data(events=d[0], exposure=e[0], external_events=dx,
                                                 external_exposure=ex),
                              draws=2000, tune=600, chains=4, cores=2, seed=seed,
                              target_accept=0.95, progress_bar=False)
        draws = trace.posterior["log_hr"].values.ravel()
        fp = laplace(d, e, fm, external=(dx[None], ex[None]))
        for cutoff in (1.0, 0.8):
            diffs.append(abs(float(fp.prob_hr_below(cutoff)[0])
                             - float(np.mean(draws < np.log(cutoff)))))
        assert fp.log_hr_sd[0] == pytest.approx(draws.std(), rel=0.1)
    assert max(diffs) < 0.02


# ------------------------------------------------------------------------------------- PPoS

def test_ppos_with_a0_zero_equals_ppos_without_borrowing(data):
    """The same posterior draws and random stream: the power prior with a0 = 0 in every
    simulated final analysis gives exactly the PPoS without borrowing; full borrowing of
    exchangeable controls gives a different one."""
    from bayes_ablation.workflows.monitoring.ppos import (
        Plan,
        draws_from_fast,
        predictive_probability,
    )
    from tests.workflows.monitoring.test_ppos import RULE, interim_state

    _, _, dx, ex = data
    state = interim_state(4, -0.2)
    out = {}
    for name, b in (("none", None), ("zero", FastBorrowing("power", a0=0.0)),
                    ("full", FastBorrowing("full"))):
        m = model(borrowing=None if b is None else b.with_external(dx, ex))
        d, e = suff_stats(state.time[None], state.event[None], state.site, state.arm, CUTS, 6)
        base = laplace(d, e, model())        # the same interim draws for every method
        rng = np.random.default_rng(7)
        out[name] = predictive_probability(state, draws_from_fast(base, model(), 400, rng),
                                           Plan(400, 15.0, np.ones(6), (1, 1), 0.0,
                                                final_events=200), m, RULE, rng).ppos
    assert out["zero"] == out["none"]
    assert out["full"] != out["none"]


# ------------------------------------------------------------------- operating characteristics

def small_design(**scenario_changes):
    raw = copy.deepcopy(tomllib.loads((EXAMPLE / "interim_design.toml").read_text()))
    raw["accrual"].update(total_n=200, rate_per_month=20.0)
    raw["final"] = {"events": 120}
    raw["looks"] = [{"events": 60}]
    raw["fast"].update(site_sd="fixed", site_sd_value=0.3, precision_nodes=5)
    raw["external_controls"]["n_patients"] = 150
    for name in ("alt", "alt_conflict"):
        raw["scenarios"][name]["log_hr"] = -0.45
    return parse_design(raw, "test_design.toml", base_dir=EXAMPLE)


def test_oc_borrowing_costs_type_one_error_under_conflict():
    """600 (null) and 400 (alternative) trials per scenario, paired across methods (the same
    internal trials and external samples). Exchangeable external controls: type I error of
    full borrowing stays at the no-borrowing level and power rises. External controls that
    progress faster (log cumulative hazard +0.5): full borrowing's type I error is far above
    none's, commensurate lies between; external controls that progress slower (−0.5) cost
    full borrowing power."""
    design = small_design()
    methods = ["none", "full", "commensurate"]
    null = run_oc(design, ["null", "null_conflict"], 600, workers=1, progress=False,
                  borrowing=methods)
    alt = run_oc(design, ["alt", "alt_conflict"], 400, workers=1, progress=False,
                 borrowing=methods)
    rej = {m: {**{s: v["reject"] for s, v in null["borrowing"]["by_method"][m].items()},
               **{s: v["reject"] for s, v in alt["borrowing"]["by_method"][m].items()}}
           for m in methods}
    p = {m: {s: r["p"] for s, r in v.items()} for m, v in rej.items()}
    se = rej["none"]["null"]["mcse"]
    # exchangeable: no inflation (within 3 MC SE of none's), more power
    assert abs(p["full"]["null"] - p["none"]["null"]) < 3 * se + 0.005
    assert p["none"]["null"] < 0.05
    assert p["full"]["alt"] > p["none"]["alt"] + 0.04
    # conflict: the cost of borrowing
    assert p["full"]["null_conflict"] > p["none"]["null_conflict"] + 0.15
    assert p["none"]["null_conflict"] <= p["commensurate"]["null_conflict"] + 3 * se
    assert p["commensurate"]["null_conflict"] < p["full"]["null_conflict"] - 0.1
    assert p["full"]["alt_conflict"] < p["none"]["alt_conflict"] - 0.15
    assert p["full"]["alt_conflict"] < p["commensurate"]["alt_conflict"]
    table = borrowing_table(null)
    assert list(table.columns[-3:]) == methods
    assert table.loc[table["scenario"] == "null_conflict", "external offset"].item() == 0.5


def test_no_borrowing_reproduces_the_plain_oc_exactly():
    """`none` in a borrowing comparison is the design's plain OC: same trials, same numbers."""
    design = small_design()
    paired = run_oc(design, ["null"], 50, workers=1, progress=False,
                    borrowing=["full", "none"])
    plain_spec = replace(design.spec, borrowing=None)
    plain = run_oc(replace(design, spec=plain_spec), ["null"], 50, workers=1, progress=False)
    assert "borrowing" not in plain
    assert paired["borrowing"]["by_method"]["none"]["null"] == plain["scenarios"]["null"]
    assert paired["scenarios"] == paired["borrowing"]["by_method"]["full"]


def test_borrowing_methods_that_cannot_be_built_are_refused():
    from bayes_ablation.errors import SpecError
    from bayes_ablation.workflows.monitoring.oc import borrowing_models

    design = small_design()
    with pytest.raises(SpecError) as err:
        borrowing_models(design, ["map", "power", "power:1.5", "magic"])
    text = str(err.value)
    assert "'map'" in text and "power:A0" in text and "'magic'" in text
    assert borrowing_models(design, ["power:0.25"])["power:0.25"].borrowing.a0 == 0.25
    raw = copy.deepcopy(tomllib.loads((EXAMPLE / "interim_design.toml").read_text()))
    del raw["external_controls"]
    with pytest.raises(SpecError, match=r"\[external_controls\] n_patients"):
        parse_design(raw, "d.toml", base_dir=EXAMPLE)
    assert BorrowingSpec("full").needs_external


def test_oc_cli_prints_borrowing_side_by_side(tmp_path, capsys):
    from bayes_ablation.cli.main import main

    text = (EXAMPLE / "interim_design.toml").read_text().replace(
        'analysis_spec = "../../models/pfs_external_controls.toml"',
        f'analysis_spec = "{ROOT / "models" / "pfs_external_controls.toml"}"')
    (tmp_path / "design.toml").write_text(text.replace("site_sd_nodes = 3", "site_sd_nodes = 1"))
    out = tmp_path / "oc"
    assert main(["oc", "--design", str(tmp_path / "design.toml"), "--scenario", "null",
                 "--n-trials", "4", "--workers", "1", "--borrowing", "none", "--borrowing",
                 "power:0.5", "--external-offset", "0.5", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "borrowing side by side" in printed and "null_offset+0.5" in printed
    oc = json.loads((out / "oc.json").read_text())
    assert oc["borrowing"]["methods"] == ["none", "power:0.5"]
    assert oc["borrowing"]["external_log_cumhaz_offset"] == {"null": 0.0,
                                                             "null_offset+0.5": 0.5}
    assert "what it costs in type I error" in (out / "report.html").read_text()


# ----------------------------------------------------------------------------------- monitor

@pytest.fixture(scope="module")
def monitor_setup(tmp_path_factory):
    from bayes_ablation.data.simulate_dated import simulate_dated_trial

    tmp = tmp_path_factory.mktemp("monitor_borrowing")
    spec = (ROOT / "models" / "pfs_external_controls.toml").read_text()
    spec = spec.replace("chains = 4", "chains = 2").replace("draws = 1000", "draws = 300") \
        .replace("tune = 1000", "tune = 300")
    (tmp / "spec.toml").write_text(spec)
    design = (EXAMPLE / "interim_design.toml").read_text().replace(
        'analysis_spec = "../../models/pfs_external_controls.toml"',
        'analysis_spec = "spec.toml"').replace("draws = 1000", "draws = 200")
    (tmp / "design.toml").write_text(design)
    sim = simulate_dated_trial(300, 8, -0.3, seed=11, accrual_months=24, followup_months=24,
                               start_date="2026-01-15")
    sim.frame.to_csv(tmp / "dated.csv", index=False)
    return tmp


def _monitor(tmp, *extra):
    from bayes_ablation.cli.main import main

    return main(["monitor", "--design", str(tmp / "design.toml"), "--data",
                 str(tmp / "dated.csv"), "--cut", "2027-06-30", "--ledger", str(tmp / "t.db"),
                 "--quiet", *extra])


def test_monitor_borrows_external_controls_and_records_them(monitor_setup, capsys):
    tmp = monitor_setup
    external = EXAMPLE / "external.csv"
    # the spec borrows: no --external is refused before fitting
    assert _monitor(tmp) == 2
    assert "--external external.csv" in capsys.readouterr().err
    # a bad external file: file, row, column and what was expected
    bad = tmp / "bad.csv"
    rows = external.read_text().splitlines()
    rows[3] = rows[3].replace("postoperative", "perioperative")
    bad.write_text("\n".join(rows) + "\n")
    assert _monitor(tmp, "--external", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "row 3" in err and "arm" in err and "reference arm" in err

    assert _monitor(tmp, "--external", str(external), "--out", str(tmp / "report")) == 0
    printed = capsys.readouterr().out
    assert "borrowing  commensurate of 200 external controls" in printed
    look = json.loads((tmp / "report" / "look.json").read_text())
    sha = hashlib.sha256(external.read_bytes()).hexdigest()
    assert look["borrowing"]["method"] == "commensurate"
    assert look["borrowing"]["external"]["sha256"] == sha
    assert look["borrowing"]["summary"]["amount_borrowed"]["effective_external_events"] > 0
    assert 0.0 <= look["ppos"]["ppos"] <= 1.0 and look["ppos"]["n_draws"] == 200
    # the same data, two borrowed posteriors (Weibull MCMC vs PWE Laplace, both commensurate)
    assert abs(look["posterior"]["P(HR<1)"] - look["fast_posterior"]["P(HR<1)"]) < 0.05
    html = (tmp / "report" / "report.html").read_text()
    assert "Borrowing" in html and sha in html
    from bayes_ablation.workflows.monitoring.ledger import Ledger

    with Ledger.open(tmp / "t.db") as book:
        stored = book.looks()[-1]
    assert stored.result["borrowing"]["external"]["sha256"] == sha


def test_monitor_fast_model_borrows_the_fixed_external_controls():
    """The look's fast model holds the external file's per-interval statistics."""
    from bayes_ablation.data.borrowing import read_external
    from bayes_ablation.spec.design import load_design
    from bayes_ablation.workflows.monitoring.monitor import look_fast_model

    design = load_design(EXAMPLE / "interim_design.toml")
    ext = read_external(EXAMPLE / "external.csv", design.spec)
    fm = look_fast_model(design, ext)
    assert fm.borrowing.method == "commensurate"
    assert fm.borrowing.external_events.sum() == ext.event.sum()
    assert fm.borrowing.external_exposure.sum() == pytest.approx(ext.time.sum())
    assert len(fm.borrowing.offset_sd_nodes) == design.fast.precision_nodes
    assert Path(ext.source).name == "external.csv"
