"""Restoring every module's train / eval flag after an evaluation, in one pass.

Avalanche's template saves ``layer.training`` for every named module before evaluating and
restores it after with ``layer.train(mode)`` on each of them. ``Module.train`` recurses, so the
restore visits each module once per ancestor: for a model of ``n`` modules at depth ``d`` it
makes ``O(n·d)`` calls (effnet-lite0-clip: 326 modules, ~17,500 ``train`` calls and ~60 ms per
evaluation on one CPU thread, once per experience).

:func:`restore_train_modes` ends in the same flags with ``O(n)`` work (~1 ms on
effnet-lite0-clip, against ~4 ms when each module's earliest descendant was searched for
recursively and each flag set through ``Module.__setattr__``). Modules are visited in
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
    called = _with_earlier_descendant(named)
    for name, layer in named:
        mode = modes.get(name, True)
        if type(layer).train is nn.Module.train and id(layer) not in called:
            # what Module.train does to the module itself (Module.__setattr__'s checks skipped:
            # torch forbids a parameter, buffer or child named "training")
            object.__setattr__(layer, "training", mode)
        else:
            layer.train(mode)


def _with_earlier_descendant(named: list[tuple[str, nn.Module]]) -> set[int]:
    r"""``id``\ s of the modules in ``named`` (pre-order, each once) with a descendant earlier in it.

    On a path down from a module ``m`` that meets no module with several parents, every module
    is first reached through that path, so after ``m``. A module reached from several parents
    is listed under its first one and its own subtree follows it; so ``m`` has an earlier
    descendant iff a module ``s`` with several parents lies below ``m`` at an earlier position.
    Only the ancestors of such modules (few, usually none) are looked at.
    """
    position = {id(layer): i for i, (_, layer) in enumerate(named)}
    parents: dict[int, list[nn.Module]] = {}
    for _, layer in named:
        for child in layer._modules.values():
            if child is not None:
                parents.setdefault(id(child), []).append(layer)
    marked: set[int] = set()
    for _, shared in named:
        above = parents.get(id(shared), ())
        if len(above) < 2:
            continue
        stack, seen = list(above), set()
        while stack:
            ancestor = stack.pop()
            if id(ancestor) in seen:
                continue
            seen.add(id(ancestor))
            if position[id(shared)] < position[id(ancestor)]:
                marked.add(id(ancestor))
            stack.extend(parents.get(id(ancestor), ()))
    return marked
