"""Decode a list of image files once into one uint8 array, optionally persisted as ``.npy``.

Decoding JPEGs costs more than a small model's step on a CPU (CIFAR-10: about 5,000 images/s
on one core). For small data sets the whole set fits in memory, so the scenarios can decode it
once (``decode_cache=True``) and serve PIL images from the array.

With a ``cache_dir`` the array is stored as ``decoded-<N>-<key>.npy``, where ``key`` hashes the
ordered list of the files' *content* digests (:mod:`.file_digests`): editing, replacing, adding
or reordering files gives a new key, never a stale hit, while the same files moved elsewhere
keep it. Next to it, ``decoded-<N>-<key>.json`` holds the array's checksum (written after the
array); a load checks it, and an array that fails the check is decoded again with a
:class:`DecodeCacheWarning`, never read. Files are written to unique temporary names in the
same folder and moved into place with ``os.replace`` (atomic on POSIX), so two processes
building the same array at once both succeed and a reader never sees a partial file. Later
builds memory-map it. A ``cache_dir`` that cannot be written serves the array from memory, with
one warning (:mod:`avalanche_clip.common.cache_writes`).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from avalanche_clip.common.atomic import atomic_write, atomic_write_text
from avalanche_clip.common.cache_writes import warn_cache_unwritable
from avalanche_clip.scenarios.errors import DataLayoutError
from avalanche_clip.scenarios.file_digests import content_digest, file_digests
from avalanche_clip.scenarios.image_files import ArrayImageDataset, ImageFileDataset, read_image


class _ArrayReader(Dataset):
    """Index → decoded uint8 array; used to decode with DataLoader worker processes."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.asarray(read_image(self.paths[i]))


def _as_list(batch: list[Any]) -> list[Any]:
    return batch


def iter_decoded(paths: Sequence[str], num_workers: int = 0):
    """Yield ``(index, HxWx3 uint8 array)`` for ``paths`` in order, decoding in worker processes."""
    if num_workers <= 0:
        for i, p in enumerate(paths):
            yield i, np.asarray(read_image(p))
        return
    loader = DataLoader(
        _ArrayReader(paths), batch_size=256, num_workers=num_workers, collate_fn=_as_list
    )
    i = 0
    for batch in loader:
        for arr in batch:
            yield i, arr
            i += 1


def check_same_shape(
    shape: tuple[int, ...], first: tuple[int, ...], path: str, first_path: str
) -> None:
    if shape != first:
        raise DataLayoutError(
            f"decode_cache needs images of one size: {path!r} is {shape}, {first_path!r} is {first}. "
            "Resize the data set first or build the scenario with decode_cache=False."
        )


class DecodeCacheWarning(UserWarning):
    """A damaged decoded-image array was found and is decoded again."""


def file_list_key(paths: Sequence[str], memo_dir: str | os.PathLike | None = None) -> str:
    """A hex digest of the ordered files' contents (``memo_dir``: where digests are remembered)."""
    h = hashlib.sha1()
    for digest in file_digests(paths, memo_dir):
        h.update(f"{digest}\n".encode())
    return h.hexdigest()


def cache_path(paths: Sequence[str], cache_dir: str | os.PathLike) -> Path:
    """Where the decoded array of ``paths`` is (or will be) stored under ``cache_dir``."""
    return Path(cache_dir) / f"decoded-{len(paths)}-{file_list_key(paths, cache_dir)[:20]}.npy"


def _decode_all(paths: Sequence[str], num_workers: int) -> np.ndarray:
    out: np.ndarray | None = None
    for i, arr in iter_decoded(paths, num_workers=num_workers):
        if out is None:
            out = np.empty((len(paths), *arr.shape), dtype=np.uint8)
        check_same_shape(arr.shape, out.shape[1:], paths[i], paths[0])
        out[i] = arr
    if out is None:
        raise ValueError("no images to decode")
    return out


def _load_verified(target: Path, n: int) -> np.ndarray | None:
    """The stored array if it and its checksum file agree; None if absent; warns if damaged."""
    checksum_file = target.with_suffix(".json")
    if not target.is_file() or not checksum_file.is_file():
        return None  # not built, or its checksum not written yet (a build in progress)
    try:
        expected = json.loads(checksum_file.read_text())["checksum"]
        if content_digest(str(target)) != expected:
            raise ValueError("the array does not match its checksum")
        arr = np.load(target, mmap_mode="r")
        if arr.shape[0] != n or arr.dtype != np.uint8:
            raise ValueError(f"shape {arr.shape} / dtype {arr.dtype}, expected {n} uint8 images")
        return arr
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"decoded-image cache {target} is damaged ({err}); decoding the images again",
                      DecodeCacheWarning, stacklevel=3)
        return None


def decode_images(
    paths: Sequence[str], cache_dir: str | os.PathLike | None = None, num_workers: int = 0
) -> np.ndarray:
    """The images at ``paths`` as one uint8 array ``(N, H, W, 3)``, in order.

    Args:
        paths: image files, all of one size.
        cache_dir: if given, load the array from (or save it to) a ``.npy`` keyed by the files'
            contents; loaded memory-mapped, read-only, after checking its checksum.
        num_workers: DataLoader worker processes used to decode (0: in this process).
    """
    if cache_dir is None:
        return _decode_all(paths, num_workers)
    target = cache_path(paths, cache_dir)
    stored = _load_verified(target, len(paths))
    if stored is not None:
        return stored
    arr = _decode_all(paths, num_workers)
    try:
        atomic_write(target, lambda stream: np.save(stream, arr))
        atomic_write_text(target.with_suffix(".json"),
                          json.dumps({"checksum": content_digest(str(target)), "shape": list(arr.shape)}))
    except OSError as err:  # an unwritable cache folder: the decoded array serves from memory
        warn_cache_unwritable("decoded-image cache", cache_dir, err)
        return arr
    return np.load(target, mmap_mode="r")


def decode_dataset(dataset: ImageFileDataset, cache_dir: str | os.PathLike | None = None,
                   num_workers: int = 0) -> ArrayImageDataset:
    """``dataset``'s images decoded once into one uint8 array ``(N, H, W, 3)``
    (:func:`decode_images`), served as an :class:`ArrayImageDataset` with the same targets."""
    images = decode_images(dataset.paths, cache_dir=cache_dir, num_workers=num_workers)
    return ArrayImageDataset(images, dataset.targets)


__all__ = ["DecodeCacheWarning", "cache_path", "decode_dataset", "decode_images", "file_list_key"]
