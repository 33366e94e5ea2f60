"""``sweep --workers N``: the runs of a sweep in parallel, in worker processes of this machine
(:mod:`~avalanche_clip.pipeline.process_pool`, the default) or on a Ray cluster
(``--ray-address``, :mod:`~avalanche_clip.pipeline.ray_pool`).

Each run is :func:`avalanche_clip.pipeline.sweep_runs.run_planned`, the function a serial sweep
calls, in a worker whose torch intra-op threads are ``threads`` (default ``cores // workers``,
:mod:`avalanche_clip.common.threads`). This process keeps the
:class:`~avalanche_clip.pipeline.sweep_runs.SweepLedger`, so skipping, resuming, failures and
the early stop are those of a serial sweep, and so are the records (bit for bit at the same
``threads``: the thread count can change the order of float reductions):

- at most ``workers`` runs are in flight;
- a run waits while another run of its (scenario, seed) is measuring the zero-shot floor it
  would reuse, as it would in a serial sweep (the first run of the pair measures it);
- runs that would measure a floor start first, then the longest (:func:`start_order`);
- runs write to ``<out>/runs/<run_id>/`` themselves.

``--workers auto`` (the command line's default) is :func:`auto_workers` and
:func:`auto_threads`: one run per core (as memory allows), one thread each, for runs on the CPU;
one run at a time when a run needs a GPU. A run whose worker died (killed, out of memory) runs
once more before it counts as failed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from avalanche_clip.common.threads import available_memory, local_cores, run_threads
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.process_pool import ProcessPool
from avalanche_clip.pipeline.ray_pool import RayPool
from avalanche_clip.pipeline.sweep_runs import (
    INTERRUPTED,
    Outcome,
    SweepLedger,
    finished_outcome,
    floor_key,
    run_dir,
)
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS

#: Environment variable giving ``sweep --workers``' default (``auto`` when unset).
WORKERS_ENV = "AVALANCHE_CLIP_SWEEP_WORKERS"

#: Memory ``--workers auto`` counts for each worker: the largest resident size measured, a
#: CIFAR-10 proxy run's worker (1.7 GB; the default's 1.0 GB), with room to spare.
WORKER_MEMORY = 2 * 1024**3


class RunPool(Protocol):
    """Where a parallel sweep's runs execute (process_pool.ProcessPool, ray_pool.RayPool)."""

    cores: int

    def submit(self, run: RunConfig, folder: Path, zero_shot: float | None, threads: int | None,
               data_fingerprint: str | None) -> Any: ...

    def wait_any(self, handles: list[Any]) -> list[Any]: ...

    def outcome(self, handle: Any, run: RunConfig) -> Outcome: ...

    def close(self, in_flight: list[Any]) -> None: ...


def gpu_devices(runs: list[RunConfig]) -> list[str]:
    """The devices other than the CPU that ``runs`` use, sorted (empty: all run on the CPU)."""
    return sorted({str(run.device) for run in runs if not str(run.device).startswith("cpu")})


