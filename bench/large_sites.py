"""Large sites: the Weibull spec on a simulated 20,000-patient / 40-site trial (≈ 500 patients
per site), whole ``bayes-ablation fit`` command, with the shipped spec's sampler settings.

    python bench/large_sites.py [--parameterisation auto|non_centred|centred ...]

Prints, per parameterisation, wall seconds, the gate, min bulk / tail ESS (and where), the
divergences and the mean site-centring weight. The default gate (R-hat ≤ 1.01, bulk and tail
ESS ≥ 400, zero divergences) must pass for ``auto``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_run import ROOT, timed_fit

SPEC = ROOT / "models" / "pfs_weibull_site.toml"


def spec_with(parameterisation: str, adaptation: str | None, folder: Path) -> Path:
    """The shipped spec, or a copy with another parameterisation / mass-matrix adaptation."""
    text = SPEC.read_text()
    raw = tomllib.loads(text)
    same = (raw["model"].get("parameterisation", "auto") == parameterisation
            and adaptation in (None, raw["sampler"].get("adaptation", "diag")))
    if same:
        return SPEC
    text = text.replace("[model]\n", f'[model]\nparameterisation = "{parameterisation}"\n', 1)
    if adaptation is not None:
        text = text.replace("[sampler]\n", f'[sampler]\nadaptation = "{adaptation}"\n', 1)
    path = folder / f"weibull_{parameterisation}_{adaptation}.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parameterisation", nargs="+", default=["auto", "non_centred"],
                        choices=["auto", "non_centred", "centred"])
    parser.add_argument("--adaptation", choices=["diag", "low_rank"], default=None,
                        help="mass-matrix adaptation (default: the spec's)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from bayes_ablation.data.simulate import simulate_trial

    print("| parameterisation | wall s | gate | max R-hat | min bulk ESS | min tail ESS | "
          "divergences | sampling s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "trial_20000x40.csv"
        simulate_trial(20000, 40, -0.25, seed=2026).frame.to_csv(data, index=False)
        for mode in args.parameterisation:
            spec = spec_with(mode, args.adaptation, folder)
            wall, summary, _ = timed_fit(spec, data, folder / f"out_{mode}")
            gate = summary["diagnostics"]
            timings = summary["provenance"]["timings_seconds"]
            print(f"| {mode} | {wall:.1f} | {'pass' if gate['passed'] else 'FAIL'} | "
                  f"{gate['rhat_max']:.4f} | {gate['ess_bulk_min']:.0f} | "
                  f"{gate['ess_tail_min']:.0f} | {gate['divergences']} | "
                  f"{timings['sampling']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
