"""Monitoring reports, as sections the HTML writer renders: the trajectory over all looks in
the ledger with the current look's numbers and rules (report kind ``monitor``), and the
operating characteristics of a design (``oc``). Both folders are written atomically."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayes_ablation.report.html import render, render_report
from bayes_ablation.results.sections import (
    Banner,
    FigureSpec,
    Report,
    Section,
    Table,
    register_report,
    section,
)
from bayes_ablation.results.sections.analysis import (
    headline_box,
    prior_posterior_panels,
    probability_words,
)

if TYPE_CHECKING:
    from bayes_ablation.spec.design import Design
    from bayes_ablation.workflows.monitoring.ledger import LookRecord


def looks_table(looks: Sequence[LookRecord]) -> pd.DataFrame:
    rows = []
    for r in looks:
        res = r.result
        rows.append({
            "look": r.look, "cut date": r.cut_date, "analysis": res.get("analysis"),
            "patients": res["data"]["patients"], "events": res["data"]["events"],
            "P(HR<1)": r.p_hr_lt_1,
            "HR median [95%]": f"{res['posterior']['hr_median']:.2f} "
                               f"[{res['posterior']['hr_q2.5']:.2f}, "
                               f"{res['posterior']['hr_q97.5']:.2f}]",
            "PPoS": "" if r.ppos is None else f"{r.ppos:.3f} ± {r.ppos_mcse:.3f}",
            "decision": r.decision, "recorded (UTC)": r.created_utc,
            "data SHA-256": r.data_sha256[:12] + "…",
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class MonitorReportInput:
    design: Design
    looks: Sequence[LookRecord]
    current: LookRecord
    ledger_path: str
    message: str
    #: the cut's Kaplan–Meier curves per arm and numbers at risk (:func:`km_at_cut`)
    km: Mapping[str, Any] | None = None
    #: prior vs posterior panels of the look's fit (HR and random-effect sds)
    prior_posterior: Sequence[Mapping[str, Any]] = ()


def look_prior_posterior(fit: Any) -> list[dict[str, Any]]:
    """Prior vs posterior panels of a look's fit (its HR and random-effect sds)."""
    return prior_posterior_panels(fit) if fit is not None else []


def km_at_cut(patients: Any) -> dict[str, Any]:
    """Kaplan–Meier per arm of the patients in the cut, and the numbers at risk under it."""
    from bayes_ablation.survival.predictive import (
        kaplan_meier_by_group,
        numbers_at_risk,
        risk_times,
    )

    arms = [str(a) for a in patients.arms]
    labels = patients.frame["arm"].astype(str).to_numpy()
    times = risk_times(float(max(patients.time.max(), 1.0)))
    return {"curves": kaplan_meier_by_group(patients.time, patients.event, labels, arms),
            "at_risk": {"times": [float(t) for t in times], "label": "Number at risk",
                        "counts": numbers_at_risk(patients.time, labels, arms, times)}}


def monitor_headline(res: dict[str, Any], look: int, design: Design) -> Section | None:
    """The answer of this look in words: the comparison's HR, P(HR<1), PPoS and decision."""
    post, data, decision = res["posterior"], res["data"], res["decision"]
    text = (f"Look {look} ({res['analysis']} analysis, data cut {res['cut_date']}: "
            f"{data['patients']} patients, {data['events']} progressions): "
            f"{res['comparison'][:1].upper()}{res['comparison'][1:]}: HR "
            f"{post['hr_median']:.2f} (95% CrI {post['hr_q2.5']:.2f}–{post['hr_q97.5']:.2f}), "
            f"P(HR<1) {probability_words(post['P(HR<1)'])}"
            if "P(HR<1)" in post else "")
    if not text:
        return None
    ppos = res.get("ppos")
    if ppos is not None:
        text += (f"; predictive probability of success {ppos['ppos']:.3f} "
                 f"(MC SE {ppos['mcse']:.3f})")
    sentences = [text + ".", f"Decision: {decision['action']} — {decision['reason']}."]
    if not post.get("diagnostics_passed", True):
        sentences.append("The convergence gate FAILED at this look: "
                         + "; ".join(post.get("diagnostics_failures", [])) + ".")
    note = (f"HR conditional on site, from the full posterior of the analysis spec "
            f"{html.escape(design.spec.name)}, among the patients randomised by the cut; HR &lt; "
            "1 favours the first-named arm.")
    return headline_box(sentences, note)


