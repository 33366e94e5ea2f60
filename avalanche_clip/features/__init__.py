"""Frozen-tower feature cache.

When the image trunk (or all but its last K blocks) is frozen, its outputs depend only on the
model weights, the data and the eval transform. ``apply_feature_cache`` computes them once per
(model, weights, data, transform, split point), stores them on disk, and returns the same
benchmark rebuilt over those features, with the classifier's image path switched to the
trainable tail of the tower. Training on the cache equals training through the frozen tower on
un-augmented images (the cache encodes each image once, with the eval transform); with
``views=V > 1`` it also stores V augmented views of every training image, which training draws
among and evaluation never reads (:mod:`avalanche_clip.features.views`).

    benchmark = apply_feature_cache(benchmark, classifier, trainable="projections",
                                    cache_dir="~/.cache/avalanche-clip", device="cuda")
"""

from avalanche_clip.features.apply import FEATURE_CACHE_CHOICES, apply_feature_cache, encode
from avalanche_clip.features.cache import clear_memory, default_cache_dir, load_or_build
from avalanche_clip.features.fingerprint import UnfingerprintableDataError, data_fingerprint
from avalanche_clip.features.split import TowerSplit, TowerSplitError, split_image_tower

__all__ = [
    "FEATURE_CACHE_CHOICES",
    "TowerSplit",
    "TowerSplitError",
    "UnfingerprintableDataError",
    "apply_feature_cache",
    "clear_memory",
    "data_fingerprint",
    "default_cache_dir",
    "encode",
    "load_or_build",
    "split_image_tower",
]
