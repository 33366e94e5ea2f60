"""Rebuild a benchmark's streams over replacement data, and get its un-augmented splits.

A benchmark from :func:`build_scenario` keeps its :class:`DataSource` (``benchmark.source``) and
:class:`StreamOptions` (``benchmark.stream_options``). Replacing the source's datasets by others
holding the same samples in the same order (e.g. precomputed CLIP features of
``unaugmented_dataset(benchmark, "train")``) and running the same stream builder gives the
identical streams: same experiences, same samples per experience in the same order, same
``sample_idx`` values, same class order.

Example::

    full = unaugmented_dataset(bm, "train")        # item i is sample i, eval transform
    feats = torch.cat([encode(x) for x, *_ in DataLoader(full, batch_size=256)])
    fbm = rebuild_scenario(bm, train_data=feats, test_data=test_feats)
    fbm.train_stream[t].dataset[j]                   # (feature, y, idx, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from avalanche.benchmarks.scenarios.generic_scenario import CLScenario
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from torch.utils.data import Dataset

from avalanche_clip.scenarios.indexing import make_stream_dataset
from avalanche_clip.scenarios.source import DataSource, SplitData
from avalanche_clip.scenarios.streams import StreamOptions, build_streams


class TensorInputs(Dataset):
    """``(inputs[i], targets[i])`` over a tensor of per-sample inputs (e.g. cached features)."""

    def __init__(self, inputs: torch.Tensor, targets: Sequence[int]) -> None:
        self.inputs = torch.as_tensor(inputs)
        self.targets = [int(t) for t in targets]
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.inputs[i], self.targets[i]


def _replacement(data: Any, split: SplitData, name: str) -> Any:
    if len(data) != len(split):
        raise ValueError(
            f"{name} has {len(data)} samples but the benchmark's {name.split('_')[0]} set has "
            f"{len(split)}; the replacement must hold the same samples in the same order"
        )
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return TensorInputs(torch.as_tensor(data), split.targets)
    targets = getattr(data, "targets", None)
    if targets is not None and [int(t) for t in targets] != split.targets:
        raise ValueError(
            f"{name}.targets differ from the benchmark's labels: not the same samples/order"
        )
    return data


_KEEP: Any = object()


def rebuild_scenario(
    benchmark: CLScenario,
    *,
    train_data: Any = None,
    test_data: Any = None,
    with_index: bool | None = None,
    train_transform: Callable | None = _KEEP,
    eval_transform: Callable | None = _KEEP,
) -> CLScenario:
    """The same streams (same samples, order, class order, experiences, indices) over new data.

    Args:
        benchmark: a benchmark from :func:`build_scenario` (or :func:`build_streams`).
        train_data, test_data: replacements for the full train / test sets, in global-index
            order (``unaugmented_dataset(benchmark, split)`` order): a dataset of
            ``(input, label)`` items, or a tensor / array with one row per sample (labels are
            taken from the benchmark). ``None`` keeps the original split.
        with_index: ``None`` keeps the benchmark's choice.
        train_transform, eval_transform: by default the original transforms if no data is
            replaced, and no transform at all if both splits are (features are already model
            inputs). Replacing one split only requires both transforms explicitly.

    Example::

        feats = encode_all(unaugmented_dataset(bm, "train"))        # (N, D) in index order
        fbm = rebuild_scenario(bm, train_data=feats, test_data=test_feats)
    """
    source: DataSource = benchmark.source
    options: StreamOptions = benchmark.stream_options
    replaced = train_data is not None or test_data is not None
    if train_data is not None:
        source = source.replace(
            train=source.train.with_dataset(_replacement(train_data, source.train, "train_data"))
        )
    if test_data is not None:
        source = source.replace(
            test=source.test.with_dataset(_replacement(test_data, source.test, "test_data"))
        )
    if (train_data is None) != (test_data is None) and (
        train_transform is _KEEP or eval_transform is _KEEP
    ):
        raise ValueError(
            "rebuild_scenario: only one of train_data / test_data is replaced, so one split still "
            "holds the original inputs; pass both train_transform and eval_transform explicitly"
        )
    changes: dict[str, Any] = {}
    if with_index is not None:
        changes["with_index"] = bool(with_index)
    if train_transform is not _KEEP or replaced:
        changes["train_transform"] = None if train_transform is _KEEP else train_transform
    if eval_transform is not _KEEP or replaced:
        changes["eval_transform"] = None if eval_transform is _KEEP else eval_transform
    return build_streams(source, options.replace(**changes))


def unaugmented_dataset(
    benchmark: CLScenario, split: str = "train", with_index: bool | None = None
) -> TaskAwareSupervisedClassificationDataset:
    """The full ``split`` ("train" or "test") with the eval transform in both transform groups,
    in global-index order: item ``i`` is sample ``i``. What a feature cache should encode."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    options: StreamOptions = benchmark.stream_options
    data: SplitData = getattr(benchmark.source, split)
    return make_stream_dataset(
        data.dataset,
        data.targets,
        with_index=options.with_index if with_index is None else with_index,
        train_transform=options.eval_transform,
        eval_transform=options.eval_transform,
        initial_group="eval",
    )


def augmented_dataset(benchmark: CLScenario) -> TaskAwareSupervisedClassificationDataset:
    """The full train split with the (random) train transform in both transform groups, in
    global-index order, without the index: what a feature cache's augmented views encode."""
    options: StreamOptions = benchmark.stream_options
    data: SplitData = benchmark.source.train
    return make_stream_dataset(data.dataset, data.targets, with_index=False,
                               train_transform=options.train_transform,
                               eval_transform=options.train_transform, initial_group="train")


__all__ = ["TensorInputs", "augmented_dataset", "rebuild_scenario", "unaugmented_dataset"]
