"""CLIP's image tower with a linear head, for Avalanche's linear-classifier baselines.

EWC, iCaRL, DER and replay expect a plain classifier ``x → logits``. To compare them with
GCL / GDRO from the same starting point, the head is initialised from the class-prompt
embeddings: ``W = s · [b_1 … b_K]ᵀ`` (``[K, D]``), bias 0, on normalised image embeddings
``a = E_I(x)/‖·‖``::

    logits = W · a + c        ([B, K])

Before any training these are :class:`CLIPClassifier`'s logits over all classes, i.e. the
zero-shot classifier. The head itself never masks classes (DER distils its raw logits, so
they must stay finite); :class:`~avalanche_clip.plugins.SeenClassesPlugin` restricts the
predictions to the classes seen so far at evaluation, as for every other method.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from avalanche_clip.models.classifier import CLIPClassifier
from avalanche_clip.models.trainable import freeze_frozen_modules


class NormalizedImageEncoder(nn.Module):
    """``x → E_I(x)/‖E_I(x)‖`` (``[B, D]``): iCaRL's feature extractor, and the linear head's."""

    def __init__(self, image_encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self._image_input: Callable[[torch.Tensor], torch.Tensor] | None = None

    def set_image_input(self, encoder: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        """Route inputs through ``encoder`` instead of ``image_encoder`` (feature caches)."""
        self._image_input = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoder = self._image_input if self._image_input is not None else self.image_encoder
        return F.normalize(encoder(x), dim=-1)

    def train(self, mode: bool = True) -> NormalizedImageEncoder:
        super().train(mode)
        if mode:
            freeze_frozen_modules(self.image_encoder)
        return self


class LinearHeadClassifier(nn.Module):
    """Normalised image encoder + linear head over all ``K`` classes.

    Args:
        image_encoder: module mapping images to ``[B, D]`` embeddings (``clip.visual``).
        head_weight: ``[K, D]`` initial head weight (already scaled).
    """

    def __init__(self, image_encoder: nn.Module, head_weight: torch.Tensor) -> None:
        super().__init__()
        num_classes, dim = head_weight.shape
        self.features = NormalizedImageEncoder(image_encoder)
        self.head = nn.Linear(dim, num_classes)
        with torch.no_grad():
            self.head.weight.copy_(head_weight)
            self.head.bias.zero_()

    @classmethod
    def from_clip_classifier(cls, classifier: CLIPClassifier) -> LinearHeadClassifier:
        """The zero-shot-equivalent linear head of ``classifier`` (its text tower dropped)."""
        with torch.no_grad():
            weight = classifier.logit_scale() * classifier.class_embeddings()
        head = cls(classifier.clip.visual, weight.detach().clone())
        head.features.set_image_input(classifier._image_input)
        return head

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` → ``[B, K]`` logits."""
        return self.head(self.features(x))
