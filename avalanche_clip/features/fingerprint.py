"""Stable fingerprints of what a cached feature depends on: data, weights, transform, split.

A change to any of them must change the cache key, so a stale feature is never read:

- data: for image files, the content digest of each file (in order) plus the labels — not their
  paths, so the same data moved elsewhere keeps its key (digests are remembered by file identity,
  see :mod:`avalanche_clip.scenarios.file_digests`); for in-memory images, the pixel bytes and
  labels;
- weights: every tensor (name, dtype, shape, bytes) of the frozen part of the tower;
- transform: its ``repr`` (torchvision transforms print every parameter);
- split point and model identity (name, pretrained tag, image size).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from avalanche_clip.scenarios import ArrayImageDataset, DataSource, ImageFileDataset, TensorInputs
from avalanche_clip.scenarios.file_digests import file_digests


class UnfingerprintableDataError(TypeError):
    """The data set's identity cannot be established, so its features cannot be cached safely."""


def _update(digest: Any, value: Any) -> None:
    digest.update(json.dumps(value, sort_keys=True, default=str).encode())


def data_fingerprint(dataset: Any, memo_dir: str | os.PathLike[str] | None = None) -> str:
    """A hex digest identifying the samples of ``dataset`` and their order (``memo_dir``: where
    file digests are remembered between runs)."""
    digest = hashlib.sha256()
    _data_digest(dataset, digest, memo_dir)
    return digest.hexdigest()


def source_fingerprint(source: DataSource, memo_dir: str | os.PathLike[str] | None = None) -> str:
    """A hex digest of what a run learns from: both splits' samples, labels and domains in
    order, the class names (they become the prompts) and the domain names."""
    test = source.test  # None for a train-only source (tuning never reads the test split)
    return combine({
        "train": data_fingerprint(source.train.dataset, memo_dir),
        "test": None if test is None else data_fingerprint(test.dataset, memo_dir),
        "targets": [source.train.targets, None if test is None else test.targets],
        "domains": [source.train.domains, None if test is None else test.domains],
        "class_names": source.class_names,
        "domain_names": source.domain_names,
    })


def _data_digest(dataset: Any, digest: Any, memo_dir: str | os.PathLike[str] | None) -> None:
    if isinstance(dataset, ImageFileDataset):
        _update(digest, ["files", dataset.targets])
        digest.update("\n".join(file_digests(dataset.paths, memo_dir)).encode())
    elif isinstance(dataset, ArrayImageDataset):
        _update(digest, ["array", list(dataset.images.shape), dataset.indices, dataset.targets])
        digest.update(np.ascontiguousarray(dataset.images).tobytes())
    elif isinstance(dataset, TensorInputs):
        _update(digest, ["tensor", list(dataset.inputs.shape), dataset.targets])
        digest.update(dataset.inputs.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(dataset, Subset):
        _update(digest, ["subset", [int(i) for i in dataset.indices]])
        _data_digest(dataset.dataset, digest, memo_dir)
    else:
        raise UnfingerprintableDataError(
            f"cannot fingerprint a {type(dataset).__name__} data set for the feature cache "
            "(supported: image files, in-memory image arrays, tensors and their subsets)"
        )


def weights_fingerprint(module: nn.Module) -> str:
    """A hex digest of every parameter and buffer of ``module``."""
    return tensors_fingerprint(module.state_dict())


def tensor_state(tensor: torch.Tensor, storage: Any = None) -> tuple:
    """What changes when ``tensor``'s values may have: its storage's address (``storage``: its
    ``untyped_storage()``, when the caller holds it already), offset, version counter (bumped
    by every in-place change torch counts, not by writes through ``.data``), shape, stride,
    dtype and device."""
    storage = tensor.untyped_storage() if storage is None else storage
    return (storage.data_ptr(), tensor.storage_offset(), tensor._version, tuple(tensor.shape),
            tensor.stride(), tensor.dtype, str(tensor.device))


def tensors_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A hex digest of named tensors (names, dtypes, shapes and values).

    Remembered while the very same tensors are unchanged: a run fingerprints its frozen weights
    for the feature cache and at every checkpoint (~0.2 s each for effnet-lite0-clip's 77 MB),
    and they are the same tensors every time. A digest is reused only while every tensor keeps
    its storage (held weakly: one that is freed ends the entry, so no new tensor can take its
    address), offset, version counter, shape, stride, dtype and device; an in-place change
    (``load_state_dict``, ``p.mul_`` under ``no_grad``, an optimizer step) bumps the version.
    Writes through ``p.data``, which torch does not count, are not seen.
    """
    try:
        storages = [t.untyped_storage() for t in tensors.values()]
    except (RuntimeError, NotImplementedError):  # e.g. sparse tensors: no storage to watch
        return _hash_tensors(tensors)
    signature = tuple((name, *tensor_state(t, s)) for (name, t), s in zip(tensors.items(), storages, strict=True))
    with _RECENT_LOCK:  # the checkpoint writer's thread asks too
        for position, (known, watched, digest) in enumerate(_RECENT):
            if known == signature and all(ref() is not None for ref in watched):
                # most recently used first: a run's frozen weights (hit at every checkpoint) stay
                # while the feature cache's tower, whose buffers each run copies anew, comes and goes
                _RECENT.insert(0, _RECENT.pop(position))
                return digest
    digest = _hash_tensors(tensors)
    with _RECENT_LOCK:
        _RECENT.insert(0, (signature, [weakref.ref(s) for s in storages], digest))
        del _RECENT[_RECENT_SIZE:]
    return digest


_RECENT_SIZE = 4  # a run's frozen trunk (feature cache) and all its frozen weights (checkpoints)
_RECENT: list[tuple[tuple, list[weakref.ref], str]] = []  # (signature, storages, digest)
_RECENT_LOCK = threading.Lock()


def _hash_tensors(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        _update(digest, [name, str(tensor.dtype), list(tensor.shape)])
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        digest.update(memoryview(tensor.numpy()))  # the same bytes as .tobytes(), uncopied
    return digest.hexdigest()


def combine(parts: dict[str, Any]) -> str:
    """The cache key of a mapping of named parts."""
    digest = hashlib.sha256()
    _update(digest, parts)
    return digest.hexdigest()
