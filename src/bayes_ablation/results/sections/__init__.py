"""Report contract: a report is a title and a list of sections of text, tables and figures.

The HTML writer (:mod:`bayes_ablation.report.html`) iterates a :class:`Report` and knows
nothing of models or endpoints; a figure is named by its *kind* (a plotter registered in
:data:`bayes_ablation.report.plots.PLOTTERS`) and the data it draws. Who contributes the
sections of a report registers one builder here, by report kind:

* the endpoints' analysis reports (``pfs``, ``local_recurrence``, ``meta``: modules in this
  package, from an :class:`~bayes_ablation.results.contract.AnalysisResult`);
* the workflows' own reports (``monitor``, ``oc``, ``sbc``, ``coverage``), registered by the
  workflow modules that produce them.

A new report section is a function returning :class:`Section` in the builder of its report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Text:
    """A trusted HTML fragment written by the package (paragraphs, lists, emphasis)."""

    html: str


@dataclass(frozen=True)
class Table:
    """A table; ``digits`` significant decimals for floats; ``index`` shows the index."""

    frame: pd.DataFrame
    digits: int = 3
    index: bool = False


@dataclass(frozen=True)
class FigureSpec:
    """A figure: ``kind`` names a plotter, ``data`` its keyword arguments; ``name`` is the
    file name (``figures/<name>.png``, and ``.svg``/``.pdf`` when asked for); ``title`` its
    heading in words and ``alt`` the text read in place of the picture (both derived from
    ``name`` when empty)."""

    name: str
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    alt: str = ""

    @property
    def heading(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    @property
    def alt_text(self) -> str:
        return self.alt or f"Figure: {self.heading}"


Block = Text | Table | FigureSpec


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...] = ()

    @property
    def figures(self) -> tuple[FigureSpec, ...]:
        return tuple(b for b in self.blocks if isinstance(b, FigureSpec))


@dataclass(frozen=True)
class Banner:
    """A highlighted verdict at the top (``ok`` False: shown as a failure)."""

    ok: bool
    html: str


@dataclass(frozen=True)
class Report:
    title: str
    sections: tuple[Section, ...]
    intro_html: str = ""          # description and hashes under the title
    banner: Banner | None = None
    dpi: int = 110                # resolution of the figures' PNG files

    @property
    def figures(self) -> tuple[FigureSpec, ...]:
        return tuple(f for s in self.sections for f in s.figures)


def section(title: str, *blocks: Block | str | pd.DataFrame | None) -> Section:
    """A section from blocks; a ``str`` is HTML text, a DataFrame a table, None is skipped."""
    out: list[Block] = []
    for b in blocks:
        if b is None:
            continue
        out.append(Text(b) if isinstance(b, str) else Table(b) if isinstance(b, pd.DataFrame)
                   else b)
    return Section(title, tuple(out))


ReportBuilder = Callable[[Any], Report]
#: report kind -> builder(object) -> Report
REPORTS: dict[str, ReportBuilder] = {}
#: report kinds whose builders live in this package (imported on first use)
_BUILTIN = {"pfs": "bayes_ablation.results.sections.pfs",
            "local_recurrence": "bayes_ablation.results.sections.local_recurrence",
            "meta": "bayes_ablation.results.sections.meta"}


def register_report(kind: str) -> Callable[[ReportBuilder], ReportBuilder]:
    def deco(fn: ReportBuilder) -> ReportBuilder:
        REPORTS[kind] = fn
        return fn
    return deco


def build_report(kind: str, obj: Any) -> Report:
    """The report of ``obj`` by the builder registered for ``kind``."""
    if kind not in REPORTS and kind in _BUILTIN:
        import_module(_BUILTIN[kind])
    if kind not in REPORTS:
        raise KeyError(f"no report builder for {kind!r} (registered: {', '.join(REPORTS)})")
    return REPORTS[kind](obj)


def names_unique(figures: Sequence[FigureSpec]) -> None:
    seen: set[str] = set()
    for f in figures:
        if f.name in seen:
            raise ValueError(f"two figures named {f.name!r} in one report")
        seen.add(f.name)
