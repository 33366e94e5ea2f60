"""Avalanche's iCaRL under the comparison protocol.

iCaRL (Rebuffi et al., CVPR 2017) is Avalanche's ``ICaRL``: herding exemplars, binary
cross-entropy with distillation on the old classes' outputs, and a nearest-mean-of-exemplars
classifier. Herding is the method, so iCaRL keeps its own exemplars (its memory digest is that of
its own exemplars, not comparable with the shared memory's). What the protocol changes around it:

- **budget**: the protocol's :class:`~avalanche_clip.strategies.budget.StepBudget` (step budget
  and batch composition) over ``[new data ; exemplars]`` (Avalanche appends the exemplars after
  the new data);
- **memory size**: Avalanche keeps ``⌈M/C⌉`` exemplars per class, up to ``C − 1`` more than
  ``M`` in all; we keep the top of each class's herding order up to the same per-class
  capacities as the shared memory (``balanced_capacities``), so the total is exactly ``M``, and
  we know each exemplar's global id: ``memory_digest`` is the digest of those ids
  (:mod:`avalanche_clip.strategies.herding`, :class:`_BudgetICaRLPlugin`);
- **head**: the training classifier is the CLIP prompt head over all classes
  (:class:`PromptHead`, ``s·a·b_kᵀ``; iCaRL's BCE needs every class's output) or, for
  ``head: linear``, the linear head;
- **score**: the records' accuracies are those of that head over the seen classes, the
  classifier every method is scored with; the nearest-mean classifier's accuracies on the same
  evaluation are recorded beside them (``ncm_stream_accuracy``, ``ncm_accuracy_per_experience``;
  :class:`~avalanche_clip.strategies.nearest_mean.NearestMeanScore`).
- **negatives** (``train_logits``): ``"seen"`` keeps Avalanche's loss exactly, the BCE over all
  ``K`` outputs (``BCE = mean over B×K`` of ``−[q log σ(z) + (1−q) log(1−σ(z))]``, ``q`` the
  one-hot label, replaced on the old classes by the old model's ``σ(z̄)``). ``"batch"`` keeps
  the columns ``C_B ∪ C_old`` only — the classes of the batch (new data ∪ exemplars) and the
  old classes — and averages over ``B × |C_B ∪ C_old|``: the classification entries range over
  the batch's classes, as every method's do under this protocol value, while the distillation
  entries on the old classes stay whole, as every method's distillation does
  (:class:`BatchClassICaRLLoss`).

The current benchmark API lacks ``experience.benchmark.n_classes_per_exp`` / ``classes_order``,
which Avalanche 0.6's iCaRL reads; :func:`attach_icarl_benchmark_info` attaches them. Avalanche's
iCaRL unpacks items as ``(x, y, t)`` and appends ``(x, y, t)`` exemplars: its training data and the
data it herds from get that layout (:func:`icarl_layout`), whatever the stream's items — with the
global index (``(x, y, idx, t)``) or without a task label (``(x, y)``, e.g. Avalanche's
``class_incremental_benchmark`` over a plain dataset).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from avalanche.benchmarks.utils.data_attribute import TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence
from avalanche.training import ICaRL
from avalanche.training.losses import ICaRLLossPlugin
from avalanche.training.supervised.icarl import _ICaRLPlugin
from torch import nn
from torch.utils.data import DataLoader

from avalanche_clip.common.device import check_device
from avalanche_clip.common.values import check_choice
from avalanche_clip.scenarios.assigned_ids import (
    SampleIdAssigner,
    own_sample_ids,
    without_index_in_items,
)
from avalanche_clip.strategies.budget import StepBudget, make_eval_dataloader, make_train_dataloader
from avalanche_clip.strategies.herding import herding_ranks
from avalanche_clip.strategies.nearest_mean import NearestMeanScore
from avalanche_clip.strategies.negatives import TRAIN_LOGITS
from avalanche_clip.training.plugins.memory import balanced_capacities, ids_digest
from avalanche_clip.training.plugins.seen_classes import experience_classes


def icarl_layout(dataset: Any) -> Any:
    """The dataset with ``(x, y, t)`` items: the global index out of the items, and a task label
    0 added where the items have none."""
    dataset = without_index_in_items(dataset)
    if "targets_task_labels" not in dataset._data_attributes:
        dataset = dataset.update_data_attribute(
            "targets_task_labels", TaskLabels(ConstantSequence(0, len(dataset)))
        )
    return dataset


def attach_icarl_benchmark_info(train_stream: Any) -> None:
    """Give each train experience the ``benchmark`` fields iCaRL reads."""
    per_experience = [experience_classes(e) for e in train_stream]
    info = SimpleNamespace(
        n_classes_per_exp=[len(c) for c in per_experience],
        classes_order=[c for classes in per_experience for c in classes],
    )
    for experience in train_stream:
        experience.benchmark = info


class PromptHead(nn.Module):
    """``[B, D]`` normalised image features → ``[B, K]`` logits ``s·a·b_kᵀ`` over all classes,
    with the prompt embeddings of a :class:`~avalanche_clip.models.CLIPClassifier` (trainable
    with its text tower)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        every = torch.arange(self.classifier.num_classes, device=features.device)
        return self.classifier.logits_of(features, every)


