"""The four reports a clinical reader opens (PFS, local recurrence, meta-analysis, interim
look), made once per module by the CLI with small settings, read as pages: the answer first
in words, figures titled in words with alt text, numbers at risk under the Kaplan–Meier
curves, diagnostics after the results, vector figures on request, under 2 MB, autoescaped
templates; and, where a headless Chromium is installed, rendered by a browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_ablation.cli.main import main
from tests.conftest import MODELS, ROOT

KINDS = ("pfs", "lr", "meta", "monitor")


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """Report folders of the four kinds, written by the CLI as a user would (small fits)."""
    from bayes_ablation.data.simulate_dated import simulate_dated_trial

    tmp = tmp_path_factory.mktemp("reports")
    small = ["--chains", "2", "--draws", "300", "--tune", "300", "--quiet"]
    assert main(["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"),
                 "--data", str(ROOT / "examples" / "pfs_trial.csv"), "--out", str(tmp / "pfs"),
                 "--figure-format", "svg", *small]) == 0
    assert main(["simulate-lr", "--n-patients", "150", "--sites", "4", "--seed", "2",
                 "--out-patients", str(tmp / "patients.csv"),
                 "--out-lesions", str(tmp / "lesions.csv")]) == 0
    assert main(["fit", "--spec", str(MODELS / "local_recurrence_lesion.toml"),
                 "--data", str(tmp / "patients.csv"), "--lesions", str(tmp / "lesions.csv"),
                 "--out", str(tmp / "lr"), *small]) == 0
    assert main(["meta", "--spec", str(MODELS / "meta_loghr.toml"),
                 "--data", str(ROOT / "examples" / "meta" / "crlm_pfs_hr.csv"),
                 "--out", str(tmp / "meta"), "--figure-format", "pdf", "--quiet"]) == 0
    spec = (MODELS / "pfs_weibull_site.toml").read_text()
    spec = spec.replace("chains = 4", "chains = 2").replace("draws = 1000", "draws = 300") \
        .replace("tune = 1000", "tune = 300")
    (tmp / "spec.toml").write_text(spec)
    design = (MODELS / "interim_design.toml").read_text()
    design = design.replace('analysis_spec = "pfs_weibull_site.toml"',
                            'analysis_spec = "spec.toml"').replace("draws = 1000", "draws = 200")
    (tmp / "design.toml").write_text(design)
    simulate_dated_trial(300, 8, -0.3, seed=11, accrual_months=24, followup_months=24,
                         start_date="2026-01-15").frame.to_csv(tmp / "dated.csv", index=False)
    assert main(["monitor", "--design", str(tmp / "design.toml"), "--data",
                 str(tmp / "dated.csv"), "--cut", "2027-06-30", "--ledger", str(tmp / "t.db"),
                 "--out", str(tmp / "monitor"), "--figure-format", "svg", "--quiet"]) == 0
    return {k: tmp / k for k in KINDS}


class Page(HTMLParser):
    """The parts of a report page the tests read: sections (id, title, figures, tables),
    images with their alt text, and the answer box's text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self.images: list[dict] = []
        self._tag: list[str] = []
        self.answer = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._tag.append(tag)
        if tag == "section":
            self.sections.append({"id": a.get("id"), "title": "", "figures": [], "tables": 0})
        elif tag == "figure" and self.sections:
            self.sections[-1]["figures"].append({"id": a.get("id"), "title": ""})
        elif tag == "table" and self.sections:
            self.sections[-1]["tables"] += 1
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag):
        if self._tag:
            self._tag.pop()

    def handle_data(self, data):
        if not self.sections:
            return
        s = self.sections[-1]
        if self._tag and self._tag[-1] == "h2":
            s["title"] += data
        elif self._tag and self._tag[-1] == "h3" and s["figures"]:
            s["figures"][-1]["title"] += data
        if s["id"] == "answer":
            self.answer += data

    def section(self, sid: str) -> dict:
        return next(s for s in self.sections if s["id"] == sid)

    def order(self) -> list[str]:
        return [s["id"] for s in self.sections]


def page(reports, kind) -> Page:
    return Page((reports[kind] / "report.html").read_text(encoding="utf-8"))


