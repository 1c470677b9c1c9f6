"""Coverage study of the lesion-level local recurrence model (``lr_weibull``).

Simulates ``--trials`` trials with :func:`simulate_lr_trial` (same design, different seeds),
fits each with the shipped spec (compiled once, data swapped in) and reports how often the 95%
central posterior interval covers the truth: LR log HR, lesion covariate effects, patient
frailty sd, death log HR and the CIF difference at 24 months for the reference lesion and a
typical patient (truth computed with the same estimand functions at the true parameters).

    PYTHONHASHSEED=0 PYTHONPATH=src python bench/lr_coverage.py --trials 20
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import xarray as xr

from bayes_ablation.data.lesions import lr_data_from_frames
from bayes_ablation.data.simulate_lr import simulate_lr_trial
from bayes_ablation.endpoints.local_recurrence.estimands import lr_cif, reference_offsets
from bayes_ablation.endpoints.local_recurrence.model import reference_design
from bayes_ablation.spec.plan import load_spec
from bayes_ablation.workflows.fit import fit

ARMS = ["postoperative", "perioperative"]


def true_cif_difference(truth: dict, spec, lesions, t: float) -> float:
    one = {"chain": [0], "draw": [0]}
    names = list(truth["beta_covariates"])
    post = xr.Dataset({
        "log_cumhaz_ref": (("chain", "draw"), [[truth["log_cumhaz_ref"]]]),
        "weibull_shape": (("chain", "draw"), [[truth["weibull_shape"]]]),
        "log_hr": (("chain", "draw", "treatment"), [[[truth["log_hr"]]]]),
        "beta_covariates": (("chain", "draw", "covariate"),
                            [[[truth["beta_covariates"][n] for n in names]]]),
        "death_log_cumhaz_ref": (("chain", "draw"), [[truth["death_log_cumhaz_ref"]]]),
        "death_weibull_shape": (("chain", "draw"), [[truth["death_weibull_shape"]]]),
        "death_log_hr": (("chain", "draw", "treatment"), [[[truth["death_log_hr"]]]]),
    }, coords={**one, "treatment": ARMS[1:], "covariate": names})
    post.attrs["arms"] = json.dumps(ARMS)
    cif = lr_cif(post, spec, np.array([t]), reference_offsets(post, reference_design(
        spec, lesions)), "typical_patient")
    return float((cif.sel(arm=ARMS[1]) - cif.sel(arm=ARMS[0])).values.item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--first-seed", type=int, default=1000)
    args = parser.parse_args()
    spec = load_spec("models/local_recurrence_lesion.toml").with_sampler(
        chains=4, draws=args.draws, tune=1000)
    hits: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    errors: dict[str, list[float]] = {}
    start = time.perf_counter()
    for trial in range(args.trials):
        sim = simulate_lr_trial(args.patients, 6, -0.4, seed=args.first_seed + trial,
                                lr_cuminc_24_ref=0.12)
        lesions = lr_data_from_frames(sim.patients, sim.lesions, reference_arm=ARMS[0],
                                      covariates=spec.covariates)
        result = fit(spec, lesions.patients, lesions=lesions, run_ppc=False)
        post = result.posterior
        t = sim.truth
        draws = {"log_hr": post["log_hr"].sel(treatment=ARMS[1]),
                 "sigma_patient": post["sigma_patient"],
                 "death_log_hr": post["death_log_hr"].sel(treatment=ARMS[1]),
                 "cif_difference_24_reference": result.estimands["cif_lr_difference"].sel(
                     treatment=ARMS[1], lesion_target="reference",
                     population="typical_patient", time=24.0)}
        truth = {"log_hr": t["log_hr"], "sigma_patient": t["sigma_patient"],
                 "death_log_hr": t["death_log_hr"],
                 "cif_difference_24_reference": true_cif_difference(t, spec, lesions, 24.0)}
        for name, value in t["beta_covariates"].items():
            draws[name] = post["beta_covariates"].sel(covariate=name)
            truth[name] = value
        for name, da in draws.items():
            lo, hi = np.quantile(da.values.ravel(), [0.025, 0.975])
            hits.setdefault(name, []).append(bool(lo <= truth[name] <= hi))
            widths.setdefault(name, []).append(float(hi - lo))
            errors.setdefault(name, []).append(float(np.median(da.values)) - truth[name])
        gate = "pass" if result.diagnostics.passed else \
            "FAIL (" + "; ".join(result.diagnostics.failures) + ")"
        print(f"trial {trial + 1}/{args.trials}: gate {gate}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    n = args.trials
    print(f"\n95% interval coverage over {n} trials ({args.patients} patients, 6 sites; "
          f"binomial sd of a true 0.95 coverage: {np.sqrt(0.95 * 0.05 / n):.3f})")
    print(f"{'quantity':<30} {'coverage':>9} {'mean width':>11} {'median − truth':>15}")
    for name in hits:
        e = np.array(errors[name])
        print(f"{name:<30} {np.mean(hits[name]):>9.2f} {np.mean(widths[name]):>11.3f} "
              f"{e.mean():>+8.3f} ± {e.std(ddof=1) / np.sqrt(n):.3f}")


if __name__ == "__main__":
    main()
