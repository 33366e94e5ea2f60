"""``digits``: scikit-learn's bundled handwritten digits (1,797 8x8 images), fully offline.

The embedded default data set of the project's one-command demo: class-incremental, 5
experiences x 2 classes by default. The 8x8 grayscale images (values 0..16) are scaled to
0..255, upscaled (nearest neighbour) to ``image_size`` and made 3-channel, so CLIP transforms
apply. The train/test split is stratified and fixed by ``split_seed``; both splits keep
scikit-learn's sample order.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from avalanche_clip.scenarios.image_files import ArrayImageDataset
from avalanche_clip.scenarios.registry import SCENARIOS
from avalanche_clip.scenarios.source import CLASS_INCREMENTAL, DataSource, SplitData

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digit_images(image_size: int = 32) -> tuple[np.ndarray, list[int]]:
    """All 1,797 digits as uint8 ``(N, image_size, image_size, 3)`` and their labels.

    The array is built once per process and size (~0.5 s: every run of a sweep, and its data
    fingerprint, read it) and shared read-only; index it to get a writable copy.
    """
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    images, labels = _digit_images(image_size)
    return images, list(labels)


@functools.lru_cache(maxsize=4)
def _digit_images(image_size: int) -> tuple[np.ndarray, tuple[int, ...]]:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    small = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    big = np.stack(
        [
            np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.NEAREST))
            for im in small
        ]
    )
    images = np.repeat(big[..., None], 3, axis=-1)
    images.flags.writeable = False  # shared by every caller in the process
    return images, tuple(int(y) for y in d.target)


@SCENARIOS.register(
    "digits",
    kind=CLASS_INCREMENTAL,
    description="scikit-learn's bundled 8x8 digits (offline), 10 classes in 5 experiences of 2",
)
def digits_source(
    root: str | os.PathLike | None = None,
    *,
    image_size: int = 32,
    test_fraction: float = 0.25,
    split_seed: int = 0,
    train_only: bool = False,
) -> DataSource:
    """The digits source; ``root`` is ignored (the data ships with scikit-learn).
    ``train_only``: no test split (the held-out quarter is left out, not used)."""
    from sklearn.model_selection import train_test_split

    images, labels = digit_images(image_size)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    splits = []
    for part in (np.sort(train_idx), np.sort(test_idx)):
        targets = [labels[i] for i in part]
        splits.append(SplitData(ArrayImageDataset(images[part], targets), targets))
    return DataSource(
        name="digits",
        kind=CLASS_INCREMENTAL,
        train=splits[0],
        test=None if train_only else splits[1],
        class_names=list(DIGIT_NAMES),
        default_n_experiences=5,
    )


__all__ = ["DIGIT_NAMES", "digit_images", "digits_source"]
