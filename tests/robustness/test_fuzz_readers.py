"""Fuzzed readers: any perturbation of a valid input either validates or raises the package's
own error (``BayesAblationError``, listing the problems) — never another exception.

Each test starts from a real input of the repository (the example tables, a shipped spec) and
lets Hypothesis perturb cells, columns and rows (blanks, NaN, infinities, huge or negative
numbers, text in numeric columns, HTML and odd unicode in labels, duplicated or dropped rows
and columns). Derandomised, so the suite is reproducible.
"""

from __future__ import annotations

import tomllib

import numpy as np
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


# ------------------------------------------------------------------------------------ ADaM

ADAM = EXAMPLES / "adam"


@pytest.fixture(scope="module")
def adam_frames():
    from bayes_ablation.data.adam import read_adam_table

    adsl = read_adam_table(ADAM / "adsl.xpt").head(30)
    adtte = read_adam_table(ADAM / "adtte.xpt")
    adtte = adtte[adtte["USUBJID"].isin(adsl["USUBJID"])].reset_index(drop=True)
    return adsl, adtte


ADAM_VALUES = st.sampled_from(["", "nan", "-1", "0", "0.5", "2", "1e308", "abc", "DAYS",
                               "weeks", "furlongs", "PFS", "OS", "S01", "S99", "ABL-01-P001",
                               "Perioperative ", "2026-02-30", "2026-03-01", "1960-01-01",
                               "<b>x</b>", "\u200b", "Progression-free survival (days)"])


@st.composite
def perturbed_adam(draw, frame: pd.DataFrame):
    """``frame`` with 0–4 edits: a cell set to an odd value (or NaN), a row duplicated or
    dropped, a column dropped or renamed to lower case."""
    out = frame.copy()
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "nan", "dup", "drop_row", "drop_col",
                                   "lower"]))
        r = draw(st.integers(0, len(out) - 1)) if len(out) else 0
        c = draw(st.sampled_from(list(out.columns)))
        if op in ("cell", "nan") and len(out):
            out[c] = out[c].astype(object)
            out.iloc[r, out.columns.get_loc(c)] = draw(ADAM_VALUES) if op == "cell" else np.nan
        elif op == "dup" and len(out):
            out = pd.concat([out, out.iloc[[r]]], ignore_index=True)
        elif op == "drop_row" and len(out) > 1:
            out = out.drop(index=out.index[r]).reset_index(drop=True)
        elif op == "drop_col" and len(out.columns) > 1:
            out = out.drop(columns=[c])
        elif op == "lower":
            out = out.rename(columns={c: c.lower()})
    return out


@FUZZ
@given(data=st.data())
def test_adam_reader(pfs_spec, adam_frames, data):
    from bayes_ablation.data.adam import validate_adam
    from bayes_ablation.data.schema import plausibility

    adsl = data.draw(perturbed_adam(adam_frames[0]))
    adtte = data.draw(perturbed_adam(adam_frames[1]))
    adsl.columns = [str(c).upper() for c in adsl.columns]  # as read_adam_table gives them
    adtte.columns = [str(c).upper() for c in adtte.columns]
    if adsl.columns.duplicated().any() or adtte.columns.duplicated().any():
        return
    paramcd = data.draw(st.sampled_from(["PFS", "PFS", "OS", "DFS", ""]))
    kwargs = {"arm_var": data.draw(st.sampled_from(["TRT01P", "TRT01A", "ARM"])),
              "aval_unit": data.draw(st.sampled_from([None, None, "days", "months", "parsecs"])),
              "require_dates": data.draw(st.booleans())}
    _only_package_errors(lambda: validate_adam(
        adtte, adsl, paramcd, adtte_source="adtte.xpt", adsl_source="adsl.xpt",
        reference_arm="postoperative", **kwargs, **plausibility(pfs_spec)))


