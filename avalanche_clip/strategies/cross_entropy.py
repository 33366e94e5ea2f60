"""The paper's CE baseline: fine-tune CLIP with cross-entropy on prompt logits.

Logits are ``s · a_i · b_k`` over the classes seen so far (``CLIPClassifier``), so the prompt
embeddings act as the classifier and the text tower trains with it when it is trainable. Same
replay memory and sampling as GCL / GDRO, so a comparison isolates the loss.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from avalanche_clip.strategies.base import CLIPStrategyBase


class CLIPCrossEntropyStrategy(CLIPStrategyBase):
    """Cross-entropy over prompt logits (see :class:`CLIPStrategyBase` for args): its negatives
    are the batch's classes or every seen class, as the protocol's ``train_logits`` says.

    Takes Avalanche's argument order, ``CLIPCrossEntropyStrategy(model, optimizer)``; the
    training loss is the cross-entropy over the rows whose class is visible (a ``criterion``
    argument, if given, is what plugins such as EWC call as ``strategy._criterion(out, y)``).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, **kwargs)
