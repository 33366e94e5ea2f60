"""Small, fast streams and a tiny CLIP for strategy tests (imported by the test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable
from avalanche_clip.pipeline.run_loop import make_evaluator
from avalanche_clip.scenarios import build_scenario
from avalanche_clip.strategies import StrategySetup

DIL_DOMAINS = ("paint", "photo")
DIL_CLASSES = ("cat", "dog", "car")


def write_domain_tree(root: Path, per_class: int = 8, size: int = 16) -> Path:
    """A DomainNet-layout tree: ``<domain>/<class>/<i>.png`` + split files (last 2 → test)."""
    rng = np.random.default_rng(0)
    for d, domain in enumerate(DIL_DOMAINS):
        train_lines, test_lines = [], []
        for label, name in enumerate(DIL_CLASSES):
            folder = root / domain / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                base = np.zeros((size, size, 3), np.float64)
                base[..., label] = 200.0 - 80.0 * d
                pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
                line = f"{domain}/{name}/{i}.png {label}"
                (test_lines if i >= per_class - 2 else train_lines).append(line)
        (root / f"{domain}_train.txt").write_text("\n".join(train_lines) + "\n")
        (root / f"{domain}_test.txt").write_text("\n".join(test_lines) + "\n")
    return root


def tiny_transforms():
    _, _, eval_tf, _ = create_clip("tiny-clip")
    return eval_tf


def cil_benchmark(with_index: bool = True, per_class: int = 24):
    """digits: 5 experiences of 2 classes, ``per_class`` train and 10 test images per class."""
    tf = tiny_transforms()
    return build_scenario(
        "digits", n_experiences=5, seed=0, with_index=with_index, train_transform=tf,
        eval_transform=tf, max_train_per_class=per_class, max_test_per_class=10,
    )


def dil_benchmark(root: Path, with_index: bool = True):
    tf = tiny_transforms()
    return build_scenario("domain-folder", root=root, with_index=with_index,
                          train_transform=tf, eval_transform=tf)


def make_setup(benchmark, *, mem_size: int = 20, seed: int = 0, loggers=(), **overrides) -> StrategySetup:
    torch.manual_seed(seed)
    model, _, _, tokenizer = create_clip("tiny-clip")
    set_trainable(model, "last:1")
    classifier = CLIPClassifier(model, tokenizer, benchmark.class_names)
    settings = dict(mem_size=mem_size, seed=seed, train_mb_size=16, eval_mb_size=64, train_epochs=1, lr=1e-3,
                    evaluator=make_evaluator(loggers))
    settings.update(overrides)
    return StrategySetup(classifier=classifier, benchmark=benchmark, **settings)


def pretrained_run(strategy: str, cache_dir: Path, *, plugins=(), options=None, **overrides):
    """A prepared run (``avalanche_clip.pipeline.run.prepare_run``) of ``strategy`` with the offline
    ImageNet-pretrained effnet-lite0-clip at 64 px, its trunk frozen and cached in ``cache_dir``,
    both projections trainable: a small model that discriminates, unlike the random tiny CLIP.
    By default on a subset of digits (5 x 2 classes, 30 train / 20 test images per class);
    ``overrides`` are run config keys (another scenario, memory, budget ...)."""
    from avalanche_clip.pipeline.config import resolve_config
    from avalanche_clip.pipeline.run import prepare_run

    config = {"scenario": "digits", "templates": "digit", "pretrained": "imagenet", "image_size": 64,
              "trainable": "projections", "cache_dir": str(cache_dir), "progress": False,
              "scenario_options": {"max_train_per_class": 30, "max_test_per_class": 20},
              "strategy": strategy, "mem_size": 20, "steps_per_experience": 30, "lr": 1e-2,
              "weight_decay": 0.01, "checkpoint": False, "strategy_options": {strategy: options or {}}}
    config.update(overrides)
    return prepare_run(resolve_config([config]), plugins=tuple(plugins))
