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
            return frame.apply(lambda col: col.str.strip())
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataValidationError(
            [Problem(str(path), None, None, None, f"a readable {suffix[1:]} file ({exc})")]
        ) from exc
    raise DataValidationError([Problem(str(path), None, None, suffix,
                                       f"a file ending in {', '.join(SUPPORTED_SUFFIXES)}")])
