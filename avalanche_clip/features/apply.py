"""Put a benchmark and a classifier on cached frozen-trunk features."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from avalanche_clip.common.cpu_kernels import compute_identity
from avalanche_clip.common.values import check_choice
from avalanche_clip.features.cache import load_or_build
from avalanche_clip.features.fingerprint import (
    UnfingerprintableDataError,
    combine,
    data_fingerprint,
    weights_fingerprint,
)
from avalanche_clip.features.split import TowerSplitError, split_image_tower
from avalanche_clip.features.views import (
    VIEWS_FORMAT,
    DrawViews,
    SeededView,
    UnaugmentedView,
    ViewStack,
    check_views,
)
from avalanche_clip.scenarios import augmented_dataset, rebuild_scenario, unaugmented_dataset

FEATURE_CACHE_CHOICES = ("auto", True, False)
log = logging.getLogger(__name__)


@torch.no_grad()
def encode(frozen: nn.Module, dataset: Any, *, device: str | torch.device, batch_size: int,
           num_workers: int = 0, progress: bool = True, desc: str = "encoding") -> torch.Tensor:
    """``frozen`` applied to every item of ``dataset`` in order → ``[N, ...]`` float32 on CPU."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers)
    chunks = []
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        chunks.append(frozen(batch[0].to(device)).float().cpu())
    return torch.cat(chunks)


def apply_feature_cache(benchmark: Any, classifier: Any, *, mode: Any = "auto",
                        trainable: str, cache_dir: str | Path, device: str | torch.device = "cpu",
                        batch_size: int = 256, num_workers: int = 0,
                        progress: bool = True, views: int = 1, views_per_item: int = 1) -> Any:
    """The benchmark over cached features, and ``classifier`` reading them (see the package doc).

    Args:
        benchmark: from ``build_scenario`` (with the model's eval transform).
        classifier: a ``CLIPClassifier`` whose model has ``trainable`` applied.
        mode: ``True`` (cache, or fail saying why not), ``"auto"`` (cache when the trunk is
            frozen and the data can be fingerprinted) or ``False`` (never).
        trainable: the ``set_trainable`` choice; decides where the tower is split.
        cache_dir: the cache folder.
        views: ``V``, the training images' cached views: 1 (default) the un-augmented image
            alone, as before this option existed (same key, same features); ``V > 1``: V views
            by the benchmark's random train transform (:mod:`avalanche_clip.features.views`).
        views_per_item: ``k``, views in each training item with ``V > 1`` (2: Co2L, CaSSLe; at
            most ``V``).

    The returned benchmark's ``feature_cache`` says where the features are and ``views`` /
    ``views_per_item``, what training reads.
    """
    check_choice("feature_cache", mode, FEATURE_CACHE_CHOICES)
    views, views_per_item = check_views(views, views_per_item)
    if mode is False:
        return benchmark
    visual = classifier.clip.visual
    try:
        split = split_image_tower(visual, trainable)
        data_keys = {s: data_fingerprint(getattr(benchmark.source, s).dataset, memo_dir=cache_dir)
                     for s in ("train", "test")}
    except (TowerSplitError, UnfingerprintableDataError) as err:
        if mode is True:
            raise
        log.info("feature cache off: %s", err)
        if views > 1:  # the views live in the cache: without it there is one (augmented) view per item
            warnings.warn(f"feature_views={views} is not used: the feature cache is off ({err}); training "
                          "reads the images through the train transform, one view per item", stacklevel=2)
        return benchmark
    if any(p.requires_grad for p in split.frozen.parameters()):
        raise TowerSplitError(f"the cached part of the tower has trainable parameters (trainable={trainable!r})")
    spec = getattr(classifier.clip, "clip_spec", None)
    parts = {
        "model": None if spec is None else [spec.name, spec.pretrained, spec.image_size],
        "point": split.point,
        "weights": weights_fingerprint(split.frozen),
        "transform": repr(benchmark.stream_options.eval_transform),
        "data": data_keys,
        "kernels": compute_identity(device),  # float32 rounding differs between CPU code paths
        "format": 2,  # 2: image files keyed by content, entries with checksums
    }
    key = combine(parts)

    def build(which: str) -> torch.Tensor:
        was_training = split.frozen.training
        split.frozen.eval()
        try:
            return encode(split.frozen, unaugmented_dataset(benchmark, which), device=device,
                          batch_size=batch_size, num_workers=num_workers, progress=progress,
                          desc=f"caching {which} features")
        finally:
            split.frozen.train(was_training)

    features, _ = load_or_build(cache_dir, key, parts, build)
    info = {"key": key, "point": split.point, "dir": str(Path(cache_dir) / "features" / key),
            "views": views, "views_per_item": views_per_item}
    if views == 1:  # today's protocol, untouched: one un-augmented feature per image
        cached = rebuild_scenario(benchmark, train_data=features["train"], test_data=features["test"])
    else:
        stack = _augmented_views(benchmark, split.frozen, parts, views, cache_dir=cache_dir, device=device,
                                 batch_size=batch_size, num_workers=num_workers, progress=progress)
        info["views_key"] = stack[1]
        train = ViewStack(features["train"], stack[0], benchmark.source.train.targets)
        cached = rebuild_scenario(benchmark, train_data=train, test_data=features["test"].unsqueeze(1),
                                  train_transform=DrawViews(views, views_per_item),
                                  eval_transform=UnaugmentedView())
    classifier.set_image_input(split.tail)
    cached.feature_cache = info
    return cached


def _augmented_views(benchmark: Any, frozen: nn.Module, parts: dict[str, Any], views: int, *,
                     cache_dir: str | Path, device: str | torch.device, batch_size: int,
                     num_workers: int, progress: bool) -> tuple[torch.Tensor, str]:
    """``([V, N_train, ...] views, their key)``: the cache entry of the training images' views,
    built with the train transform if absent (:mod:`avalanche_clip.features.views`)."""
    options = benchmark.stream_options
    train_transform = options.train_transform
    if train_transform is None or repr(train_transform) == repr(options.eval_transform):
        raise ValueError(
            f"feature_views={views} needs a random training transform, but the benchmark's train "
            f"transform is {train_transform!r}, the same as its eval transform: every view would "
            "be the same image; use feature_views=1, or build the benchmark with the model's train "
            "transform"
        )
    view_parts = {**parts, "views": views, "train_transform": repr(train_transform),
                  "views_format": VIEWS_FORMAT}
    key = combine(view_parts)
    dataset = augmented_dataset(benchmark)

    def build(_: str) -> torch.Tensor:
        was_training = frozen.training
        frozen.eval()  # the views differ by their pixels alone (no dropout, BatchNorm statistics)
        try:
            return torch.stack([
                encode(frozen, SeededView(dataset, v), device=device, batch_size=batch_size,
                       num_workers=num_workers, progress=progress, desc=f"caching train view {v + 1}/{views}")
                for v in range(views)])
        finally:
            frozen.train(was_training)

    stored, _ = load_or_build(cache_dir, key, view_parts, build, splits=("views",))
    return stored["views"], key
