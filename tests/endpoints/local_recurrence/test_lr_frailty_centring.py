"""Partial centring of the LR patient frailty changes the sampler's coordinates, never the model:
v_i = σ^(1−w_i) z_i with z_i ~ N(0, σ^(2 w_i)) has the prior N(0, σ²) for every weight w_i.

Checked exactly: at the same (θ, v) the log density with weights w equals the non-centred one
(w = 0) plus the log Jacobian −Σ_i w_i log σ of z⁰ = σ^(−w) z (z⁰ = v/σ the non-centred
coordinate), for both LR families and any weights; the posterior-draw helper the checks use
maps z back to the same v; the data-adaptive weights are 0 without clear heterogeneity and
near 1 for patients whose many events pin their frailty down.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayes_ablation.endpoints.hierarchy import frailty_centring
from bayes_ablation.endpoints.local_recurrence.checks import patient_frailty
from tests.inference.test_lr_kernel import make_case


def _logp_at(model, point):
    # Python linker: a value check needs no compiled graph
    return float(model.compile_logp(jacobian=True, mode="FAST_COMPILE")(point))


@pytest.mark.parametrize("family", ["lr_weibull", "lr_pwe"])
def test_partially_centred_frailty_is_the_same_model(family):
    from bayes_ablation.endpoints.build import build_model

    spec, lesions = make_case(family, covariates=False)
    model = build_model(spec, lesions)
    n = lesions.patients.n_patients
    rng = np.random.default_rng(11)
    weights = rng.uniform(0.05, 0.95, n)
    point = {k: np.asarray(v, float) + rng.normal(0.0, 0.3, np.shape(v))
             for k, v in model.initial_point().items()}
    sigma = float(np.exp(point["sigma_patient_log__"]))
    v = rng.normal(0.0, sigma, n)                       # one frailty per patient
    noncentred = _logp_at(model, {**point, "z_patient": v / sigma})
    model.set_data("centring_patient", weights)
    partial = _logp_at(model, {**point, "z_patient": v / sigma ** (1.0 - weights)})
    jacobian = -float(np.sum(weights)) * np.log(sigma)
    assert partial == pytest.approx(noncentred + jacobian, rel=1e-10, abs=1e-8)
    # and a different frailty at the same z gives another density (the check can fail)
    other = _logp_at(model, {**point, "z_patient": v / sigma})
    assert abs(other - partial) > 1e-3


def test_posterior_frailty_helper_undoes_the_centring():
    rng = np.random.default_rng(2)
    sigma = rng.uniform(0.2, 1.5, 6)
    w = np.array([0.0, 0.3, 1.0])
    v = rng.normal(size=(6, 3)) * sigma[:, None]
    z = v / sigma[:, None] ** (1.0 - w)
    post = xr.Dataset({"z_patient": (("sample", "patient"), z),
                       "sigma_patient": (("sample",), sigma)})
    cdata = xr.Dataset({"centring_patient": (("patient",), w)})
    np.testing.assert_allclose(patient_frailty(post, cdata), v, rtol=1e-12)
    # fits made before the frailty could be centred: z is non-centred
    np.testing.assert_allclose(patient_frailty(post, xr.Dataset()), z * sigma[:, None])


def test_frailty_weights_follow_the_information():
    rng = np.random.default_rng(5)
    expected = np.full(2000, 1.0)
    # no heterogeneity: Poisson counts around their expectation -> all non-centred
    assert np.all(frailty_centring(rng.poisson(expected), expected) == 0.0)
    # strong heterogeneity (sd 1.5 on the log scale) with many events per cluster
    big = np.full(2000, 40.0)
    observed = rng.poisson(big * np.exp(rng.normal(0.0, 1.5, big.size)))
    w = frailty_centring(observed, big)
    assert np.all((w >= 0.0) & (w <= 1.0))
    assert np.median(w) > 0.9
    # a cluster without events is less centred than one with many
    observed[:2] = (0, 200)
    w = frailty_centring(observed, big)
    assert w[0] < 0.75 < w[1]
