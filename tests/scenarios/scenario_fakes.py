"""Writers of small fake data sets in the real on-disk formats (CIFAR-100 pickles, ImageNet
ImageFolder tree, DomainNet tree + split files), shared by the scenario tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def pattern_image(seed: int, size: int = 16) -> np.ndarray:
    """A deterministic uint8 (size, size, 3) image, distinct per seed."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def save_png(path: Path, seed: int, size: int = 16) -> Path:
    """PNG (lossless) so pixels can be compared exactly after decoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pattern_image(seed, size)).save(path)
    return path


def write_fake_cifar100(root: Path, n_train_per_class: int = 2, n_test_per_class: int = 1) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` in the official pickle format (smaller)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, per in (("train", n_train_per_class), ("test", n_test_per_class)):
        labels = [c for c in range(100) for _ in range(per)]
        rng.shuffle(labels)
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        entry = {
            "filenames": [f"img_{i}.png" for i in range(len(labels))],
            "batch_label": f"{split} batch",
            "fine_labels": labels,
            "coarse_labels": [y // 5 for y in labels],
            "data": data,
        }
        with open(folder / split, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {
        "fine_label_names": [f"class_{c:02d}" for c in range(99)] + ["aquarium_fish"],
        "coarse_label_names": [f"super_{c}" for c in range(20)],
    }
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # tench, goldfish, 2 sharks


def write_fake_imagenet(root: Path, wnids=IMAGENET_WNIDS, n_train: int = 3, n_val: int = 2) -> Path:
    seed = 0
    for split, n in (("train", n_train), ("val", n_val)):
        for w in wnids:
            for i in range(n):
                path = root / split / w / f"{w}_{i}.JPEG"  # upper-case extension, as in ILSVRC
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pattern_image(seed)).save(path, format="JPEG")
                seed += 1
    return root


DOMAINNET_CLASSES = ["aircraft_carrier", "The_Eiffel_Tower", "zebra"]
DOMAINNET_DOMAINS = ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]


def write_domain_tree(
    root: Path,
    domains=DOMAINNET_DOMAINS,
    classes=DOMAINNET_CLASSES,
    n_train: int = 2,
    n_test: int = 1,
) -> Path:
    """DomainNet layout: ``<domain>/<class>/<domain>_<c>_<i>.png`` + ``<domain>_{train,test}.txt``."""
    seed = 1000
    for dom in domains:
        for split, n in (("train", n_train), ("test", n_test)):
            lines = []
            for label, cls in enumerate(classes):
                for i in range(n):
                    rel = f"{dom}/{cls}/{dom}_{label:03d}_{split}{i:02d}.png"
                    save_png(root / rel, seed)
                    seed += 1
                    lines.append(f"{rel} {label}")
            (root / f"{dom}_{split}.txt").write_text("\n".join(lines) + "\n")
    return root
