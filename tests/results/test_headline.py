"""The report's headline states the primary answer with the table's own numbers."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from bayes_ablation.results.sections.analysis import headline_sentences
from bayes_ablation.spec.plan import load_spec
from tests.conftest import MODELS


def _row(estimand, median, lo, hi, **keys):
    return {"estimand": estimand, "treatment": "perioperative", "median": median,
            "q2.5": lo, "q97.5": hi, **keys}


def test_pfs_headline_names_hr_probability_difference_and_population():
    spec = load_spec(MODELS / "pfs_weibull_site.toml")
    table = pd.DataFrame([
        _row("hr", 0.7412, 0.6071, 0.8993),
        _row("survival_difference", 0.0741, 0.019, 0.128, site_target="average", time=24.0),
        _row("survival_difference", 0.0702, 0.011, 0.131, site_target="new", time=24.0),
        _row("survival_difference", 0.05, 0.01, 0.09, site_target="average", time=12.0),
    ])
    result = SimpleNamespace(estimand_table=table, spec=spec,
                             probabilities={"P(HR<1) [perioperative]": 0.9931})
    [sentence] = headline_sentences(result)
    assert sentence == ("Perioperative vs postoperative: HR 0.74 (95% CrI 0.61–0.90), "
                        "P(HR<1) = 0.99; 24-month PFS +7.4 points (95% CrI +1.9 to +12.8), "
                        "for an average site.")


def test_no_headline_without_a_hazard_ratio():
    spec = load_spec(MODELS / "pfs_weibull_site.toml")
    result = SimpleNamespace(estimand_table=pd.DataFrame([_row("rmst", 20, 18, 22)]), spec=spec,
                             probabilities={})
    assert headline_sentences(result) == []
