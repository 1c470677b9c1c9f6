"""Run many independent tasks in parallel: local processes or a Dask cluster, resumable.

Generic (nothing here knows about trials): operating-characteristics studies, simulation-based
calibration and other embarrassingly parallel studies call :func:`run_tasks`.

* **Where**: local worker processes by default (``concurrent.futures.ProcessPoolExecutor``,
  ``forkserver`` start method so a parent that holds threads — PyMC, numba, tqdm — is never
  forked); ``workers=1`` runs in this process; ``scheduler="tcp://host:8786"`` (or a
  ``distributed.Client``) sends the chunks to a Dask distributed cluster.
* **Checkpoints**: with ``checkpoint_dir``, every finished chunk is written atomically as one
  JSON file of ``{"i": task index, "task": task digest, "result": ...}`` records. A re-run with
  the same tasks reads them back and only computes the missing tasks, whatever chunk size or
  worker count the two runs used. A stored record whose task digest differs from the current
  task at that index is refused (a checkpoint folder belongs to one study). Results must
  therefore be JSON-serialisable (no pickle is ever read back from disk).
* **Seeds**: a task's random stream should depend on *what* it is, never on where or when it
  runs: derive it with :func:`seed_sequence` (``numpy.random.SeedSequence`` with the study seed
  as entropy and the task's identity as spawn key), so results do not depend on chunking,
  worker count or resumption.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from bayes_ablation.errors import BayesAblationError

CHECKPOINT_FORMAT = "bayes_ablation.core.parallel/1"


class TaskError(BayesAblationError):
    """A task raised; the message names the task index and the original error."""


class CheckpointError(BayesAblationError):
    """A checkpoint folder is damaged or belongs to a different study."""

    exit_code = 2


# ------------------------------------------------------------------------------------- seeds

def key_int(key: int | str) -> int:
    """A stable non-negative integer for a seed key (strings hashed with SHA-256, never
    Python's salted ``hash``)."""
    if isinstance(key, bool) or not isinstance(key, int | str | np.integer):
        raise TypeError(f"seed keys must be int or str, got {type(key).__name__}")
    if isinstance(key, str):
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    if key < 0:
        raise ValueError(f"integer seed keys must be >= 0, got {key}")
    return int(key)


def seed_sequence(base_seed: int, *keys: int | str) -> np.random.SeedSequence:
    """``SeedSequence(entropy=base_seed, spawn_key=keys)``: independent streams per key tuple,
    e.g. ``seed_sequence(design_seed, "null", trial_index)``."""
    return np.random.SeedSequence(entropy=int(base_seed), spawn_key=tuple(key_int(k) for k in keys))


def rng_for(base_seed: int, *keys: int | str) -> np.random.Generator:
    """A ``numpy.random.Generator`` on :func:`seed_sequence` (PCG64)."""
    return np.random.default_rng(seed_sequence(base_seed, *keys))


# --------------------------------------------------------------------------------- checkpoints

def task_digest(task: Any) -> str:
    """Short digest of a task's ``repr`` (dataclasses and tuples have deterministic reprs)."""
    return hashlib.sha256(repr(task).encode()).hexdigest()[:20]


def _chunk_name(indices: Sequence[int]) -> str:
    return f"chunk-{indices[0]:09d}-{indices[-1]:09d}-{len(indices):06d}.json"


def _write_json_atomic(path: Path, payload: Any) -> None:
    from bayes_ablation.core.files import atomic_write_text

    atomic_write_text(path, json.dumps(payload, separators=(",", ":")))


def load_checkpoints(checkpoint_dir: str | Path, tasks: Sequence[Any]) -> dict[int, Any]:
    """Completed results found in ``checkpoint_dir`` for ``tasks`` (index → result).

    Raises :class:`CheckpointError` for unreadable files or records of other tasks.
    """
    folder = Path(checkpoint_dir)
    done: dict[int, Any] = {}
    if not folder.exists():
        return done
    digests: dict[int, str] = {}
    for path in sorted(folder.glob("chunk-*.json")):
        try:
            payload = json.loads(path.read_text())
            if payload.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {payload.get('format')!r}")
            records = payload["records"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint file {path} is damaged ({exc}); move it away to "
                                  "recompute its tasks") from exc
        for rec in records:
            i = rec["i"]
            if not 0 <= i < len(tasks):
                continue  # a longer earlier study: its extra tasks are simply not needed
            want = digests.setdefault(i, task_digest(tasks[i]))
            if rec["task"] != want:
                raise CheckpointError(
                    f"checkpoint {path} holds task {i} of a different study (digest "
                    f"{rec['task']} != {want}); use a new --checkpoint folder")
            done[i] = rec["result"]
    return done


# ------------------------------------------------------------------------------------ running

def _run_chunk(fn: Callable[[Any], Any], items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    out = []
    for i, task in items:
        try:
            out.append((i, fn(task)))
        except Exception as exc:
            raise TaskError(f"task {i} ({task!r}) failed: {type(exc).__name__}: {exc}") from exc
    return out


def _chunks(indices: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], *, scheduler: Any = None,
              checkpoint_dir: str | Path | None = None, progress: bool = True,
              workers: int | None = None, chunk_size: int | None = None,
              desc: str = "tasks", mp_context: str = "forkserver") -> list[Any]:
    """``[fn(t) for t in tasks]``, computed in parallel; results in task order.

    ``fn`` must be importable by the workers (a module-level function, or a
    ``functools.partial`` of one). ``scheduler``: a Dask scheduler address or
    ``distributed.Client`` (else local processes, ``workers`` of them, default: the CPUs
    available). ``checkpoint_dir``: resume from / write completed chunks there (see module
    docstring). ``progress``: a tqdm bar on stderr.
    """
    from tqdm.auto import tqdm

    tasks = list(tasks)
    n = len(tasks)
    results: dict[int, Any] = {}
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        results.update(load_checkpoints(folder, tasks))
    todo = [i for i in range(n) if i not in results]
    n_workers = workers or default_workers()
    if chunk_size is None:
        chunk_size = max(1, min(200, -(-len(todo) // (10 * n_workers)))) if todo else 1
    chunks = list(_chunks(todo, chunk_size))
    bar = tqdm(total=n, initial=n - len(todo), desc=desc, disable=not progress,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.05)

    def finish(chunk_result: list[tuple[int, Any]]) -> None:
        if folder is not None:
            idx = [i for i, _ in chunk_result]
            _write_json_atomic(folder / _chunk_name(idx), {
                "format": CHECKPOINT_FORMAT,
                "records": [{"i": i, "task": task_digest(tasks[i]), "result": r}
                            for i, r in chunk_result]})
        for i, r in chunk_result:
            results[i] = r
        bar.update(len(chunk_result))

    try:
        if not chunks:
            pass
        elif scheduler is not None:
            _run_dask(fn, tasks, chunks, scheduler, finish)
        elif n_workers == 1 or len(chunks) == 1:
            for chunk in chunks:
                finish(_run_chunk(fn, [(i, tasks[i]) for i in chunk]))
        else:
            ctx = multiprocessing.get_context(mp_context)
            with ProcessPoolExecutor(max_workers=min(n_workers, len(chunks)),
                                     mp_context=ctx) as pool:
                pending = {pool.submit(_run_chunk, fn, [(i, tasks[i]) for i in chunk])
                           for chunk in chunks}
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            finish(fut.result())
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    raise
    finally:
        bar.close()
    return [results[i] for i in range(n)]


def _run_dask(fn: Callable[[Any], Any], tasks: list[Any], chunks: list[list[int]],
              scheduler: Any, finish: Callable[[list[tuple[int, Any]]], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask is an optional dependency
        raise BayesAblationError("--scheduler needs dask[distributed]: pip install "
                                 "'bayes_ablation[dask]'") from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = [client.submit(_run_chunk, fn, [(i, tasks[i]) for i in chunk], pure=False)
                   for chunk in chunks]
        try:
            for fut in as_completed(futures):
                finish(fut.result())
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own:
            client.close()
