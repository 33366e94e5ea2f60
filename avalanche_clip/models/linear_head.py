"""CLIP's image tower with a linear head, for Avalanche's linear-classifier baselines.

EWC, iCaRL, DER and replay expect a plain classifier ``x → logits``. To compare them with
GCL / GDRO from the same starting point, the head is initialised from the class-prompt
embeddings: ``W = s · [b_1 … b_K]ᵀ`` (``[K, D]``), bias 0, on normalised image embeddings
``a = E_I(x)/‖·‖``::

    logits = W · a + c        ([B, K])

Before any training these are :class:`CLIPClassifier`'s logits, i.e. the zero-shot classifier.
Like :class:`CLIPClassifier`, the head predicts among the classes marked seen (−∞ elsewhere).
It is the ``head: linear`` ablation of the comparison protocol, available to every method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from avalanche_clip.models.classifier import CLIPClassifier, SeenClassMask
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
    """Normalised image encoder + linear head over all ``K`` classes, masked to the seen ones.

    It offers the same interface as :class:`CLIPClassifier` (``encode_images``,
    ``class_embeddings``, ``logit_scale``, ``mark_seen``, ``classes``), so every strategy runs
    with either head: the class embeddings are the normalised head rows ``W_k/‖W_k‖`` (what the
    contrastive losses pair images with), and ``forward`` returns ``W·a + c`` with −∞ on classes
    not seen yet.

    Args:
        image_encoder: module mapping images to ``[B, D]`` embeddings (``clip.visual``).
        head_weight: ``[K, D]`` initial head weight (already scaled).
        logit_scale: the scale ``s`` the weight was built with (``logit_scale()`` returns it).
        class_names: optional class names (index = class id).
    """

    def __init__(self, image_encoder: nn.Module, head_weight: torch.Tensor,
                 logit_scale: float = 1.0, class_names: list[str] | None = None) -> None:
        super().__init__()
        num_classes, dim = head_weight.shape
        self.features = NormalizedImageEncoder(image_encoder)
        self.head = nn.Linear(dim, num_classes)
        self.classes = SeenClassMask(num_classes)
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
        self.register_buffer("_scale", torch.tensor(float(logit_scale)), persistent=False)
        with torch.no_grad():
            self.head.weight.copy_(head_weight)
            self.head.bias.zero_()

    @classmethod
    def from_clip_classifier(cls, classifier: CLIPClassifier) -> LinearHeadClassifier:
        """The zero-shot-equivalent linear head of ``classifier`` (its text tower dropped)."""
        with torch.no_grad():
            scale = classifier.logit_scale()
            weight = scale * classifier.class_embeddings()
        head = cls(classifier.clip.visual, weight.detach().clone(), float(scale),
                   classifier.class_names)
        head.features.set_image_input(classifier._image_input)
        head.classes.seen.copy_(classifier.classes.seen)
        head.class_mapping = getattr(classifier, "class_mapping", None)
        return head

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def mark_seen(self, class_ids: Iterable[int] | torch.Tensor) -> None:
        """Make ``class_ids`` visible to :meth:`forward` (see :class:`SeenClassMask`)."""
        self.classes.mark_seen(class_ids)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` → ``[B, D]`` L2-normalised image embeddings."""
        return self.features(x)

    def class_embeddings(self, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised head rows ``[k, D]`` of ``class_ids`` (all ``K`` when None)."""
        weight = self.head.weight if class_ids is None else self.head.weight[class_ids]
        return F.normalize(weight, dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """The scale the head was initialised with (the CLIP classifier's ``s``)."""
        return self._scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, ...]`` → ``[B, K]`` logits, −∞ on classes that are not visible."""
        return self.logits_of(self.features(x))

    def logits_of(self, image: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, K]`` logits ``W·a + c`` of normalised embeddings ``image`` ``[B, D]`` for
        ``classes`` (default: the visible ones), −∞ elsewhere."""
        classes = self.classes.visible() if classes is None else classes
        return self.classes.scatter(self.head(image)[:, classes], classes)
