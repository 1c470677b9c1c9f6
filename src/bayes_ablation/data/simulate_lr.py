"""Simulate lesion-level local recurrence (LR) in a multi-site trial, with death competing.

Sibling of :func:`bayes_ablation.data.simulate.simulate_trial` (which is unchanged).
Time 0 is the ablation. For lesion j of patient i at site s (times in months):

    h_LR,ij(t) = λ₀ k t^(k−1) exp(β·treated_i + γ_size (size_ij − 2) + γ_margin 1[margin_ij < 5]
                                   + γ_RFA 1[RFA_ij] + v_i + u_s),
    v_i ~ N(0, σ_patient²) (patient frailty), u_s ~ N(0, σ_site²),
    h_D,i(t) = λ_D k_D t^(k_D−1) exp(β_D·treated_i)                 (death, per patient).

Latent LR times T_ij and the death time D_i are independent given (v_i, u_s); the LR hazard is
cause-specific: a patient who dies first can no longer recur. Follow-up ends at death, at the
administrative cut (uniform accrual) or at dropout. Imaging: every 3 months for the first two
years, then every 6 months; each visit is jittered (normal, sd ``visit_jitter_sd`` months,
kept inside its window) and missed with probability ``p_missed``; only scans done alive and
within follow-up count. An LR is seen at the first scan after it happens: the lesion row holds
(last negative scan, first positive scan]; without a positive scan the lesion is
right-censored at its last negative scan (0 when no scan was done).

Lesions per patient: 1 + a geometric count truncated at ``max_lesions`` (most patients have
1–2); size: log-normal (median ``size_median_cm``), mostly < 3 cm; margin: gamma with mean
``margin_mean_mm`` (about a third below 5 mm); modality MWA/RFA with a site-specific mix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_ablation.data.imaging import imaging_schedule

__all__ = ["SimulatedLRTrial", "imaging_schedule", "simulate_lr_trial"]


@dataclass(frozen=True)
class SimulatedLRTrial:
    """Patient table, lesion table, latent times and the true parameters."""

    patients: pd.DataFrame
    lesions: pd.DataFrame
    details: pd.DataFrame
    truth: dict[str, object] = field(default_factory=dict)


def simulate_lr_trial(
    n_patients: int = 300,
    n_sites: int = 6,
    log_hr: float = -0.4,
    *,
    seed: int = 1,
    arms: Sequence[str] = ("postoperative", "perioperative"),
    weibull_shape: float = 0.8,
    lr_cuminc_24_ref: float = 0.07,
    beta_size_per_cm: float = 0.3,
    beta_margin_lt_5mm: float = float(np.log(3.6)),
    beta_rfa: float = 0.3,
    sigma_patient: float = 0.8,
    sigma_site: float = 0.3,
    death_log_hr: float = 0.0,
    death_weibull_shape: float = 1.2,
    death_median_months: float = 60.0,
    accrual_months: float = 24.0,
    followup_months: float = 36.0,
    dropout_per_month: float = 0.003,
    max_lesions: int = 10,
    p_single_lesion: float = 0.45,
    size_median_cm: float = 1.8,
    margin_mean_mm: float = 7.0,
    visit_jitter_sd: float = 0.3,
    p_missed: float = 0.1,
    time_ref_months: float = 12.0,
    no_deaths: bool = False,
    lr_log_lambda0: float | None = None,
    lr_baseline_cuts_months: Sequence[float] | None = None,
    lr_baseline_hazards: Sequence[float] | None = None,
    log_hr_interactions: Mapping[str, float] | None = None,
) -> SimulatedLRTrial:
    """Simulate one trial; the same arguments and seed give the same tables.

    ``lr_cuminc_24_ref`` fixes λ₀: the 24-month LR probability (no death) of a reference lesion
    (2 cm, margin ≥ 5 mm, MWA) in the reference arm of a typical patient (v = 0) at an average
    site (u = 0). ``no_deaths`` switches death off (follow-up then ends only administratively
    or by dropout). ``lr_log_lambda0`` gives that reference lesion's log λ₀ directly instead
    (validation studies: extreme prior draws make the 24-month probability round to 1);
    ``lr_baseline_cuts_months`` with ``lr_baseline_hazards`` (per month, reference lesion)
    replace the Weibull LR baseline by a piecewise-constant one (the ``lr_pwe`` model; truth
    then holds its ``log_hazard_baseline``). ``log_hr_interactions`` makes lesion features
    effect modifiers: feature → log HR(feature 1) − log HR(feature 0) of the treated arm, for
    ``margin_lt_5mm`` and ``size_gt_2cm`` (size > 2 cm; the lesion table then carries a
    ``size_gt_2cm`` column); no extra random numbers are drawn. ``truth`` is in the
    parameterisation of the
    ``lr_weibull`` model with
    covariates ``size_cm, margin_lt_5mm, modality`` (size centred at the realised mean, as the
    model does).
    """
    if n_patients < 2 or n_sites < 1:
        raise ValueError("need at least 2 patients and 1 site")
    rng = np.random.default_rng(seed)
    arms = tuple(arms)
    if len(arms) != 2:
        raise ValueError("simulate_lr_trial simulates two arms (reference first)")

    site_idx = np.sort(rng.integers(0, n_sites, n_patients))
    site_idx[:n_sites] = np.arange(min(n_sites, n_patients))
    site_idx = np.sort(site_idx)
    arm_idx = np.empty(n_patients, dtype=np.int64)
    for s in range(n_sites):
        members = np.flatnonzero(site_idx == s)
        blocks = np.concatenate([rng.permutation([0, 0, 1, 1])
                                 for _ in range(-(-len(members) // 4))])
        arm_idx[members] = blocks[: len(members)]
    treated = arm_idx == 1

    u_site = rng.normal(0.0, sigma_site, n_sites) if sigma_site > 0 else np.zeros(n_sites)
    v_patient = (rng.normal(0.0, sigma_patient, n_patients) if sigma_patient > 0
                 else np.zeros(n_patients))
    p_rfa_site = rng.uniform(0.2, 0.6, n_sites)

    # lesions per patient: 1 + truncated geometric
    n_les = np.minimum(rng.geometric(p_single_lesion, n_patients), max_lesions)
    owner = np.repeat(np.arange(n_patients), n_les)
    n_lesions = owner.size
    size = np.round(np.clip(rng.lognormal(np.log(size_median_cm), 0.4, n_lesions), 0.3, 6.0), 1)
    margin = np.round(rng.gamma(2.0, margin_mean_mm / 2.0, n_lesions), 1)
    rfa = rng.uniform(size=n_lesions) < p_rfa_site[site_idx[owner]]
    close = margin < 5.0

    k = weibull_shape
    log_lam0 = (float(lr_log_lambda0) if lr_log_lambda0 is not None
                else np.log(-np.log1p(-lr_cuminc_24_ref)) - k * np.log(24.0))
    eta = (log_hr * treated[owner] + beta_size_per_cm * (size - 2.0)
           + beta_margin_lt_5mm * close + beta_rfa * rfa + v_patient[owner]
           + u_site[site_idx[owner]])
    features = {"margin_lt_5mm": close.astype(float), "size_gt_2cm": (size > 2.0).astype(float)}
    interactions = dict(log_hr_interactions or {})
    for name, value in interactions.items():
        if name not in features:
            raise ValueError(f"log_hr_interactions: unknown feature {name!r} "
                             f"(known: {', '.join(features)})")
        eta = eta + value * treated[owner] * features[name]
    piecewise = lr_baseline_hazards is not None
    if piecewise:
        from bayes_ablation.survival.piecewise import invert_cumhaz

        if lr_baseline_cuts_months is None or \
                len(lr_baseline_hazards) != len(lr_baseline_cuts_months) + 1:
            raise ValueError("lr_baseline_hazards needs lr_baseline_cuts_months and one "
                             "hazard per interval (cuts + 1)")
        rates = np.asarray(lr_baseline_hazards, float)
        t_lr = invert_cumhaz(rng.exponential(size=n_lesions) / np.exp(eta), rates,
                             lr_baseline_cuts_months)
    else:
        t_lr = (rng.exponential(size=n_lesions) / np.exp(log_lam0 + eta)) ** (1.0 / k)

    kd = death_weibull_shape
    log_lam_d = np.log(np.log(2.0)) - kd * np.log(death_median_months)
    eta_d = death_log_hr * treated
    t_death = ((rng.exponential(size=n_patients) / np.exp(log_lam_d + eta_d)) ** (1.0 / kd)
               if not no_deaths else np.full(n_patients, np.inf))
    entry = rng.uniform(0.0, accrual_months, n_patients)
    admin = accrual_months + followup_months - entry
    dropout = (rng.exponential(1.0 / dropout_per_month, n_patients) if dropout_per_month > 0
               else np.full(n_patients, np.inf))
    censor = np.minimum(admin, dropout)
    follow = np.round(np.maximum(np.minimum(t_death, censor), 1e-3), 3)
    died = (t_death <= censor).astype(np.int64)

    # imaging per patient
    nominal = imaging_schedule(accrual_months + followup_months)
    scans: list[np.ndarray] = []
    for i in range(n_patients):
        windows = np.diff(np.concatenate([[0.0], nominal]))
        jitter = np.clip(rng.normal(0.0, visit_jitter_sd, nominal.size), -0.25 * windows,
                         0.25 * windows)
        done = np.round(nominal + jitter, 3)
        keep = (rng.uniform(size=nominal.size) >= p_missed) & (done <= follow[i])
        scans.append(done[keep])

    lower = np.zeros(n_lesions)
    upper = np.full(n_lesions, np.nan)
    for j in range(n_lesions):
        s = scans[owner[j]]
        before = s[s < t_lr[j]]
        after = s[s >= t_lr[j]]
        if after.size:
            lower[j] = before[-1] if before.size else 0.0
            upper[j] = after[0]
        else:
            lower[j] = s[-1] if s.size else 0.0

    width = len(str(n_patients))
    pids = np.array([f"P{i + 1:0{width}d}" for i in range(n_patients)])
    patients = pd.DataFrame({
        "patient_id": pids,
        "site": [f"S{s + 1:02d}" for s in site_idx],
        "arm": [arms[a] for a in arm_idx],
        "followup_months": follow,
        "died": died,
    })
    lesion_no = np.concatenate([np.arange(1, n + 1) for n in n_les])
    lesions = pd.DataFrame({
        "patient_id": pids[owner],
        "lesion_id": [f"L{m}" for m in lesion_no],
        "lr_lower_months": lower,
        "lr_upper_months": upper,
        "size_cm": np.round(size, 1),
        "margin_mm": np.round(margin, 1),
        "modality": np.where(rfa, "RFA", "MWA"),
    })
    if interactions:
        lesions["size_gt_2cm"] = (lesions["size_cm"] > 2.0).astype(int)
    details = pd.DataFrame({
        "patient_id": pids[owner],
        "lesion_id": lesions["lesion_id"],
        "lr_time_months": t_lr,
        "death_time_months": t_death[owner],
        "followup_months": follow[owner],
        "v_patient": v_patient[owner],
        "eta": eta,
    })

    # truth in the model's parameterisation (size centred at the realised mean of size_cm)
    # (numeric covariates, the 0/1 margin indicator included, are centred at their mean)
    size_mean = float(lesions["size_cm"].mean())
    close_mean = float((lesions["margin_mm"] < 5.0).mean())
    alpha = (log_lam0 + k * np.log(time_ref_months) + beta_size_per_cm * (size_mean - 2.0)
             + beta_margin_lt_5mm * close_mean)
    truth: dict[str, object] = {
        "log_hr": float(log_hr),
        "weibull_shape": float(k),
        "log_cumhaz_ref": float(alpha),
        "log_lambda0_reference_lesion": float(log_lam0),
        "beta_covariates": {"size_cm": float(beta_size_per_cm),
                            "margin_lt_5mm": float(beta_margin_lt_5mm),
                            "modality[RFA]": float(beta_rfa)},
        "sigma_patient": float(sigma_patient),
        "sigma_site": float(sigma_site),
        "u_site": u_site.tolist(),
        "death_log_hr": float(death_log_hr),
        "death_weibull_shape": float(kd),
        "death_log_cumhaz_ref": float(log_lam_d + kd * np.log(time_ref_months)),
        "time_ref_months": float(time_ref_months),
        "size_mean_cm": size_mean,
        "margin_lt_5mm_mean": close_mean,
        "lr_cuminc_24_ref": float(lr_cuminc_24_ref),
        "death_median_months": float(death_median_months),
        "no_deaths": bool(no_deaths),
    }
    if interactions:
        truth["log_hr_interaction"] = {k: float(v) for k, v in interactions.items()}
    if piecewise:  # the lr_pwe model's log λ_j refer to x = 0 (covariates at their means)
        shift = beta_size_per_cm * (size_mean - 2.0) + beta_margin_lt_5mm * close_mean
        truth["log_hazard_baseline"] = (np.log(rates) + shift).tolist()
    return SimulatedLRTrial(patients=patients, lesions=lesions, details=details, truth=truth)
