"""Monitoring reports (HTML + PNG): the trajectory over all looks in the ledger, the current
look's numbers and rules; and the operating-characteristics figure. Plotting only."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayes_ablation.report.html import CSS, _table, figure_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayes_ablation.monitoring.design import Design
    from bayes_ablation.monitoring.ledger import LookRecord


def _rule_threshold(design: Design, kind: str, quantity_is_ppos: bool) -> list[float]:
    return [r.threshold for r in design.rules if r.kind == kind
            and (r.quantity == "PPoS") == quantity_is_ppos]


def trajectory_figure(looks: Sequence[LookRecord], design: Design) -> Figure:
    """P(HR < 1) and PPoS (± 2 MC SE) at each look, with the rules' thresholds."""
    from bayes_ablation.report.plots import _color, plt

    dates = [pd.Timestamp(r.cut_date) for r in looks]
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True)
    ax = axes[0]
    ax.plot(dates, [r.p_hr_lt_1 for r in looks], "o-", color=_color(0), label="P(HR < 1)")
    for t in _rule_threshold(design, "efficacy", False):
        ax.axhline(t, color=_color(2), ls="--", lw=1, label=f"efficacy threshold {t:g}")
    for t in _rule_threshold(design, "success", False):
        ax.axhline(t, color="grey", ls=":", lw=1, label=f"final success threshold {t:g}")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("posterior probability")
    ax.set_title("Posterior probability that the experimental arm is better")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    ax = axes[1]
    with_ppos = [(d, r) for d, r in zip(dates, looks, strict=True) if r.ppos is not None]
    if with_ppos:
        d, recs = zip(*with_ppos, strict=True)
        ax.errorbar(d, [r.ppos for r in recs], yerr=[2 * (r.ppos_mcse or 0) for r in recs],
                    fmt="s-", color=_color(1), capsize=3, label="PPoS ± 2 MC SE")
    for t in _rule_threshold(design, "futility", True):
        ax.axhline(t, color=_color(1), ls="--", lw=1, label=f"futility threshold {t:g}")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("predictive probability")
    ax.set_title("Predictive probability of success at the final analysis")
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    ax.grid(alpha=0.3)
    for r, date in zip(looks, dates, strict=True):
        axes[0].annotate(f"look {r.look}\n{r.decision}", (date, r.p_hr_lt_1),
                         textcoords="offset points", xytext=(0, -26), ha="center", fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


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


def render_monitor_html(design: Design, looks: Sequence[LookRecord], current: LookRecord,
                        png: bytes, ledger_path: str, message: str) -> str:
    res = current.result
    rules = pd.DataFrame([{"rule": e["rule"],
                           "value": "" if e["value"] is None else f"{e['value']:.4f}",
                           "holds": "yes" if e["holds"] else "no", "note": e["note"]}
                          for e in res["decision"]["rules"]])
    ppos = res.get("ppos")
    ppos_rows = pd.DataFrame([] if ppos is None else [
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
    post = res["posterior"]
    post_rows = pd.DataFrame(
        [{"quantity": k, "full posterior (MCMC)": v,
          "fast posterior (Laplace)": res["fast_posterior"].get(k, float("nan"))}
         for k, v in post.items() if k.startswith("P(HR<")]
        + [{"quantity": "log HR mean", "full posterior (MCMC)": post["log_hr_mean"],
            "fast posterior (Laplace)": res["fast_posterior"]["log_hr_mean"]},
           {"quantity": "log HR sd", "full posterior (MCMC)": post["log_hr_sd"],
            "fast posterior (Laplace)": res["fast_posterior"]["log_hr_sd"]}])
    gate = ("" if post["diagnostics_passed"] else
            "<div class='banner fail'>CONVERGENCE GATE FAILED at this look — "
            + html.escape("; ".join(post["diagnostics_failures"])) + "</div>")
    decision_cls = "pass" if res["decision"]["action"] in ("continue", "success") else "fail"
    rules_text = "".join(f"<li>{html.escape(r.describe())}"
                         + (f" (looks {list(r.looks)})" if r.looks else "") + "</li>"
                         for r in design.rules)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(design.name)} — interim
monitoring</title><style>{CSS}</style></head><body>
<h1>{html.escape(design.name)}: look {current.look} ({html.escape(current.cut_date)})</h1>
<p>{html.escape(design.description)}</p>
<p class="muted">design <code>{html.escape(design.source_path)}</code> SHA-256
<code>{current.design_sha256[:16]}…</code> · analysis spec <code>{html.escape(design.spec.name)}
</code> · data SHA-256 <code>{current.data_sha256[:16]}…</code> · ledger
<code>{html.escape(ledger_path)}</code> (chain head <code>{looks[-1].row_hash[:16]}…</code>)</p>
<div class="banner {decision_cls}">Decision: {html.escape(res['decision']['action'])} —
{html.escape(res['decision']['reason'])}</div>
<p class="muted">{html.escape(message)}</p>
{gate}
<h2>Trajectory over all looks</h2>
<img alt="trajectory" src="data:image/png;base64,{base64.b64encode(png).decode()}">
{_table(looks_table(looks))}
<h2>This look: {html.escape(res['comparison'])}</h2>
{_table(pd.DataFrame([{'arm': a, **v} for a, v in res['data']['by_arm'].items()]))}
<p class="muted">{res['data']['patients']} patients randomised by the cut,
{res['data']['events']} progressions known; {res['data']['randomised_after_cut']} randomised
later (not included), {res['data']['progressions_after_cut']} later progressions censored at
the cut, {res['data']['withdrawn']} withdrawn.</p>
<h3>Posterior</h3>{_table(post_rows, digits=4)}
<h3>Predictive probability of success</h3>{_table(ppos_rows) if len(ppos_rows) else
'<p>Final analysis: no prediction needed.</p>'}
<h3>Decision rules at this look</h3>{_table(rules)}
<h2>Pre-specified design</h2>
<ul><li>final analysis: {html.escape(design.final_description())}</li>
<li>planned accrual: {design.accrual.total_n} patients at {design.accrual.rate_per_month:g}/month
over {len(design.accrual.sites)} sites</li>
<li>interim looks: {html.escape(', '.join(lk.describe() for lk in design.looks) or 'none')}</li>
{rules_text}</ul>
<h2>Software</h2>{_table(pd.DataFrame([{'package': k, 'version': v}
                                        for k, v in current.versions.items()]))}
</body></html>"""


def write_monitor_report(out: str | Path, design: Design, looks: Sequence[LookRecord],
                         current: LookRecord, ledger_path: str, message: str) -> Path:
    """Write ``report.html``, ``trajectory.png``, ``looks.csv`` and ``look.json`` atomically
    (replacing an earlier report folder, never any other folder)."""
    from bayes_ablation.bundle import atomic_folder

    png = figure_png(trajectory_figure(looks, design))

    def write(tmp: Path) -> None:
        (tmp / "trajectory.png").write_bytes(png)
        looks_table(looks).to_csv(tmp / "looks.csv", index=False)
        (tmp / "look.json").write_text(json.dumps(current.result, indent=2))
        (tmp / "report.html").write_text(
            render_monitor_html(design, looks, current, png, ledger_path, message),
            encoding="utf-8")

    return atomic_folder(out, write, force=True)


# ------------------------------------------------------------------------------ OC figure

def oc_figure(summaries: dict[str, Any], n_looks: int) -> Figure:
    """Per scenario: cumulative probability of stopping for efficacy (or success at the final
    analysis) and for futility by analysis, and P(efficacy declared) (error bars: ± 2 MC SE)."""
    from bayes_ablation.report.plots import _color, plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, n_looks + 2)
    labels = [f"look {k}" for k in range(1, n_looks + 1)] + ["final"]
    for i, (name, s) in enumerate(summaries.items()):
        n = s["n_trials"]
        eff = np.cumsum([s["stop_efficacy"][k]["p"] for k in range(n_looks)]
                        + [s["final_success"]["p"]])
        fut = np.cumsum([s["stop_futility"][k]["p"] for k in range(n_looks)] + [0.0])
        axes[0].errorbar(x, eff, yerr=2 * np.sqrt(eff * (1 - eff) / n), fmt="o-",
                         color=_color(i), capsize=3, label=f"{name}: efficacy / success")
        axes[0].errorbar(x, fut, yerr=2 * np.sqrt(fut * (1 - fut) / n), fmt="s--",
                         color=_color(i), alpha=0.7, capsize=3, label=f"{name}: futility")
        axes[1].bar(i, s["reject"]["p"], yerr=2 * s["reject"]["mcse"], color=_color(i),
                    capsize=4)
        axes[1].annotate(f"{s['reject']['p']:.3f} ± {s['reject']['mcse']:.3f}",
                         (i + 0.42, s["reject"]["p"]), ha="right", va="bottom",
                         xytext=(0, 3), textcoords="offset points", fontsize=9)
    axes[0].set_xticks(x, labels)
    axes[0].set_ylabel("cumulative probability")
    axes[0].set_title("Stopping by analysis")
    axes[0].legend(fontsize=7, frameon=False)
    axes[0].grid(alpha=0.3)
    axes[1].set_xticks(range(len(summaries)), list(summaries))
    axes[1].set_ylabel("P(efficacy declared)")
    axes[1].set_title("Type I error (null) / power")
    axes[1].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