def _ppos_rows(ppos: dict[str, Any] | None) -> pd.DataFrame:
    if ppos is None:
        return pd.DataFrame()
    return pd.DataFrame([
        {"quantity": "PPoS", "value": f"{ppos['ppos']:.4f} (MC SE {ppos['mcse']:.4f}, "
                                      f"{ppos['n_draws']} continuations)"},
        {"quantity": "success rule at the final analysis", "value": ppos["success_rule"]},
        {"quantity": "months from cut to final analysis (median [5%, 95%])",
         "value": "{median:.1f} [{q5:.1f}, {q95:.1f}]".format(**ppos["final_months_after_cut"])},
        {"quantity": "patients at the final analysis (median [5%, 95%])",
         "value": "{median:.0f} [{q5:.0f}, {q95:.0f}]".format(**ppos["final_enrolled"])},
        {"quantity": "events at the final analysis (median [5%, 95%])",
         "value": "{median:.0f} [{q5:.0f}, {q95:.0f}]".format(**ppos["final_events"])},
    ])


def _borrowing_section(b: dict[str, Any] | None) -> Section | None:
    """What the look borrowed: method, the external file (SHA-256) and the amount borrowed."""
    if b is None:
        return None
    rows = [{"quantity": "method", "value": b["method"]
             + (f" (a0 = {b['a0']:g})" if "a0" in b else "")}]
    ext = b.get("external")
    if ext is not None:
        rows += [{"quantity": "external controls", "value": f"{ext['n_patients']} patients, "
                  f"{ext['n_events']} events ({ext['source']})"},
                 {"quantity": "external file SHA-256", "value": str(ext["sha256"])}]
    summary = b.get("summary") or {}
    for key, label in (("effective_external_events", "effective external events"),
                       ("effective_external_patients", "effective external patients"),
                       ("fraction_borrowed", "fraction borrowed")):
        value = (summary.get("amount_borrowed") or {}).get(key)
        if value is not None:
            rows.append({"quantity": label, "value": f"{value:.3g}"})
    return section("Borrowing", pd.DataFrame(rows),
                   "<p class=\"muted\">The interim posterior and every simulated final analysis "
                   "of the PPoS borrow the same (historical) external evidence; only the "
                   "trial's own patients are simulated.</p>")


