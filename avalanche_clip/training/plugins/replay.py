"""Class-balanced replay: the one memory every replay method of a comparison shares.

The plugin keeps a :class:`~avalanche_clip.training.plugins.memory.ClassBalancedMemory` (fixed total
size, equal share per seen class, exemplars chosen by a priority seeded with the run's seed) and
appends its samples after the new data of each experience, setting the strategy's step budget's
``memory_tail_size``. How batches mix the two parts (``"union"`` or a memory ``"share"``) and how
many steps an experience takes is decided by the strategy's step budget
(:mod:`avalanche_clip.strategies.budget`), the same for every method.

``mem_size=0`` means no replay. Replayed samples are subsets of the experience datasets, so they
keep every data attribute, the global ``sample_idx`` included.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import ReplayPlugin

from avalanche_clip.training.batching import COMPOSITIONS
from avalanche_clip.training.plugins.memory import ClassBalancedMemory, id_locator

REPLAY_SAMPLING = COMPOSITIONS


def experience_dataset(strategy: Any) -> Any:
    """The current experience's training data with global ids (the strategy's own indexed copy
    when it assigned ids itself)."""
    return getattr(strategy, "indexed_experience_dataset", None) or strategy.experience.dataset


def check_no_replay_plugin(owner: str, plugins: Any) -> None:
    """``ValueError`` naming an Avalanche ``ReplayPlugin`` among ``plugins``: our strategies
    replay from their own memory (``mem_size``), whose items carry the global sample ids the
    losses and the protocol need; ``ReplayPlugin``'s buffer items have none (its loader would mix
    the two kinds of item in one batch) and its batches would bypass the step budget."""
    for plugin in plugins or ():
        if isinstance(plugin, ReplayPlugin):
            raise ValueError(
                f"{owner} keeps its own replay memory: instead of {type(plugin).__name__}"
                f"(mem_size={plugin.mem_size}), pass {owner}(mem_size={plugin.mem_size}, ...) "
                "(batches drawn from new data and memory alike; replay_sampling='share', "
                "memory_share=0.5 gives each batch a fixed memory half, as ReplayPlugin does)"
            )


class ClassBalancedReplayPlugin(SupervisedPlugin, supports_distributed=True):  # the same on every process
    """Replay from a class-balanced memory of fixed total size.

    Args:
        mem_size: total number of stored samples (>= 0).
        seed: the exemplar-priority seed (the run's seed).
    """

    def __init__(self, mem_size: int, *, seed: int = 0) -> None:
        super().__init__()
        self.memory = ClassBalancedMemory(mem_size, seed=seed)

    @property
    def mem_size(self) -> int:
        return self.memory.max_size

    @property
    def buffer(self) -> Any:
        """The stored samples as one Avalanche dataset (``None`` while empty)."""
        return self.memory.dataset()

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        stored = self.memory.dataset()
        if stored is not None:
            strategy.adapted_dataset = strategy.adapted_dataset.concat(stored.train())
            budget = getattr(strategy, "budget", None)  # none: Avalanche's loader, over the whole
            if budget is not None:
                budget.memory_tail_size = len(stored)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.mem_size > 0:
            dataset = experience_dataset(strategy)
            heads = getattr(strategy.model, "task_heads", None)  # labels restarting in each task
            self.memory.update(dataset, None if heads is None else heads.dataset_classes(dataset))

    def class_counts(self) -> dict[int, int]:
        """Stored samples per class."""
        return self.memory.class_counts()

    def buffer_ids(self) -> torch.Tensor:
        """Global sample ids in memory, sorted, ``[M]`` long."""
        return self.memory.ids()

    def digest(self) -> str:
        """SHA-256 of the sorted ids in memory (see ``ids_digest``)."""
        return self.memory.digest()

    def state_dict(self) -> dict[str, Any]:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict[str, Any], datasets: Any) -> None:
        """Rebuild the memory of :meth:`state_dict` from the (identical) training data:
        ``datasets``, the experience datasets with global ids (``plugin_states`` passes the
        strategy's, ids assigned to a plain benchmark included)."""
        self.memory.load_state_dict(state, id_locator(datasets))
