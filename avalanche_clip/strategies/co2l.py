"""Co2L: contrastive continual learning (Cha, Lee and Shin, ICCV 2021), on the CLIP image path.

Representation stage (see :mod:`avalanche_clip.strategies.decoupled` for the stages and the
budget), on ``z = g(a)`` with ``a`` the normalised CLIP image embedding and ``g`` Co2L's MLP
projector (``Linear(D, D) → ReLU → Linear(D, 128)``, the SupCon ResNet head of the authors'
``networks/resnet_big.py``, here on top of the CLIP embedding instead of the ResNet features):

- **asymmetric SupCon** (the paper's Sec. 3): only the current experience's samples are
  anchors; memory samples appear in the anchors' sums only, as negatives (and, in
  domain-incremental streams where memory shares the current classes, as positives
  ``P_i = {j ≠ i: y_j = y_i}``)::

      L_asym = (τ/τ_b) · (1/B) Σ_{i ∈ S, P_i ≠ ∅} −(1/|P_i|) Σ_{j∈P_i}
               log[ exp(z_i·z_j/τ) / Σ_{k≠i} exp(z_i·z_k/τ) ]

  ``S`` = rows not in the replay memory (the paper's "samples from the current task"; the
  authors' code selects them by the current task's labels, the same rows in class-incremental
  streams, and we keep the paper's definition in domain-incremental ones); the ``1/B`` mean
  over all rows and the factor ``τ/τ_b`` (``τ_b = 0.07``) are the authors' code's
  (``losses_negative_only.py``, from SupContrast), which the paper's sum omits. With two views
  of each image (the paper's protocol; ``feature_views >= 2`` on the feature cache) the rows are
  the ``2B`` views, ``B`` counts them all, and every anchor has its twin among its positives, as
  in the authors' code; with one view per sample an anchor without a positive is left out.
- **instance-wise relation distillation** (IRD, the paper's Sec. 3), from the second
  experience on, over all ``B`` rows (memory included; both views of every image, so an image's
  past similarity peaks on its own twin), from the previous model's similarity
  distributions (temperature ``κ*``) to the current one's (``κ``)::

      L = L_asym + λ · (1/B) Σ_i Σ_{j≠i} −p̄_ij(κ*) log p_ij(κ)

  The previous model is the image path and projector frozen at the start of the experience
  (the authors' ``model2 = deepcopy(model)``).

Classifier stage: Co2L trains a linear classifier on the frozen representation with
class-balanced sampling over the current data and the memory (``main_linear_buffer.py``).
Under the protocol the classifier is the common head; it trains with the class-balanced
cross-entropy of :mod:`~avalanche_clip.strategies.decoupled` during the last
``classifier_fraction`` of each experience's steps.

Defaults: the authors' Seq-CIFAR-10 command (``run.sh`` of ``chaht01/Co2L``: ``--temp 0.5
--current_temp 0.2 --past_temp 0.01``) and ``main.py``'s defaults (``distill_power`` 1.0, the
SupCon loss's ``base_temperature`` 0.07, projection size 128): ``τ = 0.5``, ``κ = 0.2``,
``κ* = 0.01``, ``λ = 1``, ``τ_b = 0.07``. ``classifier_fraction = 0.5``: the authors' linear
classifier trains 100 epochs (``main_linear_buffer.py``), as many as each task's representation
learning after the first (``--epochs 100``). Learning rate, epochs, batch size and optimizer are
the protocol's, shared by every method.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from avalanche_clip.common.values import check_options
from avalanche_clip.losses.supcon import (
    relation_distillation_loss,
    supervised_contrastive_loss,
)
from avalanche_clip.strategies.decoupled import DecoupledContrastiveStrategy
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.option_rules import CO2L_RULES

CO2L = METHOD_DEFAULTS["co2l"]  # derived defaults (strategies.defaults)


class Co2LStrategy(DecoupledContrastiveStrategy):
    """Co2L on the shared memory and budget (module docstring).

    Args:
        model, optimizer: the classifier and its optimizer.
        tau: SupCon temperature ``τ``; base_temperature: ``τ_b`` of the ``τ/τ_b`` scale.
        kappa, kappa_past: IRD temperatures ``κ`` (current model) and ``κ*`` (previous model).
        ird_lambda: weight ``λ >= 0`` of the relation distillation.
        projection_dim: output size of the projector (hidden size: the embedding size).
        classifier_fraction: share of each experience's steps for the classifier stage.
        **kwargs: :class:`CLIPStrategyBase` arguments (``mem_size``, ``seed`` ...).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, tau: float = CO2L["tau"],
                 base_temperature: float = 0.07, kappa: float = CO2L["kappa"],
                 kappa_past: float = CO2L["kappa_past"], ird_lambda: float = CO2L["ird_lambda"],
                 projection_dim: int = 128, classifier_fraction: float = CO2L["classifier_fraction"],
                 **kwargs: Any) -> None:
        self.tau, self.base_temperature, self.kappa, self.kappa_past, self.ird_lambda = check_options(
            CO2L_RULES, tau=tau, base_temperature=base_temperature, kappa=kappa, kappa_past=kappa_past,
            ird_lambda=ird_lambda)
        self.mb_anchors: Tensor | None = None
        super().__init__(model=model, optimizer=optimizer, criterion=criterion,
                         projection_hidden=None, projection_dim=projection_dim,
                         classifier_fraction=classifier_fraction, class_balanced=True, **kwargs)

    def representation_loss(self, projection: Tensor) -> Tensor:
        self.mb_anchors = ~self.memory_rows()  # the current experience's samples
        loss = supervised_contrastive_loss(projection, self.view_labels(), tau=self.tau, anchors=self.mb_anchors,
                                           scale=self.tau / self.base_temperature, reduction="batch")
        past = self.previous_projection()
        if past is not None and self.ird_lambda > 0:
            loss = loss + self.ird_lambda * relation_distillation_loss(
                projection, past.float(), kappa=self.kappa, kappa_past=self.kappa_past)
        return loss