#: what each answer must name besides an HR with its interval: the population / estimand
ANSWER_WORDS = {"pfs": ("Perioperative vs postoperative", "P(HR<1)", "24-month PFS",
                        "average site"),
                "lr": ("Perioperative vs postoperative", "local-recurrence HR",
                       "standardised", "average site"),
                "meta": ("pooled over 2 studies", "In a new study", "τ", "prior"),
                "monitor": ("Look 1", "data cut 2027-06-30", "Decision:", "conditional on site")}


@pytest.mark.parametrize("kind", KINDS)
def test_the_answer_comes_first_in_words_and_numbers(reports, kind):
    p = page(reports, kind)
    assert p.order()[0] == "answer"
    answer = " ".join(p.answer.split())
    assert re.search(r"HR \d\.\d\d \(95% CrI \d\.\d\d–\d\.\d\d\)", answer), answer
    for words in ANSWER_WORDS[kind]:
        assert words in answer, (words, answer)


@pytest.mark.parametrize("kind", KINDS)
def test_figures_are_titled_in_words_with_alt_text_and_the_page_is_small(reports, kind):
    text = (reports[kind] / "report.html").read_text(encoding="utf-8")
    p = Page(text)
    figures = [f for s in p.sections for f in s["figures"]]
    assert figures and len(p.images) == len(figures)
    for f in figures:
        name = f["id"].removeprefix("fig-")
        title = f["title"].strip()
        assert " " in title and "_" not in title and title.lower() != name.replace("_", " ")
    for img in p.images:
        assert len(img.get("alt", "")) > 30, img.get("alt")
    assert len(text.encode()) < 2_000_000


@pytest.mark.parametrize("kind", ("pfs", "lr"))
def test_diagnostics_follow_the_results_and_hold_the_traces(reports, kind):
    p = page(reports, kind)
    order = p.order()
    assert order.index("figures") < order.index("diagnostics") < order.index("provenance")
    assert order.index("prior-and-posterior") < order.index("diagnostics")
    traces = [f["id"] for s in p.sections for f in s["figures"] if "trace" in f["id"]]
    assert traces and all(t in [f["id"] for f in p.section("diagnostics")["figures"]]
                          for t in traces)
    assert p.section("diagnostics")["tables"] == 1
    assert "fig-prior_posterior" in [f["id"] for f in p.section("prior-and-posterior")
                                     ["figures"]]


def test_numbers_at_risk_and_per_site_checks_are_drawn(reports):
    pfs, lr, mon = page(reports, "pfs"), page(reports, "lr"), page(reports, "monitor")
    ids = {k: [f["id"] for s in p.sections for f in s["figures"]]
           for k, p in (("pfs", pfs), ("lr", lr), ("monitor", mon))}
    assert "fig-km_posterior" in ids["pfs"] and "fig-km_at_cut" in ids["monitor"]
    assert "fig-prior_posterior" in ids["monitor"]
    assert {"fig-ppc_site_coverage", "fig-ppc_sites"} <= set(
        f["id"] for f in pfs.section("posterior-predictive-checks")["figures"])
    assert "fig-cif_lr" in ids["lr"]
    alts = {img["alt"] for img in lr.images}
    assert any("lesions under surveillance" in a for a in alts)


def test_figures_also_as_svg_or_pdf_on_request(reports):
    import xml.etree.ElementTree as ET

    for kind, fmt in (("pfs", "svg"), ("meta", "pdf"), ("monitor", "svg")):
        folder = reports[kind] / "figures"
        pngs = sorted(p.stem for p in folder.glob("*.png"))
        vectors = sorted(p.stem for p in folder.glob(f"*.{fmt}"))
        assert pngs and vectors == pngs, (kind, pngs, vectors)
        for f in folder.glob(f"*.{fmt}"):
            data = f.read_bytes()
            if fmt == "svg":
                assert ET.fromstring(data).tag.endswith("svg")
            else:
                assert data.startswith(b"%PDF")
    manifest = json.loads((reports["pfs"] / "MANIFEST.json").read_text())
    assert "figures/km_posterior.svg" in manifest
    assert not list((reports["lr"] / "figures").glob("*.svg"))   # PNG only by default


