"""Benchmarks built by Avalanche's own builders over small tensors (the examples' digits), and
tiny-clip classifiers for them (imported by the test modules)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.scenarios import class_incremental_benchmark
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets

from avalanche_clip.models import CLIPClassifier, create_clip, set_trainable

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from common import digit_datasets  # noqa: E402

BUILDERS = ("class_incremental_benchmark", "nc_benchmark", "benchmark_from_datasets")


@functools.lru_cache(maxsize=4)
def digits(per_class: int = 16):
    """(train, test, class names): ``per_class`` digits of each class as tiny-clip tensors."""
    _, _, eval_tf, _ = create_clip("tiny-clip")
    return digit_datasets(eval_tf, max_per_class=per_class)


def avalanche_benchmark(builder: str, n_experiences: int = 5, per_class: int = 16, **options):
    """The digits cut into ``n_experiences`` by one of Avalanche's builders (classes in order)."""
    train, test, _ = digits(per_class)
    order = list(range(10))
    if builder == "class_incremental_benchmark":
        return class_incremental_benchmark({"train": train, "test": test}, class_order=order,
                                           num_experiences=n_experiences, **options)
    if builder == "nc_benchmark":
        return nc_benchmark(train, test, n_experiences=n_experiences, task_labels=False,
                            fixed_class_order=options.pop("fixed_class_order", order), **options)
    if builder == "benchmark_from_datasets":
        per = 10 // n_experiences
        groups = [order[i * per:(i + 1) * per] for i in range(n_experiences)]

        def split(data):
            targets = torch.tensor(list(data.targets))
            return [data.subset(torch.nonzero(torch.isin(targets, torch.tensor(g))).flatten().tolist())
                    for g in groups]

        return benchmark_from_datasets(train=split(train), test=split(test))
    raise ValueError(builder)


def tiny_classifier(class_names, seed: int = 0, trainable: str = "last:1", **kwargs) -> CLIPClassifier:
    torch.manual_seed(seed)
    clip, _, _, tokenizer = create_clip("tiny-clip")
    set_trainable(clip, trainable)
    return CLIPClassifier(clip, tokenizer, class_names, **kwargs)


def optimizer(model, lr: float = 1e-3):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
