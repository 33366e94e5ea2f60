"""The global sample index, carried as an Avalanche ``DataAttribute`` before the task label.

An ``AvalancheDataset`` appends every ``DataAttribute`` with ``use_in_getitem=True`` to each
item, in the order the attributes were given, and ``SupervisedProblem.mb_task_id`` reads
``mbatch[-1]``. So the index attribute is registered *before* the task labels, and items are::

    with_index=True :  (x, y, idx, t)     idx = mbatch[SAMPLE_INDEX_POSITION], t = mbatch[-1]
    with_index=False:  (x, y, t)          what Avalanche's iCaRL expects (``dataset.sample_idx``
                                          still holds the ids, outside the items)

``idx`` is the sample's position in the benchmark's full train set (for test streams, its
position in the full test set). Subsets, concatenations and Avalanche's replay buffers keep the
attribute, so a replayed sample keeps its index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from avalanche.benchmarks.utils.data_attribute import DataAttribute, TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.benchmarks.utils.transform_groups import TransformGroups

SAMPLE_INDEX_ATTR = "sample_idx"
"""Name of the DataAttribute holding the global sample index."""

SAMPLE_INDEX_POSITION = 2
"""Position of the sample index in an indexed item / mini-batch: ``(x, y, idx, t)``."""

TASK_LABEL_POSITION = -1
"""The task label stays last (``SupervisedProblem.mb_task_id`` is ``mbatch[-1]``)."""


def make_stream_dataset(
    data: Any,
    targets: Sequence[int],
    *,
    with_index: bool,
    train_transform: Callable | None,
    eval_transform: Callable | None,
    initial_group: str = "train",
    task_label: int = 0,
) -> TaskAwareSupervisedClassificationDataset:
    """Wrap a torch dataset of ``(input, label)`` items into an Avalanche classification dataset.

    Args:
        data: ``data[i] -> (input, label)``; position ``i`` becomes the sample index.
        targets: label per item (the ``targets`` attribute Avalanche splits and balances on).
        with_index: put the ``sample_idx`` attribute into the items (``(x, y, idx, t)``); it
            is attached either way (``dataset.sample_idx``), out of the items when False.
        train_transform, eval_transform: the ``"train"`` / ``"eval"`` transform groups
            (``None``: no transform).
        initial_group: which group is active on the returned dataset.
        task_label: the constant task label (0: these are single-task scenarios).
    """
    n = len(data)
    if len(targets) != n:
        raise ValueError(f"{n} items but {len(targets)} targets")
    attributes = [DataAttribute(list(targets), "targets")]
    # Without the index in the items, the attribute still exists (not in getitem), so a shared
    # replay memory can tell samples apart for strategies that must not see it in batches.
    attributes.append(DataAttribute(list(range(n)), SAMPLE_INDEX_ATTR, use_in_getitem=with_index))
    attributes.append(TaskLabels(ConstantSequence(int(task_label), n)))
    ds = TaskAwareSupervisedClassificationDataset(
        [data],
        data_attributes=attributes,
        transform_groups=TransformGroups({"train": train_transform, "eval": eval_transform}),
    )
    return ds.with_transforms(initial_group)


def has_sample_index(dataset: Any) -> bool:
    """Whether an Avalanche dataset carries the global sample index in its items."""
    attrs = getattr(dataset, "_data_attributes", {})
    return SAMPLE_INDEX_ATTR in attrs and attrs[SAMPLE_INDEX_ATTR].use_in_getitem


def sample_index(mbatch: Sequence[Any]) -> torch.Tensor:
    """The sample indices of an indexed mini-batch ``(x, y, idx, t)``.

    Raises a ValueError when the batch has no index (3 fields: a stream built with
    ``with_index=False``).
    """
    if len(mbatch) < 4:
        raise ValueError(
            f"mini-batch has {len(mbatch)} fields; an indexed batch is (x, y, idx, t). "
            "Build the scenario with with_index=True."
        )
    return mbatch[SAMPLE_INDEX_POSITION]


__all__ = [
    "SAMPLE_INDEX_ATTR",
    "SAMPLE_INDEX_POSITION",
    "TASK_LABEL_POSITION",
    "has_sample_index",
    "make_stream_dataset",
    "sample_index",
]
