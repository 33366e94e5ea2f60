"""Helpers for the feature-cache tests: a tiny cached benchmark, an ImageFolder tree of PNGs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import avalanche_clip.features.apply as apply
from avalanche_clip.features import apply_feature_cache
from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.scenarios import build_scenario

DIGITS = {"max_train_per_class": 12, "max_test_per_class": 6}


def write_image_folder(root: Path, classes=("ant", "bee"), n_train: int = 3, n_test: int = 2,
                       size: int = 12) -> Path:
    """``root/{train,test}/<class>/<i>.png``: small random RGB images."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


class BuildSpy:
    """Wraps ``load_or_build`` as the feature cache calls it: records (built, features)."""

    def __init__(self, monkeypatch: Any) -> None:
        self.calls: list[tuple[bool, dict[str, torch.Tensor]]] = []
        original = apply.load_or_build

        def spy(*args: Any, **kwargs: Any):
            features, built = original(*args, **kwargs)
            self.calls.append((built, features))
            return features, built

        monkeypatch.setattr(apply, "load_or_build", spy)

    @property
    def built(self) -> list[bool]:
        return [built for built, _ in self.calls]


def cached_benchmark(cache_dir: Path, *, trainable: str = "projections", image_size: int | None = None,
                     scenario: str = "digits", root: Path | None = None, n_experiences: int = 2,
                     transform: Callable[[Any], Any] | None = None,
                     perturb: Callable[[torch.nn.Module], None] | None = None,
                     **options: Any):
    """A tiny-clip (seed 0) classifier and its benchmark through the feature cache (required)."""
    torch.manual_seed(0)
    model, _, eval_tf, tokenizer = create_clip("tiny-clip", image_size=image_size)
    set_trainable(model, trainable)
    if perturb is not None:
        with torch.no_grad():
            perturb(model)
    tf = transform or eval_tf
    options = options or (DIGITS if scenario == "digits" else {})
    benchmark = build_scenario(scenario, root=root, n_experiences=n_experiences, seed=0,
                               train_transform=tf, eval_transform=tf, **options)
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names)
    cached = apply_feature_cache(benchmark, classifier, mode=True, trainable=trainable,
                                 cache_dir=cache_dir, batch_size=64, progress=False)
    return cached, classifier


def cache_key(cache_dir: Path, **kwargs: Any) -> str:
    return cached_benchmark(cache_dir, **kwargs)[0].feature_cache["key"]