class _BudgetICaRLPlugin(_ICaRLPlugin):
    """Avalanche's iCaRL plugin with exactly ``M`` exemplars whose global ids it knows, and the
    exemplars' count handed to the step budget.

    Each new class ``c`` is herded (:func:`~avalanche_clip.strategies.herding.herding_ranks`, the
    features of Avalanche's own loop: the eval transform, batches of ``eval_mb_size``) up to its
    capacity ``m_c`` (``balanced_capacities`` over the classes seen so far); at every later
    experience each class keeps its ``m_c`` best-ranked exemplars. Avalanche herds ``⌈M/C⌉`` and
    trims to them: herding is greedy, so its first ``m_c`` choices are these. Beside the patterns
    (``x_memory``), labels (``y_memory``) and ranks (``order``), ``id_memory[i]`` holds the global
    ids of ``x_memory[i]``'s samples (``[n_i]`` long, in the same order): the dataset's
    ``sample_idx``, or ids assigned as experiences arrive for a benchmark without them
    (:class:`~avalanche_clip.scenarios.assigned_ids.SampleIdAssigner`, as the shared memory does).
    Avalanche's ``fixed_memory=False`` (``M`` per class) is moot here, as it was with the trim
    alone: the capacities make the total ``M`` either way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.id_memory: list[torch.Tensor] = []
        self.assigned_ids = SampleIdAssigner()

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        super().after_train_dataset_adaptation(strategy, **kwargs)
        if strategy.clock.train_exp_counter != 0:
            strategy.budget.memory_tail_size = self.stored()

    def construct_exemplar_set(self, strategy: Any) -> None:
        experience = strategy.experience
        dataset = icarl_layout(experience.dataset)  # items (x, y, t)
        assigned = self.assigned_ids.ids_for(experience)
        known = own_sample_ids(experience.dataset) if assigned is None else assigned
        ids = torch.tensor([int(i) for i in known], dtype=torch.long)  # [n], by position
        targets = torch.as_tensor(list(dataset.targets))
        capacity = balanced_capacities(list(self.observed_classes), self.memory_size)
        for c in self._new_classes(strategy):
            positions = torch.where(targets == c)[0]
            patterns, features = self._patterns_and_features(strategy, dataset.subset(positions.tolist()))
            ranks = herding_ranks(features, capacity[c])
            chosen = torch.where(ranks > 0)[0]  # positions within the class, ascending
            self.x_memory.append(patterns[chosen.to(patterns.device)])
            self.y_memory.append([c] * len(chosen))
            self.order.append(ranks[chosen])
            self.id_memory.append(ids[positions[chosen]])

    def _new_classes(self, strategy: Any) -> list[int]:
        """The classes of the experience just trained, in ``observed_classes``' order."""
        t = strategy.clock.train_exp_counter
        per_experience = strategy.experience.benchmark.n_classes_per_exp
        start = sum(per_experience[:t])
        return list(self.observed_classes[start:start + per_experience[t]])

    @staticmethod
    def _patterns_and_features(strategy: Any, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n, ...]`` patterns of ``data`` (eval transform, on the strategy's device) and their
        ``[n, F]`` features ``φ(x)``."""
        loader = DataLoader(data.eval(), batch_size=strategy.eval_mb_size,
                            collate_fn=getattr(data, "collate_fn", None))
        patterns, features = [], []
        with torch.no_grad():
            for x, *_ in loader:
                x = x.to(strategy.device)
                patterns.append(x)
                features.append(strategy.model.feature_extractor(x).detach())
        return torch.cat(patterns), torch.cat(features)

    def reduce_exemplar_set(self, strategy: Any) -> None:
        capacity = balanced_capacities(list(self.observed_classes), self.memory_size)
        for i, labels in enumerate(self.y_memory):
            keep = capacity[labels[0]] if labels else 0
            ranked = torch.sort(torch.argsort(self.order[i])[:keep]).values  # best ranks, by position
            self.x_memory[i] = self.x_memory[i][ranked.to(self.x_memory[i].device)]
            self.y_memory[i] = self.y_memory[i][:keep]
            self.order[i] = self.order[i][ranked]
            self.id_memory[i] = self.id_memory[i][ranked]

    def stored(self) -> int:
        return sum(len(x) for x in self.x_memory)

    def exemplar_ids(self) -> torch.Tensor:
        """``[M]`` sorted global ids of the exemplars."""
        if not self.id_memory:
            return torch.zeros(0, dtype=torch.long)
        return torch.sort(torch.cat(self.id_memory)).values

    def digest(self) -> str:
        """:func:`~avalanche_clip.training.plugins.memory.ids_digest` of the exemplars' ids."""
        return ids_digest(self.exemplar_ids().tolist())


class BatchClassICaRLLoss(ICaRLLossPlugin):
    """Avalanche's iCaRL loss (BCE with distillation on the old classes) whose classification
    entries range over the training batch's classes (module docstring, ``"batch"``).

    The batch's classes are taken from ``strategy.mb_y`` before each training forward; a call
    without one (evaluation) is Avalanche's loss over every output.
    """

    def __init__(self) -> None:
        super().__init__()
        self.batch_classes: torch.Tensor | None = None

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        self.batch_classes = strategy.mb_y.detach().unique()
        super().before_forward(strategy, **kwargs)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.batch_classes is None:
            return super().__call__(logits, targets)
        columns = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        columns[self.batch_classes.to(logits.device)] = True
        columns[list(self.old_classes)] = True
        self.batch_classes = None
        targets = targets.long()
        one_hot = torch.zeros(logits.shape, dtype=torch.float, device=logits.device)
        one_hot[range(len(targets)), targets] = 1
        if self.old_logits is not None:  # Avalanche's distillation targets on the old classes
            one_hot[:, self.old_classes] = torch.sigmoid(self.old_logits)[:, self.old_classes]
            self.old_logits = None
        return self.criterion(torch.sigmoid(logits[:, columns]), one_hot[:, columns])


class BudgetedICaRL(ICaRL):
    """Avalanche's ``ICaRL`` with the protocol's budget and exact memory (module docstring).

    Args:
        seed, replay_sampling, memory_share, steps_per_experience: the step budget
            (``self.budget``, as :class:`~avalanche_clip.strategies.base.CLIPStrategyBase`'s).
        train_logits: ``"batch"`` (default) or ``"seen"``: the classes of the BCE's
            classification entries (module docstring).
        **kwargs: Avalanche ``ICaRL`` arguments (``feature_extractor``, ``classifier``,
            ``optimizer``, ``memory_size``, ``buffer_transform``, ``fixed_memory``, ...).
    """

    def __init__(self, *, seed: int | None = None, replay_sampling: str = "union",
                 memory_share: float = 0.5, steps_per_experience: int | None = None,
                 train_logits: str = TRAIN_LOGITS[0], **kwargs: Any) -> None:
        if "device" in kwargs:
            kwargs["device"] = check_device(kwargs["device"])  # one clear error, not torch's
        self.budget = StepBudget(seed=seed, replay_sampling=replay_sampling, memory_share=memory_share,
                                 steps_per_experience=steps_per_experience)
        self.train_logits = check_choice("train_logits", train_logits, TRAIN_LOGITS)
        super().__init__(**kwargs)
        for i, plugin in enumerate(self.plugins):
            if type(plugin) is ICaRLLossPlugin and train_logits == "batch":
                self.plugins[i] = self._criterion = BatchClassICaRLLoss()
            if type(plugin) is _ICaRLPlugin:
                exact = _BudgetICaRLPlugin(plugin.memory_size, plugin.buffer_transform,
                                           plugin.fixed_memory)
                self.plugins[i] = exact
                self.exemplars = exact
        self.nearest_mean = NearestMeanScore()

    # -- scoring: the prompt head, the nearest mean beside it -----------------------------------
    def forward(self) -> torch.Tensor:
        """Training: Avalanche's (the training head). Evaluation: the training head as well, the
        classifier every method is scored with (the prompt head ``s·a·b_kᵀ``, or the linear head;
        classes not seen yet are masked by ``SeenClassesPlugin``), and Avalanche's nearest-mean
        classifier on the same features, counted in ``self.nearest_mean`` (once class means exist:
        after the first experience)."""
        if self.is_training:
            return super().forward()
        features = self.model.feature_extractor(self.mb_x)
        nearest = self.model.eval_classifier
        if nearest.class_means_dict:
            self.nearest_mean.add(self.experience.current_experience, nearest(features), self.mb_y,
                                  list(self.exemplars.observed_classes))
        return self.model.train_classifier(features)

    def _before_eval(self, **kwargs: Any) -> None:
        self.nearest_mean.reset()  # each evaluation's counts alone
        super()._before_eval(**kwargs)

    def extra_record_fields(self) -> dict[str, Any]:
        """The last evaluation's nearest-mean accuracies (:class:`NearestMeanScore`), for the
        record beside the prompt head's."""
        return self.nearest_mean.fields()

    def memory_digest(self) -> str:
        """Digest of the herded exemplars' global ids after the last experience, for its record."""
        return self.exemplars.digest()

    # -- the step budget, as in CLIPStrategyBase -----------------------------------------------
    def train_dataset_adaptation(self, **kwargs: Any) -> None:
        self.budget.memory_tail_size = 0  # the exemplars' plugin sets it after this
        super().train_dataset_adaptation(**kwargs)
        self.adapted_dataset = icarl_layout(self.adapted_dataset)

    def make_train_dataloader(self, num_workers: int = 0, shuffle: bool = True,
                              pin_memory: bool | None = None, persistent_workers: bool = False,
                              **kwargs: Any) -> None:
        make_train_dataloader(self, num_workers=num_workers, pin_memory=pin_memory,
                              persistent_workers=persistent_workers)

    def make_eval_dataloader(self, num_workers: int = 0, shuffle: bool = False,
                             pin_memory: bool | None = None, persistent_workers: bool = False,
                             **kwargs: Any) -> None:
        """Avalanche's loader; under several processes every sample on every process."""
        make_eval_dataloader(self, super().make_eval_dataloader, num_workers=num_workers,
                             shuffle=shuffle, pin_memory=pin_memory,
                             persistent_workers=persistent_workers, **kwargs)

    def _after_update(self, **kwargs: Any) -> None:
        self.budget.count_step()
        super()._after_update(**kwargs)
