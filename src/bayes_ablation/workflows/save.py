"""Save a result: the one place that joins the report (sections → HTML and figures) and the
bundle format (posterior file, tables, summary, manifest)."""

from __future__ import annotations

import logging
from pathlib import Path

from bayes_ablation.core.files import atomic_write_text, check_destination
from bayes_ablation.report.html import render, render_report
from bayes_ablation.results.bundle import write_bundle
from bayes_ablation.results.contract import AnalysisResult
from bayes_ablation.results.sections import Report, build_report

logger = logging.getLogger(__name__)


def analysis_report(result: AnalysisResult) -> Report:
    """The report of ``result`` by its endpoint's registered section builder."""
    return build_report(result.spec.endpoint, result)


def save_bundle(result: AnalysisResult, out: str | Path, *, force: bool = False,
                posterior_format: str = "netcdf", spec_text: str | None = None,
                progress: bool = False, figure_format: str = "png") -> Path:
    """Render the report and write the bundle atomically (the report is drawn while a child
    process writes the posterior file); ``progress`` logs each stage;
    ``figure_format`` ``svg`` or ``pdf`` also writes each figure in that format (PNG always:
    the report embeds it)."""
    check_destination(out, force)

    def say(msg: str) -> None:
        if progress:
            logger.info("  · %s", msg)

    def draw() -> tuple[str, dict[str, bytes], dict[str, bytes]]:
        # called by write_bundle while a child process writes the posterior file
        say("rendering report")
        rendered = render(analysis_report(result), say, figure_format=figure_format)
        return rendered.html, rendered.pngs, rendered.files

    return write_bundle(result, out, render=draw, force=force,
                        posterior_format=posterior_format, spec_text=spec_text, progress=say)


def save_report(result: AnalysisResult, path: str | Path) -> Path:
    """Write the self-contained HTML report of ``result`` to ``path`` (atomically)."""
    html_text, _ = render_report(analysis_report(result))
    return atomic_write_text(path, html_text)
