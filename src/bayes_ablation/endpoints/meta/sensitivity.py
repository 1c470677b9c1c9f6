"""Prior sensitivity of a meta-analysis to the heterogeneity prior, by exact quadrature.

With two to five studies the data say little about τ, so the τ prior shapes the pooled effect's
uncertainty and, even more, the prediction for a new study. For each τ prior of a panel (the
spec's ``[sensitivity.tau.*]``, else the packaged ``tau_priors.toml``, always led by the spec's
own prior) the exact posterior gives μ, θ_new and τ — each in milliseconds.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ablation.endpoints.meta.quadrature import ExactPosterior
from bayes_ablation.spec.plan import AnalysisSpec, PriorSpec, parse_prior_tables

SPEC_LABEL = "spec prior"


def default_tau_panel() -> dict[str, PriorSpec]:
    """The packaged panel of heterogeneity priors (``endpoints/meta/tau_priors.toml``)."""
    text = resources.files("bayes_ablation.endpoints.meta").joinpath("tau_priors.toml").read_text()
    return parse_prior_tables(tomllib.loads(text), "bayes_ablation/endpoints/meta/tau_priors.toml",
                              section="sensitivity.tau")


def tau_panel(spec: AnalysisSpec) -> tuple[dict[str, PriorSpec], str]:
    """(label → τ prior, where the panel came from); the spec's own prior comes first."""
    own = {SPEC_LABEL: spec.priors["tau"]}
    if spec.sensitivity.get("tau"):
        return {**own, **spec.sensitivity["tau"]}, "the spec's [sensitivity.tau.*]"
    return {**own, **default_tau_panel()}, "the package's default panel (endpoints/meta/tau_priors.toml)"


def sensitivity_posteriors(y: np.ndarray, se: np.ndarray, mu_prior: PriorSpec,
                           panel: Mapping[str, PriorSpec], studies: Sequence[str] = ()
                           ) -> dict[str, ExactPosterior]:
    return {label: ExactPosterior(y=y, se=se, mu_prior=mu_prior, tau_prior=prior,
                                  studies=tuple(studies)) for label, prior in panel.items()}


def sensitivity_table(posteriors: Mapping[str, ExactPosterior], panel: Mapping[str, PriorSpec],
                      interval_prob: float = 0.95, hr_threshold: float = 1.0) -> pd.DataFrame:
    """One row per τ prior: τ median and interval; pooled HR (e^μ) and new-study HR (e^θ_new)
    median and interval; P(HR < threshold) for both."""
    lo_q, hi_q = (1 - interval_prob) / 2, 1 - (1 - interval_prob) / 2
    rows = []
    for label, post in posteriors.items():
        q = post.quantiles([lo_q, 0.5, hi_q])
        probs = post.probabilities((hr_threshold,))
        mu, new = q.loc["mu"].to_numpy(), q.loc["theta_new"].to_numpy()
        rows.append({
            "tau prior": label,
            "prior": panel[label].describe(),
            "tau median": post.tau_quantile(0.5),
            "tau lower": post.tau_quantile(lo_q),
            "tau upper": post.tau_quantile(hi_q),
            "pooled HR median": np.exp(mu[1]),
            "pooled HR lower": np.exp(mu[0]),
            "pooled HR upper": np.exp(mu[2]),
            f"P(pooled HR<{hr_threshold:g})": probs[f"P(HR<{hr_threshold:g}) [pooled mu]"],
            "new-study HR median": np.exp(new[1]),
            "new-study HR lower": np.exp(new[0]),
            "new-study HR upper": np.exp(new[2]),
            f"P(new-study HR<{hr_threshold:g})": probs[f"P(HR<{hr_threshold:g}) [new study]"],
            "rationale": panel[label].rationale,
        })
    return pd.DataFrame(rows)


def tau_densities(posteriors: Mapping[str, ExactPosterior], n: int = 241) -> xr.Dataset:
    """Posterior density of τ under each prior of the panel on one grid (dims prior, tau)."""
    t_hi = max(post.tau_quantile(0.99) for post in posteriors.values())
    tau = np.linspace(0.0, t_hi, n)[1:]
    dens = np.stack([post.tau_density(tau) for post in posteriors.values()])
    return xr.Dataset({"tau_posterior": (("prior", "tau"), dens)},
                      coords={"prior": list(posteriors), "tau": tau})
