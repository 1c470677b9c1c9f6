"""Re-fit simulation i of a spec's SBC study and show where its sampler warnings sit.

Simulation i is re-created exactly as :func:`bayes_ablation.workflows.validation.runner.run_simulation`
does (``SeedSequence(spec seed, spawn_key=("sbc", i))`` draws the parameters, the data set and
the sampler seed), then fitted with the spec's settings or with sampler overrides. Prints the
divergences, the largest R-hat over *all* posterior variables (and which), the bulk ESS of the
hierarchical sds, and the process CPU time of the fit (the first fit includes the compile).

    PYTHONPATH=src python bench/sbc/refit.py models/pfs_piecewise_site.toml 0 18 62
    PYTHONPATH=src python bench/sbc/refit.py models/local_recurrence_lesion_pwe.toml 0 1 2 \
        --set draws=2000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")

import arviz as az  # noqa: E402

from bayes_ablation.core.parallel import rng_for  # noqa: E402
from bayes_ablation.endpoints.sbc import get_adapter  # noqa: E402
from bayes_ablation.inference.sampling import sample  # noqa: E402
from bayes_ablation.spec.plan import load_spec  # noqa: E402
from bayes_ablation.workflows.validation.runner import compiled_model_key  # noqa: E402

SDS = ("sigma_log_hazard_rw", "sigma_log_hr_rw", "sigma_site", "sigma_patient")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("indices", type=int, nargs="+")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="sampler override, e.g. draws=2000 or target_accept=0.95")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    adapter = get_adapter(spec)
    design = adapter.design({})
    spec = adapter.study_spec(spec, design)
    over = {k: type(getattr(spec.sampler, k))(v) for k, v in (s.split("=", 1) for s in args.set)}
    flagged = 0
    for i in args.indices:
        rng = rng_for(spec.sampler.seed, "sbc", i)
        params = adapter.draw_parameters(spec, rng)
        sim = adapter.simulate(spec, params, design, rng)
        settings = dataclasses.replace(spec.sampler, seed=int(rng.integers(0, 2**31 - 1)), **over)
        start = time.process_time()
        fitted = sample(adapter.build(spec, sim.data), settings, cache_key=compiled_model_key(spec),
                        cores=1, spec=spec)
        cpu = time.process_time() - start
        post = fitted.idata.posterior.to_dataset()
        divergences = int(fitted.idata.sample_stats["diverging"].sum())
        rhat = az.rhat(post)
        worst = max((float(rhat[v].max()), v) for v in rhat.data_vars)
        sds = [v for v in SDS if v in post]
        ess = az.ess(post[sds], method="bulk")
        flagged += worst[0] > spec.diagnostics.rhat_max or divergences > 0
        print(f"{i:4d}  divergences {divergences:4d}  max R-hat {worst[0]:.4f} ({worst[1]})  "
              + "  ".join(f"ESS({v}) {float(ess[v]):.0f}" for v in sds) + f"  CPU {cpu:.1f} s",
              flush=True)
    print(f"{flagged} of {len(args.indices)} fits with divergences or R-hat > "
          f"{spec.diagnostics.rhat_max}")


if __name__ == "__main__":
    main()
