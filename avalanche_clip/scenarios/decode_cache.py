"""Decode a list of image files once into one uint8 array, optionally persisted as ``.npy``.

Decoding JPEGs costs more than a small model's step on a CPU (CIFAR-10: about 5,000 images/s
on one core). For small data sets the whole set fits in memory, so the scenarios can decode it
once (``decode_cache=True``) and serve PIL images from the array.

With a ``cache_dir`` the array is stored as ``decoded-<N>-<key>.npy``, where ``key`` hashes the
ordered file list with each file's size and mtime: editing, adding or reordering files gives a
new key, never a stale hit. The file is written to a unique temporary name in the same folder and
moved into place with ``os.replace`` (atomic on POSIX), so two processes building it at once
both succeed and a reader never sees a partial file. Later builds memory-map it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .image_files import check_same_shape, iter_decoded


def file_list_key(paths: Sequence[str]) -> str:
    """A hex digest of the ordered paths with their sizes and modification times."""
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_path(paths: Sequence[str], cache_dir: str | os.PathLike) -> Path:
    """Where the decoded array of ``paths`` is (or will be) stored under ``cache_dir``."""
    return Path(cache_dir) / f"decoded-{len(paths)}-{file_list_key(paths)[:20]}.npy"


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


def decode_images(
    paths: Sequence[str], cache_dir: str | os.PathLike | None = None, num_workers: int = 0
) -> np.ndarray:
    """The images at ``paths`` as one uint8 array ``(N, H, W, 3)``, in order.

    Args:
        paths: image files, all of one size.
        cache_dir: if given, load the array from (or save it to) a ``.npy`` keyed by the file
            list; loaded memory-mapped, read-only.
        num_workers: DataLoader worker processes used to decode (0: in this process).
    """
    if cache_dir is None:
        return _decode_all(paths, num_workers)
    target = cache_path(paths, cache_dir)
    if target.exists():
        arr = np.load(target, mmap_mode="r")
        if arr.shape[0] == len(paths) and arr.dtype == np.uint8:
            return arr
    arr = _decode_all(paths, num_workers)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return np.load(target, mmap_mode="r")


__all__ = ["cache_path", "decode_images", "file_list_key"]
