"""The freshly built CLIP model of a run, built once per process and copied for later runs.

Every run of a sweep starts from ``seed_everything(seed)`` and ``create_clip(model, pretrained,
image_size, device)``: open_clip initialises every layer at random (drawing from the seeded
generators) and then loads the pretrained weights, ~0.3–0.6 s a run on one CPU thread for
effnet-lite0-clip, the same for every run of a seed. :func:`fresh_clip` keeps the first build
of each (model, pretrained, image size, device, seed) untouched and hands each run a deep copy
of it (same values, dtypes, strides and ``requires_grad`` flags, no storage shared), with the
random generators set to the state the build left them in, so what the run draws afterwards is
what it drew after building the model itself. Records are identical to those of a fresh build.

A ``pretrained`` that names a local file is keyed by its path, size and modification time, so
a replaced checkpoint is built anew. The :data:`KEPT` most recent builds are kept (one per seed
of a sweep).
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from avalanche_clip.models import create_clip
from avalanche_clip.models.factory import CLIPBundle
from avalanche_clip.training.seeding import capture_rng_state, restore_rng_state, seed_everything

#: How many builds a process keeps (3 seeds of a sweep, and one spare).
KEPT = 4
_BUILT: OrderedDict[tuple, tuple[CLIPBundle, dict[str, Any]]] = OrderedDict()


def _key(name: str, pretrained: Any, image_size: int | None, device: str, seed: int) -> tuple:
    file = None
    if pretrained is not None and Path(str(pretrained)).expanduser().is_file():
        stat = os.stat(Path(str(pretrained)).expanduser())
        file = (stat.st_size, stat.st_mtime_ns)
    return name, None if pretrained is None else str(pretrained), image_size, str(device), seed, file


def fresh_clip(name: str, pretrained: Any, *, image_size: int | None, device: str,
               seed: int) -> CLIPBundle:
    """``seed_everything(seed)`` then ``create_clip(name, pretrained, device=device,
    image_size=image_size)``, with the model a copy of this process's first such build (see the
    module docstring). The transforms and the tokenizer keep no state and are shared."""
    key = _key(name, pretrained, image_size, device, seed)
    if key not in _BUILT:
        seed_everything(seed)
        built = create_clip(name, pretrained, device=device, image_size=image_size)
        _BUILT[key] = (built._replace(model=copy.deepcopy(built.model)), capture_rng_state())
        while len(_BUILT) > KEPT:
            _BUILT.popitem(last=False)
        return built
    _BUILT.move_to_end(key)
    pristine, rng_state = _BUILT[key]
    restore_rng_state(rng_state)
    return pristine._replace(model=copy.deepcopy(pristine.model))


def forget_built_models() -> None:
    """Drop every kept build (tests; a process that needs the memory back)."""
    _BUILT.clear()
