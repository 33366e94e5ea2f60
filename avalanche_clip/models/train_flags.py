"""A model's train / eval flags set from a remembered plan while its module tree is unchanged.

``CLIPClassifier.train(mode)`` is ``nn.Module.train`` (one recursive call per module) followed,
in training mode, by :func:`~avalanche_clip.models.trainable.freeze_frozen_modules` (frozen
parts back to eval: another walk, and one more recursive ``eval`` per frozen subtree). On
effnet-lite0-clip's 329 modules that is ~2.8 ms a call on one CPU thread (``train(False)``
~1 ms), and Avalanche makes it several times an experience (the strategy's ``train``, the
evaluation's ``eval`` and the restore after it): ~40 ms of a 5-experience run whose 225 steps
take ~1.5 s.

The flags those calls leave depend only on ``mode``, the module tree (which modules are each
module's children), each module's class, and which of each module's own parameters exist and
require a gradient, never on the flags before the call. :class:`TrainFlagPlans` runs the call
once per mode, records every module's resulting flag with that signature, and on later calls
checks the signature (one pass over the remembered modules, ~0.2 ms) and writes the flags
directly. Any difference (a module added, removed or replaced anywhere, a parameter frozen,
unfrozen, added or removed, a class swapped) fails the check, and the call is made again and
recorded anew. A tree in which a module other than the root overrides ``train`` or ``eval``
(whose side effects a plan cannot replay) or keeps no plain ``training`` attribute is never
recorded: every call is made.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["TrainFlagPlans"]


def _signature(module: nn.Module) -> tuple:
    """What a train / eval call's result on ``module``'s subtree depends on at ``module``."""
    return (type(module), tuple(module._modules.values()),
            tuple(None if p is None else p.requires_grad for p in module._parameters.values()))


class _Plan:
    """The flags every module of a tree had after one call, with the tree's signature. The root
    is not held (it holds the plan: no reference cycle keeps a dropped model alive)."""

    def __init__(self, root: nn.Module) -> None:
        below = list(root.modules())[1:]  # pre-order, each module once
        self.root_id = id(root)
        self.root_signature, self.root_flag = _signature(root), root.training
        self.modules = tuple(below)
        self.signatures = tuple(_signature(m) for m in below)
        self.flags = tuple(m.training for m in below)

    @staticmethod
    def recordable(root: nn.Module) -> bool:
        """Whether setting its flag is all a call does to each module below ``root``: none
        overrides ``train`` / ``eval`` (in its class or on itself) or ``__setattr__``."""
        for module in root.modules():
            if type(module).__setattr__ is not nn.Module.__setattr__:
                return False
            if module is not root and (type(module).train is not nn.Module.train
                                       or type(module).eval is not nn.Module.eval
                                       or "train" in module.__dict__ or "eval" in module.__dict__):
                return False
        return True

    def matches(self, root: nn.Module) -> bool:
        """Whether the tree is still the recorded one (see the module docstring)."""
        return (id(root) == self.root_id and _signature(root) == self.root_signature
                and all(_signature(m) == s for m, s in zip(self.modules, self.signatures, strict=True)))

    def apply(self, root: nn.Module) -> None:
        # what Module.train's ``self.training = mode`` ends in, without Module.__setattr__'s
        # ~2 µs of checks (torch forbids a parameter, buffer or child named "training")
        object.__setattr__(root, "training", self.root_flag)
        for module, flag in zip(self.modules, self.flags, strict=True):
            object.__setattr__(module, "training", flag)


class TrainFlagPlans:
    """One remembered plan per mode for a root module (see the module docstring).

    Example::

        plans = TrainFlagPlans()
        plans.set(model, True, lambda: model_train_the_slow_way(True))
    """

    def __init__(self) -> None:
        self._plans: dict[bool, _Plan | None] = {}

    # A copy of the model (deepcopy, pickle) starts without plans: a plan is not state, and one
    # copied along would name the copy's modules only through the copying's bookkeeping.
    def __deepcopy__(self, memo: dict) -> TrainFlagPlans:
        return TrainFlagPlans()

    def __reduce__(self) -> tuple:
        return (TrainFlagPlans, ())

    def set(self, root: nn.Module, mode: bool, call: Callable[[], None]) -> None:
        """Leave every module of ``root`` with the flag ``call()`` would leave: from the plan
        recorded for ``mode`` when the tree still matches it, else by calling ``call`` (and
        recording its result)."""
        if not isinstance(mode, bool):  # as nn.Module.train refuses it
            raise ValueError("training mode is expected to be boolean")
        plan = self._plans.get(mode)
        if plan is not None and plan.matches(root):
            plan.apply(root)
            return
        call()
        self._plans[mode] = _Plan(root) if _Plan.recordable(root) else None

    def clear(self) -> None:
        """Forget the plans (the next call of each mode is made and recorded)."""
        self._plans.clear()
