"""CLIP models: creation (open_clip + offline configs), prompts, classifiers, freezing."""

from avalanche_clip.models.classifier import CLIPClassifier, SeenClassMask
from avalanche_clip.models.factory import (
    CLIPBundle,
    ModelSpec,
    create_clip,
    list_models,
    list_pretrained_tags,
)
from avalanche_clip.models.linear_head import LinearHeadClassifier
from avalanche_clip.models.offline import OFFLINE_MODELS
from avalanche_clip.models.precision import AMP_CHOICES, autocast, effective_amp
from avalanche_clip.models.prompts import TEMPLATE_SETS, class_prompts, resolve_templates
from avalanche_clip.models.trainable import TRAINABLE_CHOICES, set_trainable

__all__ = [
    "AMP_CHOICES",
    "CLIPBundle",
    "CLIPClassifier",
    "LinearHeadClassifier",
    "ModelSpec",
    "OFFLINE_MODELS",
    "SeenClassMask",
    "TEMPLATE_SETS",
    "TRAINABLE_CHOICES",
    "autocast",
    "class_prompts",
    "create_clip",
    "effective_amp",
    "list_models",
    "list_pretrained_tags",
    "resolve_templates",
    "set_trainable",
]