def auto_workers(pending: list[RunConfig], cores: int | None = None,
                 memory_bytes: int | None = None) -> int:
    """``--workers auto``: one worker per core, at most one per run still to do and one per
    :data:`WORKER_MEMORY` of available memory; 1 when a run uses a GPU, which a run takes whole.
    Its runs take one torch thread each (:func:`auto_threads`).

    Many one-thread runs side by side use a machine better than one run on all its threads:
    the small operations of a run on cached features gain little from a second thread (the
    default sweep on 2 cores: 1.99 s a run serially on 2 threads, 1.16 s with 2 one-thread
    workers, benchmarks/README.md).
    """
    if not pending or gpu_devices(pending):
        return 1
    memory = available_memory() if memory_bytes is None else memory_bytes
    by_memory = len(pending) if memory is None else max(1, memory // WORKER_MEMORY)
    return max(1, min(cores or local_cores(), len(pending), by_memory))


def auto_threads(pending: list[RunConfig], configured: int | None) -> int | None:
    """Torch threads of each run under ``--workers auto``: the config's ``threads``, else 1 for
    CPU runs, so that a run's records depend neither on the machine's cores nor on how many
    runs were left (a resumed sweep, one run on many cores), and torch's default for GPU runs."""
    if configured is not None:
        return configured
    return 1 if pending and not gpu_devices(pending) else None


def check_local_workers(pending: list[RunConfig], workers: int) -> None:
    """Worker processes of this machine share its devices: runs on a GPU would all take the same
    one, so ``workers > 1`` with a GPU run is refused before anything starts (Ray gives each run
    a GPU of its own: ``--ray-address local``)."""
    on_gpu = gpu_devices(pending)
    if workers > 1 and on_gpu:
        raise ValueError(
            f"--workers {workers} runs CPU runs side by side on this machine, but runs of this sweep use "
            f"{', '.join(on_gpu)}, which they would all share; use --workers 1, or --ray-address local "
            "(Ray, the 'cluster' extra) to give each run a GPU of its own")


def parse_workers(value: str, source: str = "--workers") -> int | str:
    """``--workers``' value (or ``source``'s, e.g. the environment variable): a count >= 1, or ``auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"{source} must be a number >= 1 or 'auto', got {value!r}") from None
    if workers < 1:
        raise ValueError(f"{source} must be >= 1 or 'auto', got {workers}")
    return workers


def run_parallel(runs: list[RunConfig], out: Path, ledger: SweepLedger, *, workers: int,
                 ray_address: str | None = None, threads: int | None = None,
                 progress: bool = True) -> None:
    """Every run of ``runs``, at most ``workers`` at a time (module docstring)."""
    pool: RunPool = RayPool(workers, ray_address) if ray_address else ProcessPool(workers, out / "worker-logs")
    _dispatch(pool, runs, out, ledger, workers=workers,
              threads=run_threads(threads, workers, pool.cores), progress=progress)


def _dispatch(pool: RunPool, runs: list[RunConfig], out: Path, ledger: SweepLedger, *,
              workers: int, threads: int | None, progress: bool) -> None:
    """Schedule ``runs`` on ``pool``; it is closed at the end, however that comes."""
    in_flight: dict[Any, RunConfig] = {}
    bar = tqdm(total=len(runs), desc=f"runs ({workers} workers)", disable=not progress)
    try:
        waiting: deque[RunConfig] = deque()
        for run in runs:  # finished runs are settled here, in plan order, as a serial sweep does
            done = finished_outcome(run, run_dir(out, run))
            if done is None:
                waiting.append(run)
            else:
                ledger.record(run, done)
                bar.update()
        retried: set[str] = set()
        while (waiting or in_flight) and not ledger.stopped:
            for run in _ready(waiting, in_flight, ledger, workers):
                handle = pool.submit(run, run_dir(out, run), ledger.floor(run), threads, ledger.fingerprint(run))
                in_flight[handle] = run
            for handle in pool.wait_any(list(in_flight)):
                run = in_flight.pop(handle)
                outcome = pool.outcome(handle, run)
                if outcome.status == INTERRUPTED:
                    if run.run_id not in retried:  # a worker died: not this run's own error, if once
                        retried.add(run.run_id)
                        waiting.appendleft(run)
                        continue
                    outcome = replace(outcome, status="failed")
                ledger.record(run, outcome)
                bar.update()
    finally:  # stopped early or interrupted: the runs in flight resume on the next sweep
        pool.close(list(in_flight))
        bar.close()


def relative_steps(run: RunConfig) -> float:
    """The optimizer steps ``run`` takes, in units of the protocol's budget per epoch: its epochs
    (the method's own, else the run's) times its ``budget_scale`` (joint training towards
    convergence trains several times the continual methods' steps). A rough estimate that only
    orders runs: a step's cost (EWC's penalty, Co2L's two views) and ``steps_per_experience``
    are not counted, and a zero-shot run counts its epochs though it trains none."""
    options = run.strategy_options.get(run.strategy, {})  # read only: no copy
    scale = options.get("budget_scale", METHOD_DEFAULTS.get(run.strategy, {}).get("budget_scale", 1.0))
    return float(run.method_epochs) * float(scale)


def start_order(waiting: deque[RunConfig], ledger: SweepLedger) -> list[RunConfig]:
    """The order in which :func:`_ready` offers the waiting runs: first those that would measure
    a zero-shot floor, in plan order (a seed's first run, usually its short zero-shot one, which
    the seed's other runs wait for), then the others, longest first (:func:`relative_steps`; ties
    in plan order), so that the sweep does not end on one long run while the other workers idle
    (the CIFAR-10 proxy's joint-converged, ~7x the steps of the others: ~40 s of one worker alone
    when it came last). A run re-queued after its worker died goes first only among runs of
    its key."""
    def key(run: RunConfig) -> tuple[bool, float]:
        measures = ledger.needs_floor(run)
        return not measures, 0.0 if measures else -relative_steps(run)

    return sorted(waiting, key=key)  # stable: plan order within equal keys


def _ready(waiting: deque[RunConfig], in_flight: dict[Any, RunConfig],
           ledger: SweepLedger, workers: int) -> list[RunConfig]:
    """Take from ``waiting``, in :func:`start_order`, the runs that can start now."""
    measuring = {floor_key(r) for r in in_flight.values() if not ledger.has_floor(r)}
    ready = []
    for run in start_order(waiting, ledger):
        if len(in_flight) + len(ready) >= workers:
            break
        key = floor_key(run)
        if ledger.needs_floor(run):
            if key in measuring:
                continue  # wait for the floor the pair's first run is measuring
            measuring.add(key)
        waiting.remove(run)
        ready.append(run)
    return ready
