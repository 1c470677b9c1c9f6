"""Issue 13, point 5: ESS per gradient evaluation of the LR fit under sampler settings and
frailty parameterisations, on the trials of ``bench/lr_vs_brms.py`` (in one process, no CLI).

    PYTHONHASHSEED=0 PYTHONPATH=src python bench/lr_ess_per_gradient.py \
        [--spec models/local_recurrence_lesion.toml] [--seeds 1,3,4] \
        [--variant '{"target_accept": 0.9, "draws": 1500}'] ...

Data: ``simulate_lr_trial(400, 8, -0.4, seed=SEED)`` (the trial ``simulate-lr --n-patients 400
--sites 8 --seed SEED`` writes, ≈900 lesions); the spec without lesion covariates (as
``bench/lr_vs_brms.py``). Each variant is a JSON object of ``nutpie.sample`` arguments over
the spec's (draws, tune, target_accept, adaptation, …), plus optionally
``"frailty_weights": "events:S"`` — patient-frailty centring weights w_i = S² O_i / (1 + S² O_i)
from each patient's observed LR count O_i instead of the data-adaptive rule (the prior is the
same; only the geometry changes). The model samples on the cached kernel. Printed per fit:
divergences, min bulk / tail ESS and max R-hat over every parameter (the gate's), ESS of
sigma_patient, the leapfrog steps of the draw phase (= gradient evaluations) and min ESS per
1000 of them. Sampling seconds are printed too, but on a shared machine read the ESS per
gradient.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_VARIANTS = ('{}', '{"target_accept": 0.95, "draws": 1000}',
                    '{"target_accept": 0.9, "draws": 1500}')


def main() -> None:
    import arviz as az
    import numpy as np
    import nutpie
    from lr_vs_brms import covariate_free_spec

    from bayes_ablation.data.lesions import lr_data_from_frames
    from bayes_ablation.data.simulate_lr import simulate_lr_trial
    from bayes_ablation.endpoints.build import build_model
    from bayes_ablation.endpoints.local_recurrence.model import patient_counts
    from bayes_ablation.inference.kernels import kernel_model
    from bayes_ablation.spec.plan import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "models" /
                        "local_recurrence_lesion.toml")
    parser.add_argument("--seeds", default="1,3,4")
    parser.add_argument("--variant", action="append", default=None,
                        help="JSON object of sampler arguments (repeat); default: the spec's, "
                             "4 x 1000 at 0.95, 4 x 1500 at 0.9")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(covariate_free_spec(args.spec, Path(tmp) / "spec.toml"))
    s = spec.sampler
    print(f"spec {args.spec.name} without covariates; spec sampler: {s.chains} x {s.draws} "
          f"(tune {s.tune}), target_accept {s.target_accept}, adaptation {s.adaptation}")
    header = ("| seed | variant | div | min bulk / tail ESS | max R-hat | ESS sigma_patient | "
              "gradients (draw phase) | min ESS per 1k gradients | sampling s |")
    print(header + "\n|" + "---|" * (header.count("|") - 1), flush=True)
    for seed in (int(x) for x in args.seeds.split(",")):
        sim = simulate_lr_trial(400, 8, -0.4, seed=seed)
        lesions = lr_data_from_frames(sim.patients, sim.lesions,
                                      reference_arm=spec.reference_arm, covariates=[])
        model = build_model(spec, lesions)
        auto_weights = np.asarray(model["centring_patient"].get_value())
        for text in args.variant or DEFAULT_VARIANTS:
            variant = json.loads(text)
            weights = variant.pop("frailty_weights", None)
            if weights is None:
                model.set_data("centring_patient", auto_weights)
            else:
                kind, _, scale = weights.partition(":")
                if kind != "events":
                    raise SystemExit(f"frailty_weights must be events:S, got {weights!r}")
                info = float(scale) ** 2 * patient_counts(lesions)[0]
                model.set_data("centring_patient", info / (1.0 + info))
            compiled, _ = kernel_model(model, spec)
            kw = {"draws": s.draws, "tune": s.tune, "chains": s.chains, "cores": 2,
                  "seed": s.seed, "target_accept": s.target_accept,
                  "adaptation": s.adaptation, "progress_bar": False, "save_warmup": False,
                  **variant}
            start = time.perf_counter()
            idata = nutpie.sample(compiled, **kw)
            seconds = time.perf_counter() - start
            stats = idata.sample_stats
            steps = int(stats["n_steps"].sum())
            names = list(idata.posterior.data_vars)
            bulk = az.ess(idata, method="bulk")
            tail = az.ess(idata, method="tail")
            rhat = az.rhat(idata)
            min_bulk = min(float(bulk[n].min()) for n in names)
            min_tail = min(float(tail[n].min()) for n in names)
            label = json.dumps({**variant, **({"frailty_weights": weights} if weights else {})})
            print(f"| {seed} | {label} | {int(stats['diverging'].sum())} | {min_bulk:.0f} / "
                  f"{min_tail:.0f} | {max(float(rhat[n].max()) for n in names):.4f} | "
                  f"{float(bulk['sigma_patient']):.0f} | {steps} | "
                  f"{1000 * min(min_bulk, min_tail) / steps:.2f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
