"""What Avalanche plugins get as ``strategy._criterion(out, y)`` from a contrastive strategy.

EWC (importances), GEM / A-GEM (reference gradients), RWalk, GSS, MIR ... evaluate
``strategy._criterion(model(x), y)`` on batches of their own. GCL / GDRO train with a stateful loss
of (image features, label-prompt features, labels, sample ids), kept as
``strategy.contrastive_loss``; the criterion the plugins call is :class:`BatchContrastiveCriterion`::

    criterion(logits, targets) = F_B, the strategy's contrastive objective on this batch alone,

computed on the features of the forward that produced ``logits``: that forward's inputs are
encoded again (``model.encode_images(x)``, with gradient), row ``j`` of the text features is the
prompt of ``targets[j]`` (``model.class_embeddings``), and the loss's batch-local copy
(``loss.batch_local(B)``: the same hyper-parameters, ``γ = γ_c = 1``, ids ``0..B−1``; no stored
state read or written) gives

    GCL:  F_B = (1/|B'|) Σ_{i∈B'} τ·[log ĝ₁(i) + log ĝ₂(i)]                 (B': rows with a negative)
    GDRO: F_B = λ·log((1/|C_B|) Σ_{k∈C_B} exp(L̂_k/λ)),
          L̂_k = mean_{i: y_i = k} τ·[log ĝ₁ˡ(i) + log ĝ₂ˡ(i)]               (C_B: classes in the batch)

with ``ĝ`` the in-batch means of :class:`~avalanche_clip.losses.GCLLoss` /
:class:`~avalanche_clip.losses.GDROLoss`. Under the strategy's ``train_logits="seen"`` the
image-anchor means also run over the prompts of the seen classes absent from the batch
(``extra_negatives``, ``E``), as in the training loss:
``ĝ₁(i) = [Σ_{j∈B_i} exp(h¹_ij/τ) + Σ_{k∈E} exp(h¹_ik/τ)]/(|B_i| + |E|)``; one encode of the seen
classes' prompts gives both the rows' prompts and ``E``. With one head per task the batch's
negatives are kept (as in training). (GCL with ``negatives="class"`` on a batch of one class: the
rows have a ``ĝ₁`` over ``E`` only and no ``ĝ₂``; the value leaves them out, the gradient not.) The value returned is ``F_B`` and its gradient is exactly
``∇F_B`` (the losses' surrogate gradient at ``γ = 1``), so EWC's importances are the squared
gradients of the contrastive objective, estimated one batch at a time.

Why it remembers the latest forward, and why by weak reference. The plugins call the model
themselves (``out = model(x)``) and hand the criterion only ``out``, so a forward hook on the
model records ``(x, out)`` (the strategy's own training forward, which calls the encoders
directly, records them itself). The features cannot be recovered from ``out``: the logits are
``s·a·bᵀ`` and dividing ``s`` out again changes their last bits, hence EWC's importances and the
committed records; re-encoding ``x`` gives the training forward's own numbers. Weak references
keep no batch or autograd graph alive after the plugin is done with it, and no reference cycle
between the model (its hook) and the criterion; a copy of the model (LwF's previous model)
carries the hook along, which ignores it.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn


class BatchContrastiveCriterion:
    """``criterion(logits, targets)``: the contrastive objective of one batch (module docstring).

    Args:
        loss: the strategy's stateful contrastive loss, with ``batch_local(batch_size)`` (GCLLoss,
            GDROLoss): its hyper-parameters are used, its state never touched.
        model: the classifier (``encode_images``, ``class_embeddings``); a forward hook records
            the inputs and output of its latest forward, by weak reference.
        train_logits: ``"batch"`` (in-batch negatives) or ``"seen"`` (also the absent seen
            classes' prompts: module docstring), the strategy's setting.
    """

    def __init__(self, loss: nn.Module, model: nn.Module, train_logits: str = "batch") -> None:
        if train_logits not in ("batch", "seen"):
            raise ValueError(f"train_logits must be 'batch' or 'seen', got {train_logits!r}")
        if not callable(getattr(loss, "batch_local", None)):
            raise TypeError(f"{type(loss).__name__} has no batch_local(batch_size) method, which "
                            "gives the batch's own contrastive objective to the plugins; see "
                            "GCLLoss.batch_local")
        self.loss = loss
        self.train_logits = train_logits
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
        options = {}
        if self.train_logits == "seen" and getattr(model, "task_heads", None) is None:
            # The seen classes and the batch's (a plugin's batch may hold a class not yet marked).
            classes = torch.unique(torch.cat([model.classes.visible().to(targets.device), targets]))
            position = torch.searchsorted(classes, targets)
            prompts = model.class_embeddings(classes).to(image.dtype)
            options["extra_negatives"] = prompts[~torch.isin(classes, targets)]
        else:
            classes, position = torch.unique(targets, return_inverse=True)
            prompts = model.class_embeddings(classes).to(image.dtype)
        text = prompts[position]
        fresh = self.loss.batch_local(len(targets)).to(image.device).train()
        surrogate = fresh(image, text, targets, torch.arange(len(targets), device=image.device), **options)
        objective = fresh.objective()
        if not bool(torch.isfinite(objective)):  # no row with a negative: nothing to contrast
            return surrogate
        # Value F_B, gradient ∇F_B (the surrogate's gradient at γ = 1).
        return objective.to(surrogate.dtype) + (surrogate - surrogate.detach())


__all__ = ["BatchContrastiveCriterion"]
