"""Fuzzed readers: any perturbation of a valid input either validates or raises the package's
own error (``BayesAblationError``, listing the problems) — never another exception.

Each test starts from a real input of the repository (the example tables, a shipped spec) and
lets Hypothesis perturb cells, columns and rows (blanks, NaN, infinities, huge or negative
numbers, text in numeric columns, HTML and odd unicode in labels, duplicated or dropped rows
and columns). Derandomised, so the suite is reproducible.
"""

from __future__ import annotations

import tomllib

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_ablation.errors import BayesAblationError
from tests.conftest import MODELS, ROOT

# a raw library warning (overflow, invalid value …) is a failure too
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

EXAMPLES = ROOT / "examples"
FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ODD_VALUES = st.sampled_from([
    "", "nan", "NaN", "inf", "-inf", "1e308", "-1", "0", "-0.0", "1e-320", "abc", "1,5", " 3 ",
    "<script>alert(1)</script>", "Ω≈ç√", "\u200b", "../../etc/passwd", "2", "1", "None", "TRUE",
    "9" * 40, "postoperative", "perioperative", "Perioperative ", "S01", "P001", "L1", "MWA",
])


def _head(path, n):
    return pd.read_csv(path, dtype=str, keep_default_na=False).head(n)


@st.composite
def perturbed(draw, frame: pd.DataFrame):
    """A copy of ``frame`` with 1–6 random edits."""
    out = frame.copy()
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "drop_col", "add_col", "dup_row",
                                   "drop_rows", "rename_col", "empty"]))
        if op == "cell" and len(out) and len(out.columns):
            r = draw(st.integers(0, len(out) - 1))
            c = draw(st.sampled_from(list(out.columns)))
            out.iloc[r, out.columns.get_loc(c)] = draw(ODD_VALUES)
        elif op == "drop_col" and len(out.columns) > 1:
            out = out.drop(columns=[draw(st.sampled_from(list(out.columns)))])
        elif op == "add_col":
            out[draw(st.sampled_from(["extra", "event", "site", "é", ""]))] = draw(ODD_VALUES)
        elif op == "dup_row" and len(out):
            r = draw(st.integers(0, len(out) - 1))
            out = pd.concat([out, out.iloc[[r]]], ignore_index=True)
        elif op == "drop_rows" and len(out) > 1:
            k = draw(st.integers(1, len(out) - 1))
            out = out.iloc[k:].reset_index(drop=True)
        elif op == "rename_col" and len(out.columns):
            c = draw(st.sampled_from(list(out.columns)))
            out = out.rename(columns={c: c.upper()})
        elif op == "empty":
            out = out.iloc[0:0]
    return out


def _only_package_errors(call):
    try:
        call()
    except BayesAblationError as exc:
        assert str(exc).strip(), "the package's error must say what is wrong"
    # any other exception type propagates and fails the test


@pytest.fixture(scope="module")
def pfs_spec():
    from bayes_ablation.spec.plan import load_spec

    return load_spec(MODELS / "pfs_weibull_site.toml")


@pytest.fixture(scope="module")
def lr_spec():
    from bayes_ablation.spec.plan import load_spec

    return load_spec(MODELS / "local_recurrence_lesion.toml")


PATIENTS = _head(EXAMPLES / "pfs_trial.csv", 40)
LR_PATIENTS = _head(EXAMPLES / "lr_patients.csv", 25)
LR_LESIONS = _head(EXAMPLES / "lr_lesions.csv", 200)
LR_LESIONS = LR_LESIONS[LR_LESIONS["patient_id"].isin(LR_PATIENTS["patient_id"])].reset_index(
    drop=True)
STUDIES = _head(EXAMPLES / "meta" / "crlm_pfs_hr.csv", 10)


@FUZZ
@given(data=st.data())
def test_patient_reader(pfs_spec, data):
    from bayes_ablation.data.schema import read_patients

    frame = data.draw(perturbed(PATIENTS))
    _only_package_errors(lambda: read_patients(frame, pfs_spec))
    _only_package_errors(lambda: read_patients(frame, reference_arm="postoperative"))


@FUZZ
@given(data=st.data())
def test_lesion_reader(lr_spec, data):
    from bayes_ablation.data.lesions import read_lr_data

    patients = data.draw(perturbed(LR_PATIENTS)) if data.draw(st.booleans()) else LR_PATIENTS
    lesions = data.draw(perturbed(LR_LESIONS))
    _only_package_errors(lambda: read_lr_data(patients, lesions, lr_spec))


@FUZZ
@given(data=st.data())
def test_study_reader(data):
    from bayes_ablation.data.studies import read_studies

    frame = data.draw(perturbed(STUDIES))
    _only_package_errors(lambda: read_studies(frame))
    as_log = pd.DataFrame({"study": ["a", "b", "c"], "log_hr": ["-0.2", "0.1", "-0.4"],
                           "se": ["0.1", "0.2", "0.15"]})
    _only_package_errors(lambda: read_studies(data.draw(perturbed(as_log))))


@pytest.fixture(scope="module")
def dated_frame():
    from bayes_ablation.data.simulate_dated import simulate_dated_trial

    sim = simulate_dated_trial(40, 4, -0.3, seed=5, start_date="2026-01-15")
    return sim.frame.astype(str).replace({"NaT": "", "nan": "", "None": ""})


@FUZZ
@given(data=st.data())
def test_dated_reader(dated_frame, data):
    from bayes_ablation.data.cut import read_dated

    frame = data.draw(perturbed(dated_frame))
    _only_package_errors(lambda: read_dated(frame))


SPEC_TEXT = (MODELS / "pfs_weibull_site.toml").read_text()
SPEC_LINES = [line for line in SPEC_TEXT.splitlines() if "=" in line and not line.startswith("#")]
TOML_VALUES = st.sampled_from(['-1', '0', '1e309', '"x"', '[]', '[1, "a"]', '{}', 'true',
                               '"<b>h</b>"', '"../../x"', '[-3, 0]', '1.5', '"weibull"',
                               '"normal"', '{ family = "cauchy", mu = 0 }'])


@FUZZ
@given(data=st.data())
def test_spec_reader(tmp_path_factory, data):
    from bayes_ablation.spec.plan import load_spec

    lines = SPEC_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        target = data.draw(st.sampled_from(SPEC_LINES))
        i = lines.index(target) if target in lines else 0
        op = data.draw(st.sampled_from(["value", "value", "drop", "dup", "garbage"]))
        key = lines[i].split("=", 1)[0]
        if op == "value":
            lines[i] = f"{key}= {data.draw(TOML_VALUES)}"
        elif op == "drop":
            lines[i] = ""
        elif op == "dup":
            lines.insert(i, lines[i])
        else:
            lines[i] = lines[i] + " ]]["
    text = "\n".join(lines)
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(text)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass  # must still be the package's error
    _only_package_errors(lambda: load_spec(path))
