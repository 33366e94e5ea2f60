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


def tensors_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A hex digest of named tensors (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        _update(digest, [name, str(tensor.dtype), list(tensor.shape)])
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        digest.update(memoryview(tensor.numpy()))  # the same bytes as .tobytes(), uncopied
    return digest.hexdigest()


# owner module → (signature of its tensors, their digest): see owned_tensors_fingerprint
_OWNED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def owned_tensors_fingerprint(owner: nn.Module, tensors: dict[str, torch.Tensor]) -> str:
    """:func:`tensors_fingerprint` of tensors held by ``owner`` (e.g. its frozen parameters),
    remembered while none of them changed.

    A run fingerprints its frozen weights at every checkpoint (~0.3 s each for
    effnet-lite0-clip's 70 MB); they are the same tensors every time. The digest is reused while
    every tensor keeps its storage, version counter, shape, stride, dtype and device: an
    in-place change (``load_state_dict``, ``p.mul_`` under ``no_grad``) bumps the version, a
    replaced tensor changes the storage. Writes through ``p.data``, which torch does not count,
    are not seen: do not change frozen weights that way in the middle of a run.
    """
    signature = tuple((name, t.untyped_storage().data_ptr(), t.storage_offset(), t._version,
                       tuple(t.shape), t.stride(), t.dtype, str(t.device))
                      for name, t in tensors.items())
    known = _OWNED.get(owner)
    if known is not None and known[0] == signature:
        return known[1]
    digest = tensors_fingerprint(tensors)
    _OWNED[owner] = (signature, digest)
    return digest


def combine(parts: dict[str, Any]) -> str:
    """The cache key of a mapping of named parts."""
    digest = hashlib.sha256()
    _update(digest, parts)
    return digest.hexdigest()
