"""How training mini-batches are drawn: one mechanism and one step budget for every method.

A training set is laid out as ``[new data D_t (n_new items) ; memory M (n_mem items)]``. Every
method draws its batches of size ``B`` from it with :class:`ReplayBatchSampler`, in one of two
compositions (set once for a whole comparison):

- ``"union"``: uniform over ``D_t ∪ M`` (each batch a uniform ``B``-subset of the
  ``n = n_new + n_mem`` items), the sampling under which GCL's and GDRO's estimators are unbiased;
- ``"share"``: ``b_mem = round(s·B)`` items from memory and ``B − b_mem`` from new data, each
  part a uniform subset of its pool (memory is then over-sampled by ``s·n/n_mem``).

Within a pool, batches walk through a fresh random permutation and drop its incomplete tail, so
every batch holds distinct items and is marginally a uniform subset (a pool smaller than its part
of the batch is taken whole). The number of batches per epoch is the budget, not the data size:
by default ``⌈n_new / B⌉`` (one pass over the experience's *new* data), whatever the memory adds,
so every method takes the same optimizer steps of the same batch size.

Class inclusion probabilities (for GDRO's Horvitz–Thompson weights): for a uniform ``b``-subset
of a pool of ``n`` items of which ``n_k`` have class ``k``,
``P(k ∉ batch) = C(n − n_k, b) / C(n, b)``; with two independent parts the miss probabilities
multiply, and ``π_k = 1 − P(k ∉ batch)``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from avalanche_clip.common.values import check_choice, is_int, is_number

COMPOSITIONS = ("union", "share")


def check_composition(composition: str, memory_share: float) -> None:
    """``ValueError`` naming a bad composition or memory share."""
    check_choice("replay_sampling", composition, COMPOSITIONS)
    if not is_number(memory_share) or not 0.0 < memory_share < 1.0:
        raise ValueError(f"memory_share must lie in (0, 1), got {memory_share!r}")


def check_steps_per_experience(steps_per_experience: int | None) -> None:
    """``ValueError`` unless the explicit step budget is None (``train_epochs`` passes) or >= 1."""
    if steps_per_experience is not None and (not is_int(steps_per_experience) or steps_per_experience < 1):
        raise ValueError(f"steps_per_experience must be an integer >= 1 or null (None), "
                         f"got {steps_per_experience!r}")


def epoch_schedule(n_new: int, batch_size: int, epochs: int,
                   steps_per_experience: int | None = None) -> list[int]:
    """Optimizer steps in each epoch of an experience.

    Default ``[⌈n_new / B⌉] * epochs``; with an explicit ``steps_per_experience`` S, S steps spread
    over the epochs (the first ``S mod epochs`` epochs take one more).
    """
    if epochs < 1:
        return []
    if steps_per_experience is None:
        return [max(1, math.ceil(n_new / batch_size))] * epochs
    base, extra = divmod(int(steps_per_experience), epochs)
    return [base + (1 if e < extra else 0) for e in range(epochs)]


class _Pool:
    """Distinct items of ``range(offset, offset + n)``, drawn in chunks from a walk through
    random permutations (a chunk never straddles two permutations)."""

    def __init__(self, n: int, offset: int, generator: torch.Generator) -> None:
        self.n, self.offset, self.generator = n, offset, generator
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def take(self, k: int) -> list[int]:
        k = min(k, self.n)
        if k <= 0:
            return []
        if self.position + k > len(self.order):
            self.order = torch.randperm(self.n, generator=self.generator)
            self.position = 0
        chunk = self.order[self.position : self.position + k]
        self.position += k
        return (chunk + self.offset).tolist()


class ReplayBatchSampler(Sampler[list[int]]):
    """Batches of positions into ``[new ; memory]``, a fixed number per epoch.

    Args:
        n_new, n_mem: sizes of the two parts of the training set (memory last).
        batch_size: ``B``.
        schedule: steps in each epoch (:func:`epoch_schedule`); ``iter`` yields the next epoch's
            batches, continuing the permutations where the previous epoch left them.
        composition: ``"union"`` or ``"share"`` (module docstring).
        memory_share: ``s`` for ``"share"``.
        generator: the private generator that draws every permutation.
    """

    def __init__(self, n_new: int, n_mem: int, *, batch_size: int, schedule: Sequence[int],
                 composition: str = "union", memory_share: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        check_composition(composition, memory_share)
        if n_new < 0 or n_mem < 0 or n_new + n_mem == 0:
            raise ValueError(f"nothing to sample: n_new={n_new}, n_mem={n_mem}")
        self.n_new, self.n_mem, self.batch_size = n_new, n_mem, batch_size
        self.schedule = list(schedule)
        self.composition = composition if n_mem > 0 and n_new > 0 else "union"
        self.memory_share = memory_share
        generator = generator or torch.Generator().manual_seed(0)
        if self.composition == "union":
            self._pools = [_Pool(n_new + n_mem, 0, generator)]
            self._sizes = [batch_size]
        else:
            b_mem = min(max(1, round(memory_share * batch_size)), batch_size - 1, n_mem)
            b_new = batch_size - b_mem
            self._pools = [_Pool(n_new, 0, generator), _Pool(n_mem, n_new, generator)]
            self._sizes = [b_new, b_mem]
        self._epoch = 0

    def part_sizes(self) -> list[tuple[int, int]]:
        """``(pool size, items per batch)`` of each part."""
        return [(pool.n, min(k, pool.n)) for pool, k in zip(self._pools, self._sizes, strict=True)]

    def __len__(self) -> int:
        return self.schedule[min(self._epoch, len(self.schedule) - 1)] if self.schedule else 0

    def __iter__(self) -> Iterator[list[int]]:
        steps = len(self)
        self._epoch += 1
        for _ in range(steps):
            yield [i for pool, k in zip(self._pools, self._sizes, strict=True) for i in pool.take(k)]

    def inclusion_probabilities(self, targets: Sequence[int], num_classes: int) -> torch.Tensor:
        """``π_k``, the probability that class ``k`` has at least one item in a batch, ``[K]``
        float64 (0 for classes absent from the training set); ``targets`` are the labels of the
        ``n_new + n_mem`` items in position order."""
        labels = torch.as_tensor(list(targets), dtype=torch.long)
        if len(labels) != self.n_new + self.n_mem:
            raise ValueError(f"{len(labels)} targets for {self.n_new + self.n_mem} items")
        miss = torch.ones(num_classes, dtype=torch.float64)
        for pool, (n, b) in zip(self._pools, self.part_sizes(), strict=True):
            counts = torch.bincount(labels[pool.offset : pool.offset + n], minlength=num_classes)
            miss *= torch.tensor([_miss_probability(n, int(c), b) for c in counts], dtype=torch.float64)
        return 1.0 - miss


def _log_binomial(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _miss_probability(n: int, n_k: int, b: int) -> float:
    """``C(n − n_k, b) / C(n, b)``: a uniform ``b``-subset of ``n`` items misses all ``n_k``."""
    if n_k == 0:
        return 1.0
    if b > n - n_k:
        return 0.0
    return math.exp(_log_binomial(n - n_k, b) - _log_binomial(n, b))


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts`` (run seed, experience, purpose), stable across processes."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
