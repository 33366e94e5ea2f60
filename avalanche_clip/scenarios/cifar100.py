"""``split-cifar100``: CIFAR-100 (Krizhevsky 2009), 10 experiences x 10 classes by default.

Reads the official pickle files ``<root>/cifar-100-python/{train,test,meta}`` — the files
torchvision's ``CIFAR100(root, download=True)`` downloads and extracts. We read them ourselves
instead of through ``torchvision.datasets.CIFAR100`` because torchvision checks every file's MD5
sum on construction: any copy that is not byte-identical to the official archive (a trimmed
copy, the small fakes the tests write) is refused with "Dataset not found or corrupted". The
format is checked here instead (keys, shapes, label ranges), with errors naming the file.
``download=True`` still goes through torchvision (download + MD5 check) first.

Two safeguards replace torchvision's blanket MD5 check:

- The files are read with a restricted unpickler (:mod:`.safe_pickle`): a pickle naming any
  function but numpy's array rebuilders is refused before anything in it runs.
- A copy with the official sizes (50,000 train and 10,000 test images) is the official data set,
  so each of its three files must match torchvision's MD5 sum: a damaged or altered official
  file is refused, naming the file and both sums. Smaller copies (subsets, fakes) cannot be
  checked that way and are read as they are.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from avalanche_clip.scenarios.errors import DataLayoutError, MissingDataError, missing_root_message
from avalanche_clip.scenarios.image_files import ArrayImageDataset
from avalanche_clip.scenarios.registry import SCENARIOS
from avalanche_clip.scenarios.safe_pickle import load_data_pickle
from avalanche_clip.scenarios.source import CLASS_INCREMENTAL, DataSource, SplitData

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FOLDER = "cifar-100-python"
LAYOUT = f"  <root>/{FOLDER}/train, <root>/{FOLDER}/test, <root>/{FOLDER}/meta  (Python pickles)"
#: (train images, test images) of the official data set, whose files must match the known MD5s.
OFFICIAL_SIZES = (50_000, 10_000)
HOW_TO_GET = (
    f"build with download=True (needs internet; torchvision fetches it), or download {CIFAR100_URL} "
    "and extract it into root."
)


def _unpickle(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingDataError(
            f"CIFAR-100 file {path} does not exist. Expected layout:\n{LAYOUT}\n{HOW_TO_GET}"
        )
    obj = load_data_pickle(path, what="CIFAR-100")
    if not isinstance(obj, dict):
        raise DataLayoutError(f"{path} holds a {type(obj).__name__}, expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar100_split(root: str | os.PathLike, train: bool) -> tuple[np.ndarray, list[int]]:
    """``(images uint8 (N, 32, 32, 3), fine labels)`` of the train or test pickle."""
    path = Path(root) / FOLDER / ("train" if train else "test")
    entry = _unpickle(path)
    if "data" not in entry or "fine_labels" not in entry:
        raise DataLayoutError(f"{path} lacks 'data' / 'fine_labels' (keys: {sorted(entry)})")
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = [int(y) for y in entry["fine_labels"]]
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise DataLayoutError(
            f"{path}: 'data' has shape {data.shape} and {len(labels)} labels; expected (N, 3072) and N labels"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def official_md5s() -> dict[str, str]:
    """File name → MD5 of the official files, as torchvision knows them."""
    from torchvision.datasets import CIFAR100

    listed = CIFAR100.train_list + CIFAR100.test_list + [[CIFAR100.meta["filename"], CIFAR100.meta["md5"]]]
    return {name: md5 for name, md5 in listed}


def check_official_files(root: str | os.PathLike) -> None:
    """Every file of an official-size copy must have torchvision's MD5 (module docstring)."""
    for name, expected in official_md5s().items():
        path = Path(root) / FOLDER / name
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise DataLayoutError(
                f"{path} belongs to a full-size CIFAR-100 copy but its MD5 is {digest.hexdigest()}, "
                f"not the official {expected}: the file is damaged or altered. Re-extract it "
                f"from {CIFAR100_URL} (or delete the folder and build with download=True)."
            )


def read_cifar100_names(root: str | os.PathLike) -> list[str]:
    """The 100 fine class names from ``meta``, underscores as spaces ("aquarium fish")."""
    path = Path(root) / FOLDER / "meta"
    meta = _unpickle(path)
    if "fine_label_names" not in meta:
        raise DataLayoutError(f"{path} lacks 'fine_label_names' (keys: {sorted(meta)})")
    return [str(n).replace("_", " ") for n in meta["fine_label_names"]]


@SCENARIOS.register(
    "split-cifar100",
    kind=CLASS_INCREMENTAL,
    description="CIFAR-100, 100 classes split into 10 experiences of 10 (torchvision's pickle files)",
)
def cifar100_source(root: str | os.PathLike | None, *, download: bool = False,
                    train_only: bool = False) -> DataSource:
    """CIFAR-100 from ``root/cifar-100-python`` (``download=True``: fetch it with torchvision;
    ``train_only``: the test file is not read)."""
    if root is None:
        raise ValueError(
            f"split-cifar100 needs root=<data directory>. Expected layout:\n{LAYOUT}\n{HOW_TO_GET}"
        )
    if download:
        from torchvision.datasets import CIFAR100

        for train in (True, False):
            CIFAR100(str(root), train=train, download=True)
    if not Path(root).is_dir():
        raise MissingDataError(missing_root_message("split-cifar100", root, LAYOUT, HOW_TO_GET))
    names = read_cifar100_names(root)
    splits = {}
    for train in (True,) if train_only else (True, False):
        images, labels = read_cifar100_split(root, train)
        bad = sorted({y for y in labels if not 0 <= y < len(names)})
        if bad:
            raise DataLayoutError(
                f"CIFAR-100 labels {bad[:5]} outside the {len(names)} names in meta"
            )
        splits[train] = SplitData(ArrayImageDataset(images, labels), labels)
    if not train_only and (len(splits[True]), len(splits[False])) == OFFICIAL_SIZES:
        check_official_files(root)
    return DataSource(
        name="split-cifar100",
        kind=CLASS_INCREMENTAL,
        train=splits[True],
        test=splits.get(False),
        class_names=names,
        default_n_experiences=10,
        root=str(root),
    )


__all__ = ["CIFAR100_URL", "cifar100_source", "read_cifar100_names", "read_cifar100_split"]
