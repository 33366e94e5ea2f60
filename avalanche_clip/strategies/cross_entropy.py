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
    """Cross-entropy over seen-class prompt logits (see :class:`CLIPStrategyBase` for args)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(criterion=nn.CrossEntropyLoss(), **kwargs)