@register_report("monitor")
def monitor_sections(obj: MonitorReportInput) -> Report:
    design, looks, current = obj.design, obj.looks, obj.current
    res = current.result
    rules = pd.DataFrame([{"rule": e["rule"],
                           "value": "" if e["value"] is None else f"{e['value']:.4f}",
                           "holds": "yes" if e["holds"] else "no", "note": e["note"]}
                          for e in res["decision"]["rules"]])
    post = res["posterior"]
    fast = res["fast_posterior"]
    post_rows = pd.DataFrame(
        [{"quantity": k, "full posterior (MCMC)": v,
          "fast posterior (Laplace)": fast.get(k, float("nan"))}
         for k, v in post.items() if k.startswith("P(HR<")]
        + [{"quantity": "log HR mean", "full posterior (MCMC)": post["log_hr_mean"],
            "fast posterior (Laplace)": fast["log_hr_mean"]},
           {"quantity": "log HR sd", "full posterior (MCMC)": post["log_hr_sd"],
            "fast posterior (Laplace)": fast["log_hr_sd"]}])
    gate = ("" if post["diagnostics_passed"] else
            "<p>CONVERGENCE GATE FAILED at this look — "
            + html.escape("; ".join(post["diagnostics_failures"])) + "</p>")
    intro = (f"<p>{html.escape(design.description)}</p>\n"
             f"<p class=\"muted\">design <code>{html.escape(design.source_path)}</code> SHA-256 "
             f"<code>{current.design_sha256[:16]}…</code> · analysis spec <code>"
             f"{html.escape(design.spec.name)}</code> · data SHA-256 <code>"
             f"{current.data_sha256[:16]}…</code> · ledger <code>{html.escape(obj.ledger_path)}"
             f"</code> (chain head <code>{looks[-1].row_hash[:16]}…</code>)</p>")
    decision = res["decision"]
    banner = Banner(decision["action"] in ("continue", "success") and not gate,
                    f"Decision: {html.escape(decision['action'])} — "
                    f"{html.escape(decision['reason'])}{gate}")
    data = res["data"]
    rules_text = "".join(f"<li>{html.escape(r.describe())}"
                         + (f" (looks {list(r.looks)})" if r.looks else "") + "</li>"
                         for r in design.rules)
    ppos_rows = _ppos_rows(res.get("ppos"))
    borrow = _borrowing_section(res.get("borrowing"))
    head = monitor_headline(res, current.look, design)
    km = []
    if obj.km is not None:
        km = [FigureSpec("km_at_cut", "km_observed", {
            "curves": obj.km["curves"], "at_risk": obj.km["at_risk"],
            "title": f"Progression-free survival by arm at the cut ({res['cut_date']})"},
            title="Progression-free survival by arm at this cut (Kaplan–Meier)",
            alt="Kaplan–Meier curves of progression-free survival per arm among the patients "
                "randomised by the cut, with the number at risk per arm under the time "
                "axis.")]
    sections = (
        *([head] if head is not None else []),
        section("Trajectory over all looks",
                f"<p class=\"muted\">{html.escape(obj.message)}</p>",
                FigureSpec("trajectory", "monitor_trajectory", {"looks": list(looks),
                                                                "design": design},
                           title="Trajectory of the posterior probability and PPoS over the "
                                 "looks",
                           alt="Two panels over calendar time: P(HR < 1) at each look with "
                               "the efficacy and success thresholds, and the predictive "
                               "probability of success with the futility threshold."),
                looks_table(looks)),
        section(f"This look: {res['comparison']}",
                pd.DataFrame([{"arm": a, **v} for a, v in data["by_arm"].items()]), *km,
                f"<p class=\"muted\">{data['patients']} patients randomised by the cut, "
                f"{data['events']} progressions known; {data['randomised_after_cut']} "
                f"randomised later (not included), {data['progressions_after_cut']} later "
                f"progressions censored at the cut, {data['withdrawn']} withdrawn.</p>"),
        section("Posterior", Table(post_rows, digits=4), *([FigureSpec(
            "prior_posterior", "prior_posterior", {
                "panels": list(obj.prior_posterior),
                "title": "Pre-specified prior (line) and posterior at this look (filled)"},
            title="Prior and posterior at this look: the hazard ratio and the between-site sd",
            alt="Prior density (line) and posterior (filled) of the hazard ratio and the "
                "random-effect sds at this look; where they coincide the data say little.")]
            if obj.prior_posterior else [])),
        *([borrow] if borrow is not None else []),
        section("Predictive probability of success",
                ppos_rows if len(ppos_rows) else "<p>Final analysis: no prediction needed.</p>"),
        section("Decision rules at this look", rules),
        section("Pre-specified design",
                f"<ul><li>final analysis: {html.escape(design.final_description())}</li>"
                f"<li>planned accrual: {design.accrual.total_n} patients at "
                f"{design.accrual.rate_per_month:g}/month over {len(design.accrual.sites)} "
                f"sites</li><li>interim looks: "
                f"{html.escape(', '.join(lk.describe() for lk in design.looks) or 'none')}"
                f"</li>{rules_text}</ul>"),
        section("Software", pd.DataFrame([{"package": k, "version": v}
                                          for k, v in current.versions.items()])),
    )
    return Report(title=f"{design.name}: look {current.look} ({current.cut_date})",
                  intro_html=intro, banner=banner, sections=sections)


