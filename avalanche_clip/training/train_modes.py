"""Restoring every module's train / eval flag after an evaluation, in one pass.

Avalanche's template saves ``layer.training`` for every named module before evaluating and
restores it after with ``layer.train(mode)`` on each of them. ``Module.train`` recurses, so the
restore visits each module once per ancestor: for a model of ``n`` modules at depth ``d`` it
makes ``O(n·d)`` calls (effnet-lite0-clip: 326 modules, ~17,500 ``train`` calls and ~60 ms per
evaluation on one CPU thread, once per experience).

:func:`restore_train_modes` ends in the same flags with ``O(n)`` work. Modules are visited in
the same (pre-)order. A module's own recursive call matters only for descendants visited
*before* it (a module reachable from two parents, e.g. the image tower's tail that
``CLIPClassifier`` routes cached features through, also registered under ``clip.visual``):
later descendants are overwritten by their own visits. So a module of a class that keeps
``nn.Module.train``, with no descendant visited before it, gets its flag set directly; any
other module is called as Avalanche calls it, recursively: one whose subtree was partly visited
already, and one whose class overrides ``train`` (``CLIPClassifier`` refreezes frozen parts;
Hugging Face models), so its side effects happen with its own saved flag (the calls Avalanche
also makes on such a module with an ancestor's flag, which its own visit then undoes, are
not made).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn


def restore_train_modes(model: nn.Module, modes: Mapping[str, bool]) -> None:
    """Set each named module of ``model`` to ``modes[name]`` (a module missing from ``modes``,
    added during evaluation, to training mode), as Avalanche's ``_load_train_state`` does."""
    named = list(model.named_modules())
    position = {id(layer): i for i, (_, layer) in enumerate(named)}
    earliest: dict[int, int] = {}  # id(module) -> first visit position among its descendants

    def first_descendant(layer: nn.Module) -> int:
        key = id(layer)
        if key not in earliest:
            earliest[key] = min((min(position[id(child)], first_descendant(child))
                                 for child in layer.children()), default=len(named))
        return earliest[key]

    for i, (name, layer) in enumerate(named):
        mode = modes.get(name, True)
        if type(layer).train is nn.Module.train and first_descendant(layer) > i:
            layer.training = mode
        else:
            layer.train(mode)
