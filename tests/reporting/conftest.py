"""Fixtures for the reporting tests: a synthetic sweep of result records with known accuracies."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sweep_fakes, whatever the import mode
from sweep_fakes import write_sweep  # noqa: E402

from avalanche_clip.reporting import TruncatedLineWarning, load_records  # noqa: E402


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def records(sweep_dir: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedLineWarning)  # the unfinished run's cut line
        return load_records(sweep_dir)
