"""The data asset of a run: the files its scenario reads under ``data_root``.

Each scenario that reads files has a layout here (what must exist under the root, how to get it,
how it is checked). Only CIFAR-100 has a download (torchvision's, with its MD5 sums); ImageNet,
DomainNet and image folders are placed by hand and checked when a run builds them. A scenario
without a layout here needs just its ``data_root`` to exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avalanche_clip.assets.core import Asset
from avalanche_clip.scenarios.catalog import (
    DOMAINNET_DOMAINS,
    DOMAINNET_HOW_TO_GET,
    IMAGENET_HOW_TO_GET,
)
from avalanche_clip.scenarios.cifar100 import FOLDER, HOW_TO_GET, LAYOUT
from avalanche_clip.scenarios.folders import DOMAIN_LAYOUT, IMAGEFOLDER_LAYOUT

_FOLDER_CHECK = ("when a run builds it: the splits hold the same class folders, each with images "
                 "(scenario_options.verify: true also decodes every image)")
_DOMAIN_CHECK = ("when a run builds it: every image a split file names must exist "
                 "(scenario_options.verify: true also decodes every image)")


@dataclass(frozen=True)
class Layout:
    """What a scenario reads under its root."""

    required: list[str]
    layout: str
    how_to_get: str
    checked: str
    fetch: Callable[[str], Any] | None = None
    fetch_host: str | None = None
    verify: Callable[[str], str] | None = None
    test_only: tuple[str, ...] = ()  # entries of required a train-only run (tuning) never reads


def _cifar100(run: dict[str, Any]) -> Layout:
    return Layout([f"{FOLDER}/{name}" for name in ("train", "test", "meta")], LAYOUT, HOW_TO_GET,
                  "MD5 of the archive and of each file against torchvision's sums",
                  fetch=_download_cifar100, fetch_host="www.cs.toronto.edu", verify=_verify_cifar100,
                  test_only=(f"{FOLDER}/test",))


def _download_cifar100(root: str) -> None:
    from torchvision.datasets import CIFAR100

    for train in (True, False):  # downloads once, checks the archive's and the files' MD5
        CIFAR100(root, train=train, download=True)


def _verify_cifar100(root: str) -> str:
    from torchvision.datasets import CIFAR100
    from torchvision.datasets.utils import check_integrity

    files = [*CIFAR100.train_list, *CIFAR100.test_list, [CIFAR100.meta["filename"], CIFAR100.meta["md5"]]]
    differ = [name for name, md5 in files
              if not check_integrity(str(Path(root) / CIFAR100.base_folder / name), md5)]
    if differ:
        return (f"{', '.join(differ)} differ from the official files (torchvision's MD5); runs read "
                "them anyway; delete them and run prepare to fetch the official ones")
    return "MD5 matches torchvision's"


def _image_folder(train: str, test: str, how_to_get: str) -> Layout:
    return Layout([train, test], IMAGEFOLDER_LAYOUT.format(train=train, test=test), how_to_get,
                  _FOLDER_CHECK, test_only=(test,))


def _split_imagefolder(run: dict[str, Any]) -> Layout:
    options = run.get("scenario_options") or {}
    return _image_folder(options.get("train_dir", "train"), options.get("test_dir", "test"),
                         "arrange the images as shown (torchvision ImageFolder layout).")


def _split_imagenet(run: dict[str, Any]) -> Layout:
    return _image_folder("train", "val", IMAGENET_HOW_TO_GET)


def _domain_files(domains: list[str]) -> list[str]:
    return [path for d in domains for path in (d, f"{d}_train.txt", f"{d}_test.txt")]


def _test_files(domains: list[str]) -> tuple[str, ...]:
    return tuple(f"{d}_test.txt" for d in domains)


def _domainnet(run: dict[str, Any]) -> Layout:
    return Layout(_domain_files(list(DOMAINNET_DOMAINS)), DOMAIN_LAYOUT, DOMAINNET_HOW_TO_GET,
                  _DOMAIN_CHECK, test_only=_test_files(list(DOMAINNET_DOMAINS)))


def _domain_folder(run: dict[str, Any]) -> Layout:
    # without domains, every <domain>_train.txt found is a domain: at least one must exist
    required = _domain_files(list(run["domains"])) if run.get("domains") else ["*_train.txt"]
    return Layout(required, DOMAIN_LAYOUT, "arrange the images and split files as shown.",
                  _DOMAIN_CHECK, test_only=_test_files(list(run.get("domains") or [])))


#: Scenario name → its layout under ``data_root`` (``digits`` reads no files).
LAYOUTS: dict[str, Callable[[dict[str, Any]], Layout]] = {
    "split-cifar100": _cifar100,
    "split-imagefolder": _split_imagefolder,
    "split-imagenet": _split_imagenet,
    "domainnet": _domainnet,
    "domain-folder": _domain_folder,
}
_NO_FILES = ("digits",)


def data_asset(run: dict[str, Any]) -> Asset | None:
    """The data asset of ``run`` (None for scenarios that read no files)."""
    scenario = run["scenario"]
    if scenario in _NO_FILES:
        return None
    root = run.get("data_root")
    layout = LAYOUTS[scenario](run) if scenario in LAYOUTS else Layout([], "  <root>/", "", "")
    name = f"of scenario {scenario!r}" + (f" ({run['label']})" if run.get("label") else "")
    if not root:
        return Asset("data", name, "data_root (not set)", present=False, layout=layout.layout,
                     missing="data_root is not set", how_to_get=layout.how_to_get)
    base = Path(root)
    if not base.is_dir():
        missing = f"data_root {root!r} does not exist"
    else:
        train_only = (run.get("scenario_options") or {}).get("validation_fraction") is not None
        required = [p for p in layout.required if not (train_only and p in layout.test_only)]
        absent = [p for p in required if not (any(base.glob(p)) if "*" in p else (base / p).exists())]
        missing = f"missing under data_root: {', '.join(absent[:6])}{' ...' if len(absent) > 6 else ''}" if absent else ""
    return Asset(
        "data", name, str(root), present=not missing, layout=layout.layout, missing=missing,
        checked=layout.checked, how_to_get=layout.how_to_get,
        fetch=(lambda: layout.fetch(root)) if layout.fetch else None, fetch_host=layout.fetch_host,
        verify=(lambda: layout.verify(root)) if layout.verify and not missing else None,
    )
