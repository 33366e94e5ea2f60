"""``sweep --workers N``: the runs of a sweep in parallel, through Ray.

Each run is one Ray task calling :func:`avalanche_clip.pipeline.sweep_runs.run_planned`, the function a
serial sweep calls, in a worker process whose torch intra-op threads are ``threads`` (default
``cores // workers``, :mod:`avalanche_clip.common.threads`). The driver (this process) keeps the
:class:`~avalanche_clip.pipeline.sweep_runs.SweepLedger`, so skipping, resuming, failures and the early stop
are those of a serial sweep, and so are the records (bit for bit at the same ``threads``: the
thread count can change the order of float reductions):

- at most ``workers`` runs are in flight;
- a run waits while another run of its (scenario, seed) is measuring the zero-shot floor it
  would reuse, as it would in a serial sweep (the first run of the pair measures it);
- runs write to ``<out>/runs/<run_id>/`` themselves, so with ``ray_address`` (a cluster) ``out``
  and the feature cache must be on a file system every node sees, and avalanche-clip must be
  installed on every node.

Ray is optional (``pip install 'avalanche-clip[cluster]'``) and imported only here. With no
``ray_address`` a local Ray instance is started for the sweep and stopped after it.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from avalanche_clip.common.cpu_kernels import pinned_environment
from avalanche_clip.common.threads import apply_threads, run_threads
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.sweep_runs import (
    Outcome,
    SweepLedger,
    finished_outcome,
    floor_key,
    run_dir,
    run_planned,
)

CLUSTER_EXTRA = "pip install 'avalanche-clip[cluster]'"


class MissingRayError(ImportError):
    """``sweep --workers N`` with N > 1 needs Ray, which is not installed."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise MissingRayError(
            f"sweep --workers N > 1 runs its runs through Ray, which is not installed ({err}); "
            f"install the 'cluster' extra: {CLUSTER_EXTRA} (or run with --workers 1)"
        ) from None
    return ray


def _run_in_worker(run: RunConfig, folder: str, zero_shot: float | None,
                   threads: int | None, data_fingerprint: str | None = None) -> Outcome:
    """The Ray task: one planned run, with this worker's torch threads."""
    apply_threads(threads)
    return run_planned(run, Path(folder), zero_shot, data_fingerprint)


def run_parallel(runs: list[RunConfig], out: Path, ledger: SweepLedger, *, workers: int,
                 ray_address: str | None = None, threads: int | None = None,
                 progress: bool = True) -> None:
    """Every run of ``runs`` through Ray, at most ``workers`` at a time (module docstring)."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # workers compute with this process's pinned CPU kernels (cpu_kernels.pin_cpu_kernels)
        kernels = pinned_environment()
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False, runtime_env={"env_vars": kernels})
        else:  # workers import the avalanche_clip this process runs, wherever it comes from
            package_root = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path, **kernels}})
    try:
        cores = os.cpu_count() if not ray_address else int(ray.cluster_resources().get("CPU", 1))
        per_run = run_threads(threads, workers, cores)
        _dispatch(ray, runs, out, ledger, workers=workers, threads=per_run, progress=progress)
    finally:
        if started:
            ray.shutdown()


def _dispatch(ray: Any, runs: list[RunConfig], out: Path, ledger: SweepLedger, *,
              workers: int, threads: int | None, progress: bool) -> None:
    task = ray.remote(_run_in_worker)
    bar = tqdm(total=len(runs), desc=f"runs ({workers} workers)", disable=not progress)
    waiting: deque[RunConfig] = deque()
    for run in runs:  # finished runs are settled here, in plan order, as a serial sweep does
        done = finished_outcome(run, run_dir(out, run))
        if done is None:
            waiting.append(run)
        else:
            ledger.record(run, done)
            bar.update()
    in_flight: dict[Any, RunConfig] = {}
    try:
        while (waiting or in_flight) and not ledger.stopped:
            for run in _ready(waiting, in_flight, ledger, workers):
                options = {"num_cpus": 1, "num_gpus": 1 if str(run.device).startswith("cuda") else 0}
                ref = task.options(**options).remote(run, str(run_dir(out, run)), ledger.floor(run), threads,
                                                     ledger.fingerprint(run))
                in_flight[ref] = run
            finished, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in finished:
                run = in_flight.pop(ref)
                ledger.record(run, _outcome(ray, ref, run))
                bar.update()
    finally:
        for ref in in_flight:  # stopped early or interrupted: the runs resume on the next sweep
            ray.cancel(ref, force=True)
        bar.close()


def _ready(waiting: deque[RunConfig], in_flight: dict[Any, RunConfig],
           ledger: SweepLedger, workers: int) -> list[RunConfig]:
    """Take from ``waiting``, in plan order, the runs that can start now."""
    measuring = {floor_key(r) for r in in_flight.values() if not ledger.has_floor(r)}
    ready = []
    for run in list(waiting):
        if len(in_flight) + len(ready) >= workers:
            break
        key = floor_key(run)
        if run.zero_shot_floor and not ledger.has_floor(run):
            if key in measuring:
                continue  # wait for the floor the pair's first run is measuring
            measuring.add(key)
        waiting.remove(run)
        ready.append(run)
    return ready


def _outcome(ray: Any, ref: Any, run: RunConfig) -> Outcome:
    """The task's outcome; a worker that died (killed, out of memory) is a failed run."""
    try:
        return ray.get(ref)
    except Exception as err:
        return Outcome(run.run_id, "failed", error=f"{type(err).__name__}: {err}")
