"""CPU kernels pinned to one instruction set, so that records do not depend on the CPU model.

oneDNN (convolutions), MKL (matrix products) and ATen's own vectorised kernels each pick their
code path by the CPU they run on (AVX2, AVX-512, AMX...), and each path rounds float32
differently. Measured on the embedded default (``digits__co2l__m200__s1``, issue 28): the frozen
trunk's cached features differ in their last bits between oneDNN's AVX2 and AVX-512 paths; GCL,
GDRO, DER and the others end with identical records either way, while Co2L's training amplifies
the difference into other test accuracies from its third experience on (stream accuracy 0.6156
with AVX-512 features, 0.5733 with AVX2 ones; ATen's scalar kernels move it to 0.6133 too).

So command-line processes pin all three to their AVX2 paths (:func:`pin_cpu_kernels`), which
every x86-64 server CPU of the last decade runs: the same config then gave the same records on
Intel CPUs with and without AVX-512. Not on every vendor's: on an AMD EPYC the libraries still
round differently, and 12 of the default's 210 runs (Co2L, which amplifies last-bit differences,
and one FOSTER run) re-ran with other accuracies (benchmarks/README.md). A variable the user has set is left as
it is (``ONEDNN_MAX_CPU_ISA=ALL MKL_CBWR=AUTO ATEN_CPU_CAPABILITY=avx512`` runs the native paths),
and other processors are left alone. Each library reads its variable once, before its first
computation: pinning must come before the process's first tensor operation (importing torch is
fine). This module imports nothing heavy, so the command line pins before anything else.
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping
from typing import Any

#: The environment that pins each CPU library to its AVX2 path.
PINNED_CPU_KERNELS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",    # oneDNN: convolutions and some matrix products
    "MKL_CBWR": "AVX2",              # MKL's conditional numerical reproducibility: matrix products
    "ATEN_CPU_CAPABILITY": "avx2",   # torch's own vectorised kernels (reductions, softmax, ...)
}


def cpu_has_avx2(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this is an x86-64 CPU that reports AVX2 (False where that cannot be read)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            return any(line.startswith("flags") and " avx2" in line for line in handle)
    except OSError:
        return False


def pin_cpu_kernels(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Pin oneDNN, MKL and ATen to their AVX2 paths on a CPU that has AVX2 (module docstring);
    variables already set are kept. Returns what this call set (empty on other processors)."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if not cpu_has_avx2():
        return {}
    pinned = {key: value for key, value in PINNED_CPU_KERNELS.items() if key not in env}
    env.update(pinned)
    return pinned


def pinned_environment() -> dict[str, str]:
    """This process's kernel variables, for the processes it starts (e.g. Ray workers)."""
    return {key: os.environ[key] for key in PINNED_CPU_KERNELS if key in os.environ}


def compute_identity(device: Any) -> dict[str, str]:
    """What decides the float32 rounding of a computation on ``device``: the device type, and on
    the CPU each library's code path (pinned or native). Part of the feature cache's key, so
    features computed by another path (another CPU, unpinned, a GPU) are never read as these."""
    import torch  # third-party, here only: the command line imports this module before torch

    kind = torch.device(device).type
    if kind != "cpu":
        return {"device": kind}
    identity = {key: os.environ.get(key, "native") for key in PINNED_CPU_KERNELS}
    identity.update(device="cpu", aten=torch.backends.cpu.get_cpu_capability())
    return identity
