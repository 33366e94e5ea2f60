"""What Avalanche plugins get as ``strategy._criterion(out, y)`` from a contrastive strategy.

EWC (importances), GEM / A-GEM (reference gradients), RWalk, GSS, MIR ... evaluate
``strategy._criterion(model(x), y)`` on batches of their own. GCL / GDRO train with a stateful loss
of (image features, label-prompt features, labels, sample ids), kept as
``strategy.contrastive_loss``; the criterion the plugins call is :class:`BatchContrastiveCriterion`::

    criterion(logits, targets) = F_B, the strategy's contrastive objective on this batch alone,

computed on the features of the forward that produced ``logits``: that forward's inputs are
encoded again (``model.encode_images(x)``, with gradient), row ``j`` of the text features is the
prompt of ``targets[j]`` (``model.class_embeddings``), and a fresh copy of the loss with the same
hyper-parameters but batch-local estimators (``γ = γ_c = 1``, ids ``0..B−1``; no stored state read
or written) gives

    GCL:  F_B = (1/|B'|) Σ_{i∈B'} τ·[log ĝ₁(i) + log ĝ₂(i)]                 (B': rows with a negative)
    GDRO: F_B = λ·log((1/|C_B|) Σ_{k∈C_B} exp(L̂_k/λ)),
          L̂_k = mean_{i: y_i = k} τ·[log ĝ₁ˡ(i) + log ĝ₂ˡ(i)]               (C_B: classes in the batch)

with ``ĝ`` the in-batch means of :class:`~avalanche_clip.losses.GCLLoss` /
:class:`~avalanche_clip.losses.GDROLoss`. The value returned is ``F_B`` and its gradient is exactly
``∇F_B`` (the losses' surrogate gradient at ``γ = 1``), so EWC's importances are the squared
gradients of the contrastive objective, estimated one batch at a time.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

import torch
from torch import nn

#: Moving-average rates set to 1 in the batch-local copy (the estimate is the batch's own).
_BATCH_LOCAL = {"gamma": 1.0, "class_gamma": 1.0}


def batch_local_copy(loss: nn.Module, batch_size: int) -> nn.Module:
    """A fresh loss of ``loss``'s class and hyper-parameters (constructor arguments read from the
    attributes of the same name) over ids ``0..batch_size−1``, with ``γ = γ_c = 1``."""
    kwargs: dict[str, Any] = {}
    for name, parameter in inspect.signature(type(loss).__init__).parameters.items():
        if name in ("self", "num_samples") or parameter.kind in (parameter.VAR_POSITIONAL,
                                                                 parameter.VAR_KEYWORD):
            continue
        if name in _BATCH_LOCAL:
            kwargs[name] = _BATCH_LOCAL[name]
        elif hasattr(loss, name):
            kwargs[name] = getattr(loss, name)
        elif parameter.default is parameter.empty:
            raise TypeError(f"cannot copy {type(loss).__name__}: no attribute for its argument {name!r}")
    return type(loss)(num_samples=batch_size, **kwargs)


class BatchContrastiveCriterion:
    """``criterion(logits, targets)``: the contrastive objective of one batch (module docstring).

    Args:
        loss: the strategy's stateful contrastive loss (its hyper-parameters are used; its state
            is never touched).
        model: the classifier (``encode_images``, ``class_embeddings``); a forward hook records
            the inputs and output of its latest forward, by weak reference.
    """

    def __init__(self, loss: nn.Module, model: nn.Module) -> None:
        self.loss = loss
        self._model = weakref.ref(model)
        self._last: tuple[weakref.ref, weakref.ref] | None = None
        criterion = weakref.ref(self)

        # A plain function (deepcopy keeps it as is) that ignores copies of the model, such as
        # LwF's previous model, which carry the hook along.
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            owner = criterion()
            if owner is not None and module is owner._model() and args and torch.is_tensor(output):
                owner.record(args[0], output)

        model.register_forward_hook(hook)

    def record(self, inputs: torch.Tensor, output: torch.Tensor) -> None:
        """Remember (weakly) that ``output`` was computed from ``inputs``."""
        self._last = (weakref.ref(inputs), weakref.ref(output))

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        inputs, output = (None, None) if self._last is None else (self._last[0](), self._last[1]())
        model = self._model()
        if output is None or output is not logits or inputs is None or model is None:
            raise RuntimeError(
                f"{type(self).__name__} evaluates the contrastive loss on the features of the "
                "model's latest forward: call it on that forward's output, as Avalanche's plugins "
                "do (out = model(x); strategy._criterion(out, y))"
            )
        targets = targets.to(logits.device)
        image = model.encode_images(inputs)
        classes, position = torch.unique(targets, return_inverse=True)
        text = model.class_embeddings(classes).to(image.dtype)[position]
        fresh = batch_local_copy(self.loss, len(targets)).to(image.device).train()
        surrogate = fresh(image, text, targets, torch.arange(len(targets), device=image.device))
        objective = fresh.objective()
        if not bool(torch.isfinite(objective)):  # no row with a negative: nothing to contrast
            return surrogate
        # Value F_B, gradient ∇F_B (the surrogate's gradient at γ = 1).
        return objective.to(surrogate.dtype) + (surrogate - surrogate.detach())


__all__ = ["BatchContrastiveCriterion", "batch_local_copy"]
