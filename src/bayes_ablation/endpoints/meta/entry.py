"""The evidence-pooling endpoint (``meta``) and its model families: one entry each.

Study i reports a log hazard ratio y_i with standard error s_i (or patient data):
y_i ~ N(θ_i, s_i²), θ_i ~ N(μ, τ²); ``weibull_ipd_ad`` replaces the normal likelihood of
studies with patient data by their Weibull proportional-hazards likelihood (one-stage). Fits go
through :func:`bayes_ablation.workflows.meta.fit_meta`, which also computes the exact
(quadrature) posterior and the τ-prior sensitivity.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from bayes_ablation.endpoints.meta import estimands, model
from bayes_ablation.endpoints.meta.sbc import ADAPTER as NORMAL_NORMAL_ADAPTER
from bayes_ablation.endpoints.meta.sbc_ipd import ADAPTER as IPD_AD_ADAPTER
from bayes_ablation.endpoints.registry import Endpoint, Family, KernelParts, Prepared
from bayes_ablation.errors import InputError
from bayes_ablation.spec.plan import AnalysisSpec


def _meta_cfuncs() -> tuple[Any, Any]:
    from bayes_ablation.endpoints.pfs import numba_kernels

    return numba_kernels.meta_cfuncs()


def _meta_kernel() -> KernelParts:
    from bayes_ablation.endpoints.meta import fastpath

    return KernelParts(plan=fastpath.meta_plan, buffer=fastpath.meta_buffer,
                       cfuncs=_meta_cfuncs)


NORMAL_NORMAL = Family(name="normal_normal", endpoint="meta",
                       build=model.build_normal_normal_model,
                       kernel=_meta_kernel(), sbc_adapter=NORMAL_NORMAL_ADAPTER)
WEIBULL_IPD_AD = Family(name="weibull_ipd_ad", endpoint="meta",
                        build=model.build_weibull_ipd_ad_model, kernel=_meta_kernel(),
                        sbc_adapter=IPD_AD_ADAPTER)


def prepare(spec: AnalysisSpec, patients: Any, lesions: Any = None) -> Prepared:
    raise InputError(f"spec {spec.name!r} pools studies (endpoint 'meta'): use "
                             "fit_meta(spec, studies) or 'bayes-ablation meta'")


def meta_estimands(idata: xr.DataTree, spec: AnalysisSpec) -> xr.Dataset:
    out = estimands.meta_estimands(idata)
    out.attrs["hr_thresholds"] = list(spec.estimands.hr_thresholds)
    return out


def meta_probabilities(ds: xr.Dataset) -> dict[str, float]:
    return estimands.probabilities(ds, ds.attrs["hr_thresholds"])


ENDPOINT = Endpoint(name="meta", prepare=prepare, estimands=meta_estimands,
                    probabilities=meta_probabilities)
