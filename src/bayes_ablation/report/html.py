"""Self-contained HTML report (inline CSS, figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
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
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayes_ablation.analysis import Result

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
code{background:#f4f4f4;padding:0 .3em}
"""


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig`` (closed afterwards)."""
    from bayes_ablation.report.plots import plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def figure_makers(result: Result) -> dict[str, Callable[[], Figure]]:
    """The standard figures of a patient-level survival fit, plus any the result adds, each as
    a function that draws it (so figures can be drawn in parallel, see :func:`render_report`)."""
    from bayes_ablation import estimands as est
    from bayes_ablation.report import plots

    makers: dict[str, Callable[[], Figure]] = {}
    post = result.idata.posterior.to_dataset() if result.idata is not None else xr.Dataset()
    prob = result.spec.estimands.interval_prob
    if "arm" in result.ppc:
        def km_posterior() -> Figure:
            grid = result.ppc["arm"]["time"].values
            curves = est.survival_at(result.idata, result.spec, np.maximum(grid, 1e-6),
                                     "average")
            return plots.km_with_posterior(result.ppc["arm"], curves, prob)
        makers["km_posterior"] = km_posterior
        makers["ppc_arm"] = lambda: plots.ppc_km(result.ppc["arm"],
                                                 ncols=len(result.ppc["arm"]["group"]))
    if "site_arm" in result.ppc:
        makers["ppc_sites"] = lambda: plots.ppc_km(result.ppc["site_arm"],
                                                   "Posterior predictive check by site | arm")
    if "u_site" in post:
        makers["site_effects"] = lambda: plots.forest(
            post["u_site"], "site", "Site effects on the log hazard (u_site)",
            "log hazard ratio vs average site", prob)
    if "v_site_arm" in post:
        def site_arm_effects() -> Figure:
            v = post["v_site_arm"].stack(site_treatment=("site", "treatment"))
            labels = [f"{s} | {t}" for s, t in v["site_treatment"].values]
            v = v.drop_vars(["site_treatment", "site", "treatment"]).assign_coords(
                site_treatment=labels)
            return plots.forest(v, "site_treatment", "Site × arm deviations of the log HR",
                                "log HR deviation", prob)
        makers["site_arm_effects"] = site_arm_effects
    if "hazard" in result.estimands and "interval_start" in result.idata.constant_data:
        start = np.asarray(result.idata.constant_data["interval_start"].values, float)
        end = float(np.max(result.idata.constant_data["time_months"].values))
        makers["hazard_by_interval"] = lambda: plots.interval_hazards(
            result.estimands["hazard"], start, end, prob)
        if "hr_interval" in result.estimands:
            makers["hr_by_interval"] = lambda: plots.interval_hr(
                result.estimands["hr_interval"], result.estimands["hr"], start, end, prob)
    if "hr" in result.estimands:
        makers["hr_posterior"] = lambda: plots.hr_posterior(
            result.estimands["hr"], result.spec.estimands.hr_thresholds, result.probabilities)
    trace_names = [n for n in ("log_hr", "weibull_shape", "log_cumhaz_ref", "log_hazard_mean",
                               "sigma_log_hazard_rw", "sigma_log_hr_rw", "sigma_site",
                               "sigma_site_arm", "mu", "tau") if n in post]
    if trace_names:
        makers["traces"] = lambda: plots.traces(post, trace_names)
    for name, make in result.extras.get("figures", {}).items():
        makers[name] = (lambda make=make: make(result)) if callable(make) else \
            (lambda make=make: make)
    return makers


def build_figures(result: Result) -> dict[str, Figure]:
    """The standard figures of a patient-level survival fit, plus any the result adds."""
    return {name: make() for name, make in figure_makers(result).items()}


def _table(frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
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
    for idx, row in frame.iterrows():
        cells = ([f"<td>{html.escape(str(idx))}</td>"] if index else []) + \
            [f"<td>{fmt(v)}</td>" for v in row.to_numpy()]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def priors_table(spec: Any) -> pd.DataFrame:
    return pd.DataFrame([{"parameter": name, "prior": p.describe(), "rationale": p.rationale}
                         for name, p in spec.priors.items()])


def render_html(result: Result, pngs: Mapping[str, bytes],
                sections: list[tuple[str, str]] | None = None) -> str:
    """The report as one HTML string."""
    spec = result.spec
    d = result.diagnostics
    prov = result.provenance
    if d is None:
        banner = ("<div class='banner pass'>No sampling: the posterior was computed "
                  "deterministically (exact quadrature), so there is no Monte Carlo error and "
                  "no convergence gate.</div>")
    elif d.passed:
        banner = ("<div class='banner pass'>Convergence gate passed: max R-hat "
                  f"{d.rhat_max:.3f}, min bulk ESS {d.ess_bulk_min:.0f}, min tail ESS "
                  f"{d.ess_tail_min:.0f}, {d.divergences} divergences, min E-BFMI "
                  f"{d.ebfmi_min:.2f}.</div>")
    else:
        items = "".join(f"<li>{html.escape(f)}</li>" for f in d.failures)
        banner = ("<div class='banner fail'>CONVERGENCE GATE FAILED — do not use these "
                  f"results for decisions.<ul>{items}</ul></div>")
    table = result.estimand_table.copy()
    q_cols = [c for c in table.columns if c.startswith("q")]
    est_view = table[["label", "mean", "sd", "median", *q_cols]]
    probs = pd.DataFrame([{"quantity": k, "posterior probability": v}
                          for k, v in result.probabilities.items()])
    diag_view = d.table if d is not None and d.table is not None else None
    figs = "".join(
        f"<h3>{html.escape(name.replace('_', ' '))}</h3>"
        f"<img alt='{html.escape(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'>" for name, png in pngs.items())
    ppc_rows = []
    for level, ds in result.ppc.items():
        for g in ds["group"].values:
            ppc_rows.append({"level": level, "group": str(g),
                             "observed KM inside band": float(ds["coverage"].sel(group=g)),
                             "P(rep events ≥ obs)": float(ds["events_p_value"].sel(group=g))})
    estimands_note = (result.extras.get("estimands_note_html")
                      or result.extras.get("estimands_note") or (
        "Hazard ratio &lt; 1 and survival difference &gt; 0 favour the treatment arm over the "
        f"reference arm ({html.escape(str(spec.reference_arm))}). \"average site\": site effect "
        "0; \"new site\": integrated over the between-site distribution."))
    ppc_html = (f"<h2>Posterior predictive checks</h2>{_table(pd.DataFrame(ppc_rows))}"
                if ppc_rows else "")
    diag_html = (f"<h2>Convergence diagnostics</h2>{_table(diag_view)}"
                 if diag_view is not None else "")
    extra_sections = "".join(f"<h2>{html.escape(title)}</h2>{body}"
                             for title, body in (sections or []))
    versions = prov.get("versions", {})
    prov_rows = pd.DataFrame([
        {"item": k, "value": str(v)} for k, v in prov.items()
        if k not in ("versions", "timings_seconds", "sampler_settings")
    ] + [{"item": f"time: {k}", "value": f"{v:.2f} s" if isinstance(v, float) else str(v)}
         for k, v in prov.get("timings_seconds", {}).items()]
      + [{"item": f"version: {k}", "value": v} for k, v in versions.items()])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(spec.name)} — bayes_ablation
report</title><style>{CSS}</style></head><body>
<h1>{html.escape(spec.name)}</h1>
<p>{html.escape(spec.description)}</p>
<p class="muted">spec <code>{html.escape(str(prov.get('spec_path')))}</code> ·
SHA-256 <code>{prov.get('spec_sha256', '')[:16]}…</code> · data
<code>{html.escape(str(prov.get('data_source')))}</code> · SHA-256
<code>{str(prov.get('data_sha256', ''))[:16]}…</code> · created {prov.get('created_utc')}</p>
{banner}
<h2>Data</h2>{_table(result.data_summary, index=True)}
<h2>Pre-specified priors</h2>{_table(priors_table(spec))}
<h2>Posterior probabilities</h2>{_table(probs)}
<h2>Estimands</h2>
<p class="muted">{estimands_note} Intervals are central
{spec.estimands.interval_prob:.0%} posterior intervals; times in months.</p>
{_table(est_view)}
{extra_sections}
<h2>Figures</h2>{figs}
{ppc_html}
{diag_html}
<h2>Provenance</h2>{_table(prov_rows)}
</body></html>"""


