"""A parallel sweep's workers: ``--workers auto``'s choice, and the local process pool when a
worker dies or the sweep ends with runs in flight."""

from __future__ import annotations

import os
import time

import pytest
from cli_fixtures import read_jsonl, tiny_config

from avalanche_clip.common.threads import available_memory, local_cores
from avalanche_clip.pipeline.config_parse import parse_run_config
from avalanche_clip.pipeline.parallel_sweep import (
    WORKER_MEMORY,
    auto_threads,
    auto_workers,
    check_local_workers,
    parse_workers,
    run_parallel,
)
from avalanche_clip.pipeline.process_pool import ProcessPool


def _run(tmp_path, **overrides):
    return parse_run_config(tiny_config(tmp_path / "cache", zero_shot_floor=False, **overrides))


def test_auto_is_one_one_thread_worker_per_core_for_cpu_runs_and_serial_for_gpu_runs(tmp_path):
    cpu = _run(tmp_path)
    plenty = 64 * WORKER_MEMORY
    assert auto_workers([cpu] * 5, cores=2, memory_bytes=plenty) == 2
    assert auto_workers([cpu] * 5, cores=16, memory_bytes=plenty) == 5  # never more workers than runs left
    assert auto_workers([cpu] * 5, cores=16, memory_bytes=3 * WORKER_MEMORY + 1) == 3  # nor than memory holds
    assert auto_workers([cpu] * 5, cores=16, memory_bytes=WORKER_MEMORY // 2) == 1
    assert auto_workers([cpu], cores=1, memory_bytes=plenty) == 1
    assert auto_workers([], cores=8, memory_bytes=plenty) == 1
    gpu = cpu.replace(device="cuda")  # a run takes a GPU whole: one at a time
    assert auto_workers([cpu, gpu, cpu], cores=8, memory_bytes=plenty) == 1
    # one thread a CPU run however many runs are left or cores there are; the config's if set
    assert auto_threads([cpu] * 5, None) == auto_threads([cpu], None) == 1
    assert auto_threads([cpu], 3) == 3
    assert auto_threads([cpu, gpu], None) is None  # GPU runs: torch's own


def test_cores_follow_a_cgroup_quota_and_memory_is_read_from_meminfo(tmp_path):
    machine = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: 2 cores' worth of workers at most
    assert local_cores(str(tmp_path / "cpu.max")) == min(machine, 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert local_cores(str(tmp_path / "cpu.max")) == machine
    assert local_cores(str(tmp_path / "absent")) == machine
    (tmp_path / "meminfo").write_text("MemTotal:       24683872 kB\nMemAvailable:   20000000 kB\n")
    assert available_memory(str(tmp_path / "meminfo")) == 20000000 * 1024
    assert available_memory(str(tmp_path / "absent")) is None


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


def test_a_dead_worker_interrupts_the_runs_in_flight_and_the_next_run_gets_a_fresh_pool(tmp_path):
    runs = [_run(tmp_path, seed=seed) for seed in (0, 1)]
    folders = [tmp_path / "runs" / run.run_id for run in runs]
    pool = ProcessPool(2, tmp_path / "logs")
    try:
        handles = [pool.submit(run, folder, None, 1, None) for run, folder in zip(runs, folders, strict=True)]
        _workers(pool)[0].kill()  # as the kernel's out-of-memory killer would: the pool breaks
        while not all(handle.done() for handle in handles):
            pool.wait_any([h for h in handles if not h.done()])
        # a run submitted before the broken pool's outcomes are read goes to a fresh pool
        again = pool.submit(runs[0], folders[0], None, 1, None)
        fresh = pool._executor
        for run, handle in zip(runs, handles, strict=True):
            outcome = pool.outcome(handle, run)
            assert outcome.status == "interrupted" and outcome.run_id == run.run_id
            assert "worker process of the sweep died" in outcome.error and str(tmp_path / "logs") in outcome.error
        assert pool._executor is fresh  # the old pool's outcomes leave the fresh pool be
        outcome = pool.outcome(pool.wait_any([again])[0], runs[0])
        assert outcome.status == "ran", outcome.error
        records = read_jsonl(folders[0] / "results.jsonl")
        assert records[-1]["final"] and records[-1]["run_id"] == runs[0].run_id
        assert list((tmp_path / "logs").glob("worker-*.log"))  # each worker's log file
    finally:
        pool.close([])


class _KillsAWorkerOnce(ProcessPool):
    """The real pool, whose first worker is killed (SIGKILL) once two runs are in flight."""

    killed = False

    def submit(self, *args, **kwargs):
        handle = super().submit(*args, **kwargs)
        if not self.killed and len(self._owners) == 2:
            self.killed = True
            _workers(self)[0].kill()
        return handle


def test_a_sweep_runs_the_runs_a_dead_worker_interrupted_once_more(tmp_path, monkeypatch):
    import avalanche_clip.pipeline.parallel_sweep as parallel
    from avalanche_clip.pipeline.sweep_runs import SweepLedger

    runs = [_run(tmp_path, seed=seed) for seed in (0, 1, 2)]
    out = tmp_path / "sweep"
    monkeypatch.setattr(parallel, "ProcessPool", _KillsAWorkerOnce)
    ledger = SweepLedger(out)
    out.mkdir()
    run_parallel(runs, out, ledger, workers=2, threads=1, progress=False)
    assert ledger.failures == [] and not ledger.stopped
    assert sorted(o.run_id for o in ledger.attempted) == sorted(r.run_id for r in runs)
    assert all(o.status == "ran" for o in ledger.attempted)
    for run in runs:
        assert read_jsonl(out / "runs" / run.run_id / "results.jsonl")[-1]["final"]


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
