"""Fit records: a cached-kernel fit in a new process without importing PyMC.

A fit through a family's cached kernel (:mod:`bayes_ablation.inference.kernels`) takes only
numbers from the PyMC model: the kernel plan and data buffer, dims and coordinates, the
initial point of each chain (PyMC's support point with jitter, by the seed nutpie asks for),
the checked agreement of kernel and PyMC, and the ``constant_data`` / ``observed_data``
groups. They are a deterministic function of

* the package's source and the installed versions of PyMC, PyTensor, numba, nutpie, NumPy
  and llvmlite (the kernel check's digest, :func:`~bayes_ablation.inference.kernels._code_digest`),
* the analysis spec as run (its canonical SHA-256: priors, sampler settings and seed), and
* the model data the spec's builder receives: their pickle, in which every pandas table is
  replaced by a digest of its content (column names, dtypes, index, and each column's bytes:
  numbers as stored, text as one NUL-joined UTF-8 string), so that 10⁶ patients are digested
  in ~0.3 s where their pickle took 1.4 s.

After a kernel fit these numbers are written to ``<cache>/fit_records/<sha256>.pkl`` (atomically;
a read-only cache is no error). A later fit with the same digest builds nutpie's model from the
record: PyMC and PyTensor are not imported, no graph is built and nothing is compiled, and the
draws are those of the PyMC path bit for bit (same kernel, buffer and initial points; a test
checks this). A seed nutpie asks for that is not in the record (e.g. another number of chains
would already change the spec's digest, so in practice only a retried initialisation) builds
the PyMC model then and takes its initial point from PyMC, as without a record. Provenance
says which path ran (``model_record``). The cache folder is the user's own, like numba's
cache next to the package: records are pickles and are trusted as such.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_ablation.inference import kernels
from bayes_ablation.spec.plan import AnalysisSpec

logger = logging.getLogger(__name__)

#: layout version of a record (part of the digest)
RECORD_VERSION = 2
#: records kept (the most recently written or used; older ones are removed when one is
#: written): a study's repeated fits hit, simulation loops do not fill the disk
MAX_RECORDS = 32
#: tables shorter than this are pickled as they are (their digest costs more than it saves)
_DIGESTED_ROWS = 2_000


def records_dir() -> Path:
    """``<cache>/fit_records`` next to the kernel checks (``$BAYES_ABLATION_CACHE_DIR``)."""
    return kernels.check_cache_dir().parent / "fit_records"



def _update_with_column(h: Any, values: pd.Series) -> None:
    """Feed one column's content to ``h``: numbers as their bytes, text as NUL-joined UTF-8, and
    anything else (mixed objects, text holding NUL) as its pickle."""
    array = values.to_numpy()
    if array.dtype.kind in "biufcmM":
        h.update(b"n" + array.dtype.str.encode())
        h.update(np.ascontiguousarray(array).view(np.uint8).data)
        return
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        joined = "\0".join(values.tolist())
        if joined.count("\0") == max(len(values) - 1, 0):  # NUL only as the separator
            h.update(b"s%d:" % len(values))
            h.update(joined.encode("utf-8", "surrogatepass"))
            return
    h.update(b"p" + pickle.dumps(values, protocol=5))


def table_digest(frame: pd.DataFrame) -> bytes:
    """SHA-256 of a table's content: column names and dtypes, index, every column's values."""
    h = hashlib.sha256(pickle.dumps(([str(c) for c in frame.columns],
                                     [str(t) for t in frame.dtypes], len(frame)), protocol=5))
    if isinstance(frame.index, pd.RangeIndex):
        h.update(pickle.dumps(frame.index, protocol=5))
    else:
        _update_with_column(h, frame.index.to_series())
    for i in range(frame.shape[1]):
        _update_with_column(h, frame.iloc[:, i])
    return h.digest()


class _DigestPickler(pickle.Pickler):
    """A pickler that writes each large table as :func:`table_digest` of its content."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, pd.DataFrame) and len(obj) >= _DIGESTED_ROWS:
            return _table_token, (table_digest(obj),)
        return NotImplemented


def _table_token(digest: bytes) -> bytes:
    """What a digested table unpickles to (the digest pickle is never loaded)."""
    return digest


class _HashSink:
    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.h.update(data)
        return len(data)


def data_digest(model_data: Any) -> bytes | None:
    """SHA-256 of ``model_data`` as the builder receives them (module docstring), or None when
    they cannot be pickled."""
    sink = _HashSink()
    try:
        _DigestPickler(sink, protocol=5).dump(model_data)
    except Exception:   # e.g. an open file handle in user-made data: no record
        return None
    return sink.h.digest()


