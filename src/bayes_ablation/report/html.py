"""Self-contained HTML report (inline CSS, figures embedded as base64 PNG) of any
:class:`~bayes_ablation.results.sections.Report`: the writer iterates sections and blocks and
draws each figure with the plotter its kind names; it never sees a model or an endpoint."""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_ablation.report.plots import plotter
from bayes_ablation.results.sections import Report, Section, Table, Text, names_unique

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}table{border-collapse:collapse;font-size:.86em;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f4f6f8}
td:first-child,th:first-child{text-align:left}.banner{padding:.8em 1em;border-radius:6px;
font-weight:600;margin:1em 0}.pass{background:#e3f4e8;border:1px solid #7cc48f}
.fail{background:#fde2e0;border:2px solid #d9534f;color:#8b1b17;font-size:1.1em}
.muted{color:#666;font-size:.85em}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.headline{font-size:1.15em;font-weight:600;background:#eef4fb;border-left:5px solid #2b6cb0;
padding:.6em 1em;margin:.4em 0}
code{background:#f4f4f4;padding:0 .3em}
"""


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig`` (closed afterwards)."""
    from bayes_ablation.report.plots import plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def html_table(frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float | np.floating):
            if np.isnan(v):
                return ""
            return f"{v:.{digits}g}" if abs(v) >= 1e4 or (0 < abs(v) < 1e-3) else \
                f"{v:.{digits}f}"
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in
                   ([frame.index.name or ""] if index else []) + list(frame.columns))
    rows = []
    # itertuples keeps each column's dtype (iterrows would turn integer counts into floats)
    for idx, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        cells = ([f"<td>{html.escape(str(idx))}</td>"] if index else []) + \
            [f"<td>{fmt(v)}</td>" for v in row]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(report: Report, pngs: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML string: the title, intro and banner, then each
    section's blocks in order (text, tables, figures as embedded PNG)."""
    banner = ""
    if report.banner is not None:
        banner = (f"<div class='banner {'pass' if report.banner.ok else 'fail'}'>"
                  f"{report.banner.html}</div>")
    body = "\n".join(_section_html(s, pngs) for s in report.sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)} — bayes_ablation
report</title><style>{CSS}</style></head><body>
<h1>{html.escape(report.title)}</h1>
{report.intro_html}
{banner}
{body}
</body></html>"""


def _section_html(section: Section, pngs: Mapping[str, bytes]) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    for block in section.blocks:
        if isinstance(block, Text):
            parts.append(block.html)
        elif isinstance(block, Table):
            parts.append(html_table(block.frame, block.digits, block.index))
        else:
            parts.append(figure_html(block.name, pngs[block.name]))
    return "".join(parts)


def figure_html(name: str, png: bytes) -> str:
    return (f"<h3>{html.escape(name.replace('_', ' '))}</h3>"
            f"<img alt='{html.escape(name)}' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}'>")


def figure_makers(report: Report) -> dict[str, Callable[[], Figure]]:
    """Each figure of ``report`` as a function that draws it (its plotter and data)."""
    names_unique(report.figures)
    return {f.name: functools.partial(plotter(f.kind), **f.data) for f in report.figures}


#: the costliest figures, drawn in a forked child process while this process draws the rest
CHILD_FIGURES = ("ppc_sites", "traces")


def _can_fork() -> bool:
    """Parallel drawing: Linux only (fork is unsafe on macOS), more than one core, and not
    switched off with ``BAYES_ABLATION_SERIAL_REPORT=1``."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and (os.cpu_count() or 1) > 1 and not os.environ.get("BAYES_ABLATION_SERIAL_REPORT"))


def render_pngs(makers: Mapping[str, Callable[[], Figure]],
                progress: Callable[[str], None] | None = None, dpi: int = 110
                ) -> dict[str, bytes]:
    """PNG bytes of every figure, in the order of ``makers``.

    Figures are independent, and drawing them is single-threaded matplotlib work: the ones in
    :data:`CHILD_FIGURES` are drawn by a forked child (writing PNG files to a private
    temporary folder) while this process draws the others. Anything the child did not
    deliver (it failed, or fork is unavailable) is drawn here, so the result never depends on
    the child.
    """
    say = progress or (lambda msg: None)
    child = [n for n in makers if n in CHILD_FIGURES] if _can_fork() else []
    own = [n for n in makers if n not in child]
    pngs: dict[str, bytes] = {}
    pid, folder = None, None
    if child and own:
        folder = tempfile.mkdtemp(prefix="bayes_ablation_figs_")
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
            pid = os.fork()
        if pid == 0:  # child: draw, write, and leave without running any exit handler
            code = 1
            try:
                for name in child:
                    png = figure_png(makers[name](), dpi)
                    tmp = os.path.join(folder, f".{name}.png")
                    with open(tmp, "wb") as fh:
                        fh.write(png)
                    os.replace(tmp, os.path.join(folder, f"{name}.png"))
                code = 0
            finally:
                os._exit(code)
    for name in own:
        say(f"figure {name}")
        pngs[name] = figure_png(makers[name](), dpi)
    if pid is not None and folder is not None:
        os.waitpid(pid, 0)
        for name in child:
            path = os.path.join(folder, f"{name}.png")
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    pngs[name] = fh.read()
                say(f"figure {name} (drawn in parallel)")
        shutil.rmtree(folder, ignore_errors=True)
    for name in makers:
        if name not in pngs:
            say(f"figure {name}")
            pngs[name] = figure_png(makers[name](), dpi)
    return {name: pngs[name] for name in makers}


def render_report(report: Report, progress: Callable[[str], None] | None = None
                  ) -> tuple[str, dict[str, bytes]]:
    """Draw the figures and write the HTML; returns (html, {figure name: PNG bytes})."""
    pngs = render_pngs(figure_makers(report), progress, dpi=report.dpi)
    return render_html(report, pngs), pngs
