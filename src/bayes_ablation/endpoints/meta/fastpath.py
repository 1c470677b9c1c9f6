"""The meta-analysis families' cached-kernel plan: reads a ``normal_normal`` (non-centred) or
``weibull_ipd_ad`` PyMC model into the buffer of
:func:`bayes_ablation.endpoints.pfs.numba_kernels.meta_evaluate` (checked against PyMC in every
process by :mod:`bayes_ablation.inference.kernels`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayes_ablation.endpoints.kernel import KernelPlan, KernelUnavailable
from bayes_ablation.endpoints.pfs.fastpath import free_variable_blocks, traced_items
from bayes_ablation.spec.plan import AnalysisSpec

META_FAMILIES = ("normal_normal", "weibull_ipd_ad")


def meta_plan(model: Any, spec: AnalysisSpec, point: dict | None = None) -> KernelPlan:
    """Read a meta-analysis PyMC model into a kernel plan (raises :class:`KernelUnavailable`,
    e.g. for the ``marginal`` parameterisation, which the kernel does not cover)."""
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    if spec.model not in META_FAMILIES:
        raise KernelUnavailable(f"no cached meta kernel for model family {spec.model!r}")
    if spec.model_options.get("parameterisation", "non_centred") == "marginal":
        raise KernelUnavailable("the meta kernel covers the non-centred parameterisation only")
    point = model.initial_point() if point is None else point
    roles = {"mu": nk.MR_MU, "tau": nk.MR_TAU, "z_new": nk.MR_ZNEW, "z": nk.MR_Z,
             "theta_centred": nk.MR_THETA_C, "log_cumhaz_ref": nk.MR_ALPHA,
             "weibull_shape": nk.MR_SHAPE, "sigma_site": nk.MR_SIGMA, "z_site": nk.MR_ZSITE,
             "sigma_site_arm": nk.MR_SIGMA2, "z_site_arm": nk.MR_ZSITE2}
    rows, names, shapes, reparameterized, block_of_rv = free_variable_blocks(
        model, spec, point, roles, standard=("z", "theta_centred"))
    present = {int(r[0]) for r in rows}
    if not {nk.MR_MU, nk.MR_TAU, nk.MR_ZNEW} <= present:
        raise KernelUnavailable("the meta kernel needs mu, tau and z_new")
    if (nk.MR_ALPHA in present) != (nk.MR_SHAPE in present):
        raise KernelUnavailable("IPD trials need log_cumhaz_ref and weibull_shape")
    for sigma, z in ((nk.MR_SIGMA, nk.MR_ZSITE), (nk.MR_SIGMA2, nk.MR_ZSITE2)):
        if (sigma in present) != (z in present):
            raise KernelUnavailable("site effects need both their sd and their z block")
    deterministic = {"theta_new": (nk.MX_THETA_NEW, -1), "theta": (nk.MX_THETA, -1),
                     "u_site": (nk.MX_U_SITE, -1), "v_site_arm": (nk.MX_V_SITE, -1)}
    n_dim = sum(math.prod(s) for s in shapes)
    items = traced_items(model, names, shapes, block_of_rv, deterministic,
                         nk.X_CONSTRAINED, nk.X_SQRT)
    t_ref = float(spec.model_options.get("time_ref_months", 12.0))
    return KernelPlan(family=spec.model,
                      blocks=np.array(rows, float).reshape(-1, nk.BLOCK_WIDTH),
                      expand=np.array(items, float).reshape(-1, nk.EXPAND_WIDTH),
                      n_dim=n_dim, n_expanded=sum(math.prod(s) for s in shapes), names=names,
                      shapes=shapes, reparameterized=reparameterized,
                      log_t_ref=math.log(t_ref))


def _study_slots(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Where each study's θ comes from: kind 0 = μ + τ z[slot], 1 = theta_centred[slot]."""
    studies = list(model.coords["study"])
    kind = np.zeros(len(studies))
    slot = np.arange(len(studies), dtype=float)
    dims = model.named_vars_to_dims
    if "z" in model.named_vars and tuple(dims.get("z") or ()) != ("study",):
        if tuple(dims.get("z") or ()) != ("noncentred_study",):
            raise KernelUnavailable(f"unexpected dims of z: {dims.get('z')}")
        for j, name in enumerate(model.coords["noncentred_study"]):
            slot[studies.index(name)] = j
    if "theta_centred" in model.named_vars:
        for j, name in enumerate(model.coords["centred_study"]):
            kind[studies.index(name)] = 1.0
            slot[studies.index(name)] = j
    elif "z" not in model.named_vars:
        raise KernelUnavailable("no study effects in the model")
    return kind, slot