#: the costliest figures, drawn in a forked child process while this process draws the rest
CHILD_FIGURES = ("ppc_sites", "traces")


def _can_fork() -> bool:
    """Parallel drawing: Linux only (fork is unsafe on macOS), more than one core, and not
    switched off with ``BAYES_ABLATION_SERIAL_REPORT=1``."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork")
            and (os.cpu_count() or 1) > 1 and not os.environ.get("BAYES_ABLATION_SERIAL_REPORT"))


def render_pngs(makers: Mapping[str, Callable[[], Figure]],
                progress: Callable[[str], None] | None = None) -> dict[str, bytes]:
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
                    png = figure_png(makers[name]())
                    tmp = os.path.join(folder, f".{name}.png")
                    with open(tmp, "wb") as fh:
                        fh.write(png)
                    os.replace(tmp, os.path.join(folder, f"{name}.png"))
                code = 0
            finally:
                os._exit(code)
    for name in own:
        say(f"figure {name}")
        pngs[name] = figure_png(makers[name]())
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
            pngs[name] = figure_png(makers[name]())
    return {name: pngs[name] for name in makers}


def render_report(result: Result, progress: Callable[[str], None] | None = None
                  ) -> tuple[str, dict[str, bytes]]:
    """Build figures and HTML; returns (html, {figure name: PNG bytes})."""
    pngs = render_pngs(figure_makers(result), progress)
    return render_html(result, pngs, result.extras.get("sections")), pngs
