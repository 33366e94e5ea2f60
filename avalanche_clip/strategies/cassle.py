"""CaSSLe, supervised-contrastive variant (Fini et al., CVPR 2022), on the CLIP image path.

CaSSLe turns a self-supervised method into a continual learner by distilling through a
predictor: the current projections ``z = g(a)`` are mapped by a trainable predictor ``h`` to the
frozen previous model's projections ``z̄ = ḡ(ā)``, under the method's own kind of objective. The
"supervised contrastive variant" the paper compares with is the authors' SimCLR with
``--supervised`` (SupCon) and the contrastive distiller (``bash_files/continual/domainnet/
supcon_distill.sh`` of ``DonkeyShot21/cassle``). Representation stage (see
:mod:`avalanche_clip.strategies.decoupled` for the stages and the budget)::

    L = L_SupCon(z, y; τ) + λ · ½ [ D(h(z), z̄) + D(z̄, h(z)) ]        (second experience on)
    D(a, b) = −(1/B) Σ_i log[ exp(â_i·b̂_i/T) / Σ_j exp(â_i·b̂_j/T) ]      (â, b̂ normalised)

(:func:`~avalanche_clip.losses.supcon.supervised_contrastive_loss`, mean over the anchors that
have a positive; :func:`~avalanche_clip.losses.supcon.predictive_contrastive_distillation`).
With two augmented views of each image (``feature_views >= 2`` on the feature cache, the
authors' protocol) the ``2B`` views are the rows: each anchor's twin is among its positives,
and ``D`` is the authors' two-view ``simclr_distill_loss_func`` — ``h(z)`` of one view must
identify the frozen ``z̄`` of the image's other view, among all frozen rows but its own view's.
With one view per sample, ``D`` above (the same function read with one view). The first
experience trains SupCon alone, as the authors' first task does (no distiller). ``z̄`` comes
from the image path and projector frozen at the start of the experience; the predictor ``h``
persists across experiences and trains with the model.

No memory: CaSSLe is rehearsal-free, so it is registered with ``memory: none``. Its classifier is
linear evaluation on the frozen representation; under the protocol the common head trains with
plain cross-entropy on the current data during the last ``classifier_fraction`` of each
experience's steps (the authors evaluate once, on all domains' data, which a continual learner
cannot see).

Defaults (authors' code, ``cassle/methods/simclr.py``, ``cassle/distillers/contrastive.py`` and
the DomainNet scripts): SupCon temperature ``τ = 0.1``, projector ``Linear(D, 2048) → ReLU →
Linear(2048, 128)``, predictor ``Linear(128, 2048) → BatchNorm → ReLU → Linear(2048, 128)``,
distillation temperature ``T = 0.2`` and weight ``λ = 1``. ``classifier_fraction = 1/3``: the
authors' linear evaluation takes 100 epochs against 200 per task of representation learning.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from avalanche_clip.common.values import check_options
from avalanche_clip.losses.supcon import (
    predictive_contrastive_distillation,
    supervised_contrastive_loss,
)
from avalanche_clip.strategies.decoupled import DecoupledContrastiveStrategy
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.option_rules import CASSLE_RULES
from avalanche_clip.strategies.snapshots import projection_mlp

CASSLE = METHOD_DEFAULTS["cassle"]  # derived defaults (strategies.defaults)


class CaSSLeStrategy(DecoupledContrastiveStrategy):
    """CaSSLe with SupCon and predictive contrastive distillation, no memory (module docstring).

    Args:
        model, optimizer: the classifier and its optimizer.
        tau: SupCon temperature ``τ``.
        distill_temperature: ``T`` of the distillation; distill_lambda: its weight ``λ >= 0``.
        projection_hidden, projection_dim: the projector's hidden and output sizes.
        predictor_hidden: the predictor's hidden size.
        classifier_fraction: share of each experience's steps for the classifier stage.
        **kwargs: :class:`CLIPStrategyBase` arguments (``mem_size`` must be 0).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, tau: float = CASSLE["tau"],
                 distill_temperature: float = CASSLE["distill_temperature"],
                 distill_lambda: float = CASSLE["distill_lambda"],
                 projection_hidden: int = 2048, projection_dim: int = 128,
                 predictor_hidden: int = 2048, classifier_fraction: float = CASSLE["classifier_fraction"],
                 **kwargs: Any) -> None:
        if kwargs.get("mem_size", 0):
            raise ValueError(f"CaSSLe uses no replay memory: mem_size must be 0, got {kwargs['mem_size']!r}")
        self.tau, self.distill_temperature, self.distill_lambda = check_options(
            CASSLE_RULES, tau=tau, distill_temperature=distill_temperature, distill_lambda=distill_lambda)
        super().__init__(model=model, optimizer=optimizer, criterion=criterion,
                         projection_hidden=projection_hidden, projection_dim=projection_dim,
                         classifier_fraction=classifier_fraction, class_balanced=False, **kwargs)
        self.method_modules["predictor"] = projection_mlp(
            projection_dim, predictor_hidden, projection_dim, batch_norm=True).to(self.device)

    def representation_loss(self, projection: Tensor) -> Tensor:
        loss = supervised_contrastive_loss(projection, self.view_labels(), tau=self.tau, reduction="anchors")
        past = self.previous_projection()
        if past is not None and self.distill_lambda > 0:
            predicted = self.method_modules["predictor"](projection)
            loss = loss + self.distill_lambda * predictive_contrastive_distillation(
                predicted, past.float(), temperature=self.distill_temperature, views=self.n_views)
        return loss
