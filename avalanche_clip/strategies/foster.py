"""FOSTER: feature boosting and compression (Wang et al., ECCV 2022), on the CLIP image path.

The "backbone" FOSTER duplicates is what trains on the image path: the whole image tower, or,
with the frozen-trunk feature cache, its trainable tail (for ``trainable: projections`` the image
projection; :func:`~avalanche_clip.strategies.snapshots.image_path`). The classifier is the
protocol's common head ``(W, c)`` (``W = s·B`` for the prompt head), and ``a_old``, ``a_new``
are normalised embeddings. The first experience trains the model with cross-entropy (the
authors' initial task). Each later experience splits its protocol budget of ``T`` steps:

1. **feature boosting** (``T − round(f·T)`` steps, ``f = compression_fraction``): the old path,
   frozen at the experience start, beside the live path as the new module (starting from the
   old weights, as the authors' ``update_fc`` copies the previous backbone). The expanded model
   is the head on the concatenated features, both halves read by the common head::

       z = ½ (W a_old + c) + ½ (W a_new + c) = head(½ (a_old + a_new))

   (at the start exactly the old model's logits). With ``w¹`` the class weights from effective
   numbers (``β₁``), ``z_fe`` an auxiliary head on ``a_new`` alone (a new linear head started
   from the common head, dropped after boosting) and ``z̄`` the frozen old model's logits over
   the old classes::

       L = CE(z / w¹, y) + CE(z_fe, y) + λ_okd · KD_T(z[old], z̄)

2. **feature compression** (``round(f·T)`` steps): the expanded model, frozen, is the teacher;
   the live path restarts from the old path's weights (the authors' student copies the old
   backbone) and learns, with the live head, to match the teacher under balanced distillation
   (``β₂``): ``L = BKD_T(z_student, z_teacher; w²)``. Afterwards the model has one image path
   again, the student, and the frozen copies are dropped.

The optimizer state is reset at the start of each stage (the authors build a new optimizer for
boosting and for compression). Both stages need a step: ``T >= 2``. The losses are in
:mod:`avalanche_clip.losses.foster`; class counts are those of the experience's training set
(new data and memory). Class-incremental only.

Defaults (``exps/foster.json`` of PyCIL, the FOSTER authors' toolbox; the paper's CIFAR-100
setting): ``β₁ = 0.96``, ``β₂ = 0.97``, ``T = 2``, ``λ_okd = 1``, and
``compression_fraction = 130/300``, the authors' 130 compression epochs after 170 boosting
epochs. Learning rate, epochs, batch and optimizer are the protocol's, shared by every method.

Under the protocol's ``train_logits: batch`` the cross-entropy terms (the initial CE, the
logits-aligned ``CE(z / w¹, y)`` and ``CE(z_fe, y)``) range over the classes of the batch
(new data ∪ memory): the other visible classes' columns are −∞. The distillations (``KD_T`` on
the old classes, ``BKD_T`` in compression) compare the student with a teacher over every visible
class, not negatives of a classification, and stay over them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avalanche_clip.common.values import check_options
from avalanche_clip.losses.foster import (
    balanced_distillation,
    distillation,
    effective_number_weights,
    logits_aligned_cross_entropy,
)
from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.option_rules import FOSTER_RULES
from avalanche_clip.strategies.snapshots import (
    FrozenHead,
    FrozenImageEncoder,
    image_path,
)
from avalanche_clip.strategies.staged import StagedCLIPStrategy, split_steps
from avalanche_clip.training.batching import ReplayBatchSampler
from avalanche_clip.training.plugins import experience_classes

FOSTER = METHOD_DEFAULTS["foster"]  # derived defaults (strategies.defaults)

INITIAL, BOOSTING, COMPRESSION = "initial", "boosting", "compression"


class FOSTERStrategy(StagedCLIPStrategy):
    """FOSTER on the shared memory, budget and head (module docstring).

    Args:
        model, optimizer: the classifier and its optimizer.
        beta1, beta2: effective-number ``β`` of the boosting and compression class weights.
        temperature: ``T`` of both distillations; lambda_okd: weight of the boosting KD.
        compression_fraction: ``f``, the share of each experience's steps for compression.
        **kwargs: :class:`CLIPStrategyBase` arguments.
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, beta1: float = FOSTER["beta1"],
                 beta2: float = FOSTER["beta2"], temperature: float = FOSTER["temperature"],
                 lambda_okd: float = FOSTER["lambda_okd"],
                 compression_fraction: float = FOSTER["compression_fraction"], **kwargs: Any) -> None:
        if criterion is not None:
            raise TypeError(f"FOSTERStrategy trains with its own losses and takes no criterion (got {criterion!r})")
        self.beta1, self.beta2, self.lambda_okd, self.temperature, self.compression_fraction = check_options(
            FOSTER_RULES, beta1=beta1, beta2=beta2, lambda_okd=lambda_okd, temperature=temperature,
            compression_fraction=compression_fraction)
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.old_encoder: FrozenImageEncoder | None = None
        self.old_head: FrozenHead | None = None
        self.old_classes = torch.zeros(0, dtype=torch.long)
        self.teacher_encoder: FrozenImageEncoder | None = None
        self.teacher_head: FrozenHead | None = None
        self.class_counts = torch.zeros(self.model.num_classes, dtype=torch.long)
        self.class_weights: Tensor | None = None  # [k] over the visible classes, this stage
        self.mb_aux: dict[str, Tensor] = {}

    # -- stages ---------------------------------------------------------------------------
    def stage_plan(self, total_steps: int) -> list[tuple[str, int]]:
        if self.old_encoder is None:
            return [(INITIAL, total_steps)] if total_steps else []
        return split_steps(total_steps, self.compression_fraction, (BOOSTING, COMPRESSION))

    def _before_training_exp(self, **kwargs: Any) -> None:
        # The old classes are those seen before this experience. ``train`` may have marked this
        # experience's classes already (for Avalanche's evaluation before training); FOSTER is
        # class-incremental, so they are exactly the visible classes that are not this experience's.
        visible = self.model.classes.visible()
        current = torch.as_tensor(sorted(experience_classes(self.experience)), dtype=torch.long)
        old = visible[~torch.isin(visible, current.to(visible.device))]
        if old.numel():  # an old model exists: expand before the optimizer is made
            self.old_classes = old.clone()
            self.old_encoder = FrozenImageEncoder(self.model)
            self.old_head = FrozenHead(self.model)
            self.method_modules["feature_enhancement"] = self.old_head.linear()
        super()._before_training_exp(**kwargs)

    def on_batches_planned(self, sampler: ReplayBatchSampler) -> None:
        targets = torch.as_tensor([int(t) for t in self.adapted_dataset.targets], dtype=torch.long)
        self.class_counts = torch.bincount(targets, minlength=self.model.num_classes)
        super().on_batches_planned(sampler)

    def enter_stage(self, stage: str) -> None:
        visible = self.model.classes.visible().cpu()
        if stage == BOOSTING:
            self.class_weights = effective_number_weights(self.class_counts[visible], self.beta1).to(self.device)
        elif stage == COMPRESSION:
            self._start_compression()
            self.class_weights = effective_number_weights(self.class_counts[visible], self.beta2).to(self.device)
        if stage in (BOOSTING, COMPRESSION):
            self.make_optimizer(reset_optimizer_state=True)  # a new optimizer per stage

    def _start_compression(self) -> None:
        assert self.old_encoder is not None
        self.teacher_encoder = FrozenImageEncoder(self.model)  # the boosted new path
        self.teacher_head = FrozenHead(self.model)
        # the student: the old path's weights again, but for the frozen ones, equal in both (they
        # never train) and shared with the process's kept build (pipeline.built_models), which a
        # write would make it build anew for the next run
        path = image_path(self.model)
        frozen = {name for name, p in path.named_parameters() if not p.requires_grad}
        old = {k: v for k, v in self.old_encoder.path.state_dict().items() if k not in frozen}
        missing, unexpected = path.load_state_dict(old, strict=False)
        assert set(missing) == frozen and not unexpected, (missing, unexpected)
        del self.method_modules["feature_enhancement"]

    def _after_training_exp(self, **kwargs: Any) -> None:
        super()._after_training_exp(**kwargs)
        # one image path again: the frozen old and boosted copies are dropped
        self.old_encoder = self.old_head = self.teacher_encoder = self.teacher_head = None
        if "feature_enhancement" in self.method_modules:  # an experience without steps
            del self.method_modules["feature_enhancement"]
            self.make_optimizer()

    # -- the expanded model ------------------------------------------------------------------
    def expanded_logits(self, x: Tensor) -> Tensor:
        """``[B, K]`` logits of the expanded model (old path + boosted path, common head), −∞ on
        classes not visible; while boosting the live head and path, while compressing the
        frozen teacher."""
        assert self.old_encoder is not None
        old = self.old_encoder(x)
        if self.teacher_encoder is not None and self.teacher_head is not None:
            with torch.no_grad():
                visible = self.model.classes.visible()
                logits = self.teacher_head(0.5 * (old + self.teacher_encoder(x)))[:, visible]
                return self.model.classes.scatter(logits, visible)
        return self.model.logits_of(0.5 * (old + self.model.encode_images(x)))

    # -- forward and losses -------------------------------------------------------------------
    def training_forward(self) -> Tensor:
        if self.stage == BOOSTING:
            assert self.old_encoder is not None and self.old_head is not None
            new = self.model.encode_images(self.mb_x)
            old = self.old_encoder(self.mb_x)
            fe_head = self.method_modules["feature_enhancement"]
            self.mb_aux = {"fe": fe_head(new), "old": self.old_head(old)[:, self.old_classes]}
            return self.model.logits_of(0.5 * (old.to(new.dtype) + new))
        if self.stage == COMPRESSION:
            self.mb_aux = {"teacher": self.expanded_logits(self.mb_x)}
        return self.model.logits_of(self.model.encode_images(self.mb_x))

    def training_loss(self) -> Tensor:
        if self.stage not in (BOOSTING, COMPRESSION):
            return masked_cross_entropy(self.classification_logits(self.mb_output), self.mb_y)
        assert self.class_weights is not None
        visible = self.model.classes.visible()
        targets = torch.searchsorted(visible, self.mb_y)  # labels as columns of the visible classes
        logits = self.mb_output[:, visible]
        if self.stage == COMPRESSION:
            teacher = self.mb_aux["teacher"][:, visible]
            return balanced_distillation(logits, teacher, self.temperature, self.class_weights)
        old_columns = torch.searchsorted(visible, self.old_classes.to(visible.device))
        classified = self.classification_logits(self.mb_output)[:, visible]  # the CE terms' negatives
        fe = self.classification_logits(self.mb_aux["fe"])[:, visible]
        loss = logits_aligned_cross_entropy(classified, targets, self.class_weights)
        loss = loss + torch.nn.functional.cross_entropy(fe.float(), targets)
        if self.lambda_okd > 0:
            loss = loss + self.lambda_okd * distillation(logits[:, old_columns], self.mb_aux["old"],
                                                         self.temperature)
        return loss
