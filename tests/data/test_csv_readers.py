"""The Arrow CSV reader reads every file it accepts exactly as the pandas reader does, and
hands the files it would read differently to pandas (``data.io``)."""

import csv

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_ablation.data.io import (
    STRIPPED_TEXT,
    _csv_with_arrow,
    _csv_with_pandas,
    read_raw_table,
)
from bayes_ablation.data.schema import read_patients, validate_patients
from bayes_ablation.errors import DataValidationError


def _cells(frame):
    return [list(frame.columns), [[str(v) for v in row] for row in frame.itertuples(index=False)]]


def _same_as_pandas(path):
    arrow = _csv_with_arrow(path)
    assert arrow is not None, "the Arrow reader refused a file it should read"
    assert _cells(arrow) == _cells(_csv_with_pandas(path))
    assert all(isinstance(t, pd.StringDtype) for t in arrow.dtypes)
    return arrow


@pytest.mark.parametrize("text", [
    "patient_id,site,arm,time_months,event\nP1,A,post,3.5,1\nP2,B,peri,7,0\n",
    "\ufeffpatient_id,site,arm\nP1,A,post\n",                      # byte-order mark
    "a,b\r\n1,2\r\n3,4\r\n",                                        # CRLF
    "a,b\n1,2",                                                     # no final newline
    " a , b \n  1  ,\t2\t\n",                                       # spaces and tabs
    "a,b\n1,\n,2\n,\n",                                             # empty cells
    "a,b\n1,2\n\n3,4\n\n\n",                                        # blank lines
    'a,b\n"x, y","say ""hi"""\n"multi\nline",2\n',                  # quoting
    "a,b\nPérioperatoire,Zürich\n\u00a0x\u00a0,y\n",               # non-ASCII, nbsp
    "a,b\n",                                                        # header only
    "a,b\n1e3,-2.50\ninf,nan\n",
])
def test_arrow_reader_agrees_with_pandas(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    _same_as_pandas(path)


@pytest.mark.parametrize("data", [
    b"a,b\n1,2,3\n",              # ragged row
    b"a,b\n1\n",                  # short row
    b"a,a\n1,2\n",                # duplicate name
    b"a,,c\n1,2,3\n",             # empty name
    b'a,b\n1, "x,y"\n',           # quote after a space (pandas: skipinitialspace)
    b"a,b\n\xe9,1\n",             # not UTF-8
    b"",                          # empty file
])
def test_files_arrow_reads_differently_go_to_pandas(tmp_path, data):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    assert _csv_with_arrow(path) is None
    try:
        expected = _cells(_csv_with_pandas(path))
    except (ValueError, pd.errors.ParserError):
        with pytest.raises(DataValidationError, match=r"t\.csv"):
            read_raw_table(path)
        return
    assert _cells(read_raw_table(path)) == expected


_cell = st.text(st.sampled_from(list("ab1.-, \t\"\n\ré\u00a0")), max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_cell, min_size=3, max_size=3), max_size=6),
       quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
def test_any_csv_module_file_reads_alike(tmp_path, rows, quoting):
    path = tmp_path / "h.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=quoting)
        writer.writerow(["x", "y", "z"])
        writer.writerows(rows)
    arrow = _csv_with_arrow(path)
    if arrow is not None:
        assert _cells(arrow) == _cells(_csv_with_pandas(path))


def test_patients_read_alike_on_both_readers(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("patient_id,site,arm,time_months,event,age\n"
                    + "".join(f"P{i}, S{i % 3} ,{'post' if i % 2 else 'peri'},{1 + i / 7:.4f},"
                              f"{i % 2},{40 + i}\n" for i in range(40)))
    arrow = read_patients(path, reference_arm="post", covariates=("age",))
    frame = _csv_with_pandas(path)
    for col in frame.columns:
        frame[col].attrs[STRIPPED_TEXT] = True
    pandas = validate_patients(frame, str(path), reference_arm="post", covariates=("age",))
    pd.testing.assert_frame_equal(arrow.frame, pandas.frame)
    assert (arrow.arms, arrow.sites) == (pandas.arms, pandas.sites)


def test_duplicate_and_unparsable_values_reported_from_arrow_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("patient_id,site,arm,time_months,event\n"
                    "P1,A,post,3,1\nP2,A,peri,x,0\nP1,B,post,4,1\nP3,B,peri,5,2\n")
    with pytest.raises(DataValidationError) as err:
        read_patients(path, reference_arm="post")
    found = {(p.row, p.column, p.value) for p in err.value.problems}
    assert {(3, "patient_id", "P1"), (2, "time_months", "x"), (4, "event", "2")} <= found


@pytest.mark.parametrize("dtype", [object, pd.StringDtype("pyarrow", na_value=float("nan"))])
def test_repeated_values_is_duplicated_keep_false(dtype):
    import numpy as np

    from bayes_ablation.data.schema import repeated_values

    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 50, 3000):
        values = pd.Series(rng.choice(["a", "b", "", "P1", "p1", "é"] + [f"x{i}" for i in range(n)],
                                      n), dtype=dtype)
        np.testing.assert_array_equal(repeated_values(values),
                                      values.duplicated(keep=False).to_numpy())


def test_arm_and_site_codes_are_computed_once_and_read_only():
    raw = pd.DataFrame({"patient_id": ["p1", "p2", "p3", "p4"], "site": ["B", "A", "B", "A"],
                        "arm": ["x", "y", "y", "x"], "time_months": [1.0, 2.0, 3.0, 4.0],
                        "event": [1, 0, 1, 1]})
    table = validate_patients(raw, "t.csv", reference_arm="x", min_patients_per_arm=1)
    assert table.arm_idx is table.arm_idx and table.site_idx is table.site_idx
    np.testing.assert_array_equal(table.arm_idx, [0, 1, 1, 0])
    np.testing.assert_array_equal(table.site_idx, [1, 0, 1, 0])
    with pytest.raises(ValueError):
        table.arm_idx[0] = 1
