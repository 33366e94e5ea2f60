"""The on-disk feature cache: frozen-trunk outputs computed once, reused by every run.

Layout (``cache_dir`` defaults to ``$AVALANCHE_CLIP_CACHE`` or ``~/.cache/avalanche-clip``)::

    <cache_dir>/features/<key>/train.pt    [N_train, ...] float32, in global-index order
    <cache_dir>/features/<key>/test.pt     [N_test, ...]
    <cache_dir>/features/<key>/meta.json   what the key was built from; written last

``key`` hashes the model, the frozen weights, the split point, the eval transform and the data
(:mod:`avalanche_clip.features.fingerprint`). Two processes building the same entry serialise
on a file lock; files are written to temporary names and renamed, and an entry counts only once
its ``meta.json`` exists, so a killed build leaves nothing that is read later.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from avalanche_clip.atomic import atomic_write, atomic_write_text

_MEMORY: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
_MEMORY_ENTRIES = 2  # a sweep alternates between few entries; each can be large


def default_cache_dir() -> Path:
    """``$AVALANCHE_CLIP_CACHE``, else ``~/.cache/avalanche-clip``."""
    return Path(os.environ.get("AVALANCHE_CLIP_CACHE", Path.home() / ".cache" / "avalanche-clip"))


def load_or_build(cache_dir: str | os.PathLike, key: str, meta: dict[str, Any],
                  build: Callable[[str], torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """The ``{"train", "test"}`` features of ``key``, built with ``build(split)`` if absent.

    Returns the features and whether they were built now (False: read from disk or memory).
    """
    entry = Path(cache_dir) / "features" / key
    remembered = str(entry.resolve())  # per folder: another cache_dir must get its own files
    if remembered in _MEMORY:
        _MEMORY.move_to_end(remembered)
        return _MEMORY[remembered], False
    entry.mkdir(parents=True, exist_ok=True)
    built = False
    with FileLock(str(entry) + ".lock"):
        if not (entry / "meta.json").is_file():
            for split in ("train", "test"):
                features = build(split).contiguous()
                atomic_write(entry / f"{split}.pt", lambda stream, f=features: torch.save(f, stream))
            atomic_write_text(entry / "meta.json", json.dumps(meta, indent=2, sort_keys=True, default=str))
            built = True
    features = {split: torch.load(entry / f"{split}.pt", weights_only=True) for split in ("train", "test")}
    _MEMORY[remembered] = features
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return features, built


def clear_memory() -> None:
    """Forget the in-process copies (the files stay)."""
    _MEMORY.clear()
