"""Random transforms that do not depend on who loads an item: one seed per item of a batch.

A random training transform (open_clip's ``RandomResizedCrop``) draws from torch's global CPU
generator, so what it draws for an item depends on every draw the loading process made before:
under ``torchrun`` each process loads only its shard of every global batch, from its own
stream, and the items would be augmented differently from one process, whatever the seeds.
Here an item's transform draws from the generator seeded by ``(seed, pass, batch, position)``,
its place in the global batch sequence alone, so it is augmented alike in one process and under
any number of processes, with any number of loader workers, and after a resume:

- :class:`SeededBatches` turns a batch sampler's index lists into ``(index, item seed)`` lists
  (shard those with :class:`~avalanche_clip.training.distributed.ShardedBatchSampler`);
- :class:`SeededItems` loads ``dataset[index]`` with torch's CPU generator seeded by the item
  seed, and restores the generator once the batch is loaded, so loading leaves the process's own
  stream (dropout, what follows) as it was. On cached features it reads the whole batch at once
  (:mod:`avalanche_clip.training.batched_items`: the same items, seeded the same way).

Only torch's CPU generator is seeded: torchvision's transforms draw from it (a transform that
draws from Python's ``random`` or NumPy would still differ between processes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from avalanche_clip.training.batched_items import batched_fetch
from avalanche_clip.training.batching import derived_seed

_SEED_MASK = (1 << 63) - 1


class SeededBatches(Sampler[list[tuple[int, int]]]):
    """Each batch of ``batches`` as ``(index, item seed)`` pairs (see the module docstring).

    Each iteration is one pass (an epoch); the item seeds of pass ``e``, batch ``b``, position
    ``p`` are fixed by ``seed``.
    """

    def __init__(self, batches: Sampler[list[int]], seed: int) -> None:
        self.batches, self.seed, self._passes = batches, int(seed), 0

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        self._passes += 1
        for number, batch in enumerate(self.batches):
            base = derived_seed(self.seed, self._passes, number)  # one hash per batch, not per item
            yield [(int(index), (base + position) & _SEED_MASK) for position, index in enumerate(batch)]


class SeededItems(Dataset):
    """``dataset`` indexed by ``(index, item seed)`` pairs (see the module docstring)."""

    def __init__(self, dataset: Sized) -> None:
        self.dataset = dataset
        # cached features: a whole batch in one gather, the same items (None: item by item)
        self._fetch = batched_fetch(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        """The batch's items (the DataLoader asks for a whole batch at once: one save and
        restore of the generator per batch)."""
        saved = torch.get_rng_state()
        try:
            if self._fetch is not None:
                return self._fetch(keys)
            items = []
            for index, seed in keys:
                torch.default_generator.manual_seed(seed)  # the CPU generator alone: CUDA's is left alone
                items.append(self.dataset[index])  # type: ignore[index]
            return items
        finally:
            torch.set_rng_state(saved)
