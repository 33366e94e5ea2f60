"""The shared base of our CLIP strategies, on Avalanche's ``SupervisedTemplate``.

What it adds to the template:

- **The sample index, on any benchmark.** Training items are ``[x, y, idx, t]``: streams from
  ``build_scenario`` carry ``idx``; for any other Avalanche classification benchmark the strategy
  assigns ids as experiences arrive (:class:`~avalanche_clip.scenarios.assigned_ids.SampleIdAssigner`,
  ``self.sample_ids``: offset = total size of the experiences that arrived before; kept by the
  replay memory and by checkpoints). ``self.indexed_experience_dataset`` is the experience's data
  with ids. The base takes ``idx`` out of the mini-batch into ``self.mb_index`` before anything
  reads it, so ``mbatch`` is the ``[x, y, t]`` Avalanche expects and ``mb_task_id``
  (``mbatch[-1]``) is the task label — the accuracy metrics group by task, never by sample id.
- **Labels that match the class names** (:func:`check_label_alignment`): a label outside the
  classifier's classes, or a benchmark that relabels classes for a classifier not built for it
  (``CLIPClassifier.for_benchmark``), is an error at the experience's start.
- **The comparison protocol**: ``self.budget``, a :class:`~avalanche_clip.strategies.budget.StepBudget`
  (the same optimizer steps per experience, batch composition and batches for every method of a
  seed; it builds the training loader), and a class-balanced memory
  (:class:`ClassBalancedReplayPlugin`) whose exemplars depend only on the seed.
- **Task labels.** On a benchmark with several task labels the classifier predicts among the
  classes of each item's task (its ``task_heads``, attached from the benchmark at each
  experience's start when it has none; :mod:`avalanche_clip.models.task_heads`), and the
  training losses read labels as classes of their task: :meth:`model_output`.
- **Seen classes.** A :class:`SeenClassesPlugin` marks each experience's classes on the
  classifier; ``forward`` returns logits over global class ids with unseen classes at −∞, in
  training too, so training accuracy and logit-based plugins (LwF) see the classes seen so far.
- **Evaluation.** The eval "loss" is the cross-entropy over samples whose class is visible, NaN
  for a mini-batch with none (undefined, not 0: ``avalanche_clip.evaluation.loss_metrics``
  weights by visible samples and leaves such experiences out). A stateful training loss is never
  called outside training.
- **Views.** Items whose input is a tuple of ``k`` views of one image (a feature cache with
  ``feature_views > 1`` and ``views_per_item = k``, :mod:`avalanche_clip.features.views`) keep
  the first view in ``mb_x``, what every method reads, and all ``k`` in ``self.mb_views``
  (None for one-view items). :attr:`views_per_item` is how many views a method asks for (1; Co2L
  and CaSSLe: 2).
- **Mixed precision** (``amp="bf16"`` / ``"fp16"`` autocast on CUDA; CPU stays fp32).
- **The classification negatives** (``train_logits``, a protocol value; :mod:`~avalanche_clip.strategies.negatives`):
  ``"batch"`` (default), the classes present in the batch, or ``"seen"``, all classes seen so
  far. Subclasses pass the logits of every cross-entropy term through
  :meth:`classification_logits`; distillation terms read the unmasked logits.

Subclasses implement :meth:`training_forward` and :meth:`training_loss`; they may also override
our hook :meth:`on_batches_planned` (named so it is never mistaken for one of Avalanche's
``_before_*`` / ``_after_*`` hooks) and pass their own plugins as ``method_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from avalanche.core import BasePlugin
from avalanche.models.dynamic_modules import DynamicModule
from avalanche.training.plugins import LwFPlugin
from avalanche.training.plugins.evaluation import default_evaluator
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from avalanche_clip.common.device import check_device
from avalanche_clip.common.values import check_choice
from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.models.classifier import CLIPClassifier
from avalanche_clip.models.label_alignment import attach_task_heads, check_label_alignment
from avalanche_clip.models.placement import tree_placement
from avalanche_clip.models.precision import autocast, effective_amp, grad_scaler
from avalanche_clip.scenarios import SAMPLE_INDEX_POSITION, has_sample_index
from avalanche_clip.scenarios.assigned_ids import SampleIdAssigner
from avalanche_clip.strategies.budget import StepBudget, make_eval_dataloader, make_train_dataloader
from avalanche_clip.strategies.negatives import (
    TRAIN_LOGITS,
    batch_classification_logits,
    default_criterion,
)
from avalanche_clip.training.batching import ReplayBatchSampler
from avalanche_clip.training.distributed import GradientSumPlugin, world_size
from avalanche_clip.training.distributed_plugins import check_distributed_plugins
from avalanche_clip.training.optimizer_params import update_optimizer_params
from avalanche_clip.training.plugins import (
    ClassBalancedReplayPlugin,
    SeenClassesPlugin,
    experience_classes,
)
from avalanche_clip.training.plugins.memory import ids_digest
from avalanche_clip.training.plugins.replay import check_no_replay_plugin
from avalanche_clip.training.train_modes import restore_train_modes

_CLASSIFIER_API = ("encode_images", "class_embeddings", "mark_seen", "num_classes", "logit_scale")


def check_classifier(model: nn.Module, owner: str) -> None:
    """``TypeError`` unless ``model`` offers the classifier interface our strategies use."""
    for attribute in _CLASSIFIER_API:
        if not hasattr(model, attribute):
            raise TypeError(
                f"{owner} needs a CLIPClassifier-like model (missing .{attribute}); "
                f"got {type(model).__name__}"
            )


def check_task_head_plugins(model: nn.Module, plugins: Iterable[BasePlugin]) -> None:
    """``ValueError`` for Avalanche's ``LwFPlugin`` once ``model`` has one head per task: LwF
    distils a classifier that is not an Avalanche multi-task module as one head, so the old
    task's logits of the other tasks' items (−∞ outside their heads) make its penalty NaN."""
    if getattr(model, "task_heads", None) is None:
        return
    for plugin in plugins:
        if isinstance(plugin, LwFPlugin):
            raise ValueError(
                "LwFPlugin distils one head over every class, but this benchmark has task labels "
                "(one head of prompts per task), where its penalty is undefined (NaN); drop "
                "LwFPlugin, or train on a benchmark without task labels"
            )


class CLIPStrategyBase(SupervisedTemplate):
    """Base for strategies that train a :class:`~avalanche_clip.models.CLIPClassifier`.

    Args:
        model: the classifier (``CLIPClassifier`` or ``LinearHeadClassifier``).
        optimizer: a torch optimizer (Avalanche adds every model parameter to it on the first
            experience; freeze with ``requires_grad=False``).
        criterion: the training loss module.
        mem_size: total replay memory (0: no replay).
        replay_sampling: ``"union"`` (uniform over new data ∪ memory) or ``"share"``.
        memory_share: memory fraction of a batch with ``replay_sampling="share"``.
        seed: seeds the batches and the memory's exemplars (None: drawn from torch's RNG).
        steps_per_experience: explicit step budget (None: ``train_epochs`` passes over each
            experience's new data).
        amp: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast on CUDA only).
        train_logits: ``"batch"`` (default) or ``"seen"``: the classes every classification
            loss ranges over (module docstring; :meth:`classification_logits`).
        train_mb_size, train_epochs, eval_mb_size, device, plugins, evaluator, eval_every:
            as in Avalanche's ``SupervisedTemplate``.
        method_plugins: the method's own plugins (GCL / GDRO: the loss-state plugin), run after
            the replay memory's, whose update they read; ``plugins`` are the user's and run first.
    """

    #: Views of each image a training item should hold (a feature cache with augmented views
    #: gives this many; the two-view contrastive methods set 2).
    views_per_item = 1

    def __init__(
        self,
        *,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        criterion: nn.Module | None = None,
        mem_size: int = 0,
        replay_sampling: str = "union",
        memory_share: float = 0.5,
        seed: int | None = None,
        steps_per_experience: int | None = None,
        amp: str = "fp32",
        train_logits: str = TRAIN_LOGITS[0],
        train_mb_size: int = 32,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[BasePlugin] | None = None,
        evaluator: Any = default_evaluator,
        eval_every: int = -1,
        method_plugins: Sequence[BasePlugin] = (),
        **base_kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if model is None or optimizer is None:
            raise TypeError(f"{name} needs a model and an optimizer: {name}(model=..., optimizer=...)")
        check_classifier(model, name)
        check_no_replay_plugin(name, plugins)
        device = check_device(device)  # one clear error, not torch's, for a GPU that is not here
        effective_amp(amp, device)  # validates the name
        self.train_logits = check_choice("train_logits", train_logits, TRAIN_LOGITS)
        self.budget = StepBudget(seed=seed, replay_sampling=replay_sampling, memory_share=memory_share,
                                 steps_per_experience=steps_per_experience)
        self.replay = ClassBalancedReplayPlugin(mem_size, seed=self.budget.seed)
        self.seen_classes = SeenClassesPlugin(model.num_classes)
        own_plugins = [self.seen_classes, self.replay, *method_plugins]
        if world_size() > 1:
            check_distributed_plugins(name, plugins or ())
            own_plugins.append(GradientSumPlugin())
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=default_criterion(train_logits) if criterion is None else criterion,
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=[*(plugins or []), *own_plugins],
            evaluator=evaluator,
            eval_every=eval_every,
            **base_kwargs,
        )
        self.amp = amp
        self.scaler = grad_scaler(amp, self.device)
        self.mb_index: torch.Tensor | None = None
        self.mb_views: list[torch.Tensor] | None = None
        self.sample_ids = SampleIdAssigner()
        self.indexed_experience_dataset: Any = None

    # -- hooks for subclasses (ours, not Avalanche's) ---------------------------------------
    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        """Called once per experience, when its batch sampler exists, before the model
        adaptation and the optimizer (GDRO reads its inclusion probabilities, the staged
        methods split its steps into stages)."""

    def training_forward(self) -> torch.Tensor:
        """Output of a training step: ``[B, K]`` logits over global class ids, −∞ on classes not
        seen yet, with gradient (per-task heads: see :meth:`model_output`)."""
        return self.model_output()

    def model_output(self) -> torch.Tensor:
        """``model(x)``; ``model(x, task labels)`` when the classifier has one head per task
        (logits over the labels of each item's task, as Avalanche's multi-task models)."""
        if getattr(self.model, "task_heads", None) is None:
            return self.model(self.mb_x)
        return self.model(self.mb_x, self.mb_task_id)

    def training_loss(self) -> torch.Tensor:
        """The training loss of the current mini-batch (under several processes: this shard's
        share of the global batch's mean, so the processes' gradients sum to the global one)."""
        loss = masked_cross_entropy(self.classification_logits(self.mb_output), self.mb_y)
        if world_size() > 1:
            loss = loss * (len(self.mb_y) / self.budget.global_batch_size)
        return loss

    def classification_logits(self, logits: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """This step's ``[B, K]`` logits with the classes a classification loss may not use as
        negatives at −∞: none under ``train_logits="seen"`` (``logits`` as is), the classes
        absent from the batch under ``"batch"``
        (:func:`~avalanche_clip.strategies.negatives.batch_classification_logits`: the whole
        step's batch, or its ``rows`` ``[B]`` bool; the global batch under several processes)."""
        if self.train_logits == "seen":
            return logits
        return batch_classification_logits(self, logits, rows)

    def memory_digest(self) -> str:
        """Digest of the shared memory's ids after the last experience, for its record."""
        return self.replay.digest() if self.replay.mem_size > 0 else ids_digest([])

    # -- SupervisedTemplate overrides --------------------------------------------------------
    def train(self, experiences: Any, eval_streams: Any = None, **kwargs: Any) -> Any:
        """Avalanche's ``train``, with the first experience's classes marked as seen before it
        starts: Avalanche evaluates before training (``eval_every >= 0``), and that evaluation
        must predict among the classes about to be trained, as every evaluation during training
        does. Otherwise their validation loss is undefined (NaN), never improves, and early
        stopping on it restores the weights the experience started from."""
        experiences = list(experiences) if isinstance(experiences, Iterable) else [experiences]
        if experiences:
            first = experiences[0]
            attach_task_heads(self.model, first)
            check_label_alignment(self.model, first, experience_classes(first))
            self.seen_classes.mark(self.model, first)
        return super().train(experiences, eval_streams, **kwargs)

    def train_dataset_adaptation(self, **kwargs: Any) -> None:
        self.budget.memory_tail_size = 0  # the replay plugin appends memory after this
        super().train_dataset_adaptation(**kwargs)
        attach_task_heads(self.model, self.experience)
        check_task_head_plugins(self.model, self.plugins)
        check_label_alignment(self.model, self.experience, experience_classes(self.experience))
        self.indexed_experience_dataset = self.sample_ids.dataset_with_ids(self.experience)
        self.adapted_dataset = self.indexed_experience_dataset.train()

    def eval_dataset_adaptation(self, **kwargs: Any) -> None:
        super().eval_dataset_adaptation(**kwargs)
        attach_task_heads(self.model, self.experience)  # evaluated before any training

    def make_train_dataloader(self, num_workers: int = 0, shuffle: bool = True,
                              pin_memory: bool | None = None, persistent_workers: bool = False,
                              **kwargs: Any) -> None:
        """The step budget's loader (``shuffle``, ``drop_last``: the budget decides)."""
        make_train_dataloader(self, num_workers=num_workers, pin_memory=pin_memory,
                              persistent_workers=persistent_workers)
        assert self.budget.sampler is not None
        self.on_batches_planned(self.budget.sampler)

    def make_eval_dataloader(self, num_workers: int = 0, shuffle: bool = False,
                             pin_memory: bool | None = None, persistent_workers: bool = False,
                             **kwargs: Any) -> None:
        """Avalanche's loader; under several processes every sample on every process."""
        make_eval_dataloader(self, super().make_eval_dataloader, num_workers=num_workers,
                             shuffle=shuffle, pin_memory=pin_memory,
                             persistent_workers=persistent_workers, **kwargs)

    def model_adaptation(self, model: nn.Module | None = None) -> nn.Module:
        """Avalanche's ``model_adaptation`` (each ``DynamicModule`` adapted to the experience,
        then ``model.to(device)``) from one walk over the model
        (:func:`~avalanche_clip.models.placement.tree_placement`): without a ``DynamicModule``
        there is nothing to adapt, and a ``CLIPClassifier`` whose tensors are all on the device
        is what its ``to`` would return. Any other case is Avalanche's own call."""
        model = self.model if model is None else model
        if self.experience is not None:
            placement = tree_placement(model, self.device, DynamicModule)
            if not placement.adapted:
                if placement.all_on and type(model).to is CLIPClassifier.to:
                    return model
                return model.to(self.device)
        return super().model_adaptation(model)

    def _load_train_state(self, prev_state: dict[str, Any]) -> None:
        """Avalanche's restore after an evaluation, with each module's train / eval flag set in
        one pass instead of one recursive ``train`` call per module
        (:mod:`avalanche_clip.training.train_modes`: the same flags). Avalanche's other saved
        entries (``experience``, ``is_training``, ``adapted_dataset``, ``dataloader``) are the
        attributes of the same names, set back as its templates do."""
        for key, value in prev_state.items():
            if key != "model_training_mode":
                setattr(self, key, value)
        restore_train_modes(self.model, prev_state["model_training_mode"])

    def make_optimizer(self, reset_optimizer_state: bool = False, remove_params: bool = False,
                       verbose_optimizer: bool = False, **kwargs: Any) -> None:
        """Avalanche's ``make_optimizer``, without its parameter matching when the model's
        parameters are those the optimizer already holds (:mod:`avalanche_clip.training.optimizer_params`)."""
        self.optimized_param_id = update_optimizer_params(
            self.optimizer, dict(self.model.named_parameters()), self.optimized_param_id,
            reset_state=reset_optimizer_state, remove_params=remove_params, verbose=verbose_optimizer,
        )

    def _after_update(self, **kwargs: Any) -> None:
        self.budget.count_step()
        super()._after_update(**kwargs)

    def _unpack_minibatch(self) -> None:
        mbatch = list(self.mbatch)
        # The data being iterated tells where the index is (a periodic evaluation in the middle
        # of training swaps adapted_dataset and back).
        in_items = has_sample_index(self.adapted_dataset)
        self.mb_index = mbatch.pop(SAMPLE_INDEX_POSITION) if in_items else None
        # several views of each image: the first is the input every method reads
        views = mbatch[0] if isinstance(mbatch[0], (list, tuple)) else None
        if views is not None:
            mbatch[0] = views[0]
        self.mbatch = mbatch
        super()._unpack_minibatch()
        self.mb_views = None if views is None else [self.mb_x, *(v.to(self.device) for v in views[1:])]
        if self.mb_index is not None:
            self.mb_index = self.mb_index.to(self.device, non_blocking=True)

    def forward(self) -> torch.Tensor:
        with autocast(self.amp, self.device):
            if self.is_training:
                return self.training_forward()
            return self.model_output()

    def criterion(self) -> torch.Tensor:
        if self.is_training:
            return self.training_loss()
        return masked_cross_entropy(self.mb_output, self.mb_y, if_none=float("nan"))

    def backward(self) -> None:
        if self.scaler is None:
            super().backward()
        else:
            self.scaler.scale(self.loss).backward(retain_graph=self.retain_graph)

    def optimizer_step(self) -> None:
        if self.scaler is None:
            super().optimizer_step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
