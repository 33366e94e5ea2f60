"""Fixtures for the scenario tests: the real CIFAR-10 / PACS roots and writers of small fake data sets in the
real on-disk formats (CIFAR-100 pickles, ImageNet ImageFolder tree, DomainNet tree + split files).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scenario_fakes, whatever the import mode
from scenario_fakes import (  # noqa: E402
    save_png,
    write_domain_tree,
    write_fake_cifar100,
    write_fake_imagenet,
)

# ``data_root`` (the real data, skipped when absent) comes from tests/conftest.py.


@pytest.fixture(scope="session")
def cifar10_root(data_root: Path) -> Path:
    root = data_root / "cifar10"
    if not (root / "train").is_dir():
        pytest.skip(f"CIFAR-10 ImageFolder copy absent at {root} (see shared/data/README.md)")
    return root


@pytest.fixture(scope="session")
def pacs_root(data_root: Path) -> Path:
    root = data_root / "pacs"
    if not (root / "photo_train.txt").is_file():
        pytest.skip(f"PACS absent at {root} (see shared/data/README.md)")
    return root


@pytest.fixture
def fake_cifar100(tmp_path: Path) -> Path:
    return write_fake_cifar100(tmp_path / "cifar100")


@pytest.fixture
def fake_imagenet(tmp_path: Path) -> Path:
    return write_fake_imagenet(tmp_path / "imagenet")


@pytest.fixture
def fake_domainnet(tmp_path: Path) -> Path:
    return write_domain_tree(tmp_path / "domainnet")


@pytest.fixture
def fake_imagefolder(tmp_path: Path) -> Path:
    """4 classes x (3 train, 2 test) PNGs in a train/ + test/ ImageFolder tree."""
    root = tmp_path / "folder"
    seed = 5000
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("ant", "bee", "cat_fish", "dog"):
            for i in range(n):
                save_png(root / split / cls / f"{i}.png", seed)
                seed += 1
    return root