@FUZZ
@given(data=st.data())
def test_adam_files_damaged_byte_by_byte(pfs_spec, tmp_path_factory, data):
    """A damaged or truncated transport file is the package's error naming the file."""
    from bayes_ablation.data.adam import read_adam

    folder = tmp_path_factory.mktemp("xpt")
    raw = bytearray((ADAM / "adsl.xpt").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    (folder / "adsl.xpt").write_bytes(bytes(raw))
    _only_package_errors(lambda: read_adam(ADAM / "adtte.xpt", folder / "adsl.xpt", "PFS",
                                           pfs_spec))


# --------------------------------------------------------------------- reconstruction inputs

CURVE = pd.read_csv(EXAMPLES / "reconstruct" / "curve.csv", dtype=str, keep_default_na=False)
AT_RISK = pd.read_csv(EXAMPLES / "reconstruct" / "atrisk.csv", dtype=str,
                      keep_default_na=False)


@FUZZ
@given(data=st.data())
def test_reconstruction_inputs(data):
    from bayes_ablation.data.reconstruct import reconstruct_ipd

    curve = data.draw(perturbed(CURVE)) if data.draw(st.booleans()) else CURVE
    at_risk = data.draw(perturbed(AT_RISK))
    total = data.draw(st.sampled_from([None, None, 0, 1, 120, 10_000, -3]))
    _only_package_errors(lambda: reconstruct_ipd(curve, at_risk, "arm", total))


# ----------------------------------------------------- the command line: exit 0, 2 or 3 only

class _Validated(Exception):
    """Raised by the stubbed analysis: the input validated and the fit would start."""


def _exit_code(argv, out):
    """The CLI's exit code on ``argv`` (in process); "validated" when the stubbed analysis was
    reached. A refused input (2) leaves nothing at ``out``."""
    from bayes_ablation.cli.main import main

    try:
        code = main(argv)
    except _Validated:
        return "validated"
    assert code in (0, 2, 3), f"exit code {code} for {argv}"
    if code == 2:
        assert not out.exists(), f"{out} written although the input was refused"
    return code


@pytest.fixture()
def stubbed_analyses(monkeypatch):
    def stop(*args, **kwargs):
        raise _Validated

    monkeypatch.setattr("bayes_ablation.workflows.fit.fit", stop)
    monkeypatch.setattr("bayes_ablation.workflows.meta.fit_meta", stop)
    monkeypatch.setattr("bayes_ablation.workflows.monitoring.monitor.run_look", stop)


CLI_FUZZ = settings(FUZZ, max_examples=60)


def maybe(data, frame: pd.DataFrame, perturb=None) -> pd.DataFrame:
    """``frame`` perturbed, or (one time in three) intact so that the commands' paths past
    validation run too."""
    if data.draw(st.integers(0, 2)) == 0:
        return frame
    return data.draw((perturb or perturbed)(frame))


@CLI_FUZZ
@given(data=st.data())
def test_cli_exits_0_2_or_3(stubbed_analyses, tmp_path_factory, dated_frame, data):
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "out"
    command = data.draw(st.sampled_from(["fit", "lr", "monitor", "meta", "reconstruct", "adam"]))
    if command == "fit":
        maybe(data, PATIENTS).to_csv(folder / "t.csv", index=False)
        argv = ["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"), "--data",
                str(folder / "t.csv"), "--out", str(out)]
    elif command == "lr":
        maybe(data, LR_PATIENTS).to_csv(folder / "p.csv", index=False)
        maybe(data, LR_LESIONS).to_csv(folder / "l.csv", index=False)
        argv = ["fit", "--spec", str(MODELS / "local_recurrence_lesion.toml"), "--data",
                str(folder / "p.csv"), "--lesions", str(folder / "l.csv"), "--out", str(out)]
    elif command == "monitor":
        maybe(data, dated_frame).to_csv(folder / "d.csv", index=False)
        argv = ["monitor", "--design", str(MODELS / "interim_design.toml"), "--data",
                str(folder / "d.csv"), "--cut", data.draw(st.sampled_from(
                    ["2026-09-30", "2030-01-01", "2020-01-01", "31/12/2026"])),
                "--ledger", str(folder / "l.db"), "--out", str(out)]
    elif command == "meta":
        maybe(data, STUDIES).to_csv(folder / "s.csv", index=False)
        argv = ["meta", "--spec", str(MODELS / "meta_loghr.toml"), "--data",
                str(folder / "s.csv"), "--out", str(out)]
    elif command == "reconstruct":
        maybe(data, CURVE).to_csv(folder / "c.csv", index=False)
        maybe(data, AT_RISK).to_csv(folder / "a.csv", index=False)
        argv = ["reconstruct", "--curve", str(folder / "c.csv"), "--at-risk",
                str(folder / "a.csv"), "--arm", "x", "--out", str(out)]
    else:
        from bayes_ablation.data.adam import read_adam_table

        adsl = read_adam_table(ADAM / "adsl.xpt").head(40)
        maybe(data, adsl, perturbed_adam).to_csv(folder / "adsl.csv", index=False)
        argv = ["fit", "--spec", str(MODELS / "pfs_weibull_site.toml"), "--adtte",
                str(ADAM / "adtte.xpt"), "--adsl", str(folder / "adsl.csv"), "--paramcd",
                data.draw(st.sampled_from(["PFS", "OS", "XX"])), "--out", str(out)]
    _exit_code(argv, out)


DESIGN_TEXT = (MODELS / "interim_design.toml").read_text()
DESIGN_LINES = [line for line in DESIGN_TEXT.splitlines()
                if "=" in line and not line.lstrip().startswith("#")]


@FUZZ
@given(data=st.data())
def test_design_reader(tmp_path_factory, data):
    """The monitoring design (TOML, with its analysis spec next to it) under the same edits."""
    from bayes_ablation.spec.design import load_design

    folder = tmp_path_factory.mktemp("design")
    (folder / "pfs_weibull_site.toml").write_text(SPEC_TEXT)
    lines = DESIGN_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        target = data.draw(st.sampled_from(DESIGN_LINES))
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
    (folder / "design.toml").write_text("\n".join(lines))
    _only_package_errors(lambda: load_design(folder / "design.toml"))
