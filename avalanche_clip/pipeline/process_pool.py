"""The runs of a local parallel sweep in worker processes of this machine (no Ray needed).

Workers come from a *forkserver*: one clean process that imports torch, Avalanche and this
package once and forks each worker from there, so a worker starts in milliseconds instead of
re-importing for seconds, and none is forked from this process, whose OpenMP thread pool may be
running (a fork of a process with live OpenMP threads can hang in GNU libgomp). The forkserver
starts with this process's environment, so the workers compute with its pinned CPU kernels
(:mod:`avalanche_clip.common.cpu_kernels`).

Workers write to a log file each (``<sweep>/worker-logs/worker-<pid>.log``), not to the
terminal, where their progress bars and warnings would interleave; a run's error reaches the
sweep as its :class:`~avalanche_clip.pipeline.sweep_runs.Outcome` (message and traceback), as from
a serial run.

A worker that dies (killed, out of memory) breaks :class:`~concurrent.futures.ProcessPoolExecutor`:
it ends every worker, and every run then in flight comes back ``"interrupted"`` (the scheduler
runs each once more, from its checkpoint); the next run starts a fresh pool. A worker whose sweep
was killed outright ends itself at once (:func:`_exit_when_orphaned`).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from pathlib import Path

from avalanche_clip.common.threads import local_cores
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.sweep_runs import INTERRUPTED, Outcome, run_in_worker

#: Imported once by the forkserver, inherited by every worker it forks.
PRELOAD = ["avalanche_clip.pipeline.sweep_runs"]


def _start_worker(sweep_alive: Connection, log_dir: str | None) -> None:
    """Worker initializer: the runs' progress bars and warnings go to this worker's log file
    (module docstring), and the worker ends itself when the sweep is gone
    (:func:`_exit_when_orphaned`)."""
    log = os.devnull if log_dir is None else os.path.join(log_dir, f"worker-{os.getpid()}.log")
    sink = open(log, "a", buffering=1)  # noqa: SIM115 - open for the worker's whole life
    sys.stdout = sink
    sys.stderr = sink
    threading.Thread(target=_exit_when_orphaned, args=(sweep_alive,), daemon=True,
                     name="exit-when-orphaned").start()


def _exit_when_orphaned(sweep_alive: Connection) -> None:
    """End this worker once the sweep's process is gone.

    A sweep killed outright (SIGKILL, the out-of-memory killer) cannot end its workers, and
    nothing else does: a ProcessPoolExecutor worker would finish its run and then wait for the
    next one forever, and the forkserver lives as long as any worker does. So each worker holds
    the reading end of a pipe whose only writing end is the sweep's; the read returns (end of
    file) when the kernel closes that end, at the sweep's exit however it comes. The run the
    worker was training resumes from its checkpoint on the next sweep (until the worker has
    ended, the run lock refuses that folder to another process rather than train it twice)."""
    try:
        sweep_alive.recv_bytes()  # the sweep never writes: this returns only by end of file
    except (EOFError, OSError):
        pass
    os._exit(1)


class ProcessPool:
    """At most ``workers`` runs at a time in worker processes of this machine.

    The interface :func:`avalanche_clip.pipeline.parallel_sweep.run_parallel` schedules through
    (the Ray pool has the same): ``submit`` a run, ``wait_any`` for the first of several to end,
    its ``outcome``, and ``close`` (ending the runs still in flight). ``log_dir``: where each
    worker writes its log (None: nowhere).
    """

    def __init__(self, workers: int, log_dir: Path | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.cores = local_cores()
        self.log_dir = log_dir
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._executor: ProcessPoolExecutor | None = None
        self._owners: dict[Future, ProcessPoolExecutor] = {}  # the pool each run in flight went to
        # read by every worker, written by no one: closed, for the workers, when this process ends
        self._sweep_alive = self._context.Pipe(duplex=False)

    def submit(self, run: RunConfig, folder: Path, zero_shot: float | None, threads: int | None,
               data_fingerprint: str | None) -> Future:
        if self._sweep_alive[1].closed:
            raise RuntimeError("this pool is closed; a sweep starts a new one")
        for _ in range(2):  # a pool that broke since the last outcome is replaced, once
            if self._executor is None:  # the first run, or the first after a worker died
                if self.log_dir is not None:
                    self.log_dir.mkdir(parents=True, exist_ok=True)
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=self._context, initializer=_start_worker,
                    initargs=(self._sweep_alive[0], None if self.log_dir is None else str(self.log_dir)))
            try:
                handle = self._executor.submit(run_in_worker, run, str(folder), zero_shot, threads,
                                               data_fingerprint)
            except BrokenProcessPool:  # a worker died and its runs' outcomes are not read yet
                self._executor = None
                continue
            self._owners[handle] = self._executor
            return handle
        raise BrokenProcessPool("a fresh worker pool broke before it took a run")

    def wait_any(self, handles: list[Future]) -> list[Future]:
        finished, _ = wait(handles, return_when=FIRST_COMPLETED)
        return list(finished)

    def outcome(self, handle: Future, run: RunConfig) -> Outcome:
        owner = self._owners.pop(handle, None)
        try:
            return handle.result()
        except BrokenProcessPool:
            if owner is self._executor:  # broken for good: the next submit starts a fresh pool
                self._executor = None    # (a run of an older broken pool leaves the new one be)
            logs = f"; the workers' logs are in {self.log_dir}" if self.log_dir is not None else ""
            return Outcome(run.run_id, INTERRUPTED,
                           error="a worker process of the sweep died (killed, or out of memory) while "
                           f"this run was in flight{logs}")
        except Exception as err:  # an error outside run_planned's own guard (e.g. unpicklable)
            return Outcome(run.run_id, "failed", error=f"{type(err).__name__}: {err}")

    def close(self, in_flight: list[Future]) -> None:
        """End the runs still in flight (they resume on the next sweep) and the workers."""
        executor, self._executor = self._executor, None
        if executor is not None:
            cancel = any(not handle.done() for handle in in_flight)
            if cancel:
                # ProcessPoolExecutor cannot end a running task; its workers are ended instead (the
                # runs resume from their checkpoints on the next sweep). ``_processes`` is private but
                # has held the worker processes since Python 3.2; 3.14 adds terminate_workers().
                for process in list((getattr(executor, "_processes", None) or {}).values()):
                    process.kill()
            executor.shutdown(wait=True, cancel_futures=cancel)
        for end in self._sweep_alive:  # a worker that outlived the shutdown ends now
            end.close()
