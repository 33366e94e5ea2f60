"""Task-incremental prediction: one head per task, made of the prompts of that task's classes.

In a task-incremental benchmark (Avalanche's ``nc_benchmark(..., task_labels=True)``) every item
carries its task label ``t`` and is classified among the classes of its task only, as Avalanche's
multi-head models do (``MultiTaskModule.forward_single_task``). With a CLIP classifier the head of
task ``t`` is the set of prompts of ``t``'s classes: for an image embedding ``a`` (``[B, D]``)

    logits[i, y] = s · a_i · b_{c(t_i, y)}   if label y exists in task t_i,   −∞ otherwise

over the labels ``y`` as the benchmark yields them (``[B, L]``), where ``c(t, y)`` is the global
class id (the index into the classifier's class names) that label ``y`` of task ``t`` names:

- global class ids (``class_ids_from_zero_in_each_exp=False``): ``c(t, y) = y`` and task ``t``'s
  labels are the classes of its experiences, so ``L = K``;
- ids restarting in each experience (``class_ids_from_zero_in_each_exp=True``): ``c(t, y)`` is the
  original class that Avalanche's ``class_mapping`` relabelled ``y`` in experience ``t``, so the
  class names stay indexed by the data set's own labels and ``L`` is the largest task's size.

``argmax`` over these logits is the predicted label of the item's task, so Avalanche's accuracy
metrics (which compare it with ``mb_y`` and group by ``mbatch[-1]``) measure task-aware accuracy.
The seen-class mask does not apply: the task label names the classes. Losses receive ``c(t, y)``
(:meth:`TaskHeads.classes_of`), so every label indexes the prompt of its own class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch


class TaskHeads:
    """The (task, label) → global class id map ``c`` of the module docstring.

    Args:
        heads: ``{task: {label: class id}}``.

    Example::

        heads = TaskHeads({0: {0: 5, 1: 6}, 1: {0: 1, 1: 2}})   # labels restart in each task
        heads.classes_of(torch.tensor([1, 0]), torch.tensor([0, 1]))   # tensor([6, 1])
    """

    def __init__(self, heads: Mapping[int, Mapping[int, int]] | None = None) -> None:
        self.heads: dict[int, dict[int, int]] = {}
        self._tables: dict[torch.device, torch.Tensor] = {}
        for task, labels in (heads or {}).items():
            self.add(task, labels)

    def add(self, task: int, labels: Mapping[int, int]) -> None:
        """Give task ``task`` the labels ``labels`` (``{label: class id}``; merged with the ones it has)."""
        head = self.heads.setdefault(int(task), {})
        for label, class_id in labels.items():
            if int(label) < 0 or int(class_id) < 0:
                raise ValueError(f"task {task}: label {label} -> class {class_id}; expected ids >= 0")
            head[int(label)] = int(class_id)
        self._tables.clear()

    @property
    def width(self) -> int:
        """``L``: one more than the largest label of any task."""
        return 1 + max((label for head in self.heads.values() for label in head), default=-1)

    def table(self, device: torch.device) -> torch.Tensor:
        """``[T, L]`` long: ``c(t, y)``, −1 where task ``t`` has no label ``y``."""
        device = torch.device(device)
        if device not in self._tables:
            table = torch.full((1 + max(self.heads, default=0), self.width), -1, dtype=torch.long)
            for task, head in self.heads.items():
                for label, class_id in head.items():
                    table[task, label] = class_id
            self._tables[device] = table.to(device)
        return self._tables[device]

    def rows(self, task_labels: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` class ids of each item's head (−1: no such label in its task)."""
        task_labels = task_labels.long()
        unknown = [int(t) for t in task_labels.unique() if int(t) not in self.heads]
        if unknown:
            raise ValueError(f"task label(s) {unknown} have no head; the classifier knows tasks "
                             f"{sorted(self.heads)}")
        return self.table(task_labels.device)[task_labels]

    def classes_of(self, labels: torch.Tensor, task_labels: torch.Tensor) -> torch.Tensor:
        """``[B]`` global class ids ``c(t_i, y_i)`` of labels ``y`` of tasks ``t``."""
        rows = self.rows(task_labels.to(labels.device))
        labels = labels.long()
        if bool(((labels < 0) | (labels >= rows.shape[1])).any()):
            raise ValueError(f"labels {labels.unique().tolist()} lie outside the tasks' labels [0, {rows.shape[1]})")
        classes = rows.gather(1, labels[:, None]).squeeze(1)
        if bool((classes < 0).any()):
            i = int(torch.nonzero(classes < 0)[0])
            raise ValueError(f"label {int(labels[i])} does not exist in task {int(task_labels[i])}")
        return classes

    def dataset_classes(self, dataset: Any) -> list[int]:
        """The class of every sample of an Avalanche dataset (``targets`` read in the task of
        ``targets_task_labels``)."""
        labels = torch.as_tensor([int(y) for y in dataset.targets])
        tasks = torch.as_tensor([int(t) for t in dataset.targets_task_labels])
        return self.classes_of(labels, tasks).tolist()

    def named_classes(self, tasks: Iterable[int], labels: Iterable[int]) -> list[int]:
        """Sorted class ids that ``labels`` name in any of ``tasks`` (an experience's classes)."""
        labels = [int(y) for y in labels]
        return sorted({self.heads[int(t)][y] for t in tasks if int(t) in self.heads
                       for y in labels if y in self.heads[int(t)]})


