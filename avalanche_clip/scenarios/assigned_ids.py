"""Global sample ids for the experiences of any Avalanche classification benchmark.

Streams from :func:`~avalanche_clip.scenarios.build_scenario` carry each sample's global id as the
``sample_idx`` data attribute. A benchmark from Avalanche's own builders
(``class_incremental_benchmark``, ``nc_benchmark``, ``benchmark_from_datasets`` ...) has none, so
a strategy that needs ids gives them out as experiences arrive (:class:`SampleIdAssigner`): the
first experience trained gets ``0 … n₀−1``, the next ``n₀ … n₀+n₁−1``, and so on — the offset of
an experience is the total size of the experiences' datasets that arrived before it. The
assignment is remembered by experience (stream name and position), so training an experience
again, a replay memory, and a checkpoint (:meth:`SampleIdAssigner.state_dict`) all keep the same
ids for the run.

Where the id sits in the items (the task-label trap: Avalanche reads the task label from
``mbatch[-1]``): :func:`with_index_in_items` places the id right after ``(x, y)``, before any
other item attribute, so items are ``(x, y, idx, t)`` — or ``(x, y, idx)`` for datasets without
task labels — and the index is always ``mbatch[SAMPLE_INDEX_POSITION]``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from avalanche.benchmarks.utils.data_attribute import DataAttribute

from avalanche_clip.scenarios.indexing import SAMPLE_INDEX_ATTR, has_sample_index


def own_sample_ids(dataset: Any) -> Any:
    """The dataset's ``sample_idx`` attribute, or None when it has none."""
    attributes = getattr(dataset, "_data_attributes", {})
    return attributes.get(SAMPLE_INDEX_ATTR)


def with_index_in_items(dataset: Any, ids: Sequence[int] | None = None) -> Any:
    """A copy of an Avalanche dataset whose items are ``(x, y, idx, ...)``.

    Args:
        dataset: an Avalanche classification dataset with items ``(x, y, ...)``.
        ids: one global id per sample; None: the dataset's own ``sample_idx`` attribute.
    """
    if ids is None:
        own = own_sample_ids(dataset)
        if own is None:
            raise ValueError("the dataset has no 'sample_idx' attribute; pass the ids to assign")
        ids = [int(i) for i in own]
    if len(ids) != len(dataset):
        raise ValueError(f"{len(ids)} ids for a dataset of {len(dataset)} samples")
    index = DataAttribute(list(ids), SAMPLE_INDEX_ATTR, use_in_getitem=True)
    copy = dataset.update_data_attribute(SAMPLE_INDEX_ATTR, index)
    # The clone owns a copy of the attribute dict: put the index first among the attributes
    # that go into items, so it follows (x, y) and the task label stays last.
    others = [(n, a) for n, a in copy._data_attributes.items() if n != SAMPLE_INDEX_ATTR]
    copy._data_attributes = OrderedDict(
        [*((n, a) for n, a in others if not a.use_in_getitem), (SAMPLE_INDEX_ATTR, index),
         *((n, a) for n, a in others if a.use_in_getitem)]
    )
    setattr(copy, SAMPLE_INDEX_ATTR, index)
    return copy


def without_index_in_items(dataset: Any) -> Any:
    """A copy whose items leave the index out (``(x, y, t)``); the attribute stays."""
    if not has_sample_index(dataset):
        return dataset
    values = [int(i) for i in own_sample_ids(dataset)]
    index = DataAttribute(values, SAMPLE_INDEX_ATTR, use_in_getitem=False)
    copy = dataset.update_data_attribute(SAMPLE_INDEX_ATTR, index)
    setattr(copy, SAMPLE_INDEX_ATTR, index)
    return copy


def experience_key(experience: Any) -> str:
    """``"<stream name>/<position>"``: what identifies an experience within a run."""
    stream = getattr(getattr(experience, "origin_stream", None), "name", None) or "stream"
    return f"{stream}/{getattr(experience, 'current_experience', None)}"


class SampleIdAssigner:
    """Gives each experience without ``sample_idx`` a block of fresh global ids.

    Example::

        ids = SampleIdAssigner()
        data = ids.dataset_with_ids(experience)   # items (x, y, idx, t)
        ids.state_dict()                          # for checkpoints (weights_only-safe)
    """

    def __init__(self) -> None:
        self.blocks: dict[str, tuple[int, int]] = {}  # experience key -> (offset, size)
        self.next_id = 0

    def ids_for(self, experience: Any) -> range | None:
        """The ids of the experience's samples, assigned now if it is new (None: the dataset
        carries its own ``sample_idx``)."""
        data = experience.dataset
        if own_sample_ids(data) is not None:
            return None
        key, size = experience_key(experience), len(data)
        if key in self.blocks:
            offset, known = self.blocks[key]
            if known != size:
                raise ValueError(
                    f"experience {key} had {known} samples when its ids were assigned and has "
                    f"{size} now; ids must stay stable for the run"
                )
        else:
            offset = self.next_id
            self.blocks[key] = (offset, size)
            self.next_id += size
        return range(offset, offset + size)

    def dataset_with_ids(self, experience: Any) -> Any:
        """The experience's dataset with each sample's global id in its items."""
        ids = self.ids_for(experience)
        data = experience.dataset
        if ids is None:
            return data if has_sample_index(data) else with_index_in_items(data)
        return with_index_in_items(data, ids)

    def known_datasets(self, stream: Iterable[Any]) -> list[Any]:
        """The datasets (with ids) of the stream's experiences whose ids exist so far: those with
        their own ``sample_idx`` and those assigned before (e.g. up to a checkpoint)."""
        out = []
        for experience in stream:
            if own_sample_ids(experience.dataset) is not None or experience_key(experience) in self.blocks:
                out.append(self.dataset_with_ids(experience))
        return out

    def state_dict(self) -> dict[str, Any]:
        """Strings, ints and tensors only (loads with ``weights_only=True``)."""
        keys = list(self.blocks)
        return {
            "keys": keys,
            "offsets": torch.tensor([self.blocks[k][0] for k in keys], dtype=torch.long),
            "sizes": torch.tensor([self.blocks[k][1] for k in keys], dtype=torch.long),
            "next_id": self.next_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.blocks = {
            key: (int(offset), int(size))
            for key, offset, size in zip(state["keys"], state["offsets"], state["sizes"], strict=True)
        }
        self.next_id = int(state["next_id"])


__all__ = [
    "SampleIdAssigner",
    "experience_key",
    "own_sample_ids",
    "with_index_in_items",
    "without_index_in_items",
]
