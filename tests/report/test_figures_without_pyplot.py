"""Figures made without pyplot are pixel-for-pixel those pyplot makes, and writing a report
never imports pyplot."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np


def _draw(fig, axes):
    for i, ax in enumerate(np.ravel(axes)):
        ax.plot(np.linspace(0, 1, 50) ** (i + 1), label=f"curve {i}")
        ax.fill_between(np.arange(50), 0.1, 0.2, alpha=0.3)
        ax.set_title(f"panel {i}")
        ax.legend()
    fig.suptitle("pyplot or not")
    return fig


def test_same_png_bytes_as_pyplot():
    import matplotlib.pyplot as pyplot

    from bayes_ablation.report.html import figure_png
    from bayes_ablation.report.plots import subplots

    kw = {"figsize": (6, 3), "sharey": True, "width_ratios": [2, 1]}
    ours = figure_png(_draw(*subplots(1, 2, **kw)))
    theirs = figure_png(_draw(*pyplot.subplots(1, 2, **kw)))
    assert ours == theirs
    assert not pyplot.get_fignums()        # pyplot's figure was closed by figure_png


def test_a_report_is_written_without_importing_pyplot(tmp_path):
    code = textwrap.dedent("""
        import json, sys
        from bayes_ablation.report.html import render_pngs
        from bayes_ablation.report.plots import subplots
        def make():
            fig, ax = subplots(figsize=(2, 2))
            ax.plot([0, 1], [1, 0])
            return fig
        pngs = render_pngs({"a": make, "b": make})
        print(json.dumps({"pyplot": "matplotlib.pyplot" in sys.modules,
                          "png": all(p[:8] == b"\\x89PNG\\r\\n\\x1a\\n" for p in pngs.values())}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout.strip().splitlines()[-1]
    assert out == '{"pyplot": false, "png": true}'
