"""The equal step budget: one object a strategy owns (``strategy.budget``).

A :class:`StepBudget` builds a strategy's training data loader: a
:class:`~avalanche_clip.training.batching.ReplayBatchSampler` over ``[new data ; memory]``, the
same number of optimizer steps of the same batch size in every experience for every method
(``epoch_schedule``: by default ``train_epochs`` passes over the experience's new data), the same
batch composition (``replay_sampling``, ``memory_share``) and, through a generator seeded by
``(seed, experience)``, the same batches for every method of a seed, and the same random
transforms of each item of them (:mod:`avalanche_clip.training.seeded_items`).

Under several processes (:mod:`avalanche_clip.training.distributed`) each process loads its shard
of every global batch, and evaluates every test sample (:func:`whole_eval_loader`).

Whatever put memory samples into the training set (our replay plugin, iCaRL's exemplars) appends
them after the new data and sets :attr:`StepBudget.memory_tail_size`. Each experience's
:attr:`~StepBudget.optimizer_steps` and :attr:`~StepBudget.samples_seen` are counted, for the
records.

Its owner (:class:`~avalanche_clip.strategies.base.CLIPStrategyBase`, the iCaRL we host on
Avalanche's class) overrides four of Avalanche's template methods with one call each::

    train_dataset_adaptation   budget.memory_tail_size = 0, before the plugins append memory
    make_train_dataloader      dataloader = budget.train_loader(adapted_dataset, ...)
    make_eval_dataloader       whole_eval_loader(...) under several processes
    _after_update              budget.count_step()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from avalanche.benchmarks.utils import AvalancheDataset
from torch.utils.data import DataLoader

from avalanche_clip.training.batched_items import BatchedItems
from avalanche_clip.training.batching import (
    ReplayBatchSampler,
    check_composition,
    check_steps_per_experience,
    derived_seed,
    epoch_schedule,
)
from avalanche_clip.training.distributed import ShardedBatchSampler, world_size
from avalanche_clip.training.seeded_items import SeededBatches, SeededItems


class StepBudget:
    """The protocol's step budget and batches for one strategy (module docstring).

    Args:
        seed: seeds the batches and their items' random transforms (None: drawn from torch's
            global generator, so ``torch.manual_seed`` still decides).
        replay_sampling: ``"union"`` (uniform over new data ∪ memory) or ``"share"``.
        memory_share: memory fraction of a batch with ``replay_sampling="share"``.
        steps_per_experience: explicit steps per experience (None: ``epochs`` passes over each
            experience's new data).

    Attributes, per experience:
        memory_tail_size: how many items at the end of the training set come from memory (set
            by whatever appended them; 0 at each experience's start).
        sampler: the experience's batch sampler (None before the first).
        global_batch_size: rows of every global batch, all processes together.
        optimizer_steps, samples_seen: counted by :meth:`count_step`.
    """

    def __init__(self, *, seed: int | None = None, replay_sampling: str = "union",
                 memory_share: float = 0.5, steps_per_experience: int | None = None) -> None:
        check_composition(replay_sampling, memory_share)
        check_steps_per_experience(steps_per_experience)
        self.seed = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else int(seed)
        self.replay_sampling = replay_sampling
        self.memory_share = float(memory_share)
        self.steps_per_experience = steps_per_experience
        self.memory_tail_size = 0
        self.sampler: ReplayBatchSampler | None = None
        self.global_batch_size = 0
        self.optimizer_steps = 0
        self.samples_seen = 0

    def schedule(self, new_samples: int, batch_size: int, epochs: int) -> list[int]:
        """Steps per epoch of an experience with ``new_samples`` new items."""
        return epoch_schedule(new_samples, batch_size, epochs, self.steps_per_experience)

    def train_loader(self, dataset: AvalancheDataset, *, batch_size: int, epochs: int,
                     experience: int, device: torch.device, num_workers: int = 0,
                     pin_memory: bool | None = None, persistent_workers: bool = False) -> DataLoader:
        """The loader of experience number ``experience`` (0-based) over ``dataset``, its last
        :attr:`memory_tail_size` items the memory's; resets the step counts."""
        n_mem = self.memory_tail_size
        n_new = len(dataset) - n_mem
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "batches", experience))
        self.sampler = ReplayBatchSampler(
            n_new, n_mem, batch_size=batch_size, schedule=self.schedule(n_new, batch_size, epochs),
            composition=self.replay_sampling, memory_share=self.memory_share, generator=generator,
        )
        # each item's random transforms are seeded by its place in the global batches, so they
        # are the same whichever process loads it
        seeded = SeededBatches(self.sampler, derived_seed(self.seed, "augmentation", experience))
        # several processes: each loads its shard of every global batch
        sampler = ShardedBatchSampler(seeded) if world_size() > 1 else seeded
        loader = DataLoader(
            SeededItems(dataset), batch_sampler=sampler, collate_fn=dataset.collate_fn,
            num_workers=num_workers, persistent_workers=persistent_workers and num_workers > 0,
            pin_memory=device.type == "cuda" if pin_memory is None else pin_memory,
        )
        self.optimizer_steps = 0
        self.samples_seen = 0
        # every global batch has this size (a pool smaller than its part is taken whole)
        self.global_batch_size = sum(b for _, b in self.sampler.part_sizes())
        return loader

    def count_step(self) -> None:
        """One optimizer step on one global batch."""
        self.optimizer_steps += 1
        self.samples_seen += self.global_batch_size  # all processes' rows, when there are several

    def record(self) -> dict[str, int]:
        """What the last experience consumed, for its result record."""
        return {"optimizer_steps": self.optimizer_steps, "samples_seen": self.samples_seen}


