"""Study tables of a meta-analysis: formats, derived SEs and validation (no PyMC needed)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_ablation.data.studies import read_studies, se_from_ci, studies_from_frame
from bayes_ablation.errors import DataValidationError
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "meta" / "crlm_pfs_hr.csv"


def test_example_table_derives_log_hr_and_se_on_the_log_scale():
    table = read_studies(EXAMPLE)
    assert table.studies == ("EORTC40983_EPOC", "EORTC40004_CLOCC")
    epoc, clocc = table.frame.iloc[0], table.frame.iloc[1]
    # EPOC's interval is a 95.66% interval: z = Φ⁻¹(0.9783)
    assert epoc["ci_level"] == pytest.approx(0.9566)
    z = stats.norm.ppf(0.5 + 0.9566 / 2)
    assert epoc["se"] == pytest.approx((np.log(1.02) - np.log(0.62)) / (2 * z))
    assert epoc["log_hr"] == pytest.approx(np.log(0.79))
    assert clocc["se"] == pytest.approx((np.log(0.95) - np.log(0.42)) / (2 * 1.959964))
    # the derived SE reproduces the published p-values (EPOC p = 0.058, CLOCC p = 0.025)
    p = 2 * stats.norm.sf(np.abs(table.y) / table.se)
    assert p == pytest.approx([0.058, 0.025], abs=0.003)
    assert "source" in table.extra_columns and "Nordlinger" in table.frame["source"].iloc[0]
    assert [w for w in table.warnings if "only 2 studies" in w], table.warnings  # τ prior-driven


def test_log_hr_se_rows_and_mixed_tables():
    frame = pd.DataFrame({"study": ["a", "b", "c"], "log_hr": [-0.2, "", 0.1],
                          "se": [0.1, "", 0.3], "hr": ["", 0.7, ""], "ci_low": ["", 0.5, ""],
                          "ci_high": ["", 0.98, ""], "ci_level": ["", "0.95", ""]})
    table = studies_from_frame(frame)
    assert list(table.frame["evidence"]) == ["log_hr", "hr_ci", "log_hr"]
    assert table.se[1] == pytest.approx(se_from_ci(0.5, 0.98, 0.95))


def _problems(frame, **kw):
    with pytest.raises(DataValidationError) as err:
        studies_from_frame(frame, source="studies.csv", **kw)
    return err.value.problems


def test_every_problem_is_reported_with_row_column_and_expectation():
    frame = pd.DataFrame({
        "study": ["a", "a", "", "d", "e", "f", "g"],
        "hr": [0.8, 0.9, 0.7, 1.2, -0.5, 0.8, 0.8],
        "ci_low": [0.6, 0.7, 0.5, 1.3, 0.2, 0.6, 0.6],     # d: ci_low > hr
        "ci_high": [1.1, 1.2, 0.95, 1.6, 1.1, "", 1.1],     # f: missing ci_high
        "ci_level": ["", "", "", "", "", "", "1"],          # g: 1 is neither 0-1 nor percent
    })
    problems = _problems(frame)
    found = {(p.row, p.column) for p in problems}
    assert (2, "study") in found                  # duplicate 'a' (row 2 repeats row 1)
    assert (3, "study") in found                  # blank name
    assert (4, "hr") in found                     # ci_low < hr < ci_high violated
    assert (5, "hr") in found                     # negative HR
    assert (6, "ci_high") in found                # incomplete row
    assert (7, "ci_level") in found
    assert all(p.file == "studies.csv" for p in problems)
    dup = next(p for p in problems if (p.row, p.column) == (2, "study"))
    assert "row 1" in dup.expected
    text = str(DataValidationError(problems))
    assert "6 problems" in text or f"{len(problems)} problems" in text


def test_ambiguous_or_missing_estimates_and_columns():
    both = pd.DataFrame({"study": ["a"], "log_hr": [-0.1], "se": [0.2], "hr": [0.9],
                         "ci_low": [0.7], "ci_high": [1.1]})
    assert "exactly one way" in _problems(both)[0].expected
    assert "'ci_high'" in _problems(pd.DataFrame({"study": ["a"], "hr": [0.9],
                                                   "ci_low": [0.7]}))[0].expected
    none = pd.DataFrame({"study": ["a"], "log_hr": [""], "se": [""]})
    assert "an estimate" in _problems(none)[0].expected
    assert _problems(pd.DataFrame({"study": ["a"], "log_hr": [-0.1], "se": [0.0]}))[0].column \
        == "se"
    assert "at least one study" in _problems(pd.DataFrame({"study": [], "log_hr": [],
                                                          "se": []}))[0].expected
    level_without_ci = pd.DataFrame({"study": ["a"], "log_hr": [-0.1], "se": [0.2],
                                     "ci_level": [0.95]})
    assert _problems(level_without_ci)[0].column == "ci_level"


def test_one_study_is_allowed_with_a_warning_and_asymmetric_intervals_warn():
    one = studies_from_frame(pd.DataFrame({"study": ["a"], "log_hr": [-0.2], "se": [0.1]}))
    assert one.n_studies == 1 and "only one study" in one.warnings[0]
    typo = studies_from_frame(pd.DataFrame({"study": ["a", "b"], "hr": [0.79, 0.63],
                                            "ci_low": [0.62, 0.42], "ci_high": [1.02, 9.5]}))
    assert any("not symmetric" in w and "b:" in w for w in typo.warnings)


def test_ipd_rows_are_validated_through_the_patient_table(tmp_path):
    good = ROOT / "examples" / "pfs_trial.csv"
    frame = pd.DataFrame({"study": ["pub", "trial", "broken"], "log_hr": [-0.2, "", ""],
                          "se": [0.15, "", ""],
                          "ipd_file": ["", str(good), "missing.csv"],
                          "reference_arm": ["", "postoperative", "control"]})
    problems = _problems(frame, base_dir=tmp_path)
    assert [(p.row, p.column) for p in problems] == [(3, "ipd_file")]
    frame = frame.iloc[:2]
    table = studies_from_frame(frame, base_dir=tmp_path)
    assert table.has_ipd and table.ipd["trial"].reference_arm == "postoperative"
    assert table.y.tolist() == [-0.2]              # aggregate rows only
    wrong_arm = frame.assign(reference_arm=["", "placebo"])
    problems = _problems(wrong_arm, base_dir=tmp_path)
    assert problems[0].file.endswith("pfs_trial.csv") and problems[0].column == "arm"
