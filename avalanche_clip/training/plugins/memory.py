"""A class-balanced exemplar memory whose contents depend only on the run's seed and the data.

Each training sample ``i`` gets a fixed priority ``ρ_seed(i) ∈ [0, 1)`` (a hash of the seed and
its global id, :func:`exemplar_priority`). After each experience the memory keeps, for every class
seen so far, the ``m_c`` samples of that class with the highest priority among the class's memory
and the experience's new samples, where the total ``M`` is split equally over the ``C`` seen
classes::

    m_c = ⌊M / C⌋ + [rank(c) < M mod C]      rank: order of first appearance (ties: class id)

Because the priorities are fixed, this is reservoir sampling per class (the kept samples are a
uniform random subset of everything the class has had), and the memory after experience ``t`` is
the same set of ids for every method of a seed, whatever the method does with its training
randomness. That makes the exemplars part of the protocol, not of the method.

The memory stores ids and where each id lives (an Avalanche dataset and a position in it), and
serves the stored samples as one Avalanche dataset (sorted by id) that keeps every data
attribute, the global ``sample_idx`` included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from avalanche.benchmarks.utils.utils import concat_datasets

from avalanche_clip.common.values import check_int
from avalanche_clip.scenarios import SAMPLE_INDEX_ATTR

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic is defined for uint64)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def exemplar_priority(ids: Iterable[int] | torch.Tensor, seed: int) -> torch.Tensor:
    """``ρ_seed(i)`` for each id: float64 in ``[0, 1)``, a pure function of ``(seed, i)``.

    Independent of every random number generator, so no training code can change it.
    """
    values = np.asarray(torch.as_tensor(ids, dtype=torch.long).cpu().numpy(), dtype=np.int64)
    with np.errstate(over="ignore"):
        keyed = _splitmix64(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF) ^ _splitmix64(values.astype(np.uint64)))
    return torch.from_numpy((keyed >> np.uint64(11)).astype(np.float64) / float(1 << 53))


def ids_digest(ids: Iterable[int]) -> str:
    """SHA-256 hex digest of the sorted ids written as comma-separated decimals (``""`` if none)."""
    text = ",".join(str(int(i)) for i in sorted(int(i) for i in ids))
    return hashlib.sha256(text.encode()).hexdigest()


def balanced_capacities(classes_in_order: list[int], total: int) -> dict[int, int]:
    """``m_c`` of the module docstring for classes listed in order of first appearance."""
    if not classes_in_order:
        return {}
    base, extra = divmod(total, len(classes_in_order))
    return {c: base + (1 if rank < extra else 0) for rank, c in enumerate(classes_in_order)}


class ClassBalancedMemory:
    """``max_size`` exemplars split equally over the seen classes, chosen by seeded priority.

    Args:
        max_size: total number of stored samples ``M`` (>= 0).
        seed: the priority seed (the run's seed: every method of a run shares the memory).

    Example::

        memory = ClassBalancedMemory(200, seed=0)
        memory.update(indexed_experience_dataset)      # after training each experience
        memory.dataset()                               # the stored samples, sorted by id
        memory.digest()                                # SHA-256 of the sorted ids
    """

    def __init__(self, max_size: int, seed: int = 0) -> None:
        self.max_size = check_int("mem_size", max_size, 0)  # StrategySetup's and the config's rule
        self.seed = int(seed)
        self.class_order: list[int] = []  # classes in order of first appearance
        self.members: dict[int, list[int]] = {}  # class -> stored ids, highest priority first
        self._where: dict[int, tuple[Any, int]] = {}  # stored id -> (dataset, position)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.members.values())

    # ------------------------------------------------------------------ contents
    def ids(self) -> torch.Tensor:
        """The stored global ids, sorted, ``[len(self)]`` long."""
        ids = sorted(i for members in self.members.values() for i in members)
        return torch.tensor(ids, dtype=torch.long)

    def class_counts(self) -> dict[int, int]:
        """Stored samples per seen class."""
        return {c: len(self.members.get(c, [])) for c in self.class_order}

    def digest(self) -> str:
        """:func:`ids_digest` of the stored ids."""
        return ids_digest(self.ids().tolist())

    def dataset(self, ids: Iterable[int] | None = None) -> Any:
        """The stored samples (or the stored subset ``ids``) as one Avalanche dataset, sorted by
        id; ``None`` when empty."""
        wanted = self.ids().tolist() if ids is None else sorted(int(i) for i in ids)
        if not wanted:
            return None
        runs: list[tuple[Any, list[int]]] = []
        for sample_id in wanted:
            if sample_id not in self._where:
                raise KeyError(f"sample id {sample_id} is not in the memory")
            data, position = self._where[sample_id]
            if runs and runs[-1][0] is data:
                runs[-1][1].append(position)
            else:
                runs.append((data, [position]))
        return concat_datasets([data.subset(positions) for data, positions in runs])

    # ------------------------------------------------------------------ updates
    def update(self, dataset: Any, classes: Sequence[int] | None = None) -> list[int]:
        """Offer every sample of ``dataset`` (an experience's data, with the ``sample_idx``
        attribute and ``targets``) and re-balance; returns the ids newly admitted, sorted.
        ``classes``: the class of each sample when it is not its target (labels that restart in
        each task of a task-incremental benchmark name different classes)."""
        ids = [int(i) for i in sample_ids(dataset)]
        targets = [int(t) for t in (dataset.targets if classes is None else classes)]
        if len(ids) != len(targets):
            raise ValueError(f"{len(ids)} sample ids but {len(targets)} targets")
        by_class: dict[int, list[int]] = {}
        for position, label in enumerate(targets):
            by_class.setdefault(label, []).append(position)
        for label in sorted(by_class):
            if label not in self.class_order:
                self.class_order.append(label)
        capacity = balanced_capacities(self.class_order, self.max_size)
        before = set(self.ids().tolist())
        offered = {ids[p]: (dataset, p) for positions in by_class.values() for p in positions}
        for label in self.class_order:
            candidates = self.members.get(label, []) + [ids[p] for p in by_class.get(label, [])]
            self.members[label] = self._top(candidates, capacity[label])
        kept = {i for members in self.members.values() for i in members}
        self._where = {i: self._where[i] if i in self._where else offered[i] for i in kept}
        return sorted(kept - before)

    def _top(self, candidates: list[int], k: int) -> list[int]:
        if k <= 0 or not candidates:
            return []
        unique = list(dict.fromkeys(candidates))
        priority = exemplar_priority(unique, self.seed)
        order = torch.argsort(priority, descending=True, stable=True)[:k]
        return [unique[i] for i in order.tolist()]

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Tensors, ints and lists only (loads with ``weights_only=True``)."""
        return {
            "max_size": self.max_size,
            "seed": self.seed,
            "class_order": list(self.class_order),
            "members": [torch.tensor(self.members.get(c, []), dtype=torch.long) for c in self.class_order],
        }

    def load_state_dict(self, state: dict[str, Any], locate: Callable[[int], tuple[Any, int]]) -> None:
        """Restore :meth:`state_dict`; ``locate(id)`` gives the (dataset, position) of an id in
        the identical train stream (e.g. :func:`id_locator`)."""
        if int(state["max_size"]) != self.max_size or int(state["seed"]) != self.seed:
            raise ValueError(
                f"memory state has mem_size={state['max_size']}, seed={state['seed']}; this memory "
                f"has mem_size={self.max_size}, seed={self.seed}"
            )
        self.class_order = [int(c) for c in state["class_order"]]
        self.members = {c: ids.tolist() for c, ids in zip(self.class_order, state["members"], strict=True)}
        self._where = {i: locate(i) for members in self.members.values() for i in members}


def sample_ids(dataset: Any) -> list[int]:
    """The global ids of an Avalanche dataset's samples (its ``sample_idx`` attribute)."""
    if len(dataset) == 0:
        return []
    attribute = getattr(dataset, SAMPLE_INDEX_ATTR, None)
    if attribute is None:
        raise ValueError(
            "the replay memory needs each sample's global id (the 'sample_idx' data attribute); "
            "build the stream with avalanche_clip.scenarios.build_scenario, or let the strategy "
            "assign ids to your own benchmark's experiences"
        )
    return [int(i) for i in attribute]


def id_locator(datasets: Iterable[Any]) -> Callable[[int], tuple[Any, int]]:
    """``id → (dataset, position)`` over indexed datasets (an error naming an unknown id)."""
    where: dict[int, tuple[Any, int]] = {}
    for data in datasets:
        for position, sample_id in enumerate(sample_ids(data)):
            where[sample_id] = (data, position)

    def locate(sample_id: int) -> tuple[Any, int]:
        if sample_id not in where:
            raise ValueError(f"checkpointed memory id {sample_id} is not in the train stream")
        return where[sample_id]

    return locate
