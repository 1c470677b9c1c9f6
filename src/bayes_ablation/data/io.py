"""Reading input tables from disk (CSV, Parquet) as raw text columns, plus their SHA-256.

Everything is read as text first so that validation (``data.schema``) sees exactly what the
file holds: pandas never gets the chance to coerce, drop or guess.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from bayes_ablation.errors import DataValidationError, Problem

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: pd.DataFrame) -> str:
    """Hash of a table's content (column names, order and values) for in-memory inputs."""
    text = frame.to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


#: attrs key of a column that holds stripped text with no missing values (CSV columns)
STRIPPED_TEXT = "bayes_ablation_stripped_text"


def strip_strings(series: pd.Series) -> pd.Series:
    """``series.str.strip()`` for a column of text, in Arrow's compute kernels when every value
    is a string (10⁶ values in ~0.2 s instead of ~1 s in Python)."""
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
        import pyarrow as pa
        import pyarrow.compute as pc

        values = pc.utf8_trim_whitespace(pa.array(series.to_numpy(), type=pa.string()))
        return pd.Series(values.to_numpy(zero_copy_only=False), index=series.index,
                         name=series.name)
    return series.str.strip()


def read_raw_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; CSV cells come back as stripped strings ('' when empty).

    Parquet columns keep their types (categoricals keep unused categories, which validation
    reports as arms/sites without patients).
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError([Problem(str(path), None, None, None, "an existing file")])
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            frame.columns = [str(c).strip() for c in frame.columns]
            frame = frame.apply(strip_strings)
            for col in frame.columns:  # validators need not strip these again
                frame[col].attrs[STRIPPED_TEXT] = True
            return frame
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataValidationError(
            [Problem(str(path), None, None, None, f"a readable {suffix[1:]} file ({exc})")]
        ) from exc
    raise DataValidationError([Problem(str(path), None, None, suffix,
                                       f"a file ending in {', '.join(SUPPORTED_SUFFIXES)}")])
