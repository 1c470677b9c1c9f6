"""nutpie imported with ArviZ deferred: nothing of ArviZ beyond arviz_base until it is used,
and then exactly ArviZ."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def run_fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter (a clean ``sys.modules``); it prints one JSON line."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_nutpie_uses_only_names_arviz_reexports_from_arviz_base():
    import arviz
    import arviz_base

    from bayes_ablation.inference.nutpie_import import FROM_ARVIZ_BASE

    for name in FROM_ARVIZ_BASE:
        assert getattr(arviz, name) is getattr(arviz_base, name)


def test_stand_in_until_first_use_then_the_real_module():
    out = run_fresh("""
        import json, sys
        from bayes_ablation.inference.nutpie_import import DeferredArviz, nutpie_module
        import arviz_base
        nutpie = nutpie_module()
        ns = sys.modules["nutpie.sample"]
        before = {m: m in sys.modules for m in ("arviz_stats", "arviz_plots", "scipy.stats")}
        stand_in = sys.modules["arviz"]
        same = ns.arviz.from_dict is arviz_base.from_dict
        import inspect
        inspect.getmodule(json.dumps)          # probes every module's __file__
        still = isinstance(sys.modules["arviz"], DeferredArviz)
        import arviz as az
        loo = az.loo                            # first real use
        after = {m: m in sys.modules for m in ("arviz_stats", "arviz_plots")}
        real = sys.modules["arviz"]
        print(json.dumps({"before": before, "deferred": isinstance(stand_in, DeferredArviz),
                          "same": same, "still": still, "after": after,
                          "real_is_module": not isinstance(real, DeferredArviz),
                          "loo_is_real": loo is real.loo,
                          "version": az.__version__ == real.__version__,
                          "nutpie_sees_real": ns.arviz.summary is real.summary}))
    """)
    assert out["deferred"] and out["same"] and out["still"]
    assert out["before"] == {"arviz_stats": False, "arviz_plots": False, "scipy.stats": False}
    assert out["after"] == {"arviz_stats": True, "arviz_plots": True}
    assert out["real_is_module"] and out["loo_is_real"] and out["version"]
    assert out["nutpie_sees_real"]


def test_arviz_imported_first_is_left_alone():
    out = run_fresh("""
        import json, sys
        import arviz
        from bayes_ablation.inference.nutpie_import import nutpie_module
        nutpie_module()
        print(json.dumps({"same": sys.modules["arviz"] is arviz}))
    """)
    assert out["same"]
