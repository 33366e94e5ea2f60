"""GCL and GDRO: contrastive objectives between images and their label prompts.

A training step encodes the mini-batch's images, ``a = E_I(x)/‖·‖`` (``[B, D]``), and the
prompts of its distinct classes once, gathering row ``j`` as the prompt of sample ``j``'s label
(``[B, D]``). The loss receives those, the labels and the samples' global ids, and keeps its
moving-average estimators per id (``avalanche_clip.losses``); it is ``strategy.contrastive_loss``.
``num_samples`` is optional: without it the per-id state grows as ids arrive, so a benchmark from
Avalanche's own builders needs no extra step (the base assigns the ids).

``strategy._criterion`` — what Avalanche plugins such as EWC call as ``_criterion(out, y)`` — is
a :class:`~avalanche_clip.strategies.batch_criterion.BatchContrastiveCriterion`: the same
contrastive objective on that batch alone, stateless, so the plugins' importances and reference
gradients come from the training loss.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.plugins import LwFPlugin
from torch import nn

from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.models.task_heads import head_logits
from avalanche_clip.strategies.base import CLIPStrategyBase, check_classifier
from avalanche_clip.strategies.batch_criterion import BatchContrastiveCriterion
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.negatives import TRAIN_LOGITS
from avalanche_clip.training.batching import ReplayBatchSampler
from avalanche_clip.training.distributed import gather_rows, world_size
from avalanche_clip.training.plugins import LossStatePlugin

GCL, GDRO = METHOD_DEFAULTS["gcl"], METHOD_DEFAULTS["gdro"]  # derived defaults (strategies.defaults)


class ContrastiveCLIPStrategy(CLIPStrategyBase):
    """A :class:`CLIPStrategyBase` whose loss takes ``(image, text, labels, ids)``.

    Args:
        loss: a stateful loss such as :class:`GCLLoss` or :class:`GDROLoss` (what the strategy
            calls: ``forward``, ``forget``, ``reset``, ``batch_local``; ``num_samples``).
        reset_loss_state: reset the loss's estimators at every experience start (ablation).
        **kwargs: :class:`CLIPStrategyBase` arguments, among them ``train_logits`` (the
            protocol's): the classes that the logits and the loss's image-anchor negatives range
            over: ``"batch"`` (default), the classes in the batch (new data ∪ memory rows), the
            losses as in :mod:`avalanche_clip.losses`; ``"seen"``, every seen class
            (``model.classes.visible()``): the logits cover them all and each image is also
            contrasted with the prompts of the seen classes absent from the batch (the losses'
            ``extra_negatives``; see :meth:`training_loss`). With one head per task
            (``task_heads``) the loss keeps the batch's negatives under either setting: other
            tasks' classes never compete with an item's own, and the absent classes of its own
            task are not added (not implemented).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: Any = None, loss: nn.Module, reset_loss_state: bool = False,
                 **kwargs: Any) -> None:
        if criterion is not None:
            raise TypeError(
                f"{type(self).__name__} trains with its own loss ({type(loss).__name__}) and takes "
                f"no criterion (got {criterion!r}); set the loss's hyper-parameters instead"
            )
        train_logits = kwargs.get("train_logits", TRAIN_LOGITS[0])  # the base checks it
        if (train_logits == "batch"
                and any(isinstance(p, LwFPlugin) for p in kwargs.get("plugins") or ())):
            raise ValueError(
                "LwFPlugin distils the old classes' logits, which train_logits='batch' leaves at "
                "-inf outside the batch's classes; use train_logits='seen' with LwF"
            )
        self.contrastive_loss = loss
        self.loss_state = LossStatePlugin(
            loss, num_samples=loss.num_samples, reset_each_experience=reset_loss_state
        )
        if model is not None:
            check_classifier(model, type(self).__name__)
        criterion = (BatchContrastiveCriterion(loss, model, train_logits=train_logits)
                     if model is not None else None)
        super().__init__(model=model, optimizer=optimizer, criterion=criterion,
                         method_plugins=[self.loss_state], **kwargs)
        self.loss_state.replay = self.replay
        self.mb_features: tuple[torch.Tensor, torch.Tensor] | None = None
        self.mb_global_index: torch.Tensor | None = None
        self.mb_classes: torch.Tensor | None = None  # the loss's labels: per-task heads' class ids
        # train_logits="seen": the seen classes' prompts [C, D] (with gradient) and ids [C], from
        # the forward's own encode, for the loss's extra negatives.
        self.mb_seen_prompts: tuple[torch.Tensor, torch.Tensor] | None = None

    def training_forward(self) -> torch.Tensor:
        """Logits over the seen classes, with gradient (``train_logits="seen"``: for training
        metrics, logit-based plugins such as LwF, and the loss's extra negatives, whose prompts
        this one encode gives: ``mb_seen_prompts``), or over the batch's classes only
        (``"batch"``: a trainable text tower then encodes only those prompts, much cheaper with
        many classes); keeps the batch's image and label-prompt features for the loss. With one
        head per task: logits over each item's task's labels, and the loss sees each label as
        the class it names in its task (``mb_classes``)."""
        image = self.model.encode_images(self.mb_x)
        heads = getattr(self.model, "task_heads", None)
        self.mb_classes = self.mb_seen_prompts = None
        if heads is not None:
            logits, classes, prompts = head_logits(self.model, image, self.mb_task_id, heads)
            self.mb_classes = heads.classes_of(self.mb_y, self.mb_task_id)
            self.mb_features = (image, prompts[torch.searchsorted(classes, self.mb_classes)])
            self._criterion.record(self.mb_x, logits)
            return logits
        if self.train_logits == "seen":
            classes = self.model.classes.visible()
            position = torch.searchsorted(classes, self.mb_y).clamp_max(len(classes) - 1)
            if not bool((classes[position] == self.mb_y).all()):
                raise ValueError("a training label is not among the classes marked seen")
        else:
            classes, position = torch.unique(self.mb_y, return_inverse=True)
        prompts = self.model.class_embeddings(classes).to(image.dtype)  # [k, D]
        self.mb_features = (image, prompts[position])  # row j: the prompt of sample j's label
        if self.train_logits == "seen":
            self.mb_seen_prompts = (prompts, classes)
        logits = self.model.classes.scatter(self.model.logit_scale() * image @ prompts.t(), classes)
        self._criterion.record(self.mb_x, logits)  # plugins may call _criterion(mb_output, mb_y)
        return logits

    def training_loss(self) -> torch.Tensor:
        """The loss of the global batch: under several processes (:mod:`avalanche_clip.training.distributed`)
        every shard's features, labels and ids are gathered (the others' rows detached), so the
        loss, its state update and the sum of the processes' gradients are the single-process
        ones. Under ``train_logits="seen"`` the loss also gets ``extra_negatives``: the prompts
        of the seen classes absent from the *global* batch (:meth:`absent_seen_prompts`)."""
        assert self.mb_features is not None and self.mb_index is not None
        image, text = self.mb_features
        labels = self.mb_y if self.mb_classes is None else self.mb_classes
        index = self.mb_index
        if world_size() > 1:
            image, text = gather_rows(image), gather_rows(text)
            labels, index = gather_rows(labels), gather_rows(index)
        self.mb_global_index = index  # every id of the global batch: its state was updated
        options = self.loss_options()
        if self.mb_seen_prompts is not None:
            options["extra_negatives"] = self.absent_seen_prompts(labels)
        return self.contrastive_loss(image, text, labels, index, **options)

    def absent_seen_prompts(self, labels: torch.Tensor) -> torch.Tensor:
        """``[E, D]``: the prompts ``b_k`` of the seen classes ``k`` not among ``labels`` (the
        global batch's), taken from the forward's encode (no second one), with gradient.

        Every process computes the same loss on the gathered batch, and each holds these prompts
        live: each takes ``1/W`` of their gradient (same value), so the processes' gradient sum
        is the single-process one, as for GDRO's one-class prompts."""
        assert self.mb_seen_prompts is not None
        prompts, classes = self.mb_seen_prompts
        extra = prompts[~torch.isin(classes, labels.to(classes.device))]
        if world_size() > 1:
            extra = extra.detach() + (extra - extra.detach()) / world_size()
        return extra

    def loss_options(self) -> dict[str, Any]:
        """Further keyword arguments of the loss's call (GDRO: the seen classes' prompts)."""
        return {}


