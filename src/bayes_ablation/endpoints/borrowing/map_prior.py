"""The meta-analytic-predictive (MAP) prior of a trial parameter from a study table.

Historical studies i give estimates y_i ± s_i of the parameter (the control arm's log
cumulative hazard at t_ref, or the log HR). The normal–normal model y_i ~ N(θ_i, s_i²),
θ_i ~ N(μ, τ²) with the spec's priors on μ and τ gives the predictive distribution of the
parameter in a new study, θ_new | y (Neuenschwander et al. 2010; Schmidli et al. 2014). It
is computed exactly by quadrature over τ (:mod:`bayes_ablation.endpoints.meta.quadrature`:
a normal mixture over the quadrature nodes), drawn from, and approximated by a normal mixture
fitted by EM (:func:`~bayes_ablation.endpoints.borrowing.mixture.auto_fit`, as RBesT's
``automixfit``). The robust MAP prior adds a vague component of weight w_R centred at the MAP
mean with the unit-information sd, so that a conflicting trial discounts the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_ablation.endpoints.borrowing.mixture import NormalMixture, auto_fit, ess_elir
from bayes_ablation.endpoints.meta.quadrature import exact_posterior
from bayes_ablation.spec.plan import PriorSpec


@dataclass(frozen=True)
class MapPrior:
    """A (robust) MAP prior: the exact θ_new summaries, its mixture fit and ESS."""

    target: str
    mixture: NormalMixture            # EM fit to the MAP draws
    robust: NormalMixture             # with the vague component
    exact_mean: float
    exact_sd: float
    exact_quantiles: dict[str, float]
    ess_map: float                    # ELIR ESS of the MAP mixture (units of unit_sd)
    ess_robust: float
    unit_sd: float
    robust_weight: float
    robust_sd: float
    studies: tuple[str, ...]
    aic: dict[int, float] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "studies": list(self.studies), "source": self.source,
                "map_exact": {"mean": self.exact_mean, "sd": self.exact_sd,
                              **self.exact_quantiles},
                "map_mixture": self.mixture.to_dict(),
                "map_mixture_mean": self.mixture.mean(), "map_mixture_sd": self.mixture.sd(),
                "robust_weight": self.robust_weight, "robust_sd": self.robust_sd,
                "robust_mixture": self.robust.to_dict(),
                "ess_elir_map": self.ess_map, "ess_elir_robust": self.ess_robust,
                "ess_unit": ("events" if self.unit_sd in (1.0, 2.0) else
                             f"observations of sd {self.unit_sd:g}"),
                "mixture_aic": {str(k): v for k, v in self.aic.items()}}


def map_draws(y: np.ndarray, se: np.ndarray, mu_prior: PriorSpec, tau_prior: PriorSpec,
              n_draws: int, seed: int, studies: Sequence[str] = ()) -> tuple[np.ndarray, Any]:
    """Draws of θ_new | y (exact quadrature mixture), and the exact posterior object."""
    exact = exact_posterior(y, se, mu_prior, tau_prior, studies)
    w, m, s = exact.theta_new_components()
    rng = np.random.default_rng(seed)
    k = rng.choice(w.size, size=int(n_draws), p=w / w.sum())
    return rng.normal(m[k], s[k]), exact


def map_prior(y: np.ndarray, se: np.ndarray, mu_prior: PriorSpec, tau_prior: PriorSpec, *,
              target: str, unit_sd: float, robust_weight: float, robust_sd: float | None = None,
              max_components: int = 4, n_draws: int = 20000, seed: int = 1,
              studies: Sequence[str] = (), source: str = "") -> MapPrior:
    """The robust MAP prior (module docstring); ``robust_sd`` defaults to ``unit_sd``."""
    draws, exact = map_draws(y, se, mu_prior, tau_prior, n_draws, seed, studies)
    mixture, aic = auto_fit(draws, max_components, seed=seed)
    mom = exact.moments.loc["theta_new"]
    q = exact.quantiles([0.025, 0.5, 0.975]).loc["theta_new"]
    rsd = float(unit_sd if robust_sd is None else robust_sd)
    robust = mixture.robustify(robust_weight, float(mom["mean"]), rsd)
    return MapPrior(target=target, mixture=mixture, robust=robust,
                    exact_mean=float(mom["mean"]), exact_sd=float(mom["sd"]),
                    exact_quantiles={str(k): float(v) for k, v in q.items()},
                    ess_map=ess_elir(mixture, unit_sd), ess_robust=ess_elir(robust, unit_sd),
                    unit_sd=float(unit_sd), robust_weight=float(robust_weight), robust_sd=rsd,
                    studies=tuple(exact.studies), aic=aic, source=source)