def whole_eval_loader(dataset: AvalancheDataset, *, batch_size: int, device: torch.device,
                      num_workers: int = 0, pin_memory: bool | None = None,
                      persistent_workers: bool = False) -> DataLoader:
    """Every sample of ``dataset``, in order: what each process evaluates under several
    processes. Avalanche's loader would give each process a ``DistributedSampler`` share (padded
    with repeats) once a process group exists, so each rank's metrics would be those of its half
    of the test data and rank 0's records would differ from one process's. Cached features are
    read a batch at a time (:class:`~avalanche_clip.training.batched_items.BatchedItems`)."""
    return DataLoader(
        BatchedItems(dataset), batch_size=batch_size, shuffle=False, collate_fn=dataset.collate_fn,
        num_workers=num_workers, persistent_workers=persistent_workers and num_workers > 0,
        pin_memory=device.type == "cuda" if pin_memory is None else pin_memory,
    )


def make_train_dataloader(strategy: Any, *, num_workers: int, pin_memory: bool | None,
                          persistent_workers: bool) -> None:
    """A strategy's training loader: its step budget's (``strategy.budget``), over its adapted
    dataset (Avalanche's ``shuffle`` and ``drop_last`` do not apply: the budget decides)."""
    strategy.dataloader = strategy.budget.train_loader(
        strategy.adapted_dataset, batch_size=strategy.train_mb_size, epochs=strategy.train_epochs,
        experience=strategy.clock.train_exp_counter, device=strategy.device, num_workers=num_workers,
        pin_memory=pin_memory, persistent_workers=persistent_workers,
    )


def make_eval_dataloader(strategy: Any, avalanche_make: Callable[..., None], *, num_workers: int,
                         shuffle: bool, pin_memory: bool | None, persistent_workers: bool,
                         **kwargs: Any) -> None:
    """A strategy's evaluation loader: :func:`whole_eval_loader` of the strategy's adapted
    dataset, which under several processes has every process evaluate every sample, and in one
    is Avalanche's loader (every sample in order, ``eval_mb_size`` a batch, the dataset's
    collate) reading cached features a batch at a time. Avalanche's own (``avalanche_make``,
    the template's ``make_eval_dataloader``) where the call asks for more (a shuffle, extra
    loader arguments)."""
    if world_size() == 1 and (shuffle or kwargs):
        avalanche_make(num_workers=num_workers, shuffle=shuffle, pin_memory=pin_memory,
                       persistent_workers=persistent_workers, **kwargs)
        return
    strategy.dataloader = whole_eval_loader(
        strategy.adapted_dataset, batch_size=strategy.eval_mb_size, device=strategy.device,
        num_workers=num_workers, pin_memory=pin_memory, persistent_workers=persistent_workers,
    )


__all__ = ["StepBudget", "make_eval_dataloader", "make_train_dataloader", "whole_eval_loader"]