class GCLStrategy(ContrastiveCLIPStrategy):
    """Global contrastive loss between images and label prompts (see :class:`GCLLoss`).

    Args:
        model, optimizer: the classifier and its optimizer (positional, as in Avalanche:
            ``GCLStrategy(model, optimizer, tau=...)``; no criterion: the loss is GCL).
        num_samples: ``N``, the size of the benchmark's train set (its global id space), to
            preallocate the per-id state; None (default): the state grows as ids arrive.
        tau: temperature ``τ``; gamma: moving-average weight ``γ ∈ (0, 1]`` on the new estimate;
        negatives: ``"instance"`` or ``"class"``.
        **kwargs: :class:`ContrastiveCLIPStrategy` / :class:`CLIPStrategyBase` arguments
            (``mem_size``, ``train_mb_size``, ``device``, ``plugins``, ``evaluator`` ...).

    Example::

        strategy = GCLStrategy(classifier, AdamW(classifier.parameters()), mem_size=200,
                               train_mb_size=64, device="cuda")
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: Any = None, num_samples: int | None = None, tau: float = GCL["tau"],
                 gamma: float = GCL["gamma"], negatives: str = "instance", **kwargs: Any) -> None:
        loss = GCLLoss(num_samples=num_samples, tau=tau, gamma=gamma, negatives=negatives)
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, loss=loss, **kwargs)


class GDROStrategy(ContrastiveCLIPStrategy):
    """Class-level group DRO over squared-hinge contrastive losses (see :class:`GDROLoss`).

    Args:
        model, optimizer: the classifier and its optimizer (positional, as in Avalanche; no
            criterion: the loss is GDRO).
        num_samples: ``N``, the size of the benchmark's train set (None: the state grows).
        tau, margin, dro_lambda, gamma, class_gamma: the loss's hyper-parameters.
        inclusion_weights: weight classes by the inverse of their probability ``π_k`` of being
            in a batch, computed from this strategy's sampler at each experience start
            (:meth:`GDROLoss.set_class_inclusion`), so the expected class weights follow the DRO
            objective whatever the batch composition; False: average over the classes present
            in each batch.
        **kwargs: :class:`ContrastiveCLIPStrategy` / :class:`CLIPStrategyBase` arguments.
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: Any = None, num_samples: int | None = None, tau: float = GDRO["tau"],
                 margin: float = GDRO["margin"], dro_lambda: float = GDRO["dro_lambda"],
                 gamma: float = GDRO["gamma"], class_gamma: float = 0.9, inclusion_weights: bool = True, **kwargs: Any) -> None:
        if model is None:
            raise TypeError("GDROStrategy needs a model and an optimizer: GDROStrategy(model=..., optimizer=...)")
        check_classifier(model, "GDROStrategy")
        loss = GDROLoss(num_samples=num_samples, num_classes=model.num_classes, tau=tau,
                        margin=margin, dro_lambda=dro_lambda, gamma=gamma,
                        class_gamma=class_gamma)
        self.inclusion_weights = bool(inclusion_weights)
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, loss=loss, **kwargs)

    def loss_options(self) -> dict[str, Any]:
        """The seen classes' prompts, encoded only for a batch of one class: its negatives
        (:class:`GDROLoss`; with one head per task, the task's classes would be needed: none).
        Under ``train_logits="seen"`` the loss's ``extra_negatives`` take their place there, and
        :meth:`_seen_class_prompts` (no second encode) is never called."""
        if getattr(self.model, "task_heads", None) is not None:
            return {}
        return {"class_prompts": self._seen_class_prompts}

    def _seen_class_prompts(self) -> tuple[torch.Tensor, torch.Tensor]:
        classes = self.model.classes.visible()
        prompts = self.model.class_embeddings(classes)
        if world_size() > 1:
            # Every process computes the same one-class term on the gathered batch: each takes
            # 1/W of the prompts' gradient (same value), so their sum is the single-process one.
            prompts = prompts.detach() + (prompts - prompts.detach()) / world_size()
        return prompts, classes

    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        """The classes' inclusion probabilities ``π_k`` under this experience's sampler, for
        the loss's ``1/π_k`` weights (``inclusion_weights=False``: none, the loss averages over
        the classes in each batch)."""
        super().on_batches_planned(sampler)
        probabilities = None
        if self.inclusion_weights:
            heads = getattr(self.model, "task_heads", None)
            targets = ([int(t) for t in self.adapted_dataset.targets] if heads is None
                       else heads.dataset_classes(self.adapted_dataset))  # each label in its task
            probabilities = sampler.inclusion_probabilities(targets, self.contrastive_loss.num_classes)
        self.contrastive_loss.set_class_inclusion(probabilities)