def write_monitor_report(out: str | Path, design: Design, looks: Sequence[LookRecord],
                         current: LookRecord, ledger_path: str, message: str, *,
                         km: Mapping[str, Any] | None = None,
                         prior_posterior: Sequence[Mapping[str, Any]] = (),
                         figure_format: str = "png") -> Path:
    """Write ``report.html``, ``trajectory.png`` (and the other figures under ``figures/``,
    also as SVG or PDF with ``figure_format``), ``looks.csv`` and ``look.json`` atomically
    (replacing an earlier report folder, never any other folder)."""
    from bayes_ablation.core.files import atomic_folder

    report = monitor_sections(MonitorReportInput(design, looks, current, ledger_path, message,
                                                 km, tuple(prior_posterior)))
    rendered = render(report, figure_format=figure_format)

    def write(tmp: Path) -> None:
        (tmp / "trajectory.png").write_bytes(rendered.pngs["trajectory"])
        (tmp / "figures").mkdir()
        for name, data in rendered.files.items():
            (tmp / "figures" / name).write_bytes(data)
        looks_table(looks).to_csv(tmp / "looks.csv", index=False)
        (tmp / "look.json").write_text(json.dumps(current.result, indent=2))
        (tmp / "report.html").write_text(rendered.html, encoding="utf-8")

    return atomic_folder(out, write, force=True)


@dataclass(frozen=True)
class OCReportInput:
    design: Design
    oc: dict[str, Any]
    table: pd.DataFrame


@register_report("oc")
def oc_sections(obj: OCReportInput) -> Report:
    oc = obj.oc
    intro = (f"<p class='muted'>design SHA-256 <code>{oc['design_sha256'][:16]}…</code> · "
             f"{oc['n_trials']} simulated trials per scenario · looks: "
             f"{html.escape(', '.join(oc['looks']) or 'none')} · final: "
             f"{html.escape(oc['final'])} · PPoS: {oc['ppos_method']}</p>")
    figure = FigureSpec("operating_characteristics", "oc", {
        "summaries": oc["scenarios"], "n_looks": len(obj.design.looks)})
    sections = [Section("Operating characteristics", (figure, Table(obj.table, digits=4)))]
    if "borrowing" in oc:
        from bayes_ablation.workflows.monitoring.oc import borrowing_table

        b = oc["borrowing"]
        xc = b.get("external_controls")
        note = ("<p>Type I error (true log HR ≥ 0) and power of the design under each "
                "borrowing method, on the same simulated trials; the external controls' log "
                "cumulative hazard is offset from the internal control arm's by the "
                "scenario's <em>external offset</em> (0: exchangeable; &gt; 0 they progress "
                "faster, so borrowing them flatters the experimental arm). "
                + (f"{xc['n_patients']} external controls per trial, follow-up "
                   f"{xc['follow_up_months'][0]:g}–{xc['follow_up_months'][1]:g} months."
                   if xc else "") + "</p>")
        sections.insert(0, section("Borrowing: what it costs in type I error",
                                   note, borrowing_table(oc)))
    return Report(title=f"{obj.design.name}: operating characteristics", intro_html=intro,
                  sections=tuple(sections))


def write_oc_report(out: str | Path, oc: dict[str, Any], table: pd.DataFrame,
                    design: Design) -> Path:
    """Write ``oc.json``, ``oc.csv``, ``oc.png`` and ``report.html`` atomically."""
    from bayes_ablation.core.files import atomic_folder

    html_text, pngs = render_report(oc_sections(OCReportInput(design, oc, table)))

    def write(tmp: Path) -> None:
        (tmp / "oc.json").write_text(json.dumps(oc, indent=2))
        table.to_csv(tmp / "oc.csv", index=False)
        (tmp / "oc.png").write_bytes(pngs["operating_characteristics"])
        (tmp / "report.html").write_text(html_text, encoding="utf-8")

    return atomic_folder(out, write, force=True)