def meta_buffer(plan: KernelPlan, model: Any) -> np.ndarray:
    """The meta kernel's input buffer: header, plan, study effects, aggregate estimates and
    the stacked IPD patients, from the model's current ``pm.Data`` values."""
    from bayes_ablation.endpoints.pfs import numba_kernels as nk

    data = {var.name: np.asarray(var.get_value()) for var in model.data_vars}
    observed = sorted(rv.name for rv in model.observed_RVs)
    if model.potentials or not set(observed) <= {"y", "y_ipd"} or not observed:
        raise KernelUnavailable(f"unexpected observed variables {observed} or potentials")
    studies = list(model.coords["study"])
    kind, slot = _study_slots(model)
    if "y" in observed:
        y = np.asarray(data["y_data"], float)
        se = np.asarray(data["se"], float)
        agg_names = list(model.coords.get("aggregate_study") or studies)
        if y.size != len(agg_names) or se.size != y.size:
            raise KernelUnavailable("aggregate estimates do not match their studies")
        agg = np.array([studies.index(s) for s in agg_names], float)
    else:
        y = se = agg = np.zeros(0)
    n_sites = len(model.coords.get("site") or [])
    n_treat = len(model.coords.get("treatment") or [])
    if "y_ipd" in observed:
        n = data["time_months"].size
        site = data.get("site_idx")
        if site is None:
            if "z_site" in model.named_vars:
                raise KernelUnavailable("site effects without site_idx data")
            site = np.zeros(n)
        patients = [data["trial_idx"], data["study_idx"], data["arm_idx"], site,
                    np.log(np.asarray(data["time_months"], float)), data["event"]]
        patients = [np.asarray(p, float).ravel() for p in patients]
        n_trial = len(model.coords["ipd_study"])
        if np.any(patients[2] > n_treat):
            raise KernelUnavailable("arm index beyond the treatment coordinate")
    else:
        n, n_trial = 0, 0
        patients = [np.zeros(0)] * 6
    parts = [plan.blocks.ravel(), kind, slot, agg, y, se, *patients, plan.expand.ravel(),
             np.zeros(max(n_sites * max(n_treat, 1), 1))]
    header = np.zeros(nk.M_HEADER)
    offsets = np.cumsum([nk.M_HEADER] + [p.size for p in parts])
    header[nk.M_LEN] = offsets[-1]
    header[nk.M_NBLOCKS] = plan.blocks.shape[0]
    header[nk.M_NSTUDY] = len(studies)
    header[nk.M_NDIM] = plan.n_dim
    header[nk.M_NAGG] = agg.size
    header[nk.M_NPAT] = n
    header[nk.M_NTRIAL] = n_trial
    header[nk.M_NSITES] = n_sites
    header[nk.M_NTREAT] = n_treat
    header[nk.M_LOGTREF] = plan.log_t_ref
    (header[nk.M_OFF_BLOCKS], header[nk.M_OFF_KIND], header[nk.M_OFF_SLOT],
     header[nk.M_OFF_AGG], header[nk.M_OFF_Y], header[nk.M_OFF_SE], header[nk.M_OFF_PTRIAL],
     header[nk.M_OFF_PSTUDY], header[nk.M_OFF_PARM], header[nk.M_OFF_PSITE],
     header[nk.M_OFF_PLOGT], header[nk.M_OFF_PEVENT], header[nk.M_OFF_EXPAND],
     header[nk.M_OFF_W0]) = offsets[:-1]
    header[nk.M_NEXPAND] = plan.expand.shape[0]
    header[nk.M_NEXPANDED] = plan.n_expanded
    buf = np.ascontiguousarray(np.concatenate([header, *parts]))
    buf.flags.writeable = False
    return buf