def record_digest(spec: AnalysisSpec, model_data: Any) -> str | None:
    """The digest a fit of ``spec`` on ``model_data`` is recorded under (module docstring), or
    None when the data cannot be pickled (nothing is recorded then)."""
    data = data_digest(model_data)
    if data is None:
        return None
    h = hashlib.sha256(f"fit record v{RECORD_VERSION}".encode())
    h.update(kernels._code_digest().encode())
    h.update(spec.sha256.encode())
    h.update(data)
    return h.hexdigest()


def load_record(digest: str) -> dict[str, Any] | None:
    """The record filed under ``digest``, or None (absent, unreadable or not this digest's)."""
    wait_for_records()   # one this process is still writing
    try:
        with open(records_dir() / f"{digest}.pkl", "rb") as fh:
            record = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
            ValueError, TypeError):
        return None
    if not (isinstance(record, dict) and record.get("digest") == digest):
        return None
    try:   # used: kept longest by the pruning of :func:`save_record`
        (records_dir() / f"{digest}.pkl").touch()
    except OSError:
        pass
    return record


_writing: list[threading.Thread] = []


def save_record_in_background(digest: str, record: dict[str, Any]) -> None:
    """:func:`save_record` in a (non-daemon) thread: at 10⁶ patients pickling and writing the
    record takes ~0.5 s, which then overlaps the estimands and checks. The interpreter waits
    for the thread at exit; the file appears whole or not at all (atomic rename)."""
    thread = threading.Thread(target=save_record, args=(digest, record), name="fit-record")
    thread.start()
    _writing.append(thread)


def wait_for_records() -> None:
    """Block until every record being written in the background is on disk."""
    while _writing:
        _writing.pop().join()


def save_record(digest: str, record: dict[str, Any]) -> None:
    """File ``record`` under ``digest`` (atomically; a cache that cannot be written is no
    error: the next process simply builds the model again)."""
    from bayes_ablation.core.files import atomic_write_bytes

    try:
        atomic_write_bytes(records_dir() / f"{digest}.pkl",
                           pickle.dumps({**record, "digest": digest}, protocol=5))
        prune_records()
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        # unwritable cache folder, or something in the record that does not pickle
        logger.debug("fit record not written: %s", exc)


def prune_records(keep: int = MAX_RECORDS) -> list[Path]:
    """Remove all but the ``keep`` most recently written or used records; the removed."""
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    paths = sorted(records_dir().glob("*.pkl"), key=mtime, reverse=True)
    removed = []
    for path in paths[keep:]:
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def recorded_model(record: dict[str, Any], spec: AnalysisSpec,
                   build: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """nutpie's compiled model from ``record`` and facts for provenance (as
    :func:`~bayes_ablation.inference.kernels.kernel_model`'s). ``build()`` makes the PyMC model,
    called only for an initial point the record does not hold."""
    t0 = time.perf_counter()
    cfuncs, cache_hits = kernels.load_cfuncs(spec.model)
    plan = record["plan"]
    facts = kernels.kernel_facts(
        plan, cache_hits, f"recorded with the model (sha256 {record['digest'][:16]})",
        record["check_max_rel_error"], plan_s=0.0, load_s=time.perf_counter() - t0,
        check_s=0.0)
    facts["model_record"] = f"cached (sha256 {record['digest'][:16]}): no PyMC model built"
    points = recorded_points(record, build, facts)
    compiled = kernels.compiled_kernel_model(plan, record["buffer"], cfuncs, record["dims"],
                                             record["coords"], points)
    return compiled, facts


def recorded_points(record: dict[str, Any], build: Callable[[], Any], facts: dict[str, Any]
                    ) -> Callable[[Any], np.ndarray]:
    """seed → flat initial point: the recorded one, else PyMC's (the model built once)."""
    recorded: dict[str, np.ndarray] = record["initial_points"]
    lock = threading.Lock()
    fallback: list[Any] = []

    def point(seed: Any = None) -> np.ndarray:
        got = recorded.get(kernels.seed_key(seed))
        if got is not None:
            return np.array(got, dtype="float64", copy=True)
        with lock:
            if not fallback:
                model = build()
                names = record["plan"].names[:record["n_free"]]
                fallback.append(kernels._flat_initial_points(
                    kernels._pymc_point_function(model), names))
                facts["model_record"] += "; a seed not in the record: PyMC model built for it"
        return fallback[0](seed)

    return point