def test_tables_show_counts_as_integers_and_text_left_aligned(reports):
    text = (reports["pfs"] / "report.html").read_text(encoding="utf-8")
    data = text[text.index('id="data"'):text.index('id="pre-specified-priors"')]
    cells = re.findall(r'<td class="num">([^<]*)</td>', data)
    assert "198" in cells and "150" in cells and not any(c.endswith(".000") for c in cells)
    diag = text[text.index('id="diagnostics"'):]
    rows = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", diag)
    names = [name for name, _ in rows]
    assert "log_hr" in names and "u_site" in names and len(names) == len(set(names))
    assert "u_site[0]" not in diag   # one row per parameter, not per element
    cells = dict(rows)
    assert re.match(r'<td class="num">8</td><td class="num">\d\.\d{3}</td>'
                    r'<td class="num">\d+</td><td class="num">\d+</td>', cells["u_site"])


def test_templates_escape_everything_but_the_package_fragments():
    from bayes_ablation.report.html import render_html
    from bayes_ablation.results.sections import Banner, FigureSpec, Report, Section, Table, Text

    evil = "<script>alert(1)</script>"
    report = Report(title=evil, banner=Banner(True, "<b>gate</b>"), sections=(
        Section(evil, (Text("<p class='x'>trusted</p>"),
                       Table(pd.DataFrame({evil: [evil], "n": [3]})),
                       FigureSpec("f", "forest", title=evil, alt=f'a "{evil}"'))),))
    html = render_html(report, {"f": b"png"})
    assert "<script>" not in html and html.count("&lt;script&gt;") >= 5
    assert "<p class='x'>trusted</p>" in html and "<b>gate</b>" in html
    assert 'alt="a &#34;&lt;script&gt;' in html


def test_numbers_at_risk_agree_with_lifelines():
    from lifelines import KaplanMeierFitter

    from bayes_ablation.survival.predictive import numbers_at_risk, risk_times

    rng = np.random.default_rng(4)
    time = np.round(rng.exponential(20, 300), 1)
    event = rng.random(300) < 0.7
    arm = np.where(rng.random(300) < 0.5, "a", "b")
    for g in ("a", "b"):
        table = KaplanMeierFitter().fit(time[arm == g], event[arm == g]).event_table
        at = table.index.to_numpy()
        ours = numbers_at_risk(time, arm, [g], at)[g]
        assert ours == list(table["at_risk"].astype(int))
    assert list(risk_times(60.0)) == [0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60]
    assert list(risk_times(15.5)) == [0, 3, 6, 9, 12, 15]


def test_per_site_check_is_small_multiples_at_most_four_a_row():
    import xarray as xr

    from bayes_ablation.report.plots import close_figure, ppc_coverage, ppc_km_sites

    sites = [f"S{i:02d}" for i in range(1, 10)]
    groups = [f"{s} | {a}" for s in sites for a in ("post", "peri")]
    t = np.linspace(0, 60, 30)
    curve = np.exp(-t / 30)[None, :].repeat(len(groups), 0)
    ppc = xr.Dataset({"observed": (("group", "time"), curve), "lower": (("group", "time"),
                      curve - 0.1), "median": (("group", "time"), curve),
                      "upper": (("group", "time"), curve + 0.1),
                      "coverage": (("group",), np.linspace(0.8, 1, len(groups))),
                      "events_p_value": (("group",), np.linspace(0.1, 0.9, len(groups)))},
                     coords={"group": groups, "time": t})
    fig = ppc_km_sites(ppc)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(panels) == len(sites)                      # one panel per site, both arms in it
    assert len({round(ax.get_position().x0, 3) for ax in panels}) <= 4
    assert all(ax.title.get_fontsize() >= 10 for ax in panels)
    assert panels[0].get_title() == "Site S01: in band 80% / 81%"
    close_figure(fig)
    fig = ppc_coverage(ppc)
    rows = {t.get_text(): t.get_position()[1] for t in fig.axes[0].get_yticklabels()}
    assert len(rows) == len(sites) and rows["Site S01"] > rows["Site S09"]   # S01 on top
    close_figure(fig)


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed")
@pytest.mark.parametrize("kind", KINDS)
def test_a_headless_browser_renders_the_headline_and_tables(reports, kind):
    source = Page((reports[kind] / "report.html").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        run = subprocess.run(
            [_browser(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,2000",
             "--dump-dom", (reports[kind] / "report.html").resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = Page(run.stdout)
    assert dom.order()[0] == "answer" and "HR " in dom.answer
    assert " ".join(dom.answer.split()) == " ".join(source.answer.split())
    assert [s["tables"] for s in dom.sections] == [s["tables"] for s in source.sections]
    assert sum(s["tables"] for s in dom.sections) >= 3
    assert len(dom.images) == len(source.images)
