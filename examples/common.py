"""What the examples share: a small data set as plain tensors, and the CLIP model to fine-tune.

The examples are Avalanche's example scripts (getting started, evaluation plugin, LR scheduling,
early stopping, EWC / LwF, checkpointing) rewritten around a ``CLIPClassifier`` and a GCL / GDRO /
CE strategy, on benchmarks built by Avalanche's own builders. The data is scikit-learn's bundled
handwritten digits (offline), turned into CLIP-ready tensors once; any torch dataset with a
``targets`` list works the same way (e.g. torchvision's ``ImageFolder`` with the model's
transform).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from avalanche.benchmarks.utils import as_classification_dataset
from PIL import Image

from avalanche_clip.models import create_clip, set_trainable
from avalanche_clip.scenarios import TensorInputs
from avalanche_clip.scenarios.digits import DIGIT_NAMES, digit_images


def digit_datasets(transform: Any, max_per_class: int | None = None, test_fraction: float = 0.25,
                   seed: int = 0) -> tuple[Any, Any, list[str]]:
    """Train and test sets of the digits as Avalanche classification datasets, and the class
    names (index = label). ``max_per_class`` keeps the first samples of each class, train and
    test together (fast runs)."""
    from sklearn.model_selection import train_test_split

    images, labels = digit_images(32)
    counts = dict.fromkeys(range(len(DIGIT_NAMES)), 0)
    keep = []
    for i, label in enumerate(labels):
        if max_per_class is None or counts[label] < max_per_class:
            keep.append(i)
            counts[label] += 1
    pixels = torch.stack([transform(Image.fromarray(images[i])) for i in keep])
    targets = [labels[i] for i in keep]
    train_idx, test_idx = train_test_split(np.arange(len(keep)), test_size=test_fraction,
                                           stratify=targets, random_state=seed)
    parts = [TensorInputs(pixels[np.sort(i)], [targets[j] for j in np.sort(i)])
             for i in (train_idx, test_idx)]
    return as_classification_dataset(parts[0]), as_classification_dataset(parts[1]), list(DIGIT_NAMES)


def clip_model(name: str = "tiny-clip", pretrained: str | None = None, trainable: str = "last:1"):
    """``(clip, eval_transform, tokenizer)`` with the chosen parts trainable."""
    clip, _, eval_tf, tokenizer = create_clip(name, pretrained)
    set_trainable(clip, trainable)
    return clip, eval_tf, tokenizer


def arguments(description: str, argv: list[str] | None,
              extra: Callable[[argparse.ArgumentParser], Any] | None = None,
              **defaults: Any) -> argparse.Namespace:
    """The options every example takes (model, data size, epochs, device, seed), the example's
    own (``extra(parser)`` adds them) and defaults for any of them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="tiny-clip", help="an open_clip name or tiny-clip")
    parser.add_argument("--pretrained", default=None, help="weights tag or file (default: none)")
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="samples per class to keep (default: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    if extra is not None:
        extra(parser)
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)
