"""Class-balanced replay with a fixed total memory, on Avalanche's ReplayPlugin.

The memory holds ``mem_size`` samples split equally over the classes seen so far (Avalanche's
``ClassBalancedBuffer`` with ``adaptive_size=True``: reservoir sampling per class, each class
shrinking as new classes arrive). How mini-batches mix new data ``D_t`` and memory ``M``:

- ``sampling="union"`` (default for GCL / GDRO): batches drawn uniformly from ``D_t ∪ M``, the
  sampling under which the moving-average estimators are unbiased (``losses.md``);
- ``sampling="share"``: Avalanche's replay loader, a fixed ``memory_share`` of every batch of
  ``train_mb_size`` from memory (memory samples are then oversampled).

``mem_size=0`` means no replay. Replayed samples are subsets of the original experience datasets,
so they keep every data attribute, the global ``sample_idx`` included.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.benchmarks.utils.data_loader import ReplayDataLoader
from avalanche.benchmarks.utils.utils import concat_datasets
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer, ReservoirSamplingBuffer

from avalanche_clip.scenarios import SAMPLE_INDEX_ATTR

REPLAY_SAMPLING = ("union", "share")


class ClassBalancedReplayPlugin(ReplayPlugin):
    """Replay from a class-balanced memory of fixed total size.

    Args:
        mem_size: total number of stored samples (>= 0).
        sampling: ``"union"`` or ``"share"`` (see the module docstring).
        memory_share: fraction of each batch taken from memory with ``sampling="share"``.
    """

    def __init__(self, mem_size: int, *, sampling: str = "union", memory_share: float = 0.5) -> None:
        if isinstance(mem_size, bool) or not isinstance(mem_size, int) or mem_size < 0:
            raise ValueError(f"mem_size must be an integer >= 0, got {mem_size!r}")
        if sampling not in REPLAY_SAMPLING:
            raise ValueError(f"sampling={sampling!r}; expected one of {REPLAY_SAMPLING}")
        if not 0.0 < memory_share < 1.0:
            raise ValueError(f"memory_share must lie in (0, 1), got {memory_share!r}")
        super().__init__(
            mem_size=mem_size,
            storage_policy=ClassBalancedBuffer(max_size=mem_size, adaptive_size=True),
        )
        self.sampling = sampling
        self.memory_share = memory_share

    @property
    def buffer(self) -> Any:
        """The memory as one Avalanche dataset (empty before the first update)."""
        return self.storage_policy.buffer

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        if self.sampling == "union" and len(self.buffer) > 0:
            strategy.adapted_dataset = strategy.adapted_dataset.concat(self.buffer.train())

    def before_training_exp(self, strategy: Any, num_workers: int = 0, shuffle: bool = True,
                            drop_last: bool = False, **kwargs: Any) -> None:
        if self.sampling != "share" or len(self.buffer) == 0:
            return
        batch = strategy.train_mb_size
        from_memory = min(max(1, round(self.memory_share * batch)), max(batch - 1, 1))
        strategy.dataloader = ReplayDataLoader(
            strategy.adapted_dataset,
            self.buffer.train(),
            oversample_small_tasks=True,
            batch_size=max(batch - from_memory, 1),
            batch_size_mem=from_memory,
            num_workers=num_workers,
            shuffle=shuffle,
            drop_last=drop_last,
        )

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.mem_size > 0:
            self.storage_policy.post_adapt(strategy, strategy.experience)

    def class_counts(self) -> dict[int, int]:
        """Stored samples per class."""
        return {int(c): len(g.buffer) for c, g in self.storage_policy.buffer_groups.items()}

    def buffer_ids(self) -> torch.Tensor:
        """Global sample ids in memory, ``[M]`` long (needs an indexed stream)."""
        ids = [_sample_ids(g.buffer) for g in self.storage_policy.buffer_groups.values()]
        return torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)

    def state_dict(self) -> dict[str, Any]:
        """The memory by global sample id: per class (in buffer order) its ids, reservoir
        weights (they decide future evictions) and capacity. Tensors and lists only, so it
        loads with ``weights_only=True``."""
        groups = self.storage_policy.buffer_groups
        return {
            "classes": [int(c) for c in groups],
            "ids": [_sample_ids(g.buffer) for g in groups.values()],
            "weights": [g._buffer_weights.clone() for g in groups.values()],
            "capacities": [int(g.max_size) for g in groups.values()],
            "seen_classes": sorted(int(c) for c in self.storage_policy.seen_classes),
        }

    def load_state_dict(self, state: dict[str, Any], train_stream: Any) -> None:
        """Rebuild the memory of :meth:`state_dict` from the (identical) ``train_stream``."""
        locate = _id_locations(train_stream)
        groups = {}
        for class_id, ids, weights, capacity in zip(
            state["classes"], state["ids"], state["weights"], state["capacities"], strict=True
        ):
            group = ReservoirSamplingBuffer(capacity)
            group.buffer = _subset_by_ids(ids, locate)
            group._buffer_weights = weights.clone()
            groups[class_id] = group
        self.storage_policy.buffer_groups = groups
        self.storage_policy.seen_classes = set(state["seen_classes"])


def _sample_ids(dataset: Any) -> torch.Tensor:
    if len(dataset) == 0:
        return torch.zeros(0, dtype=torch.long)
    if not hasattr(dataset, SAMPLE_INDEX_ATTR):
        raise ValueError(
            "the replay memory holds samples without a global index; build the stream with "
            "with_index=True to checkpoint or inspect memory ids"
        )
    return torch.as_tensor(list(getattr(dataset, SAMPLE_INDEX_ATTR)), dtype=torch.long)


def _id_locations(train_stream: Any) -> dict[int, tuple[Any, int]]:
    """Global sample id → (its experience dataset, position in it)."""
    locations = {}
    for experience in train_stream:
        for position, sample_id in enumerate(getattr(experience.dataset, SAMPLE_INDEX_ATTR)):
            locations[int(sample_id)] = (experience.dataset, position)
    return locations


def _subset_by_ids(ids: torch.Tensor, locate: dict[int, tuple[Any, int]]) -> Any:
    """The samples ``ids`` in that order, as subsets of their experience datasets (one subset
    per run of consecutive ids from the same experience)."""
    runs: list[tuple[Any, list[int]]] = []
    for sample_id in ids.tolist():
        if sample_id not in locate:
            raise ValueError(f"checkpointed memory id {sample_id} is not in the train stream")
        dataset, position = locate[sample_id]
        if runs and runs[-1][0] is dataset:
            runs[-1][1].append(position)
        else:
            runs.append((dataset, [position]))
    return concat_datasets([dataset.subset(positions) for dataset, positions in runs])
