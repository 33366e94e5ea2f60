"""CLIP's image tower with a linear head, for Avalanche's linear-classifier baselines.

EWC, iCaRL, DER and replay expect a plain classifier ``x → logits``. To compare them with
GCL / GDRO from the same starting point, the head is initialised from the class-prompt
embeddings: ``W = s · [b_1 … b_K]ᵀ`` (``[K, D]``), bias 0, on normalised image embeddings
``a = E_I(x)/‖·‖``. Before any training its logits equal :class:`CLIPClassifier`'s, i.e. the
zero-shot classifier.

    logits = W · a + c        ([B, K]; classes not yet seen are −∞ in eval mode)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from avalanche_clip.models.classifier import CLIPClassifier, SeenClassMask
from avalanche_clip.models.trainable import freeze_frozen_batchnorm


class LinearHeadClassifier(nn.Module):
    """Image encoder + linear head over all ``K`` classes.

    Args:
        image_encoder: module mapping images to ``[B, D]`` embeddings (``clip.visual``).
        head_weight: ``[K, D]`` initial head weight (already scaled).
        eval_classes: ``"seen"`` or ``"all"`` classes visible to predictions in eval mode.
        mask_in_training: also mask unseen classes in train mode. Off by default: Avalanche's
            baselines train a fixed head with cross-entropy over every class, and DER's logit
            distillation needs finite logits.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        head_weight: torch.Tensor,
        *,
        eval_classes: str = "seen",
        mask_in_training: bool = False,
    ) -> None:
        super().__init__()
        num_classes, dim = head_weight.shape
        self.image_encoder = image_encoder
        self.head = nn.Linear(dim, num_classes)
        with torch.no_grad():
            self.head.weight.copy_(head_weight)
            self.head.bias.zero_()
        self.classes = SeenClassMask(num_classes, eval_classes)
        self.mask_in_training = mask_in_training
        self._image_input: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def from_clip_classifier(cls, classifier: CLIPClassifier, **kwargs: object) -> LinearHeadClassifier:
        """The zero-shot-equivalent linear head of ``classifier`` (its text tower dropped)."""
        with torch.no_grad():
            weight = classifier.logit_scale() * classifier.class_embeddings()
        head = cls(classifier.clip.visual, weight.detach().clone(), eval_classes=classifier.classes.eval_classes, **kwargs)  # type: ignore[arg-type]
        head.classes.seen.copy_(classifier.classes.seen)
        head.set_image_input(classifier._image_input)
        return head

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def mark_seen(self, class_ids: Iterable[int] | torch.Tensor) -> None:
        self.classes.mark_seen(class_ids)

    def set_image_input(self, encoder: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        """Route inputs through ``encoder`` instead of ``image_encoder`` (feature caches)."""
        self._image_input = encoder

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` → ``[B, D]`` L2-normalised embeddings."""
        encoder = self._image_input if self._image_input is not None else self.image_encoder
        return F.normalize(encoder(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encode_images(x))
        if self.training and not self.mask_in_training:
            return logits
        visible = self.classes.visible()
        return self.classes.scatter(logits[:, visible], visible)

    def train(self, mode: bool = True) -> LinearHeadClassifier:
        super().train(mode)
        if mode:
            freeze_frozen_batchnorm(self.image_encoder)
        return self
