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
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

_MEMORY: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
_MEMORY_ENTRIES = 2  # a sweep alternates between few entries; each can be large


def default_cache_dir() -> Path:
    """``$AVALANCHE_CLIP_CACHE``, else ``~/.cache/avalanche-clip``."""
    return Path(os.environ.get("AVALANCHE_CLIP_CACHE", Path.home() / ".cache" / "avalanche-clip"))


def _atomic_save(obj: Any, path: Path) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_build(cache_dir: str | os.PathLike, key: str, meta: dict[str, Any],
                  build: Callable[[str], torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """The ``{"train", "test"}`` features of ``key``, built with ``build(split)`` if absent.

    Returns the features and whether they were built now (False: read from disk or memory).
    """
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key], False
    entry = Path(cache_dir) / "features" / key
    entry.mkdir(parents=True, exist_ok=True)
    built = False
    with FileLock(str(entry) + ".lock"):
        if not (entry / "meta.json").is_file():
            for split in ("train", "test"):
                _atomic_save(build(split).contiguous(), entry / f"{split}.pt")
            handle, tmp = tempfile.mkstemp(dir=entry, suffix=".tmp")
            with os.fdopen(handle, "w") as stream:
                json.dump(meta, stream, indent=2, sort_keys=True, default=str)
            os.replace(tmp, entry / "meta.json")
            built = True
    features = {split: torch.load(entry / f"{split}.pt", weights_only=True) for split in ("train", "test")}
    _MEMORY[key] = features
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return features, built


def clear_memory() -> None:
    """Forget the in-process copies (the files stay)."""
    _MEMORY.clear()