def head_logits(classifier: Any, image: torch.Tensor, task_labels: torch.Tensor,
                heads: TaskHeads) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of normalised image embeddings ``image`` ``[B, D]`` over their tasks' heads.

    Returns ``(logits [B, L], classes [k], prompts [k, D])``: the label-space logits of the
    module docstring, and the sorted global class ids of every head in the batch with their
    prompt embeddings (each prompt encoded once, so a loss can reuse them).
    """
    rows = heads.rows(task_labels.to(image.device))  # [B, L]
    classes = rows[rows >= 0].unique()
    prompts = classifier.class_embeddings(classes).to(image.dtype)  # [k, D]
    scores = classifier.logit_scale() * image @ prompts.t()  # [B, k]
    position = torch.searchsorted(classes, rows.clamp(min=0))
    position = position.clamp_max(max(len(classes) - 1, 0))
    logits = scores.gather(1, position) if len(classes) else scores.new_zeros(rows.shape)
    return logits.masked_fill(rows < 0, float("-inf")), classes, prompts


def _experience_tasks(experience: Any) -> list[int]:
    return sorted(int(t) for t in getattr(experience, "task_labels", [0]))


def _experience_labels(experience: Any) -> list[int]:
    # plugins.seen_classes.experience_classes does the same one layer up (not importable here)
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = set(int(t) for t in experience.dataset.targets)
    return sorted(int(c) for c in classes)


def benchmark_task_heads(benchmark: Any) -> TaskHeads | None:
    """The heads of a benchmark whose train stream has more than one task label (None otherwise).

    Labels are the classes of each task's experiences (global ids); a benchmark that restarts ids
    in each experience (``class_ids_from_zero_in_each_exp``) maps label ``y`` of experience ``e``
    back to the original class ``o`` with ``class_mapping[o] = y`` among the experience's
    ``original_classes_in_exp[e]``.
    """
    experiences = list(getattr(benchmark, "train_stream", ()))
    if len({t for e in experiences for t in _experience_tasks(e)}) < 2:
        return None
    local = bool(getattr(benchmark, "class_ids_from_zero_in_each_exp", False))
    heads = TaskHeads()
    for position, experience in enumerate(experiences):
        if local:
            mapping = list(benchmark.class_mapping)
            originals = benchmark.original_classes_in_exp[position]
            head = {mapping[o]: int(o) for o in originals}
        else:
            head = {y: y for y in _experience_labels(experience)}
        for task in _experience_tasks(experience):
            heads.add(task, head)
    return heads


__all__ = ["TaskHeads", "benchmark_task_heads", "head_logits"]
