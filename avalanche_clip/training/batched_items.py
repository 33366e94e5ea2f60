"""A batch of cached-feature items in one gather, instead of one Avalanche lookup per item.

Avalanche reads item ``i`` of a dataset by walking its tree of ``FlatData`` nodes (subset
indices, concatenations, one transform group per node) from the root to a leaf, applying each
node's transforms on the way back up, then appending the data attributes (``sample_idx``,
``targets_task_labels``). On cached features the leaf lookup is a row of a tensor, and the walk
costs ~100 µs an item: a third of a default run's steps (``benchmarks/README.md``).

:func:`batched_fetch` reads a dataset's tree once and returns a function that gives the items of
a whole batch as Avalanche's ``dataset[i]`` would, value for value and type for type, by
resolving each index to its leaf row in a tight loop and gathering the rows of each leaf in one
indexing operation. It understands the trees the cached protocol builds:

- nodes: Avalanche's ``_FlatDataWithTransform`` (subset indices, concatenation);
- leaves: :class:`~avalanche_clip.features.views.ViewStack` and
  :class:`~avalanche_clip.scenarios.rebuild.TensorInputs`;
- transforms on the input (alone or as the first entry of a ``TupleTransform``): none,
  :class:`~avalanche_clip.features.views.DrawViews` (a ``ViewStack`` leaf's training views, each
  item's ``randperm`` drawn from torch's CPU generator seeded by the item's seed, exactly as the
  per-item path draws it) and :class:`~avalanche_clip.features.views.UnaugmentedView` (slot 0
  of a ``ViewStack`` item or of a ``TensorInputs`` row, as test features are stored
  ``[N, 1, ...]``).

Any other tree (image files, an unknown transform, a plain ``FlatData`` node) gives ``None``,
and the caller keeps the per-item path: the fast path never guesses.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.benchmarks.utils.data import _FlatDataWithTransform
from avalanche.benchmarks.utils.flat_data import ConstantSequence, FlatData
from avalanche.benchmarks.utils.transforms import MultiParamTransform, TupleTransform
from torch.utils.data import Dataset

from avalanche_clip.features.views import DrawViews, UnaugmentedView, ViewStack
from avalanche_clip.scenarios.rebuild import TensorInputs


class _Unsupported(Exception):
    """The tree holds something the fast path does not reproduce."""


class _Slot:
    """A leaf as reached along one path: the leaf, what the path's transforms do to its input
    (``"rows"``: nothing; ``"draw"``: :class:`DrawViews`; ``"unaugmented"``: slot 0) and whether
    a transform group turned the item into a list on the way."""

    __slots__ = ("leaf", "op", "draw", "listed")

    def __init__(self, leaf: Any, transforms: list[Any], listed: bool) -> None:
        self.leaf, self.listed, self.draw = leaf, listed, None
        if not transforms:
            self.op = "rows"
        elif len(transforms) == 1 and isinstance(leaf, ViewStack) and isinstance(transforms[0], DrawViews):
            self.op, self.draw = "draw", transforms[0]
        elif len(transforms) == 1 and isinstance(transforms[0], UnaugmentedView):
            self.op = "unaugmented"
        else:
            raise _Unsupported(f"transforms {transforms} on {type(leaf).__name__}")


class _Node:
    """One ``FlatData`` node: its subset indices, its children's cumulative sizes and, per
    child, a compiled node or a leaf.

    Two kinds of tree: an item tree (``group`` set: ``_FlatDataWithTransform`` nodes, leaves
    :class:`_Slot`) and a data attribute's (``group`` None: plain ``FlatData`` nodes, leaves
    the lists of values)."""

    __slots__ = ("indices", "bounds", "size", "children")

    def __init__(self, flat: Any, group: str | None, outer: list[Any], listed: bool) -> None:
        if type(flat) is not (FlatData if group is None else _FlatDataWithTransform):
            raise _Unsupported(f"node {type(flat).__name__}")
        own: list[Any] = []
        if group is not None:
            for groups in (flat._frozen_transform_groups, flat._transform_groups):
                if groups is not None:
                    listed = True  # TransformGroups.__call__ returns a list, even for an empty group
                    own.extend(_input_transforms(groups.transform_groups[group]))
        chain = own + outer  # this node's transforms apply before those of the nodes above it
        self.indices = flat._indices
        self.bounds = list(flat._cumulative_sizes)
        self.size = len(flat)
        self.children: list[Any] = []
        for child in flat._datasets:
            if group is None and isinstance(child, (list, tuple, ConstantSequence)):
                self.children.append(_Slot(child, [], listed))
            elif group is not None and isinstance(child, (ViewStack, TensorInputs)):
                self.children.append(_Slot(child, chain, listed))
            else:
                self.children.append(_Node(child, group, chain, listed))

    def draws(self) -> bool:
        """Whether some path of the tree draws random views."""
        return any(child.draws() if isinstance(child, _Node) else child.draw is not None
                   for child in self.children)

    def resolve(self, index: int) -> tuple[_Slot, int]:
        """The leaf and its row of item ``index`` (Avalanche's ``_get_idx``, all the way down)."""
        node: _Node = self
        while True:
            if index >= node.size:
                raise IndexError(index)
            if node.indices is not None:
                index = int(node.indices[index])
            if len(node.bounds) == 1:
                number = 0
            else:
                number = bisect.bisect_right(node.bounds, index)
                if number:
                    index -= node.bounds[number - 1]
            child = node.children[number]
            if isinstance(child, _Slot):
                return child, index
            node = child


def _attribute_reader(attribute: Any) -> Callable[[int], Any]:
    """``index -> attribute[index]`` through a compiled tree (``_Unsupported`` if it is not a
    ``FlatData`` of lists, or a ``ConstantSequence``)."""
    data = attribute.data
    if isinstance(data, ConstantSequence):
        return data.__getitem__
    return _AttributeReader(_Node(data, None, [], False))


class _AttributeReader:
    """``index -> value`` of a data attribute's compiled tree."""

    def __init__(self, root: _Node) -> None:
        self.root = root

    def __call__(self, index: int) -> Any:
        slot, row = self.root.resolve(index)
        return slot.leaf[row]


def _input_transforms(transform: Any) -> list[Any]:
    """The transforms a group applies to an item's input, or ``_Unsupported``."""
    if transform is None:
        return []
    if isinstance(transform, TupleTransform):
        found = []
        for position, part in enumerate(transform.transforms):
            if part is None:
                continue
            if position != 0 or not isinstance(part, (DrawViews, UnaugmentedView)):
                raise _Unsupported(f"tuple transform {transform}")
            found.append(part)
        return found
    if isinstance(transform, MultiParamTransform) or not isinstance(transform, (DrawViews, UnaugmentedView)):
        raise _Unsupported(f"transform {transform}")
    return [transform]


def batched_fetch(dataset: Any, *, seeded: bool = True) -> _Fetch | None:
    """A function ``keys -> items`` equal to ``[dataset[i] for i, _ in keys]`` with each item's
    random transform drawn under torch's CPU generator seeded by its seed (the caller saves and
    restores the generator), or ``None`` where the tree is not one the module docstring lists.

    Args:
        dataset: an ``AvalancheDataset`` (anything else gives ``None``).
        seeded: False where items are not seeded (the per-item path would draw from the
            generator as it stands): then a tree with a random transform gives ``None``.
    """
    if not isinstance(dataset, AvalancheDataset):
        return None
    flat = dataset._flat_data
    try:
        root = _Node(flat, flat._transform_groups.current_group, [], False)
        attributes = [_attribute_reader(a) for a in dataset._data_attributes.values() if a.use_in_getitem]
        if not seeded and root.draws():
            raise _Unsupported("a random transform, unseeded")
    except _Unsupported:
        return None

    return _Fetch(root, attributes)


class _Fetch:
    """What :func:`batched_fetch` returns (a class, not a closure: loader workers pickle it)."""

    def __init__(self, root: _Node, attributes: list[Callable[[int], Any]]) -> None:
        self.root, self.attributes = root, attributes

    def __call__(self, keys: Sequence[tuple[int, int]]) -> list[Any]:
        resolved = [self.root.resolve(int(index)) for index, _ in keys]
        inputs = _gather_inputs(resolved, keys)
        items: list[Any] = []
        for (index, _), (slot, row), x in zip(keys, resolved, inputs, strict=True):
            # a list once a transform group or an appended attribute made it one, as Avalanche's
            item = [x, slot.leaf.targets[row], *(read(int(index)) for read in self.attributes)]
            items.append(item if slot.listed or self.attributes else tuple(item))
        return items


def _gather_inputs(resolved: list[tuple[_Slot, int]], keys: Sequence[tuple[int, int]]) -> list[Any]:
    """Every item's input: the rows of each (leaf, transform) gathered in one indexing call."""
    inputs: list[Any] = [None] * len(resolved)
    groups: dict[int, tuple[_Slot, list[int], list[int], list[list[int]]]] = {}
    for position, ((slot, row), (_, seed)) in enumerate(zip(resolved, keys, strict=True)):
        group = groups.setdefault(id(slot), (slot, [], [], []))
        group[1].append(position)
        group[2].append(row)
        if slot.draw is not None:
            torch.default_generator.manual_seed(seed)  # as the per-item path seeds each item
            group[3].append(slot.draw.draw())
    for slot, positions, rows, drawn in groups.values():
        leaf, index = slot.leaf, torch.tensor(rows, dtype=torch.long)
        if isinstance(leaf, TensorInputs):
            parts: Any = leaf.inputs[index] if slot.op == "rows" else leaf.inputs[index][:, 0]
        elif slot.op == "unaugmented":
            parts = leaf.unaugmented[index]
        elif slot.op == "rows":
            parts = torch.cat([leaf.unaugmented[index].unsqueeze(1), leaf.views[:, index].transpose(0, 1)], 1)
        else:
            # view slot s >= 1 of a stack is views[s - 1]: row (s - 1)·N + i of the [V·N, ...]
            # views, one index_select per drawn position (faster than indexing by two tensors)
            flat = leaf.views.reshape(-1, *leaf.views.shape[2:])
            chosen = (torch.tensor(drawn, dtype=torch.long) - 1) * leaf.views.shape[1] + index[:, None]
            columns = [flat.index_select(0, chosen[:, j]) for j in range(chosen.shape[1])]
            parts = columns[0] if slot.draw.views_per_item == 1 else list(zip(*columns, strict=True))
        for position, part in zip(positions, parts, strict=True):
            inputs[position] = part
    return inputs


class BatchedItems(Dataset):
    """``dataset`` for a loader that asks for whole batches (``__getitems__``): cached features in
    one gather (:func:`batched_fetch`), anything else item by item, as the dataset gives them
    (no generator is seeded: a random transform keeps the per-item path)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset, self._fetch = dataset, batched_fetch(dataset, seeded=False)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[Any]:
        if self._fetch is None:
            return [self.dataset[index] for index in indices]
        return self._fetch([(index, 0) for index in indices])


__all__ = ["BatchedItems", "batched_fetch"]
