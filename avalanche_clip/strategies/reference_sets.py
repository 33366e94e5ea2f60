"""ZSCL's reference sets (:mod:`avalanche_clip.strategies.zscl`): the images and texts it distils on
besides the training data, and the check of the ``reference`` option of a run config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.datasets import ImageFolder

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.models.classifier import CLIPClassifier
from avalanche_clip.scenarios.heldout import HeldOutSet, parse_heldout_set

#: The name of a configured reference set when its entry gives none (in its error messages).
REFERENCE_NAME = "zscl-reference"


@dataclass
class ReferenceSet:
    """Reference images and texts: ``images[i][0]`` is a model input; ``text_features``
    ``[C, D]`` the teacher's normalised features of the reference texts."""

    images: Any
    text_features: Tensor


def check_reference(key: str, value: Any) -> HeldOutSet | ReferenceSet | None:
    """The ``reference`` option: None (the held-out default), a built :class:`ReferenceSet`, or a
    config entry (a mapping with a retention set's keys, ``name`` optional) checked into a
    :class:`HeldOutSet`; ``ConfigError`` naming the bad value otherwise."""
    if value is None or isinstance(value, ReferenceSet):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping {{folder | scenario, classes, max_per_class}} (the "
                          f"reference images), or left out for the held-out default; got {value!r}")
    return parse_heldout_set(value, f"strategy_options.zscl.{key}", default_name=REFERENCE_NAME)


def folder_reference(root: str, classifier: CLIPClassifier, tokenizer: Callable[..., Tensor],
                     transform: Callable[[Any], Tensor], templates: str | Sequence[str] = "photo") -> ReferenceSet:
    """A :class:`ReferenceSet` from an ImageFolder-style directory: its images under
    ``transform``, and the prompts of its sub-folder names encoded by ``classifier``'s CLIP as it
    is now (call it before training, when it is the teacher)."""
    images = ImageFolder(root, transform=transform)
    names = [name.replace("_", " ") for name in images.classes]
    encoder = CLIPClassifier(classifier.clip, tokenizer, names, templates)
    with torch.no_grad():
        text = encoder.class_embeddings().detach().clone()
    return ReferenceSet(images=images, text_features=text)


__all__ = ["REFERENCE_NAME", "ReferenceSet", "check_reference", "folder_reference"]
