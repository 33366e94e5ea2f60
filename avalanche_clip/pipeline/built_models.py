"""The freshly built CLIP model of a run, built once per process and copied for later runs.

Every run of a sweep starts from ``seed_everything(seed)`` and ``create_clip(model, pretrained,
image_size, device)``: open_clip initialises every layer at random (drawing from the seeded
generators) and then loads the pretrained weights, ~0.3–0.6 s a run on one CPU thread for
effnet-lite0-clip, the same for every run of a seed. :func:`fresh_clip` keeps the first build
of each (model, pretrained, image size, device, seed) untouched and hands each run a deep copy
of it (same values, dtypes, strides and ``requires_grad`` flags), with the
random generators set to the state the build left them in, so what the run draws afterwards is
what it drew after building the model itself. Records are identical to those of a fresh build.

Given the run's ``trainable`` choice, the copy shares the parameters that choice freezes with
the kept build instead of copying them (its own ``Parameter`` objects, ``requires_grad=False``,
on the kept build's storage): effnet-lite0-clip's projections are 0.4 M of its 19.6 M
parameters, so the copy takes ~0.04 s instead of ~0.08 s, and the frozen weights keep their
storage from run to run, so the checkpoints' fingerprint of them (77 MB hashed) is computed once
per build and process (:func:`~avalanche_clip.features.fingerprint.tensors_fingerprint`), not
at every run's first checkpoint. A run must not change weights it was handed frozen. One that
does in place (``p.add_`` under ``no_grad``, ``load_state_dict``) bumps the version counter it
shares with the kept build, which is checked with each parameter's storage, type, shape and
place before every copy: such a build is dropped and built anew, so no run starts from weights
another run changed. (A move of the copy, ``.double()`` or ``.to(device)``, gives its
parameters storage of their own and leaves the build as it is; writes through ``p.data``, which
torch does not count, are not seen, as for the fingerprints.) Without a ``trainable`` choice
nothing is shared.

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

from torch import nn

from avalanche_clip.features.fingerprint import tensor_state
from avalanche_clip.models import create_clip
from avalanche_clip.models.factory import CLIPBundle
from avalanche_clip.models.trainable import set_trainable, trainable_parameter_names
from avalanche_clip.training.seeding import capture_rng_state, restore_rng_state, seed_everything

#: How many builds a process keeps (3 seeds of a sweep, and one spare).
KEPT = 4
_BUILT: OrderedDict[tuple, tuple[CLIPBundle, dict[str, Any], list[tuple]]] = OrderedDict()


def _key(name: str, pretrained: Any, image_size: int | None, device: str, seed: int) -> tuple:
    file = None
    if pretrained is not None and Path(str(pretrained)).expanduser().is_file():
        stat = os.stat(Path(str(pretrained)).expanduser())
        file = (stat.st_size, stat.st_mtime_ns)
    return name, None if pretrained is None else str(pretrained), image_size, str(device), seed, file


def fresh_clip(name: str, pretrained: Any, *, image_size: int | None, device: str,
               seed: int, trainable: str | None = None) -> CLIPBundle:
    """``seed_everything(seed)`` then ``create_clip(name, pretrained, device=device,
    image_size=image_size)``, with the model a copy of this process's first such build (see the
    module docstring). The transforms and the tokenizer keep no state and are shared.

    ``trainable``: the run's :func:`~avalanche_clip.models.set_trainable` choice, applied to the
    copy, whose frozen parameters are then shared with the kept build (read-only); None: a
    full copy, every parameter trainable as built."""
    key = _key(name, pretrained, image_size, device, seed)
    if key in _BUILT and _states(_BUILT[key][0].model) != _BUILT[key][2]:
        del _BUILT[key]  # a run changed weights it was handed frozen: build this one anew
    if key not in _BUILT:
        seed_everything(seed)
        built = create_clip(name, pretrained, device=device, image_size=image_size)
        _BUILT[key] = (built, capture_rng_state(), _states(built.model))
        while len(_BUILT) > KEPT:
            _BUILT.popitem(last=False)
    _BUILT.move_to_end(key)
    pristine, rng_state, _ = _BUILT[key]
    restore_rng_state(rng_state)
    if trainable is None:
        return pristine._replace(model=copy.deepcopy(pristine.model))
    frozen = set(dict(pristine.model.named_parameters())) - trainable_parameter_names(pristine.model, trainable)
    model = _copy_sharing(pristine.model, frozen)
    set_trainable(model, trainable)
    return pristine._replace(model=model)


def _copy_sharing(model: nn.Module, shared: set[str]) -> nn.Module:
    """A deep copy of ``model`` whose parameters named in ``shared`` are new frozen
    ``Parameter`` objects on the original's storage (same values, strides, version counter)."""
    memo: dict[int, Any] = {}
    for name, param in model.named_parameters():
        if name in shared and type(param) is nn.Parameter:
            memo[id(param)] = nn.Parameter(param.detach(), requires_grad=False)
    return copy.deepcopy(model, memo)


def _states(model: nn.Module) -> list[tuple]:
    """What shows an in-place change of each parameter (:func:`tensor_state`)."""
    return [tensor_state(p) for p in model.parameters()]


def forget_built_models() -> None:
    """Drop every kept build (tests; a process that needs the memory back)."""
    _BUILT.clear()
