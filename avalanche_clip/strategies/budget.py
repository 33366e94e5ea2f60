"""The equal step budget, as a mixin for any Avalanche ``SupervisedTemplate`` strategy.

Mixed in front of a strategy class (ours, or Avalanche's ``Naive``, ``EWC``, ``ICaRL``), it
replaces the training data loader by a :class:`~avalanche_clip.training.batching.ReplayBatchSampler`
over ``[new data ; memory]``: the same number of optimizer steps of the same batch size in every
experience for every method (``epoch_schedule``: by default ``train_epochs`` passes over the
experience's new data), the same batch composition (``replay_sampling``, ``memory_share``) and,
through a generator seeded by ``(seed, experience)``, the same batches for every method of a seed,
and the same random transforms of each item of them (:mod:`avalanche_clip.training.seeded_items`).

Under several processes (:mod:`avalanche_clip.training.distributed`) each process loads its shard of every
global batch, and evaluates every test sample (:meth:`make_eval_dataloader`).

Whatever put memory samples into the training set (our replay plugin, iCaRL's exemplars) appends
them after the new data and sets :attr:`memory_tail_size`. Each experience's
:attr:`optimizer_steps` and :attr:`samples_seen` are counted, for the records.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from avalanche_clip.training.batching import (
    ReplayBatchSampler,
    check_composition,
    derived_seed,
    epoch_schedule,
)
from avalanche_clip.training.distributed import ShardedBatchSampler, world_size
from avalanche_clip.training.seeded_items import SeededBatches, SeededItems


class BudgetedTrainingMixin:
    """See the module docstring. Call :meth:`_setup_budget` from ``__init__``."""

    seed: int
    replay_sampling: str
    memory_share: float
    steps_per_experience: int | None
    memory_tail_size: int
    optimizer_steps: int
    samples_seen: int
    batch_sampler: ReplayBatchSampler | None
    global_batch_size: int

    def _setup_budget(self, *, seed: int | None = None, replay_sampling: str = "union",
                      memory_share: float = 0.5, steps_per_experience: int | None = None) -> None:
        check_composition(replay_sampling, memory_share)
        if steps_per_experience is not None and (
            isinstance(steps_per_experience, bool) or not isinstance(steps_per_experience, int)
            or steps_per_experience < 1
        ):
            raise ValueError(f"steps_per_experience must be an integer >= 1 or None, got {steps_per_experience!r}")
        # No seed: draw one from torch's global generator, so torch.manual_seed still decides.
        self.seed = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else int(seed)
        self.replay_sampling = replay_sampling
        self.memory_share = float(memory_share)
        self.steps_per_experience = steps_per_experience
        self.memory_tail_size = 0
        self.optimizer_steps = 0
        self.samples_seen = 0
        self.batch_sampler = None

    # -- what a budget is ----------------------------------------------------------------------
    def budget_new_samples(self) -> int:
        """Size of the data the default budget passes over (the experience's new data)."""
        return len(self.adapted_dataset) - self.memory_tail_size  # type: ignore[attr-defined]

    def budget_schedule(self) -> list[int]:
        """Steps per epoch of the current experience."""
        return epoch_schedule(self.budget_new_samples(), self.train_mb_size,  # type: ignore[attr-defined]
                              self.train_epochs, self.steps_per_experience)  # type: ignore[attr-defined]

    def budget_record(self) -> dict[str, Any]:
        """What the last experience consumed, for its result record."""
        return {"optimizer_steps": self.optimizer_steps, "samples_seen": self.samples_seen}

    def memory_digest(self) -> str | None:
        """Digest of the memory's ids after the last experience (None: not an id memory)."""
        return None

    # -- Avalanche hooks -----------------------------------------------------------------------
    def train_dataset_adaptation(self, **kwargs: Any) -> None:
        self.memory_tail_size = 0
        super().train_dataset_adaptation(**kwargs)  # type: ignore[misc]

    def make_train_dataloader(self, num_workers: int = 0, shuffle: bool = True,
                              pin_memory: bool | None = None, persistent_workers: bool = False,
                              drop_last: bool = False, **kwargs: Any) -> None:
        dataset = self.adapted_dataset  # type: ignore[attr-defined]
        n_mem = self.memory_tail_size
        generator = torch.Generator().manual_seed(
            derived_seed(self.seed, "batches", self.clock.train_exp_counter)  # type: ignore[attr-defined]
        )
        self.batch_sampler = ReplayBatchSampler(
            len(dataset) - n_mem, n_mem, batch_size=self.train_mb_size,  # type: ignore[attr-defined]
            schedule=self.budget_schedule(), composition=self.replay_sampling,
            memory_share=self.memory_share, generator=generator,
        )
        device = self.device  # type: ignore[attr-defined]
        # each item's random transforms are seeded by its place in the global batches, so they
        # are the same whichever process loads it
        seeded = SeededBatches(self.batch_sampler, derived_seed(
            self.seed, "augmentation", self.clock.train_exp_counter))  # type: ignore[attr-defined]
        # several processes: each loads its shard of every global batch
        sampler = ShardedBatchSampler(seeded) if world_size() > 1 else seeded
        self.dataloader = DataLoader(
            SeededItems(dataset), batch_sampler=sampler, collate_fn=dataset.collate_fn,
            num_workers=num_workers, persistent_workers=persistent_workers and num_workers > 0,
            pin_memory=device.type == "cuda" if pin_memory is None else pin_memory,
        )
        self.optimizer_steps = 0
        self.samples_seen = 0
        # every global batch has this size (a pool smaller than its part is taken whole)
        self.global_batch_size = sum(b for _, b in self.batch_sampler.part_sizes())
        self.on_batches_planned(self.batch_sampler)

    def make_eval_dataloader(self, num_workers: int = 0, shuffle: bool = False,
                             pin_memory: bool | None = None, persistent_workers: bool = False,
                             **kwargs: Any) -> None:
        """Every process evaluates the whole experience, in order. Avalanche's loader would give
        each process a ``DistributedSampler`` share (padded with repeats) once a process group
        exists, so each rank's metrics would be those of its half of the test data and rank 0's
        records would differ from one process's."""
        if world_size() == 1:
            super().make_eval_dataloader(num_workers=num_workers, shuffle=shuffle,  # type: ignore[misc]
                                         pin_memory=pin_memory, persistent_workers=persistent_workers,
                                         **kwargs)
            return
        dataset = self.adapted_dataset  # type: ignore[attr-defined]
        device = self.device  # type: ignore[attr-defined]
        self.dataloader = DataLoader(
            dataset, batch_size=self.eval_mb_size, shuffle=False,  # type: ignore[attr-defined]
            collate_fn=dataset.collate_fn, num_workers=num_workers,
            persistent_workers=persistent_workers and num_workers > 0,
            pin_memory=device.type == "cuda" if pin_memory is None else pin_memory,
        )

    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        """Our hook (not Avalanche's): called once per experience, when its sampler exists and
        before the model adaptation and the optimizer (GDRO reads its inclusion probabilities,
        the staged methods split its steps into stages)."""

    def _after_update(self, **kwargs: Any) -> None:
        self.optimizer_steps += 1
        self.samples_seen += self.global_batch_size  # all processes' rows, when there are several
        super()._after_update(**kwargs)  # type: ignore[misc]
