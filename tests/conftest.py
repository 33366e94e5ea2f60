"""Shared fixtures: the real-image data root and quiet, deterministic torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
