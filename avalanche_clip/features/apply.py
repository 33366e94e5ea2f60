"""Put a benchmark and a classifier on cached frozen-trunk features."""

from __future__ import annotations

import logging
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
from avalanche_clip.scenarios import rebuild_scenario, unaugmented_dataset

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
                        progress: bool = True) -> Any:
    """The benchmark over cached features, and ``classifier`` reading them (see the package doc).

    Args:
        benchmark: from ``build_scenario`` (with the model's eval transform).
        classifier: a ``CLIPClassifier`` whose model has ``trainable`` applied.
        mode: ``True`` (cache, or fail saying why not), ``"auto"`` (cache when the trunk is
            frozen and the data can be fingerprinted) or ``False`` (never).
        trainable: the ``set_trainable`` choice; decides where the tower is split.
        cache_dir: the cache folder.
    """
    check_choice("feature_cache", mode, FEATURE_CACHE_CHOICES)
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
    cached = rebuild_scenario(benchmark, train_data=features["train"], test_data=features["test"])
    classifier.set_image_input(split.tail)
    cached.feature_cache = {"key": key, "point": split.point, "dir": str(Path(cache_dir) / "features" / key)}
    return cached
