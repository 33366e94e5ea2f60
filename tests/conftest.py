"""Shared fixtures: the real-image data root and quiet, deterministic torch settings."""

from __future__ import annotations

import os
from pathlib import Path

from avalanche_clip.common.cpu_kernels import pin_cpu_kernels

# Compute as the command line does (before any tensor operation), so that a run in this process
# and one in a command-line subprocess use the same kernels (avalanche_clip.common.cpu_kernels).
pin_cpu_kernels()
# Sweeps in tests run one run after another unless a test asks for workers: the suite already
# runs on both cores (pytest -n 2), and a worker pool's start would cost more than its tiny runs.
os.environ["AVALANCHE_CLIP_SWEEP_WORKERS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

DATA_ENV = "AVALANCHE_CLIP_DATA"
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ``cifar10/`` and ``pacs/`` (env ``AVALANCHE_CLIP_DATA``, default
    ``../shared/data`` beside the repository); tests needing it skip when it is absent."""
    root = Path(os.environ.get(DATA_ENV, DEFAULT_DATA_ROOT))
    if not (root / "cifar10").is_dir() or not (root / "pacs").is_dir():
        pytest.skip(
            f"real image data not found under {root} (expected cifar10/ and pacs/); "
            f"set {DATA_ENV} to the folder that holds them"
        )
    return root


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One torch thread: these tests run small models, where a second OpenMP thread gains little
    and, on a shared 2-core machine, busy-waiting workers made forward passes up to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
