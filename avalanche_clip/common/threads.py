"""How a run process computes: torch's intra-op threads (the ``threads`` config key) and
denormal floats flushed to zero.

torch starts one intra-op thread per core in every process. Two processes doing that on the same
cores oversubscribe them, and OpenMP's busy-waiting makes each far slower than half speed
(measured on 2 cores: a 0.3 s cached run took 9.6 s beside the test suite). So runs that share a
machine split its cores: ``threads = cores // workers`` (at least 1) unless the config says.
"""

from __future__ import annotations

import math
import os

import torch


def local_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The cores this process may use: its CPU affinity (else the machine's count), capped by a
    cgroup v2 CPU quota (a container limited to 2 CPUs on a 64-core host counts 2)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = open(cpu_max, encoding="ascii").read().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def available_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of memory available to new processes (Linux's ``MemAvailable``; None elsewhere)."""
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_threads(configured: int | None, workers: int = 1, cores: int | None = None) -> int | None:
    """Threads for each of ``workers`` concurrent runs on ``cores`` cores (default: this
    machine's); None means torch's own default (a single run, nothing configured)."""
    if configured is not None:
        return configured
    if workers <= 1:
        return None
    return max(1, (cores or local_cores()) // workers)


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op threads of this process (None: leave torch's default) and flush
    denormal floats to zero.

    Denormals (below ~1e-38 in float32) take a slow path on x86 CPUs: a softmax over 1,000
    classes with large logits, as a high learning rate produces, fills a step with them. Measured
    on the CIFAR-10 proxy (ConSE, lr 0.05): two experiences trained in 22.7 s with denormals and
    3.2 s without, on one thread (``benchmarks/bench_denormals.py``). Flushing them changes values only below that range.
    """
    torch.set_flush_denormal(True)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
