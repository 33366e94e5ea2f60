"""A parallel sweep's workers: ``--workers auto``'s choice, and the local process pool when a
worker dies or the sweep ends with runs in flight."""

from __future__ import annotations

import time

import pytest
from cli_fixtures import read_jsonl, tiny_config

from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.parallel_sweep import auto_workers, check_local_workers, parse_workers
from avalanche_clip.pipeline.process_pool import ProcessPool


def _run(tmp_path, **overrides):
    return parse_run_config(tiny_config(tmp_path / "cache", zero_shot_floor=False, **overrides))


def test_auto_is_one_worker_per_core_for_cpu_runs_and_serial_for_gpu_runs(tmp_path):
    cpu = _run(tmp_path)
    assert auto_workers([cpu] * 5, cores=2) == 2
    assert auto_workers([cpu] * 5, cores=16) == 5  # never more workers than runs left
    assert auto_workers([cpu], cores=1) == 1
    assert auto_workers([], cores=8) == 1
    gpu = cpu.replace(device="cuda")  # a run takes a GPU whole: one at a time
    assert auto_workers([cpu, gpu, cpu], cores=8) == 1


def test_local_workers_refuse_runs_that_would_share_a_gpu(tmp_path):
    cpu = _run(tmp_path)
    check_local_workers([cpu, cpu], 2)
    check_local_workers([cpu.replace(device="cuda:1")], 1)  # one at a time: the run's own device
    with pytest.raises(ValueError, match="--workers 3") as err:
        check_local_workers([cpu, cpu.replace(device="cuda"), cpu.replace(device="cuda:1")], 3)
    assert "cuda, cuda:1" in str(err.value) and "--ray-address local" in str(err.value)


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (" AUTO ", "auto"), ("1", 1), ("3", 3)])
def test_workers_values(value, expected):
    assert parse_workers(value) == expected


@pytest.mark.parametrize("value, message", [("0", "got 0"), ("-2", "got -2"), ("two", "got 'two'"), ("", "got ''")])
def test_bad_workers_values_are_named(value, message):
    with pytest.raises(ValueError, match="--workers must be") as err:
        parse_workers(value)
    assert message in str(err.value)


def _workers(pool):
    """The pool's live worker processes (started on demand by ProcessPoolExecutor)."""
    for _ in range(200):
        processes = list(getattr(pool._executor, "_processes", None) or {})
        if processes:
            return list(pool._executor._processes.values())
        time.sleep(0.05)
    pytest.fail("the pool started no worker")


def test_a_dead_worker_fails_the_runs_in_flight_and_the_next_run_gets_a_fresh_pool(tmp_path):
    runs = [_run(tmp_path, seed=seed) for seed in (0, 1)]
    folders = [tmp_path / "runs" / run.run_id for run in runs]
    pool = ProcessPool(2)
    try:
        handles = [pool.submit(run, folder, None, 1, None) for run, folder in zip(runs, folders, strict=True)]
        _workers(pool)[0].kill()  # as the kernel's out-of-memory killer would: the pool breaks
        while not all(handle.done() for handle in handles):
            pool.wait_any([h for h in handles if not h.done()])
        first = pool.outcome(handles[0], runs[0])
        assert first.status == "failed" and first.run_id == runs[0].run_id
        assert "worker process of the sweep died" in first.error and "next sweep" in first.error

        again = pool.submit(runs[0], folders[0], None, 1, None)  # a fresh pool
        fresh = pool._executor
        second = pool.outcome(handles[1], runs[1])  # the old pool's other run: failed too ...
        assert second.status == "failed" and "died" in second.error
        assert pool._executor is fresh  # ... and the fresh pool is kept
        outcome = pool.outcome(pool.wait_any([again])[0], runs[0])
        assert outcome.status == "ran", outcome.error
        records = read_jsonl(folders[0] / "results.jsonl")
        assert records[-1]["final"] and records[-1]["run_id"] == runs[0].run_id
    finally:
        pool.close([])


def test_closing_with_runs_in_flight_ends_the_workers(tmp_path):
    run = _run(tmp_path, train_epochs=50)  # long enough to be in flight when the sweep stops
    pool = ProcessPool(1)
    handle = pool.submit(run, tmp_path / "runs" / run.run_id, None, 1, None)
    workers = _workers(pool)
    pool.close([handle])
    for process in workers:
        process.join(timeout=10)
        assert not process.is_alive()
    assert not (tmp_path / "runs" / run.run_id / "results.jsonl").exists() or \
        not read_jsonl(tmp_path / "runs" / run.run_id / "results.jsonl")[-1]["final"]
