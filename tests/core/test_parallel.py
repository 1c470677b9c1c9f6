"""The generic parallel runner: order, seeds independent of chunking/workers, resume, Dask."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

from bayes_ablation.core.parallel import (
    CheckpointError,
    TaskError,
    load_checkpoints,
    rng_for,
    run_tasks,
    seed_sequence,
)


def noisy_mean(task: tuple[str, int], base_seed: int = 7) -> float:
    """A seeded 'simulation': depends only on (base_seed, task)."""
    name, i = task
    return float(rng_for(base_seed, name, i).normal(size=50).mean())


def failing(task: int) -> int:
    if task == 3:
        raise ValueError("boom")
    return task


TASKS = [(name, i) for name in ("null", "alt") for i in range(40)]


def test_seed_sequence_is_stable_and_key_dependent():
    a = seed_sequence(1, "null", 3).generate_state(2)
    assert np.array_equal(a, seed_sequence(1, "null", 3).generate_state(2))
    assert not np.array_equal(a, seed_sequence(1, "null", 4).generate_state(2))
    assert not np.array_equal(a, seed_sequence(1, "alt", 3).generate_state(2))
    assert not np.array_equal(a, seed_sequence(2, "null", 3).generate_state(2))
    with pytest.raises(TypeError):
        seed_sequence(1, 1.5)


def test_results_do_not_depend_on_chunking_or_worker_count():
    serial = [noisy_mean(t) for t in TASKS]
    one = run_tasks(noisy_mean, TASKS, workers=1, chunk_size=7, progress=False)
    two = run_tasks(noisy_mean, TASKS, workers=2, chunk_size=3, progress=False)
    assert one == serial
    assert two == serial


def test_checkpoint_resume_computes_only_missing_tasks(tmp_path):
    full = run_tasks(noisy_mean, TASKS, workers=1, chunk_size=10, checkpoint_dir=tmp_path,
                     progress=False)
    files = sorted(tmp_path.glob("chunk-*.json"))
    assert len(files) == 8
    # an "interrupted" run: drop three chunks, then resume with another chunk size
    for f in files[2:5]:
        f.unlink()
    assert len(load_checkpoints(tmp_path, TASKS)) == 50
    calls: list[int] = []

    def counting(task):
        calls.append(1)
        return noisy_mean(task)

    resumed = run_tasks(counting, TASKS, workers=1, chunk_size=4, checkpoint_dir=tmp_path,
                        progress=False)
    assert resumed == full
    assert len(calls) == 30  # only the 30 tasks of the removed chunks ran again
    # fully checkpointed: nothing recomputed
    calls.clear()
    assert run_tasks(counting, TASKS, workers=1, checkpoint_dir=tmp_path, progress=False) == full
    assert not calls


def test_checkpoint_of_another_study_is_refused(tmp_path):
    run_tasks(noisy_mean, TASKS[:5], workers=1, checkpoint_dir=tmp_path, progress=False)
    other = [("other", i) for i in range(5)]
    with pytest.raises(CheckpointError, match="different study"):
        run_tasks(noisy_mean, other, workers=1, checkpoint_dir=tmp_path, progress=False)
    (tmp_path / "chunk-000000099-000000099-000001.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoints(tmp_path, TASKS[:5])


def test_checkpoint_files_are_plain_json(tmp_path):
    run_tasks(partial(noisy_mean, base_seed=3), TASKS[:4], workers=1, chunk_size=4, checkpoint_dir=tmp_path,
              progress=False)
    payload = json.loads(next(tmp_path.glob("chunk-*.json")).read_text())
    assert [r["i"] for r in payload["records"]] == [0, 1, 2, 3]
    assert not list(tmp_path.glob(".*tmp*"))


def test_task_errors_name_the_task():
    with pytest.raises(TaskError, match="task 3"):
        run_tasks(failing, list(range(6)), workers=1, progress=False)
    with pytest.raises(TaskError, match="boom"):
        run_tasks(failing, list(range(6)), workers=2, chunk_size=2, progress=False)


def test_dask_local_cluster_gives_the_same_results(tmp_path, dask_scheduler):
    serial = [noisy_mean(t) for t in TASKS]
    out = run_tasks(noisy_mean, TASKS, scheduler=dask_scheduler, chunk_size=6,
                    checkpoint_dir=tmp_path, progress=False)
    assert out == serial
    assert len(load_checkpoints(tmp_path, TASKS)) == len(TASKS)
