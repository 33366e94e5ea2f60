"""The runs of a parallel sweep on a Ray cluster (``sweep --workers N --ray-address ADDR``).

Each run is one Ray task in a worker whose torch threads are the sweep's per-run threads. Runs
write to ``<out>/runs/<run_id>/`` themselves, so ``out`` and the feature cache must be on a file
system every node sees, and avalanche-clip must be installed on every node. ``--ray-address
local`` starts a Ray instance on this machine for the sweep and stops it after (a local sweep
needs no Ray: :mod:`avalanche_clip.pipeline.process_pool`).

Ray is optional (``pip install 'avalanche-clip[cluster]'``) and imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from avalanche_clip.common.cpu_kernels import pinned_environment
from avalanche_clip.common.threads import local_cores
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.pipeline.sweep_runs import Outcome, run_in_worker

CLUSTER_EXTRA = "pip install 'avalanche-clip[cluster]'"


class MissingRayError(ImportError):
    """``sweep --ray-address`` needs Ray, which is not installed."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise MissingRayError(
            f"sweep --ray-address runs its runs through Ray, which is not installed ({err}); "
            f"install the 'cluster' extra: {CLUSTER_EXTRA} (a sweep on this machine alone needs "
            "no Ray: leave out --ray-address)"
        ) from None
    return ray


class RayPool:
    """Runs as Ray tasks, one CPU (and one GPU for a CUDA run) each; the interface of
    :class:`avalanche_clip.pipeline.process_pool.ProcessPool`."""

    def __init__(self, workers: int, address: str) -> None:
        self.workers = workers
        self._ray = ray = import_ray()
        self._started = not ray.is_initialized()
        if self._started:
            # workers compute with this process's pinned CPU kernels (cpu_kernels.pin_cpu_kernels)
            kernels = pinned_environment()
            if address == "local":  # workers import the avalanche_clip this process runs
                package_root = str(Path(__file__).resolve().parents[1])
                path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path, **kernels}})
            else:
                ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": kernels})
        try:  # a local instance has num_cpus=workers slots; its runs share this machine's cores
            self.cores = local_cores() if address == "local" else int(ray.cluster_resources().get("CPU", 1))
            self._task = ray.remote(run_in_worker)
        except BaseException:
            self.close([])
            raise

    def submit(self, run: RunConfig, folder: Path, zero_shot: float | None, threads: int | None,
               data_fingerprint: str | None) -> Any:
        options = {"num_cpus": 1, "num_gpus": 1 if str(run.device).startswith("cuda") else 0}
        return self._task.options(**options).remote(run, str(folder), zero_shot, threads, data_fingerprint)

    def wait_any(self, handles: list[Any]) -> list[Any]:
        finished, _ = self._ray.wait(handles, num_returns=1)
        return finished

    def outcome(self, handle: Any, run: RunConfig) -> Outcome:
        """The task's outcome; a worker that died (killed, out of memory) is a failed run."""
        try:
            return self._ray.get(handle)
        except Exception as err:
            return Outcome(run.run_id, "failed", error=f"{type(err).__name__}: {err}")

    def close(self, in_flight: list[Any]) -> None:
        """Cancel the runs still in flight (they resume on the next sweep), stop a Ray started here."""
        for handle in in_flight:
            self._ray.cancel(handle, force=True)
        if self._started:
            self._ray.shutdown()
