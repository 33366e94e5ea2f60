"""GCL and GDRO: contrastive objectives between images and their label prompts.

A training step encodes the mini-batch's images, ``a = E_I(x)/‖·‖`` (``[B, D]``), and the
prompts of its distinct classes once, gathering row ``j`` as the prompt of sample ``j``'s label
(``[B, D]``). The loss receives those, the labels and the samples' global ids, and keeps its
moving-average estimators per id (``avalanche_clip.losses``).
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import BasePlugin
from torch import nn

from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.plugins import LossStatePlugin
from avalanche_clip.strategies.base import CLIPStrategyBase


class ContrastiveCLIPStrategy(CLIPStrategyBase):
    """A :class:`CLIPStrategyBase` whose loss takes ``(image, text, labels, ids)``.

    Args:
        loss: a stateful loss such as :class:`GCLLoss` or :class:`GDROLoss`.
        reset_loss_state: reset the loss's estimators at every experience start (ablation).
        **kwargs: :class:`CLIPStrategyBase` arguments.
    """

    def __init__(self, *, loss: nn.Module, reset_loss_state: bool = False, **kwargs: Any) -> None:
        self.loss_state = LossStatePlugin(
            loss, num_samples=loss.log_u.numel(), reset_each_experience=reset_loss_state
        )
        super().__init__(criterion=loss, **kwargs)
        self.loss_state.replay = self.replay
        self.mb_features: tuple[torch.Tensor, torch.Tensor] | None = None

    def _state_plugins(self) -> list[BasePlugin]:
        return [self.loss_state]

    def training_forward(self) -> torch.Tensor:
        if self.mb_index is None:
            raise RuntimeError(
                f"{type(self).__name__} needs each sample's global index: build the stream "
                "with build_scenario(..., with_index=True)"
            )
        image = self.model.encode_images(self.mb_x)
        classes, inverse = torch.unique(self.mb_y, return_inverse=True)
        prompts = self.model.class_embeddings(classes).to(image.dtype)
        self.mb_features = (image, prompts[inverse])
        with torch.no_grad():  # logits over the batch's classes, for training metrics only
            logits = self.model.logit_scale() * image @ prompts.t()
            return self.model.classes.scatter(logits, classes)

    def training_loss(self) -> torch.Tensor:
        assert self.mb_features is not None and self.mb_index is not None
        image, text = self.mb_features
        return self._criterion(image, text, self.mb_y, self.mb_index)


class GCLStrategy(ContrastiveCLIPStrategy):
    """Global contrastive loss between images and label prompts (see :class:`GCLLoss`).

    Args:
        num_samples: ``N``, the size of the benchmark's train set (its global id space).
        tau: temperature ``τ``; gamma: moving-average weight ``γ ∈ (0, 1]`` on the new estimate;
        negatives: ``"instance"`` or ``"class"``.
        **kwargs: :class:`ContrastiveCLIPStrategy` / :class:`CLIPStrategyBase` arguments
            (``model``, ``optimizer``, ``mem_size``, ``train_mb_size``, ``device`` ...).

    Example::

        strategy = GCLStrategy(model=classifier, optimizer=AdamW(...),
                               num_samples=benchmark.num_train_samples, mem_size=200,
                               train_mb_size=64, device="cuda")
    """

    def __init__(self, *, num_samples: int, tau: float = 0.05, gamma: float = 0.9,
                 negatives: str = "instance", **kwargs: Any) -> None:
        loss = GCLLoss(num_samples=num_samples, tau=tau, gamma=gamma, negatives=negatives)
        super().__init__(loss=loss, **kwargs)


class GDROStrategy(ContrastiveCLIPStrategy):
    """Class-level group DRO over squared-hinge contrastive losses (see :class:`GDROLoss`).

    Args:
        num_samples: ``N``, the size of the benchmark's train set.
        tau, margin, dro_lambda, gamma, class_gamma: the loss's hyper-parameters.
        **kwargs: :class:`ContrastiveCLIPStrategy` / :class:`CLIPStrategyBase` arguments.
    """

    def __init__(self, *, model: nn.Module, num_samples: int, tau: float = 0.5,
                 margin: float = 0.5, dro_lambda: float = 1.0, gamma: float = 0.9,
                 class_gamma: float = 0.9, **kwargs: Any) -> None:
        loss = GDROLoss(num_samples=num_samples, num_classes=model.num_classes, tau=tau,
                        margin=margin, dro_lambda=dro_lambda, gamma=gamma,
                        class_gamma=class_gamma)
        super().__init__(model=model, loss=loss, **kwargs)
