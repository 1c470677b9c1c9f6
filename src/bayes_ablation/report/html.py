"""Self-contained HTML report (inline CSS, figures embedded as base64 PNG) of any
:class:`~bayes_ablation.results.sections.Report`: the writer iterates sections and blocks and
draws each figure with the plotter its kind names; it never sees a model or an endpoint.

The page comes from the jinja2 template ``templates/report.html.j2`` with autoescaping on:
section and figure titles, table cells and alt texts are escaped by the template; only the
package's own HTML fragments (:class:`~bayes_ablation.results.sections.Text`, the intro and the
banner) are passed as trusted markup. Figures can also be written as SVG or PDF for
publication (``figure_format``); the page always embeds the PNG."""

from __future__ import annotations

import base64
import functools
import io
import os
import re
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from bayes_ablation.report.plots import plotter
from bayes_ablation.results.sections import (
    FigureSpec,
    Report,
    Section,
    Table,
    Text,
    names_unique,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}table{border-collapse:collapse;font-size:.86em;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{padding:.8em 1em;border-radius:6px;
font-weight:600;margin:1em 0}.pass{background:#e3f4e8;border:1px solid #7cc48f}
.fail{background:#fde2e0;border:2px solid #d9534f;color:#8b1b17;font-size:1.1em}
.muted{color:#666;font-size:.85em}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.headline{font-size:1.15em;font-weight:600;margin:.35em 0}
code{background:#f4f4f4;padding:0 .3em}
figure{margin:1em 0}h3{margin-bottom:.3em}.toc{margin:.8em 0}.toc a{color:#2b6cb0;
text-decoration:none}section.answer{background:#eef4fb;border:1px solid #9dbbe0;border-left:6px solid #2b6cb0;
border-radius:6px;padding:.3em 1.1em .6em;margin:1em 0}section.answer h2{border:0;margin:.3em 0 0;
font-size:.85em;text-transform:uppercase;letter-spacing:.06em;color:#2b6cb0}
.answer .muted{margin:.4em 0 0}
section.diagnostics{border-top:3px double #ccc;margin-top:2.5em}
"""

#: figure file formats: PNG always (the page embeds it); SVG or PDF also for publication
FIGURE_FORMATS = ("png", "svg", "pdf")

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig`` (closed afterwards)."""
    return figure_bytes(fig, dpi)["png"]


def figure_bytes(fig: Figure, dpi: int = 110, formats: Sequence[str] = ("png",)
                 ) -> dict[str, bytes]:
    """``fig`` saved in each of ``formats`` (``png``, ``svg``, ``pdf``); closed afterwards."""
    from bayes_ablation.report.plots import close_figure

    out = {}
    try:
        for fmt in formats:
            if fmt not in FIGURE_FORMATS:
                raise ValueError(f"figure format must be one of {FIGURE_FORMATS}, got {fmt!r}")
            buf = io.BytesIO()
            meta = {"Date": None} if fmt in ("svg", "pdf") else {}   # reproducible bytes
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
            out[fmt] = buf.getvalue()
    finally:
        close_figure(fig)
    return out


def format_cell(v: Any, digits: int = 3) -> str:
    """A table cell as text: integers as integers, floats with ``digits`` decimals (or
    significant digits when very large or small), missing values empty."""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return ""
        return f"{v:.{digits}g}" if abs(v) >= 1e4 or (0 < abs(v) < 1e-3) else f"{v:.{digits}f}"
    if v is None or v is pd.NA:
        return ""
    return str(v)


def table_context(frame: pd.DataFrame, digits: int = 3, index: bool = False
                  ) -> dict[str, Any]:
    """Header and rows of ``frame`` as text (escaped later by the template)."""
    numeric = [False] * index + [_is_numeric(frame[c]) for c in frame.columns]
    head = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    rows = []
    # itertuples keeps each column's dtype (iterrows would turn integer counts into floats)
    for idx, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        rows.append(([str(idx)] if index else []) + [format_cell(v, digits) for v in row])
    return {"type": "table", "head": head, "rows": rows, "numeric": numeric}


_NUMBER = re.compile(r"^[−+-]?\d[\d.,]*( to [−+-]?\d[\d.,]*)?%?$")


def _is_numeric(col: pd.Series) -> bool:
    """A column of numbers (or of number texts such as '0.53 to 0.85'): right-aligned."""
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_numeric_dtype(col):
        return True
    values = [str(v) for v in col if v is not None and str(v) not in ("", "nan")]
    return bool(values) and all(_NUMBER.match(v) for v in values)


def html_table(frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
    """``frame`` as an HTML table (cells escaped)."""
    t = table_context(frame, digits, index)
    return str(_ENV.get_template("table.html.j2").module.table(t)).strip()


def _slug(text: str, seen: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in seen:
        slug, k = f"{base}-{k}", k + 1
    seen.add(slug)
    return slug


#: section titles given a CSS class (the answer box; the diagnostics set apart)
_SECTION_CSS = {"Answer": "answer", "Diagnostics": "diagnostics"}


def render_html(report: Report, pngs: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML string: the title, intro and banner, then each
    section's blocks in order (text, tables, figures as embedded PNG with alt text)."""
    seen: set[str] = set()
    sections = [{"title": s.title, "id": _slug(s.title, seen), "css": _SECTION_CSS.get(s.title, ""),
                 "blocks": [_block(b, pngs) for b in s.blocks]} for s in report.sections]
    banner = None if report.banner is None else {"ok": report.banner.ok,
                                                  "html": Markup(report.banner.html)}
    page = _ENV.get_template("report.html.j2").render(
        title=report.title, intro=Markup(report.intro_html), banner=banner,
        sections=sections, css=Markup(CSS))
    return page.strip() + "\n"


def _block(block: Text | Table | FigureSpec, pngs: Mapping[str, bytes]) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "html": Markup(block.html)}
    if isinstance(block, Table):
        return table_context(block.frame, block.digits, block.index)
    return {"type": "figure", "name": block.name, "title": block.heading, "alt": block.alt_text,
            "src": base64.b64encode(pngs[block.name]).decode()}


def _section_html(section: Section, pngs: Mapping[str, bytes]) -> str:
    """One section alone (as in the full page)."""
    page = render_html(Report(title="", sections=(section,)), pngs)
    return page[page.index("<section"):page.rindex("</section>") + len("</section>")]


def figure_html(name: str, png: bytes, title: str = "", alt: str = "") -> str:
    return _section_html(Section("", (FigureSpec(name, "", title=title, alt=alt),)),
                         {name: png})


def figure_makers(report: Report) -> dict[str, Callable[[], Figure]]:
    """Each figure of ``report`` as a function that draws it (its plotter and data)."""
    names_unique(report.figures)
    return {f.name: functools.partial(plotter(f.kind), **f.data) for f in report.figures}


#: relative drawing cost of the costlier figures (others 1): the order in which they are handed
#: out, costliest first, so that the two processes finish together
FIGURE_COST = {"traces": 3, "ppc_sites": 3, "traces_frailty_death": 2, "cif_lr": 2,
               "km_posterior": 2, "prior_posterior": 2, "lr_cumulative_incidence_check": 2}


def _can_fork() -> bool:
    """Parallel drawing: Linux only (fork is unsafe on macOS), more than one core, and not
    switched off with ``BAYES_ABLATION_SERIAL_REPORT=1``."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and (os.cpu_count() or 1) > 1 and not os.environ.get("BAYES_ABLATION_SERIAL_REPORT"))


def render_pngs(makers: Mapping[str, Callable[[], Figure]],
                progress: Callable[[str], None] | None = None, dpi: int = 110
                ) -> dict[str, bytes]:
    """PNG bytes of every figure, in the order of ``makers`` (see :func:`render_figures`)."""
    return {name: files["png"] for name, files in
            render_figures(makers, progress, dpi).items()}


def render_figures(makers: Mapping[str, Callable[[], Figure]],
                   progress: Callable[[str], None] | None = None, dpi: int = 110,
                   formats: Sequence[str] = ("png",)) -> dict[str, dict[str, bytes]]:
    """Every figure in each of ``formats``: {name: {format: bytes}}, in the order of
    ``makers``.

    Figures are independent, and drawing them is single-threaded matplotlib work, so a forked
    child draws while this process draws: the figures are handed out costliest first
    (:data:`FIGURE_COST`) from a shared queue (a pipe of figure numbers, one byte each: a
    read takes one number, atomically), the child taking the first, each process the next
    whenever it is free. The child writes its files to a private temporary folder. Anything
    it did not deliver (it failed, or fork is unavailable) is drawn here, so the result never
    depends on the child.
    """
    say = progress or (lambda msg: None)
    formats = tuple(dict.fromkeys(formats))
    order = sorted(makers, key=lambda n: -FIGURE_COST.get(n, 1))
    shared = order[:256] if _can_fork() and len(order) > 1 else []
    out: dict[str, dict[str, bytes]] = {}
    pid, folder, queue = None, None, None
    if shared:
        folder = tempfile.mkdtemp(prefix="bayes_ablation_figs_")
        queue, feed = os.pipe()
        os.write(feed, bytes(range(1, len(shared))))   # figure 0 is the child's
        os.close(feed)
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
            pid = os.fork()
        if pid == 0:  # child: draw, write, and leave without running any exit handler
            code = 1
            try:
                index = 0
                while index is not None:
                    name = shared[index]
                    for fmt, data in figure_bytes(makers[name](), dpi, formats).items():
                        tmp = os.path.join(folder, f".{name}.{fmt}")
                        with open(tmp, "wb") as fh:
                            fh.write(data)
                        os.replace(tmp, os.path.join(folder, f"{name}.{fmt}"))
                    index = _next_figure(queue)
                code = 0
            finally:
                os._exit(code)
    if queue is not None:
        try:
            while (index := _next_figure(queue)) is not None:
                name = shared[index]
                say(f"figure {name}")
                out[name] = figure_bytes(makers[name](), dpi, formats)
        except BaseException:
            if pid:   # do not leave the child drawing into a folder about to be removed
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            os.close(queue)
    if pid is not None and folder is not None:
        os.waitpid(pid, 0)
        for name in shared:
            if name in out:
                continue
            paths = {fmt: os.path.join(folder, f"{name}.{fmt}") for fmt in formats}
            if all(os.path.exists(path) for path in paths.values()):
                out[name] = {}
                for fmt, path in paths.items():
                    with open(path, "rb") as fh:
                        out[name][fmt] = fh.read()
                say(f"figure {name} (drawn in parallel)")
        shutil.rmtree(folder, ignore_errors=True)
    for name in makers:
        if name not in out:
            say(f"figure {name}")
            out[name] = figure_bytes(makers[name](), dpi, formats)
    return {name: out[name] for name in makers}


def _next_figure(queue: int) -> int | None:
    """The next figure number from the shared queue, or None when it is empty."""
    data = os.read(queue, 1)
    return data[0] if data else None


@dataclass(frozen=True)
class RenderedReport:
    """A rendered report: the page, each figure's PNG (embedded in the page) and the figure
    files to write next to it (``<name>.png`` and, when asked for, ``<name>.svg``/``.pdf``)."""

    html: str
    pngs: dict[str, bytes]
    files: dict[str, bytes] = field(default_factory=dict)


def render(report: Report, progress: Callable[[str], None] | None = None,
           figure_format: str = "png") -> RenderedReport:
    """Draw the figures (PNG, plus ``figure_format`` when it is ``svg`` or ``pdf``) and write
    the HTML."""
    if figure_format not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}, got {figure_format!r}")
    formats = ("png",) if figure_format == "png" else ("png", figure_format)
    drawn = render_figures(figure_makers(report), progress, dpi=report.dpi, formats=formats)
    pngs = {name: files["png"] for name, files in drawn.items()}
    files = {f"{name}.{fmt}": data for name, fs in drawn.items() for fmt, data in fs.items()}
    return RenderedReport(render_html(report, pngs), pngs, files)


def render_report(report: Report, progress: Callable[[str], None] | None = None
                  ) -> tuple[str, dict[str, bytes]]:
    """Draw the figures and write the HTML; returns (html, {figure name: PNG bytes})."""
    r = render(report, progress)
    return r.html, r.pngs
