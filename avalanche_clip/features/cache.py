"""The on-disk feature cache: frozen-trunk outputs computed once, reused by every run.

Layout (``cache_dir`` defaults to ``$AVALANCHE_CLIP_CACHE`` or ``~/.cache/avalanche-clip``)::

    <cache_dir>/features/<key>/train.pt    [N_train, ...] float32, in global-index order
    <cache_dir>/features/<key>/test.pt     [N_test, ...]
    <cache_dir>/features/<key>/meta.json   what the key was built from and the checksum of
                                           each .pt file; written last
    <cache_dir>/features/<key'>/views.pt   [V, N_train, ...] augmented views of every training
                                           image (``feature_views`` V > 1; its own entry, see
                                           :mod:`avalanche_clip.features.views`)

``key`` hashes the model, the frozen weights, the split point, the eval transform and the data
(:mod:`avalanche_clip.features.fingerprint`). Two processes building the same entry serialise
on a file lock; files are written to temporary names and renamed, and an entry counts only once
its ``meta.json`` exists, so a killed build leaves nothing that is read later. Every load checks
each file against its checksum: a damaged entry (a zero-filled ``train.pt`` of the right shape,
a truncated file, an unreadable ``meta.json``) is rebuilt with a :class:`CacheEntryWarning`,
never read. A cache folder that cannot be written (read-only, full, below a regular file) does
not stop a run: the features are computed in memory, with one warning
(:mod:`avalanche_clip.common.cache_writes`).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from avalanche_clip.common.atomic import atomic_write, atomic_write_text
from avalanche_clip.common.cache_writes import warn_cache_unwritable
from avalanche_clip.scenarios.file_digests import bytes_digest, content_digest

_MEMORY: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
# Entries read or built by this process, most recent last. A run reads several (the stream's
# train/test features, its augmented views, a held-out set's), and a sweep's runs read the same
# ones again: a memory of two entries missed on every read of a three-entry run (~0.2 s of
# checksums and loads a CIFAR-10 proxy run). The two most recent are always kept (each can be
# large); older ones while all of them fit in _MEMORY_BYTES (the proxy's three: ~90 MB), which
# bounds what a sweep's long-lived worker holds beyond the entries a run needs anyway (the
# sweep's per-worker memory, parallel_sweep.WORKER_MEMORY, was measured with two entries kept).
_MEMORY_ENTRIES = 2
_MEMORY_BYTES = 256 * 1024**2
SPLITS = ("train", "test")


class CacheEntryWarning(UserWarning):
    """A damaged cache entry was found and is being rebuilt."""


class _Damaged(Exception):
    """An entry exists but fails its checks (the message says which)."""


def default_cache_dir() -> Path:
    """``$AVALANCHE_CLIP_CACHE``, else ``~/.cache/avalanche-clip``."""
    return Path(os.environ.get("AVALANCHE_CLIP_CACHE", Path.home() / ".cache" / "avalanche-clip"))


def load_or_build(cache_dir: str | os.PathLike, key: str, meta: dict[str, Any],
                  build: Callable[[str], torch.Tensor], splits: tuple[str, ...] = SPLITS
                  ) -> tuple[dict[str, torch.Tensor], bool]:
    """The ``{"train", "test"}`` features of ``key`` (or those of ``splits``: an entry of
    augmented views holds ``("views",)``), built with ``build(split)`` if absent or damaged.
    Returns the features and whether they were built now (False: read from disk or memory)."""
    entry = Path(cache_dir) / "features" / key
    remembered = str(entry.resolve())  # per folder: another cache_dir must get its own files
    if remembered in _MEMORY:
        _MEMORY.move_to_end(remembered)
        return _MEMORY[remembered], False
    features = _read_quietly(entry, splits)
    built = False
    if features is None:
        try:
            entry.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(entry) + ".lock")
            lock.acquire()
        except OSError as err:  # a folder that cannot be written: the features still can be computed
            warn_cache_unwritable("feature cache", entry.parent, err)
            features, built = _compute(build, splits), True
        else:
            try:
                features, built = _read_or_build_locked(entry, meta, build, splits)
            finally:
                lock.release()
    _MEMORY[remembered] = features
    _forget_oldest()
    return features, built


def _entry_bytes(features: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in features.values() if isinstance(t, torch.Tensor))


def _forget_oldest() -> None:
    """Drop the least recently used entries beyond the two most recent while the memory holds
    more than :data:`_MEMORY_BYTES`."""
    total = sum(_entry_bytes(f) for f in _MEMORY.values())
    while len(_MEMORY) > _MEMORY_ENTRIES and total > _MEMORY_BYTES:
        total -= _entry_bytes(_MEMORY.popitem(last=False)[1])


def _read_or_build_locked(entry: Path, meta: dict[str, Any], build: Callable[[str], torch.Tensor],
                          splits: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], bool]:
    """Under the entry's lock: the entry if another process built it meanwhile, else built now."""
    try:
        features = _read_verified(entry, splits)
    except _Damaged as err:
        warnings.warn(f"feature cache entry {entry} is damaged ({err}); rebuilding it",
                      CacheEntryWarning, stacklevel=3)
        features = None
    if features is not None:
        return features, False
    features = _compute(build, splits)
    _store(entry, meta, features)
    return features, True


def _read_quietly(entry: Path, splits: tuple[str, ...]) -> dict[str, torch.Tensor] | None:
    """The verified entry, or None when it is absent or damaged (decided again under the lock)."""
    try:
        return _read_verified(entry, splits)
    except _Damaged:
        return None


def _read_verified(entry: Path, splits: tuple[str, ...]) -> dict[str, torch.Tensor] | None:
    """The features of a complete entry whose files match their checksums; None if there is no
    entry; :class:`_Damaged` if there is one that fails a check."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        checksums = json.loads(meta_path.read_text())["checksums"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _Damaged(f"meta.json unreadable or without checksums: {type(err).__name__}") from None
    features = {}
    for split in splits:
        path = entry / f"{split}.pt"
        try:
            data = path.read_bytes()
        except OSError as err:
            raise _Damaged(f"{path.name}: {err.strerror or err}") from None
        if bytes_digest(data) != checksums.get(path.name):
            raise _Damaged(f"{path.name} does not match its checksum")
        try:
            features[split] = torch.load(io.BytesIO(data), weights_only=True)
        except Exception as err:  # matching checksum but unreadable: written by something else
            raise _Damaged(f"{path.name}: {type(err).__name__}: {err}") from None
    return features


def _compute(build: Callable[[str], torch.Tensor], splits: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {split: build(split).contiguous() for split in splits}


def _store(entry: Path, meta: dict[str, Any], features: dict[str, torch.Tensor]) -> None:
    """Write ``features`` as the entry (``meta.json`` last); when the folder cannot take them
    (full, read-only), warn and keep them in memory only: the entry is left not counting."""
    try:
        (entry / "meta.json").unlink(missing_ok=True)  # the entry stops counting until rewritten
        checksums = {}
        for split in features:
            path = atomic_write(entry / f"{split}.pt", lambda stream, f=features[split]: torch.save(f, stream))
            checksums[path.name] = content_digest(str(path))
        atomic_write_text(entry / "meta.json", json.dumps({**meta, "checksums": checksums}, indent=2,
                                                          sort_keys=True, default=str))
    except OSError as err:
        warn_cache_unwritable("feature cache", entry.parent, err)


def clear_memory() -> None:
    """Forget the in-process copies (the files stay)."""
    _MEMORY.clear()
