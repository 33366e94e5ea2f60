"""Representation learning, then the classifier: the common frame of Co2L and CaSSLe.

Both methods learn the image representation with a contrastive objective on a projection of it
and fit the classifier afterwards on the frozen representation (Co2L: a class-balanced linear
classifier on current data and memory; CaSSLe: linear evaluation). Under the comparison
protocol the classifier is the protocol's common head (the CLIP prompt head, or the linear head
of the ablation), and both stages fit in the protocol's budget of ``T`` steps per experience:

1. **representation** (the first ``T − round(c·T)`` steps): ``a = E(x)/‖E(x)‖`` (the image
   path's trainable parts) → projector ``g`` (a method module) → the method's loss on
   ``z = g(a)``; the head gets no gradient;
2. **classifier** (the last ``round(c·T)`` steps, ``c = classifier_fraction``): cross-entropy of
   the head on ``a.detach()`` (the representation gets no gradient), class-balanced when the
   method says so: sample ``i`` weighs ``w_{y_i} = 1/(C·p_{y_i})``, with ``p_k`` the probability
   that a draw of the protocol's sampler has class ``k`` and ``C`` the classes present, so the
   expected loss is the class-balanced risk ``(1/C) Σ_k E[CE | y = k]`` — what Co2L's
   class-balanced sampler gives — while the batches stay the protocol's.

**Views.** Both methods are defined on two augmented views of each image (:attr:`views_per_item`
= 2). When the items carry them (a feature cache with ``feature_views >= 2``), the
representation stage encodes both: the projections are ``[k·B, d]``, view-major (rows
``v·B .. v·B+B−1`` are view ``v`` of the batch's ``B`` images; :meth:`view_labels`,
:meth:`memory_rows` follow the same order), so each image's twin is one of its positives and
the previous model's relations are over the same ``k·B`` rows. The classifier stage, the
training metrics and every other method read the first view (``mb_x``); with one-view items
(``feature_views = 1``, or images) everything is as with ``k = 1``.

Each stage gets at least one step. At the start of every experience but the first, the live
image path and projector are copied and frozen: the previous model the distillation terms read.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from avalanche_clip.common.values import check_options
from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.strategies.option_rules import DECOUPLED_RULES, TWO_VIEWS
from avalanche_clip.strategies.snapshots import (
    FrozenImageEncoder,
    embedding_dim,
    head_is_trainable,
    projection_mlp,
)
from avalanche_clip.strategies.staged import StagedCLIPStrategy, split_steps
from avalanche_clip.training.batching import ReplayBatchSampler

REPRESENTATION, CLASSIFIER = "representation", "classifier"


def class_draw_probabilities(part_sizes: Sequence[tuple[int, int]], targets: Sequence[int],
                             num_classes: int) -> Tensor:
    """``[K]`` float64: the probability that one item of a batch has class ``k``.

    Args:
        part_sizes: the sampler's ``(pool size, items per batch)`` per part, pools laid out one
            after the other (``ReplayBatchSampler.part_sizes()``).
        targets: labels of every item of the training set, in position order.
    """
    labels = torch.as_tensor(list(targets), dtype=torch.long)
    per_batch = sum(b for _, b in part_sizes)
    probabilities = torch.zeros(num_classes, dtype=torch.float64)
    offset = 0
    for n, b in part_sizes:
        if n and b:
            counts = torch.bincount(labels[offset:offset + n], minlength=num_classes).double()
            probabilities += (b / per_batch) * counts / n
        offset += n
    return probabilities


def balanced_class_weights(probabilities: Tensor) -> Tensor:
    """``w_k = 1/(C·p_k)`` for the ``C`` classes with ``p_k > 0`` (0 elsewhere), float32."""
    present = probabilities > 0
    weights = torch.zeros_like(probabilities)
    weights[present] = 1.0 / (int(present.sum()) * probabilities[present])
    return weights.float()


class DecoupledContrastiveStrategy(StagedCLIPStrategy):
    """Base of Co2L and CaSSLe (module docstring); subclasses implement
    :meth:`representation_loss` and may add method modules.

    Args:
        projection_hidden: hidden width of the projector ``g`` (None: the embedding size ``D``).
        projection_dim: output size of ``g``.
        classifier_fraction: ``c``, the share of each experience's steps for the classifier.
        class_balanced: weight the classifier stage's cross-entropy to balance classes.
        **kwargs: :class:`CLIPStrategyBase` arguments.
    """

    views_per_item = TWO_VIEWS  # both papers' losses take two augmented views of each image

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, projection_hidden: int | None,
                 projection_dim: int, classifier_fraction: float, class_balanced: bool,
                 **kwargs: Any) -> None:
        name = type(self).__name__
        if criterion is not None:
            raise TypeError(f"{name} trains with its own losses and takes no criterion (got {criterion!r})")
        if model is not None and not head_is_trainable(model):
            raise ValueError(
                f"{name} trains the classifier after the representation, but the head has no "
                "trainable parameter: with the prompt head the text tower or projection must "
                "train (trainable: projections, text, last:K or all), or use head: linear"
            )
        (self.classifier_fraction,) = check_options(DECOUPLED_RULES, classifier_fraction=classifier_fraction)
        self.class_balanced = bool(class_balanced)
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        dim = embedding_dim(self.model)
        self.method_modules["projector"] = projection_mlp(dim, projection_hidden or dim, projection_dim).to(self.device)
        self.previous_encoder: FrozenImageEncoder | None = None
        self.previous_modules: nn.ModuleDict | None = None
        self.class_weights: Tensor | None = None
        self.memory_ids = torch.zeros(0, dtype=torch.long)
        self.mb_projection: Tensor | None = None
        self.mb_inputs: Tensor | None = None  # [k·B, ...] the representation stage's inputs

    # -- what subclasses implement --------------------------------------------------------
    def representation_loss(self, projection: Tensor) -> Tensor:
        """The method's loss on the batch's projections ``[k·B, d]`` (view-major, k = :attr:`n_views`)."""
        raise NotImplementedError

    # -- views --------------------------------------------------------------------------------
    @property
    def n_views(self) -> int:
        """``k``: views of each image in the current mini-batch (1 for one-view items)."""
        return 1 if self.mb_views is None else len(self.mb_views)

    def view_labels(self) -> Tensor:
        """``[k·B]`` the labels of the projections' rows (view-major)."""
        return self.mb_y.repeat(self.n_views)

    # -- the previous model -----------------------------------------------------------------
    def previous_projection(self) -> Tensor | None:
        """``[k·B, d]`` projections of the batch's views by the frozen previous model (None on
        the first experience)."""
        if self.previous_encoder is None or self.previous_modules is None:
            return None
        with torch.no_grad():
            return self.previous_modules["projector"](self.previous_encoder(self.mb_inputs))

    def _snapshot_previous_model(self) -> None:
        self.previous_encoder = FrozenImageEncoder(self.model)
        self.previous_modules = copy.deepcopy(self.method_modules).requires_grad_(False).eval()

    def _before_training_exp(self, **kwargs: Any) -> None:
        super()._before_training_exp(**kwargs)
        if self.clock.train_exp_counter > 0:
            self._snapshot_previous_model()

    def _after_training_exp(self, **kwargs: Any) -> None:
        super()._after_training_exp(**kwargs)
        self.previous_encoder = self.previous_modules = None  # rebuilt from the live model

    # -- stages -----------------------------------------------------------------------------
    def stage_plan(self, total_steps: int) -> list[tuple[str, int]]:
        return split_steps(total_steps, self.classifier_fraction, (REPRESENTATION, CLASSIFIER))

    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        super().on_batches_planned(sampler)
        self.memory_ids = self.replay.buffer_ids().to(self.device)  # empty without memory
        if self.class_balanced:
            targets = [int(t) for t in self.adapted_dataset.targets]
            draws = class_draw_probabilities(sampler.part_sizes(), targets, self.model.num_classes)
            self.class_weights = balanced_class_weights(draws).to(self.device)

    def memory_rows(self) -> Tensor:
        """``[k·B]`` bool: the projections' rows (view-major) that come from the replay memory."""
        if self.mb_index is None:
            raise RuntimeError(f"{type(self).__name__} needs each sample's global index: build "
                               "the stream with build_scenario(..., with_index=True)")
        return torch.isin(self.mb_index, self.memory_ids).repeat(self.n_views)

    # -- forward and loss ---------------------------------------------------------------------
    def training_forward(self) -> Tensor:
        if self.stage == CLASSIFIER:
            with torch.no_grad():
                image = self.model.encode_images(self.mb_x)
            self.mb_projection = self.mb_inputs = None
            return self.model.logits_of(image)
        # every view in one pass (view-major); view 0 is mb_x
        self.mb_inputs = self.mb_x if self.mb_views is None else torch.cat(self.mb_views)
        image = self.model.encode_images(self.mb_inputs)
        self.mb_projection = self.method_modules["projector"](image)
        with torch.no_grad():  # for training metrics only: the representation loss ignores them
            return self.model.logits_of(image[: len(self.mb_x)])

    def training_loss(self) -> Tensor:
        if self.stage == CLASSIFIER:
            return self.classifier_loss()
        assert self.mb_projection is not None
        return self.representation_loss(self.mb_projection.float())

    def classifier_loss(self) -> Tensor:
        """Cross-entropy of the head on the detached embeddings (class-balanced or not), over
        the protocol's negatives (``train_logits``: the batch's classes or the seen ones)."""
        # class_weights is set (by on_batches_planned) only when class_balanced
        return masked_cross_entropy(self.classification_logits(self.mb_output), self.mb_y,
                                    class_weights=self.class_weights)
